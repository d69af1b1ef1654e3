"""Operations: auditing a deployment, tracing queries, the slow query log."""
