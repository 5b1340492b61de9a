-- Stock per product, and what each order holds of it. Times are microseconds since the Unix
-- epoch (UTC). `available` is `on_hand - reserved`, never stored; the checks keep it >= 0.
CREATE TABLE stock (
    product_id TEXT PRIMARY KEY,
    on_hand BIGINT NOT NULL CHECK (on_hand >= 0),
    reserved BIGINT NOT NULL CHECK (reserved >= 0),
    version BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CHECK (reserved <= on_hand)
);

-- The state of each order inventory has seen: a reservation (RESERVED), its refusal
-- (REJECTED), the sale it became (SOLD), the reservation given back (RELEASED), the sale given
-- back (RETURNED), or an order cancelled before it was seen (CANCELLED, a tombstone that
-- refuses a later OrderCreated).
CREATE TABLE stock_orders (
    order_id TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('RESERVED', 'REJECTED', 'SOLD', 'RELEASED', 'RETURNED', 'CANCELLED')),
    updated_at BIGINT NOT NULL
);

-- What a reserved order holds: one row per product (an order's lines of one product summed).
CREATE TABLE stock_order_lines (
    order_id TEXT NOT NULL,
    product_id TEXT NOT NULL,
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, product_id)
);
