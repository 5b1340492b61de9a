-- Payments: one row per order charged (or refused), and the orders cancelled before any
-- request to charge them arrived. Times are microseconds since the Unix epoch (UTC); amounts
-- are minor units of the payment's currency.
CREATE TABLE payments (
    id TEXT PRIMARY KEY,
    -- At most one payment per order: the charge's idempotency key at the provider as well.
    order_id TEXT NOT NULL UNIQUE,
    customer_id TEXT NOT NULL,
    amount BIGINT NOT NULL,
    currency TEXT NOT NULL,
    payment_method TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('SUCCEEDED', 'FAILED', 'REFUNDED')),
    -- The decline code when FAILED, the order's cancel reason when REFUNDED.
    reason TEXT,
    -- The provider's ids.
    charge_id TEXT,
    refund_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX payments_customer ON payments (customer_id, id);

-- Tombstones: an OrderCancelled handled before its order's PaymentRequested (reordered
-- delivery). A later request for the order is not charged.
CREATE TABLE cancelled_orders (
    order_id TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    at BIGINT NOT NULL
);
