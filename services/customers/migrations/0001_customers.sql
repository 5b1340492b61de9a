-- Customers. Times are microseconds since the Unix epoch (UTC).
CREATE TABLE customers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    -- lower(email) by Unicode rules, computed by the service: emails are unique in any case.
    email_folded TEXT NOT NULL,
    phone TEXT,
    address TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    version BIGINT NOT NULL
);
CREATE UNIQUE INDEX customers_email ON customers (email_folded);
