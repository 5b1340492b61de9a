//! What the integration tests share: inventory's SQLite database in a tempdir, the embedded
//! topics of the saga and of the catalog's stock sync, the real consumers, a relay of the
//! replies, and messages to send.

// Each test file uses its own share of these.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use event_log::embedded::{EmbeddedLog, LogConfig};
use event_log::{EventLog, Record};
use inventory::stock::Stock;
use inventory::{CONSUMER, Settings, StockHandler};
use messaging::contract::{
    self, ItemLine, OrderCancelled, OrderConfirmed, OrderCreated, ProductStockSet, StockChanged,
};
use messaging::{Consumer, ConsumerMetrics, Envelope, Message, Relay, RelayMetrics, Topics};
use service_db::{Db, DbConfig};
use sqlx::Row;

/// Inventory's database, migrated, in `dir`.
pub async fn database(dir: &Path) -> Db {
    let path = dir.join("inventory.db");
    let db = Db::connect(&DbConfig::new(
        format!("sqlite://{}", path.display()),
        inventory::SCHEMA,
    ))
    .await
    .expect("the SQLite file opens");
    db.migrate(&inventory::MIGRATIONS)
        .await
        .expect("the migrations run");
    db
}

/// An embedded topic `name` in `dir`.
pub fn topic(dir: &Path, name: &str, partitions: u32) -> EmbeddedLog {
    EmbeddedLog::open(
        &dir.join(name),
        LogConfig {
            partitions,
            ..LogConfig::default()
        },
    )
    .expect("the topic opens")
}

/// The saga around inventory: its database, `order.events` and `catalog.events` in, its
/// replies out.
pub struct Saga {
    pub db: Db,
    pub orders: EmbeddedLog,
    pub catalog: EmbeddedLog,
    pub replies: EmbeddedLog,
    pub letters: EmbeddedLog,
    pub relay: Relay<EmbeddedLog>,
    pub settings: Settings,
    // Last: the files outlive everything above.
    pub dir: tempfile::TempDir,
}

impl Saga {
    pub async fn new() -> Saga {
        let dir = tempfile::tempdir().expect("a tempdir");
        let db = database(dir.path()).await;
        let orders = topic(dir.path(), contract::ORDER_EVENTS, 2);
        let catalog = topic(dir.path(), contract::CATALOG_EVENTS, 2);
        let replies = topic(dir.path(), contract::INVENTORY_EVENTS, 2);
        let letters = topic(dir.path(), contract::DEAD_LETTERS, 1);
        let relay = Relay::new(
            db.clone(),
            Topics::default()
                .with(contract::INVENTORY_EVENTS, replies.clone())
                .with(contract::DEAD_LETTERS, letters.clone()),
            RelayMetrics::default(),
        );
        Saga {
            db,
            orders,
            catalog,
            replies,
            letters,
            relay,
            settings: Settings::default(),
            dir,
        }
    }

    /// The real consumer of `order.events`, handling with inventory's handler.
    pub fn start(&self) -> Consumer {
        let log = self.orders.clone();
        inventory::consume(
            Arc::new(StockHandler::new(&self.settings)),
            self.db.clone(),
            self.relay.waker(),
            ConsumerMetrics::default(),
            move |listener| Ok(log.reader(CONSUMER, listener)),
        )
        .expect("the consumer starts")
    }

    /// The real consumer of `catalog.events` (the same name, its own positions).
    pub fn start_catalog(&self) -> Consumer {
        let log = self.catalog.clone();
        inventory::consume_catalog(
            Arc::new(StockHandler::new(&self.settings)),
            self.db.clone(),
            self.relay.waker(),
            ConsumerMetrics::default(),
            move |listener| Ok(log.reader(CONSUMER, listener)),
        )
        .expect("the consumer starts")
    }

    /// Appends `envelopes` to `order.events` (each as many times as it is listed) and waits
    /// until the consumer has committed everything in the topic.
    pub async fn deliver(&self, envelopes: &[&Envelope]) {
        append(&self.orders, envelopes).await;
        self.wait_consumed().await;
    }

    /// Appends `envelopes` to `catalog.events`, as [`Saga::deliver`] does to `order.events`.
    pub async fn deliver_catalog(&self, envelopes: &[&Envelope]) {
        append(&self.catalog, envelopes).await;
        wait_consumed(&self.db, &self.catalog, contract::CATALOG_EVENTS).await;
    }

    /// Waits until the stored positions reach the end of every partition of `order.events`.
    pub async fn wait_consumed(&self) {
        wait_consumed(&self.db, &self.orders, contract::ORDER_EVENTS).await;
    }

    /// Relays the outbox, then every reply on `inventory.events` so far.
    pub async fn replies(&self) -> Vec<Envelope> {
        while self.relay.pass().await.expect("a relay pass") > 0 {}
        read_all(&self.replies)
            .iter()
            .map(|r| Envelope::parse(r).expect("an envelope"))
            .collect()
    }

    /// The replies about `subject` (an order, or a product for a `StockLow` of a change), in
    /// the order they were staged, but for `StockChanged` ([`Saga::changes_about`]).
    pub async fn replies_about(&self, subject: &str) -> Vec<Message> {
        self.messages_about(subject)
            .await
            .into_iter()
            .filter(|m| !matches!(m, Message::StockChanged(_)))
            .collect()
    }

    /// The `StockChanged` about `subject`, in the order they were staged.
    pub async fn changes_about(&self, subject: &str) -> Vec<StockChanged> {
        self.messages_about(subject)
            .await
            .into_iter()
            .filter_map(|m| match m {
                Message::StockChanged(changed) => Some(changed),
                _ => None,
            })
            .collect()
    }

