//! The orders outbox (the `messaging` relay) under a crash between the append and the mark:
//! the events are sent again, never lost; and two replicas' relays share it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use event_log::embedded::EmbeddedLog;
use event_log::{AppendError, EventLog, NotReady, Record};
use messaging::{Relay, RelayMetrics, Topics};
use orders::order::Line;
use service_common::rest::money::{Currency, Money};

use crate::on_both_databases;
use crate::support::{Backend, Databases, TOPIC, log_records, open_log};

/// A log whose writer dies right after the log acknowledged: the append happened, the relay
/// never learns it.
#[derive(Clone)]
struct DiesAfterAppend {
    log: EmbeddedLog,
    appended: Arc<AtomicUsize>,
}

impl EventLog for DiesAfterAppend {
    async fn append(&self, records: Vec<Record>) -> Result<(), AppendError> {
        let n = records.len();
        self.log.append(records).await?;
        self.appended.fetch_add(n, Ordering::SeqCst);
        std::future::pending().await
    }

    async fn ready(&self) -> Result<(), NotReady> {
        self.log.ready().await
    }
}

async fn a_crash_between_append_and_mark_sends_again_and_loses_nothing(backend: Backend) {
    let dbs = Databases::new(backend);
    let db = dbs.open(orders::SCHEMA, &orders::MIGRATIONS).await;
    let log = open_log(dbs.dir.path());
    let eur = Currency::parse("EUR").unwrap();
    let mut order_ids = Vec::new();
    for i in 0..30 {
        let lines = vec![
            Line {
                product_id: format!("p{i}"),
                quantity: 1,
                unit_price: Money {
                    amount: 100,
                    currency: eur,
                },
            },
            Line {
                product_id: format!("q{i}"),
                quantity: 2,
                unit_price: Money {
                    amount: 5,
                    currency: eur,
                },
            },
        ];
        let order = insert_confirmed(&db, &format!("c{i}"), lines, 110).await;
        order_ids.push(order);
    }

    // The first relay appends a batch and dies before marking it.
    let dying = DiesAfterAppend {
        log: log.clone(),
        appended: Arc::default(),
    };
    let relay = Relay::new(
        db.clone(),
        Topics::default().with(TOPIC, dying.clone()),
        RelayMetrics::default(),
    );
    let task = tokio::spawn(relay.run(Duration::from_millis(50), std::future::pending()));
    let deadline = Instant::now() + Duration::from_secs(20);
    while dying.appended.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the first relay never appended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
    let _ = task.await;
    let before = Relay::new(
        db.clone(),
        Topics::default().with(TOPIC, log.clone()),
        RelayMetrics::default(),
    );
    assert_eq!(
        before.backlog().await.unwrap(),
        60,
        "nothing was marked sent"
    );
    assert_eq!(log_records(&log).len(), 60, "but everything was appended");

    // The next relay (the restarted process) sends them all again.
    while before.pass().await.unwrap() > 0 {}
    assert_eq!(before.backlog().await.unwrap(), 0);
    let records = log_records(&log);
    assert_eq!(records.len(), 120, "sent twice: at least once");
    for id in &order_ids {
        for line in 0..2 {
            let event_id = format!("{id}:{line}");
            let copies = records
                .iter()
                .filter(|(_, v)| v["event_id"] == event_id.as_str())
                .count();
            assert_eq!(copies, 2, "{event_id}");
        }
    }
    // And nothing more once marked.
    assert_eq!(before.pass().await.unwrap(), 0);
}

/// Two relays (two orders replicas) on one PostgreSQL outbox: every event once, none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relays_of_two_replicas_share_the_outbox_without_sending_twice() {
    let dbs = Databases::new(Backend::Postgres);
    let db = dbs.open(orders::SCHEMA, &orders::MIGRATIONS).await;
    let log = open_log(dbs.dir.path());
    let event_ids = stage(&db, 200).await;
    let relays: Vec<_> = (0..2)
        .map(|_| {
            let relay = Relay::new(
                db.clone(),
                Topics::default().with(TOPIC, log.clone()),
                RelayMetrics::default(),
            );
            tokio::spawn(async move {
                let mut sent = 0;
                loop {
                    match relay.pass().await.unwrap() {
                        0 if relay.backlog().await.unwrap() == 0 => return sent,
                        n => sent += n,
                    }
                }
            })
        })
        .collect();
    let mut total = 0;
    for relay in relays {
        total += relay.await.unwrap();
    }
    assert_eq!(total, event_ids.len());
    let records = log_records(&log);
    assert_eq!(records.len(), event_ids.len(), "none twice");
    for id in &event_ids {
        assert_eq!(
            records
                .iter()
                .filter(|(_, v)| v["event_id"] == id.as_str())
                .count(),
            1,
            "{id}"
        );
    }
}

/// An order stored and its `PURCHASE` events staged, as the saga's confirmation does (the
/// saga's own messages go to topics this relay does not serve): its id.
async fn insert_confirmed(
    db: &service_db::Db,
    customer: &str,
    lines: Vec<Line>,
    total: i64,
) -> String {
    let eur = Currency::parse("EUR").unwrap();
    let mut tx = db.begin_write().await.unwrap();
    let order = orders::repo::insert(
        &mut tx,
        customer,
        lines.clone(),
        Money {
            amount: total,
            currency: eur,
        },
        "pm_card_visa",
        i64::MAX,
    )
    .await
    .unwrap();
    orders::outbox::stage_purchases(
        &mut tx,
        TOPIC,
        &order.id,
        customer,
        &lines,
        service_db::now_us(),
        None,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    order.id
}

/// `orders` one-line orders staged in the outbox: their event ids.
async fn stage(db: &service_db::Db, orders: usize) -> Vec<String> {
    let eur = Currency::parse("EUR").unwrap();
    let mut ids = Vec::new();
    for i in 0..orders {
        let lines = vec![Line {
            product_id: format!("p{i}"),
            quantity: 1,
            unit_price: Money {
                amount: 100,
                currency: eur,
            },
        }];
        let order = insert_confirmed(db, &format!("c{i}"), lines, 100).await;
        ids.push(format!("{order}:0"));
    }
    ids
}

on_both_databases!(a_crash_between_append_and_mark_sends_again_and_loses_nothing);
