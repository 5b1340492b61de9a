-- The order saga: each order's step and its deadline, why it was cancelled, how it pays, and
-- its timeline. Orders made before the saga have no step (they never wait on one).
ALTER TABLE orders ADD COLUMN payment_method TEXT NOT NULL DEFAULT 'pm_card_visa';
ALTER TABLE orders ADD COLUMN cancel_reason TEXT;
ALTER TABLE orders ADD COLUMN saga_step TEXT CHECK (saga_step IN ('stock', 'payment'));
ALTER TABLE orders ADD COLUMN step_deadline BIGINT;
CREATE INDEX orders_deadline ON orders (step_deadline) WHERE step_deadline IS NOT NULL;

CREATE TABLE order_timeline (
    order_id TEXT NOT NULL REFERENCES orders (id),
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    step TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT,
    PRIMARY KEY (order_id, seq)
);
