//! The consumer and the relay on the embedded log and SQLite: each message has one effect
//! however often it is delivered, positions survive a restart, poison goes to the dead letters
//! with its error, and a transient failure holds the partition until it passes.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use event_log::embedded::{EmbeddedLog, LogConfig};
use event_log::{EventLog, Record};
use messaging::contract::{self, OrderCancelled, StockReserved};
use messaging::{
    Consumer, ConsumerConfig, ConsumerMetrics, Envelope, HandleError, Handler, Message, Relay,
    RelayMetrics, Topics, Tx, outbox,
};
use service_db::{Db, DbConfig, Migrations};
use sqlx::Row;

static MIGRATIONS: Migrations = Migrations(&[
    (1, "outbox", outbox::TABLE),
    (2, "inbox and positions", messaging::inbox::TABLES),
    (
        3,
        "effects",
        "CREATE TABLE effects (order_id TEXT NOT NULL, kind TEXT NOT NULL)",
    ),
]);

/// Records each message it handles as an effect; replies `StockReserved` to `OrderCreated`;
/// fails transiently `failures` times first.
struct Recorder {
    failures: AtomicUsize,
}

impl Handler for Recorder {
    fn wants(&self, kind: &str) -> bool {
        matches!(kind, "OrderCreated" | "OrderCancelled")
    }

    async fn handle(
        &self,
        tx: &mut Tx,
        envelope: &Envelope,
        message: Message,
    ) -> Result<(), HandleError> {
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(HandleError::Retry("the provider is down".into()));
        }
        sqlx::query("INSERT INTO effects (order_id, kind) VALUES ($1, $2)")
            .bind(&envelope.subject)
            .bind(message.kind())
            .execute(&mut **tx)
            .await?;
        if let Message::OrderCreated(_) = message {
            let reply =
                Envelope::reply("/test", envelope, &Message::StockReserved(StockReserved {}));
            outbox::send(tx, &reply).await?;
        }
        Ok(())
    }
}

async fn db(dir: &Path) -> Db {
    let path = dir.join("participant.db");
    let db = Db::connect(&DbConfig::new(
        format!("sqlite://{}", path.display()),
        "participant",
    ))
    .await
    .unwrap();
    db.migrate(&MIGRATIONS).await.unwrap();
    db
}

fn topic(dir: &Path, name: &str, partitions: u32) -> EmbeddedLog {
    EmbeddedLog::open(
        &dir.join(name),
        LogConfig {
            partitions,
            ..LogConfig::default()
        },
    )
    .unwrap()
}

fn created(order: &str) -> Envelope {
    Envelope::traced(
        "/ecom/orders",
        order,
        &Message::OrderCreated(contract::OrderCreated {
            customer_id: "c1".into(),
            lines: vec![contract::ItemLine {
                product_id: "p1".into(),
                quantity: 1,
            }],
            total: contract::Amount {
                amount: 100,
                currency: "EUR".into(),
            },
        }),
        None,
    )
}

fn record(envelope: &Envelope) -> Record {
    Record::new(envelope.subject.clone(), envelope.to_json())
}

fn start(db: &Db, log: &EmbeddedLog, failures: usize) -> Consumer {
    let log = log.clone();
    Consumer::start(
        ConsumerConfig::new("participant", contract::ORDER_EVENTS),
        db.clone(),
        Arc::new(Recorder {
            failures: AtomicUsize::new(failures),
        }),
        Arc::new(tokio::sync::Notify::new()),
        ConsumerMetrics::default(),
        move |listener| Ok(log.reader("participant", listener)),
    )
    .unwrap()
}

async fn effects(db: &Db) -> Vec<(String, String)> {
    sqlx::query("SELECT order_id, kind FROM effects ORDER BY order_id, kind")
        .fetch_all(db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get("order_id"), r.get("kind")))
        .collect()
}

