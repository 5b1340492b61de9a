-- Products. Times are microseconds since the Unix epoch (UTC); prices are minor units.
CREATE TABLE products (
    id TEXT PRIMARY KEY,
    sku TEXT NOT NULL,
    name TEXT NOT NULL,
    -- lower(name) by Unicode rules, computed by the service: `q` searches it on both databases.
    name_folded TEXT NOT NULL,
    description TEXT,
    category TEXT NOT NULL,
    price_amount BIGINT NOT NULL CHECK (price_amount >= 0),
    price_currency TEXT NOT NULL,
    stock_quantity BIGINT NOT NULL CHECK (stock_quantity >= 0),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    version BIGINT NOT NULL
);
CREATE UNIQUE INDEX products_sku ON products (sku);
CREATE INDEX products_category ON products (category, id);
