"""The product catalogue: a reference web service built on pgkeel's public API, FastAPI,
pydantic and Jinja2 (``create_app()`` in :mod:`.app`; ``python -m examples.catalogue`` serves
it on the embedded development server, as ``make demo`` does)."""