    /// Every message about `subject` on `inventory.events`, in the order they were staged.
    pub async fn messages_about(&self, subject: &str) -> Vec<Message> {
        // One subject is one key, so one partition: its records are in staging order.
        self.replies()
            .await
            .iter()
            .filter(|e| e.subject == subject)
            .map(|e| e.message().expect("a message").expect("a known type"))
            .collect()
    }

    /// Messages on the dead letters, as JSON.
    pub async fn dead_letters(&self) -> Vec<serde_json::Value> {
        while self.relay.pass().await.expect("a relay pass") > 0 {}
        read_all(&self.letters)
            .iter()
            .map(|r| serde_json::from_slice(r).expect("a dead letter"))
            .collect()
    }

    pub async fn stock(&self, product_id: &str) -> Stock {
        stock(&self.db, product_id).await
    }

    pub async fn put(&self, product_id: &str, on_hand: i64) -> Stock {
        inventory::repo::set_on_hand(
            &self.db,
            product_id,
            on_hand,
            None,
            self.settings.low_stock_threshold,
        )
        .await
        .expect("stock set")
        .0
    }

    pub async fn state(&self, order_id: &str) -> Option<String> {
        state(&self.db, order_id).await
    }
}

/// Appends `envelopes` to `log`, each keyed by its subject.
pub async fn append(log: &EmbeddedLog, envelopes: &[&Envelope]) {
    let records: Vec<Record> = envelopes
        .iter()
        .map(|e| Record::new(e.subject.clone(), e.to_json()))
        .collect();
    log.append(records).await.expect("appended");
}

/// Waits until inventory's stored positions on `topic` reach the end of every partition of
/// `log`.
pub async fn wait_consumed(db: &Db, log: &EmbeddedLog, topic: &str) {
    let end: u64 = (0..log.partitions())
        .map(|p| log.bounds(p).map_or(0, |(_, next)| next))
        .sum();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let row = sqlx::query(
            "SELECT COALESCE(SUM(next_offset), 0) AS n FROM consumer_positions \
             WHERE consumer = $1 AND topic = $2",
        )
        .bind(CONSUMER)
        .bind(topic)
        .fetch_one(db.pool())
        .await
        .expect("positions read");
        let consumed: i64 = row.get("n");
        if consumed as u64 >= end {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the consumer of {topic} reached {consumed} of {end} records"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The stock of `product_id` (all zero at version 0 without a row).
pub async fn stock(db: &Db, product_id: &str) -> Stock {
    inventory::repo::get(db, product_id)
        .await
        .expect("stock read")
        .unwrap_or_else(|| Stock::new(product_id.to_owned(), 0, 0, 0))
}

/// The stored state of `order_id`.
pub async fn state(db: &Db, order_id: &str) -> Option<String> {
    sqlx::query("SELECT state FROM stock_orders WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(db.pool())
        .await
        .expect("state read")
        .map(|r| r.get("state"))
}

fn lines(lines: &[(&str, i64)]) -> Vec<ItemLine> {
    lines
        .iter()
        .map(|(product_id, quantity)| ItemLine {
            product_id: (*product_id).to_owned(),
            quantity: *quantity,
        })
        .collect()
}

/// The orders service's `OrderCreated` for `order_id` with `(product, quantity)` lines.
pub fn created(order_id: &str, of: &[(&str, i64)]) -> Envelope {
    Envelope::traced(
        "/ecom/orders",
        order_id,
        &Message::OrderCreated(OrderCreated {
            customer_id: "c1".into(),
            lines: lines(of),
            total: contract::Amount {
                amount: 1000,
                currency: "EUR".into(),
            },
        }),
        None,
    )
}

/// `OrderConfirmed` for `order_id` (its lines do not matter to inventory: it sells what it
/// reserved).
pub fn confirmed(order_id: &str) -> Envelope {
    Envelope::traced(
        "/ecom/orders",
        order_id,
        &Message::OrderConfirmed(OrderConfirmed {
            customer_id: "c1".into(),
            lines: Vec::new(),
        }),
        None,
    )
}

pub fn cancelled(order_id: &str) -> Envelope {
    Envelope::traced(
        "/ecom/orders",
        order_id,
        &Message::OrderCancelled(OrderCancelled {
            reason: contract::reason::CUSTOMER.into(),
        }),
        None,
    )
}

/// The catalog's `ProductStockSet` of `product_id` (its subject).
pub fn stock_set(product_id: &str, on_hand: i64) -> Envelope {
    Envelope::traced(
        "/ecom/catalog",
        product_id,
        &Message::ProductStockSet(ProductStockSet {
            product_id: product_id.to_owned(),
            on_hand,
        }),
        None,
    )
}

/// `(on_hand, reserved, available)` of a stock.
pub fn levels(stock: &Stock) -> (i64, i64, i64) {
    (stock.on_hand, stock.reserved, stock.available)
}

pub fn kinds(messages: &[Message]) -> Vec<&'static str> {
    messages.iter().map(Message::kind).collect()
}

/// `(product_id, on_hand, reserved, available, version)` of a `StockChanged`.
pub fn changed(c: &StockChanged) -> (&str, i64, i64, i64, i64) {
    (
        c.product_id.as_str(),
        c.on_hand,
        c.reserved,
        c.available,
        c.version,
    )
}

/// Every record of a topic, from the beginning.
pub fn read_all(log: &EmbeddedLog) -> Vec<Vec<u8>> {
    testkit::log::payloads(log)
}
