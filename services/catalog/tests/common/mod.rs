//! What the catalog's integration tests share: its SQLite database in a tempdir, the embedded
//! topics of the stock sync, the catalog served by `catalog::build` on a loopback port (its
//! relay and its real consumer running), HTTP calls, and the messages it sends and reads.

// Each test file uses its own share of these.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use event_log::embedded::{EmbeddedLog, LogConfig};
use event_log::{EventLog, Record};
use messaging::contract::{self, StockChanged};
use messaging::{Envelope, Message};
use reqwest::StatusCode;
use serde_json::Value;
use service_db::{Db, DbConfig};
use sqlx::Row;

/// A service's database (the catalog's, the inventory's), migrated, in `dir`.
pub async fn database(dir: &Path, schema: &'static str, migrations: &service_db::Migrations) -> Db {
    let path = dir.join(format!("{schema}.db"));
    let db = Db::connect(&DbConfig::new(
        format!("sqlite://{}", path.display()),
        schema,
    ))
    .await
    .expect("the SQLite file opens");
    db.migrate(migrations).await.expect("the migrations run");
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

/// The stock sync's topics, each opened once (clones share it).
#[derive(Clone)]
pub struct Logs {
    pub orders: EmbeddedLog,
    pub catalog: EmbeddedLog,
    pub inventory: EmbeddedLog,
    pub letters: EmbeddedLog,
}

impl Logs {
    pub fn open(dir: &Path) -> Logs {
        Logs {
            orders: topic(dir, contract::ORDER_EVENTS, 2),
            catalog: topic(dir, contract::CATALOG_EVENTS, 2),
            inventory: topic(dir, contract::INVENTORY_EVENTS, 2),
            letters: topic(dir, contract::DEAD_LETTERS, 1),
        }
    }

    pub fn by_name(&self, name: &str) -> &EmbeddedLog {
        match name {
            contract::ORDER_EVENTS => &self.orders,
            contract::CATALOG_EVENTS => &self.catalog,
            contract::INVENTORY_EVENTS => &self.inventory,
            contract::DEAD_LETTERS => &self.letters,
            other => panic!("no topic {other}"),
        }
    }
}

/// A service served by its `build` until [`Served::stop`].
pub struct Served {
    pub base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Served {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.server
            .await
            .expect("the server task")
            .expect("the server stops cleanly");
    }
}

/// The catalog alone over `db`, its relay to `logs` and its consumer of `inventory.events`.
pub async fn serve_catalog(db: Db, logs: &Logs) -> Served {
    let topics = messaging::Topics::default()
        .with(contract::CATALOG_EVENTS, logs.catalog.clone())
        .with(contract::DEAD_LETTERS, logs.letters.clone());
    let config = catalog::Config {
        addr: ([127, 0, 0, 1], 0).into(),
        body: service_common::rest::BodyLimits::default(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let log = logs.inventory.clone();
    let (addr, server) = catalog::build(
        config,
        db,
        topics,
        move |listener| Ok(log.reader(catalog::CONSUMER, listener)),
        async move {
            let _ = stopped.await;
        },
    )
    .await
    .expect("the catalog binds");
    Served {
        base: format!("http://{addr}"),
        stop,
        server: tokio::spawn(server),
    }
}

/// The inventory alone over `db`, its relay to `logs` and its consumers of `order.events` and
/// `catalog.events`.
pub async fn serve_inventory(db: Db, logs: &Logs) -> Served {
    let topics = messaging::Topics::default()
        .with(contract::INVENTORY_EVENTS, logs.inventory.clone())
        .with(contract::DEAD_LETTERS, logs.letters.clone());
    let config = inventory::Config {
        addr: ([127, 0, 0, 1], 0).into(),
        body: service_common::rest::BodyLimits::default(),
        tokens: None,
        settings: inventory::Settings::default(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let logs = logs.clone();
    let (addr, server) = inventory::build(
        config,
        db,
        topics,
        move |topic, listener| Ok(logs.by_name(topic).reader(inventory::CONSUMER, listener)),
        async move {
            let _ = stopped.await;
        },
    )
    .await
    .expect("the inventory binds");
    Served {
        base: format!("http://{addr}"),
        stop,
        server: tokio::spawn(server),
    }
}

/// An answer, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub etag: Option<String>,
    pub body: Value,
}

pub async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("an answer");
    let status = response.status();
    let etag = response
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Answer { status, etag, body }
}

/// Waits until `check` holds of what `GET base + path` answers (200), and returns it.
pub async fn wait_for(base: &str, path: &str, check: impl Fn(&Value) -> bool) -> Value {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = send(http.get(format!("{base}{path}"))).await;
        if answer.status == StatusCode::OK && check(&answer.body) {
            return answer.body;
        }
        assert!(
            Instant::now() < deadline,
            "{path}: {} {}",
            answer.status,
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The envelopes the catalog staged for `catalog.events`, in staging order.
pub async fn staged(db: &Db) -> Vec<Envelope> {
    sqlx::query("SELECT payload FROM outbox WHERE topic = $1 ORDER BY id")
        .bind(contract::CATALOG_EVENTS)
        .fetch_all(db.pool())
        .await
        .expect("the outbox read")
        .iter()
        .map(|r| Envelope::parse(r.get::<String, _>("payload").as_bytes()).expect("an envelope"))
        .collect()
}

/// `(subject, product_id, on_hand)` of each `ProductStockSet` staged.
pub async fn stock_sets(db: &Db) -> Vec<(String, String, i64)> {
    staged(db)
        .await
        .into_iter()
        .filter_map(|e| match e.message().expect("a message") {
            Some(Message::ProductStockSet(set)) => Some((e.subject, set.product_id, set.on_hand)),
            _ => None,
        })
        .collect()
}

/// Appends `envelopes` to `log`, each keyed by its subject.
pub async fn append(log: &EmbeddedLog, envelopes: &[&Envelope]) {
    let records: Vec<Record> = envelopes
        .iter()
        .map(|e| Record::new(e.subject.clone(), e.to_json()))
        .collect();
    log.append(records).await.expect("appended");
}

/// Appends `envelopes` to `inventory.events` and waits until the catalog's consumer has
/// committed everything in it.
pub async fn tell(db: &Db, logs: &Logs, envelopes: &[&Envelope]) {
    append(&logs.inventory, envelopes).await;
    let end: u64 = (0..logs.inventory.partitions())
        .map(|p| logs.inventory.bounds(p).map_or(0, |(_, next)| next))
        .sum();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let row = sqlx::query(
            "SELECT COALESCE(SUM(next_offset), 0) AS n FROM consumer_positions \
             WHERE consumer = $1 AND topic = $2",
        )
        .bind(catalog::CONSUMER)
        .bind(contract::INVENTORY_EVENTS)
        .fetch_one(db.pool())
        .await
        .expect("positions read");
        let consumed: i64 = row.get("n");
        if consumed as u64 >= end {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the consumer reached {consumed} of {end} records"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The inventory's `StockChanged` of `product_id` about `subject`: `available` of its row at
/// `version` (with 2 units reserved).
pub fn stock_changed(subject: &str, product_id: &str, available: i64, version: i64) -> Envelope {
    Envelope::traced(
        "/ecom/inventory",
        subject,
        &Message::StockChanged(StockChanged {
            product_id: product_id.to_owned(),
            on_hand: available + 2,
            reserved: 2,
            available,
            version,
        }),
        None,
    )
}

/// A valid product's body.
pub fn product(sku: &str, stock_quantity: i64) -> Value {
    serde_json::json!({
        "sku": sku,
        "name": format!("Product {sku}"),
        "category": "kitchen",
        "price": {"amount": 1299, "currency": "EUR"},
        "stock_quantity": stock_quantity,
    })
}

/// Every record of a topic, from the beginning.
pub fn read_all(log: &EmbeddedLog) -> Vec<Vec<u8>> {
    testkit::log::payloads(log)
}