async fn wait_for_effects(db: &Db, n: usize) -> Vec<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = effects(db).await;
        if now.len() >= n || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_message_has_one_effect_however_often_it_comes() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(dir.path()).await;
    let orders = topic(dir.path(), contract::ORDER_EVENTS, 2);
    let first = created("o1");
    let cancelled = Envelope::traced(
        "/ecom/orders",
        "o2",
        &Message::OrderCancelled(OrderCancelled {
            reason: "customer".into(),
        }),
        None,
    );
    // A duplicate (the relay's resend after a crash), and a type this participant skips.
    let skipped = Envelope::traced(
        "/ecom/orders",
        "o1",
        &Message::OrderConfirmed(contract::OrderConfirmed {
            customer_id: "c1".into(),
            lines: vec![],
        }),
        None,
    );
    orders
        .append(vec![
            record(&first),
            record(&first),
            record(&skipped),
            record(&cancelled),
        ])
        .await
        .unwrap();
    let consumer = start(&db, &orders, 0);
    let seen = wait_for_effects(&db, 2).await;
    consumer.stop().await;
    assert_eq!(
        seen,
        [
            ("o1".to_owned(), "OrderCreated".to_owned()),
            ("o2".to_owned(), "OrderCancelled".to_owned())
        ]
    );

    // After a restart: what was handled stays handled (positions), and a copy appended later
    // still finds its id in the inbox.
    orders
        .append(vec![record(&first), record(&created("o3"))])
        .await
        .unwrap();
    let consumer = start(&db, &orders, 0);
    let seen = wait_for_effects(&db, 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    consumer.stop().await;
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(effects(&db).await.len(), 3);

    // The replies wait in the outbox, one per OrderCreated handled, for the relay.
    let inventory = topic(dir.path(), contract::INVENTORY_EVENTS, 2);
    let relay = Relay::new(
        db.clone(),
        Topics::default().with(contract::INVENTORY_EVENTS, inventory.clone()),
        RelayMetrics::default(),
    );
    assert_eq!(relay.pass().await.unwrap(), 2);
    assert_eq!(relay.pass().await.unwrap(), 0);
    let replies: Vec<Envelope> = read_all(&inventory)
        .iter()
        .map(|r| Envelope::parse(r).unwrap())
        .collect();
    let mut subjects: Vec<&str> = replies.iter().map(|e| e.subject.as_str()).collect();
    subjects.sort_unstable();
    assert_eq!(subjects, ["o1", "o3"]);
    assert!(replies.iter().all(|e| e.kind == "StockReserved"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_goes_to_the_dead_letters_and_the_rest_is_handled() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(dir.path()).await;
    let orders = topic(dir.path(), contract::ORDER_EVENTS, 1);
    let mut wrong = serde_json::to_value(created("o2")).unwrap();
    wrong["data"] = serde_json::json!({"customer_id": 7});
    orders
        .append(vec![
            record(&created("o1")),
            Record::new("o9", "not an envelope"),
            Record::new("o2", wrong.to_string()),
            record(&created("o3")),
        ])
        .await
        .unwrap();
    let consumer = start(&db, &orders, 0);
    let seen = wait_for_effects(&db, 2).await;
    consumer.stop().await;
    assert_eq!(seen.len(), 2, "{seen:?}");

    let letters = topic(dir.path(), contract::DEAD_LETTERS, 1);
    let relay = Relay::new(
        db.clone(),
        Topics::default().with(contract::DEAD_LETTERS, letters.clone()),
        RelayMetrics::default(),
    );
    assert_eq!(relay.pass().await.unwrap(), 2);
    let letters: Vec<serde_json::Value> = read_all(&letters)
        .iter()
        .map(|r| serde_json::from_slice(r).unwrap())
        .collect();
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0]["offset"], 1);
    assert!(
        letters[0]["error"]
            .as_str()
            .unwrap()
            .contains("not a CloudEvents JSON envelope"),
        "{letters:?}"
    );
    assert_eq!(letters[0]["record"], "not an envelope");
    assert_eq!(letters[1]["offset"], 2);
    assert!(
        letters[1]["error"]
            .as_str()
            .unwrap()
            .contains("OrderCreated"),
        "{letters:?}"
    );
    assert_eq!(letters[0]["consumer"], "participant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_is_retried_until_it_passes() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(dir.path()).await;
    let orders = topic(dir.path(), contract::ORDER_EVENTS, 1);
    orders
        .append(vec![record(&created("o1")), record(&created("o2"))])
        .await
        .unwrap();
    let consumer = start(&db, &orders, 3);
    let seen = wait_for_effects(&db, 2).await;
    consumer.stop().await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    let replies: i64 = sqlx::query("SELECT COUNT(*) AS n FROM outbox")
        .fetch_one(db.pool())
        .await
        .unwrap()
        .get("n");
    assert_eq!(replies, 2, "the failed attempts left nothing behind");
}

/// Every record of a topic, from the beginning.
fn read_all(log: &EmbeddedLog) -> Vec<Vec<u8>> {
    testkit::log::payloads(log)
}
