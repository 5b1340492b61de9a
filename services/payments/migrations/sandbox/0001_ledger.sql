-- The sandbox processor's ledger: what it charged and refunded, by idempotency key. It lives
-- in a database of its own (a separate SQLite file, or the schema payment_sandbox), as an
-- external processor's would: a charge it made stays made when the payments service's
-- transaction rolls back or its process dies before the commit. Times are microseconds since
-- the Unix epoch (UTC); amounts are minor units.
CREATE TABLE sandbox_charges (
    idempotency_key TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    amount BIGINT NOT NULL,
    currency TEXT NOT NULL,
    payment_method TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('succeeded', 'declined')),
    code TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE sandbox_refunds (
    idempotency_key TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    charge_id TEXT NOT NULL,
    amount BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX sandbox_refunds_charge ON sandbox_refunds (charge_id);
