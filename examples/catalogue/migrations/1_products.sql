-- The product catalogue: UUID ids, exact prices, tags and metadata searchable through GIN
-- indexes, and stock that can never go below zero.
CREATE TABLE product (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sku text NOT NULL CONSTRAINT product_sku_key UNIQUE,
    name text NOT NULL,
    category text NOT NULL,
    price numeric(12, 2) NOT NULL CONSTRAINT product_price_nonnegative CHECK (price >= 0),
    stock integer NOT NULL DEFAULT 0 CONSTRAINT product_stock_nonnegative CHECK (stock >= 0),
    tags text[] NOT NULL DEFAULT '{}',
    metadata jsonb NOT NULL DEFAULT '{}',
    available_from timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX product_tags_gin ON product USING gin (tags);
CREATE INDEX product_metadata_gin ON product USING gin (metadata jsonb_path_ops);
CREATE INDEX product_category_id ON product (category, id);
