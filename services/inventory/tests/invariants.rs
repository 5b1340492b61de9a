//! The stock invariants under any sequence of the saga's messages, against a model.
//!
//! Random sequences of `OrderCreated`, `OrderConfirmed`, `OrderCancelled` and copies of
//! messages already sent (the relay's redelivery), for a few orders and products, are handled
//! as the consumer handles them (inbox, then the handler, in one transaction of a real SQLite
//! database). After every step: `on_hand = available + reserved`, `available >= 0`, each
//! product's reservation is exactly what the `RESERVED` orders hold, and the database agrees
//! with a plain model of the rules, and the last `StockChanged` staged of each product is its
//! row. At the end, with every open order cancelled, nothing is reserved and every unit
//! missing from the warehouse belongs to exactly one `SOLD` order.

mod common;

use std::collections::BTreeMap;

use inventory::stock::OrderState;
use inventory::{CONSUMER, Settings, StockHandler};
use messaging::{Envelope, Handler, Message};
use proptest::prelude::*;
use service_db::Db;
use sqlx::Row;

use common::{cancelled, confirmed, created, database};

const PRODUCTS: usize = 3;
const ORDERS: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    Create(usize),
    Confirm(usize),
    Cancel(usize),
    /// A copy of the n-th message sent so far (modulo how many there are).
    Again(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..ORDERS).prop_map(Op::Create),
        2 => (0..ORDERS).prop_map(Op::Confirm),
        2 => (0..ORDERS).prop_map(Op::Cancel),
        2 => any::<usize>().prop_map(Op::Again),
    ]
}

#[derive(Debug, Clone)]
struct Scenario {
    on_hand: Vec<i64>,
    /// Each order's lines: (product, quantity); a product may be listed twice.
    lines: Vec<Vec<(usize, i64)>>,
    ops: Vec<Op>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(0i64..=8, PRODUCTS),
        prop::collection::vec(
            prop::collection::vec((0..PRODUCTS, 1i64..=4), 1..=3),
            ORDERS,
        ),
        prop::collection::vec(op(), 1..30),
    )
        .prop_map(|(on_hand, lines, ops)| Scenario {
            on_hand,
            lines,
            ops,
        })
}

fn product(p: usize) -> String {
    format!("p{p}")
}

fn order(o: usize) -> String {
    format!("o{o}")
}

/// The rules, on plain numbers.
struct Model {
    on_hand: Vec<i64>,
    reserved: Vec<i64>,
    states: BTreeMap<usize, OrderState>,
    /// What each order asks of each product, summed.
    demand: Vec<BTreeMap<usize, i64>>,
}

impl Model {
    fn new(scenario: &Scenario) -> Model {
        let demand = scenario
            .lines
            .iter()
            .map(|lines| {
                let mut summed = BTreeMap::new();
                for (p, q) in lines {
                    *summed.entry(*p).or_insert(0) += q;
                }
                summed
            })
            .collect();
        Model {
            on_hand: scenario.on_hand.clone(),
            reserved: vec![0; PRODUCTS],
            states: BTreeMap::new(),
            demand,
        }
    }

    fn create(&mut self, o: usize) {
        if self.states.contains_key(&o) {
            return;
        }
        let fits = self.demand[o]
            .iter()
            .all(|(&p, &q)| self.on_hand[p] - self.reserved[p] >= q);
        if fits {
            for (&p, &q) in &self.demand[o] {
                self.reserved[p] += q;
            }
            self.states.insert(o, OrderState::Reserved);
        } else {
            self.states.insert(o, OrderState::Rejected);
        }
    }

    fn confirm(&mut self, o: usize) {
        if self.states.get(&o) == Some(&OrderState::Reserved) {
            for (&p, &q) in &self.demand[o] {
                self.on_hand[p] -= q;
                self.reserved[p] -= q;
            }
            self.states.insert(o, OrderState::Sold);
        }
    }

    fn cancel(&mut self, o: usize) {
        match self.states.get(&o) {
            None => {
                self.states.insert(o, OrderState::Cancelled);
            }
            Some(OrderState::Reserved) => {
                for (&p, &q) in &self.demand[o] {
                    self.reserved[p] -= q;
                }
                self.states.insert(o, OrderState::Released);
            }
            Some(OrderState::Sold) => {
                for (&p, &q) in &self.demand[o] {
                    self.on_hand[p] += q;
                }
                self.states.insert(o, OrderState::Returned);
            }
            Some(_) => {}
        }
    }

    /// What the orders in `state` hold of product `p`.
    fn held(&self, p: usize, state: OrderState) -> i64 {
        self.states
            .iter()
            .filter(|(_, s)| **s == state)
            .map(|(o, _)| self.demand[*o].get(&p).copied().unwrap_or(0))
            .sum()
    }
}

/// Handles `envelope` as the consumer does: in one transaction, once per envelope id.
async fn deliver(db: &Db, handler: &StockHandler, envelope: &Envelope) {
    let mut tx = db.begin_write().await.unwrap();
    if messaging::inbox::first_time(&mut tx, CONSUMER, &envelope.id, &envelope.kind)
        .await
        .unwrap()
    {
        let message = envelope.message().unwrap().unwrap();
        handler.handle(&mut tx, envelope, message).await.unwrap();
    }
    tx.commit().await.unwrap();
}

/// Every product's (on_hand, reserved, available) as the database computes them.
async fn levels(db: &Db) -> BTreeMap<String, (i64, i64, i64)> {
    sqlx::query("SELECT product_id, on_hand, reserved, on_hand - reserved AS available FROM stock")
        .fetch_all(db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.get("product_id"),
                (r.get("on_hand"), r.get("reserved"), r.get("available")),
            )
        })
        .collect()
}

async fn states(db: &Db) -> BTreeMap<String, String> {
    sqlx::query("SELECT order_id, state FROM stock_orders")
        .fetch_all(db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get("order_id"), r.get("state")))
        .collect()
}

/// The types of the replies staged about each order.
async fn replies(db: &Db) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in sqlx::query("SELECT payload FROM outbox ORDER BY id")
        .fetch_all(db.pool())
        .await
        .unwrap()
    {
        let payload: String = row.get("payload");
        let envelope = Envelope::parse(payload.as_bytes()).unwrap();
        out.entry(envelope.subject).or_default().push(envelope.kind);
    }
    out
}

/// The latest `StockChanged` staged of each product: (on_hand, reserved, available).
async fn last_changes(db: &Db) -> BTreeMap<String, (i64, i64, i64)> {
    let mut latest: BTreeMap<String, (i64, (i64, i64, i64))> = BTreeMap::new();
    for row in sqlx::query("SELECT payload FROM outbox")
        .fetch_all(db.pool())
        .await
        .unwrap()
    {
        let payload: String = row.get("payload");
        let envelope = Envelope::parse(payload.as_bytes()).unwrap();
        if let Some(Message::StockChanged(c)) = envelope.message().unwrap() {
            let entry = latest
                .entry(c.product_id.clone())
                .or_insert((c.version, (c.on_hand, c.reserved, c.available)));
            if c.version >= entry.0 {
                *entry = (c.version, (c.on_hand, c.reserved, c.available));
            }
        }
    }
    latest.into_iter().map(|(p, (_, l))| (p, l)).collect()
}

async fn check(db: &Db, model: &Model, step: &str) {
    let levels = levels(db).await;
    assert_eq!(
        last_changes(db).await,
        levels,
        "{step}: the last StockChanged of each product is its row"
    );
    for p in 0..PRODUCTS {
        let (on_hand, reserved, available) = levels[&product(p)];
        assert_eq!(on_hand, available + reserved, "{step}: p{p}");
        assert!(available >= 0, "{step}: p{p} has {available} available");
        assert_eq!(
            reserved,
            model.held(p, OrderState::Reserved),
            "{step}: p{p}'s reservation is what the reserved orders hold"
        );
        assert_eq!(
            (on_hand, reserved),
            (model.on_hand[p], model.reserved[p]),
            "{step}: p{p} against the model"
        );
    }
    let expected: BTreeMap<String, String> = model
        .states
        .iter()
        .map(|(o, s)| (order(*o), s.as_str().to_owned()))
        .collect();
    assert_eq!(states(db).await, expected, "{step}: the orders' states");
}

async fn run(scenario: Scenario) {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path()).await;
    let settings = Settings::default();
    let handler = StockHandler::new(&settings);
    for (p, &n) in scenario.on_hand.iter().enumerate() {
        inventory::repo::set_on_hand(&db, &product(p), n, None, settings.low_stock_threshold)
            .await
            .unwrap();
    }
    let mut model = Model::new(&scenario);
    let mut sent: Vec<Envelope> = Vec::new();
    for (i, op) in scenario.ops.iter().enumerate() {
        let envelope = match *op {
            Op::Create(o) => {
                let lines: Vec<(String, i64)> = scenario.lines[o]
                    .iter()
                    .map(|(p, q)| (product(*p), *q))
                    .collect();
                let lines: Vec<(&str, i64)> = lines.iter().map(|(p, q)| (p.as_str(), *q)).collect();
                model.create(o);
                created(&order(o), &lines)
            }
            Op::Confirm(o) => {
                model.confirm(o);
                confirmed(&order(o))
            }
            Op::Cancel(o) => {
                model.cancel(o);
                cancelled(&order(o))
            }
            // The model is unchanged: the inbox drops the copy.
            Op::Again(n) if !sent.is_empty() => sent[n % sent.len()].clone(),
            Op::Again(_) => continue,
        };
        deliver(&db, &handler, &envelope).await;
        sent.push(envelope);
        check(&db, &model, &format!("step {i} ({op:?})")).await;
    }

    // Quiet: every order not sold is cancelled.
    for o in 0..ORDERS {
        if model.states.get(&o) != Some(&OrderState::Sold) {
            model.cancel(o);
            deliver(&db, &handler, &cancelled(&order(o))).await;
        }
    }
    check(&db, &model, "at the end").await;
    let levels = levels(&db).await;
    for p in 0..PRODUCTS {
        let (on_hand, reserved, _) = levels[&product(p)];
        assert_eq!(reserved, 0, "p{p}: nothing is reserved once quiet");
        assert_eq!(
            scenario.on_hand[p] - on_hand,
            model.held(p, OrderState::Sold),
            "p{p}: every unit gone was sold to exactly one SOLD order"
        );
    }

    // Each order was answered once for its reservation (reserved or refused), and once for
    // giving it back.
    let replies = replies(&db).await;
    for (o, state) in &model.states {
        let kinds = replies.get(&order(*o)).cloned().unwrap_or_default();
        let count = |kind: &str| kinds.iter().filter(|k| *k == kind).count();
        let (reserved, rejected, released) = match state {
            OrderState::Rejected => (0, 1, 0),
            OrderState::Sold => (1, 0, 0),
            OrderState::Released | OrderState::Returned => (1, 0, 1),
            OrderState::Cancelled => (0, 0, 0),
            OrderState::Reserved => unreachable!("every open order was cancelled"),
        };
        assert_eq!(
            (
                count("StockReserved"),
                count("StockRejected"),
                count("StockReleased")
            ),
            (reserved, rejected, released),
            "o{o} ({state:?}): {kinds:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn stock_stays_whole_under_any_sequence_of_messages(scenario in scenario()) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(run(scenario));
    }
}
