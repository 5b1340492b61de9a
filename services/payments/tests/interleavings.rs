//! A property over random interleavings of the saga's messages for a few orders: requests and
//! cancels, duplicates (the same envelope again) and repeats (a new envelope for the same
//! order), crashes between the provider's answer and the commit, and a provider that fails
//! transiently at random, before or after writing its ledger.
//!
//! The handler runs as the consumer drives it: each message in a transaction with its inbox
//! entry; a crash or a `Retry` rolls the transaction back and the same message is handled
//! again before the next (the position is stored with the commit). The oracle: an order whose
//! first message handled is its cancel is never charged; otherwise it is charged exactly once,
//! that charge is recorded, and if it succeeded and the order is cancelled it is refunded
//! exactly once.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use messaging::{Envelope, HandleError, Handler, inbox};
use payments::sandbox::{Sandbox, SandboxSettings};
use payments::{PaymentHandler, ProviderMetrics, Settings};
use proptest::prelude::*;
use service_db::Db;
use sqlx::Row;

const ORDERS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Request,
    Cancel,
}

#[derive(Debug, Clone)]
struct Step {
    order: usize,
    kind: Kind,
    /// The last envelope of this kind for the order again (a duplicate), if there is one.
    again: bool,
    /// The process dies after the handler and before the commit.
    crash: bool,
}

fn step() -> impl Strategy<Value = Step> {
    (
        0..ORDERS,
        prop_oneof![Just(Kind::Request), Just(Kind::Cancel)],
        any::<bool>(),
        prop::bool::weighted(0.3),
    )
        .prop_map(|(order, kind, again, crash)| Step {
            order,
            kind,
            again,
            crash,
        })
}

/// Handles `envelope` as the consumer would, crashing once first if `crash`.
async fn deliver(db: &Db, handler: &PaymentHandler<Sandbox>, envelope: &Envelope, mut crash: bool) {
    let message = envelope.message().expect("valid").expect("known");
    loop {
        let mut tx = db.begin_write().await.expect("a transaction");
        if !inbox::first_time(&mut tx, payments::CONSUMER, &envelope.id, &envelope.kind)
            .await
            .expect("the inbox")
        {
            tx.commit().await.expect("commit");
            return;
        }
        match handler.handle(&mut tx, envelope, message.clone()).await {
            Ok(()) if crash => {
                // Died before the commit: everything of this transaction is lost.
                tx.rollback().await.expect("rollback");
                crash = false;
            }
            Ok(()) => {
                tx.commit().await.expect("commit");
                return;
            }
            Err(HandleError::Retry(_)) => tx.rollback().await.expect("rollback"),
            Err(HandleError::Poison(e)) => panic!("poison: {e}"),
        }
    }
}

/// `(subject, type)` of every reply staged.
async fn staged(db: &Db) -> Vec<(String, String)> {
    sqlx::query("SELECT payload FROM outbox ORDER BY id")
        .fetch_all(db.pool())
        .await
        .expect("the outbox")
        .iter()
        .map(|r| {
            let payload: String = r.get("payload");
            let e = Envelope::parse(payload.as_bytes()).expect("an envelope");
            (e.subject, e.kind)
        })
        .collect()
}

async fn run(methods: Vec<&'static str>, steps: Vec<Step>, error_rate: f64, seed: u64) {
    let dir = tempfile::tempdir().expect("a tempdir");
    let db = payments_db(dir.path()).await;
    let ledger = sandbox_db(dir.path()).await;
    let sandbox = Sandbox::with_seed(
        ledger.clone(),
        SandboxSettings::new(Duration::ZERO, error_rate).expect("settings"),
        seed,
    );
    let handler = PaymentHandler::new(
        Arc::new(sandbox),
        Settings {
            retry_budget: Duration::from_millis(40),
        },
        ProviderMetrics::default(),
    );
    let orders: Vec<String> = (0..ORDERS).map(|_| service_db::new_id()).collect();
    let mut last: HashMap<(usize, Kind), Envelope> = HashMap::new();
    let mut first: HashMap<usize, Kind> = HashMap::new();
    let mut cancelled = [false; ORDERS];
    for step in &steps {
        let id = &orders[step.order];
        let envelope = match last.get(&(step.order, step.kind)) {
            Some(previous) if step.again => previous.clone(),
            _ => match step.kind {
                Kind::Request => requested(id, methods[step.order]),
                Kind::Cancel => cancelled_envelope(id),
            },
        };
        last.insert((step.order, step.kind), envelope.clone());
        first.entry(step.order).or_insert(step.kind);
        if step.kind == Kind::Cancel {
            cancelled[step.order] = true;
        }
        deliver(&db, &handler, &envelope, step.crash).await;
    }

    let charges = ledger_charges(&ledger).await;
    let refunds = ledger_refunds(&ledger).await;
    let rows = payment_rows(&db).await;
    let replies = staged(&db).await;
    for (i, id) in orders.iter().enumerate() {
        let charged: Vec<_> = charges
            .iter()
            .filter(|c| &c.idempotency_key == id)
            .collect();
        let row = rows.iter().find(|p| &p.order_id == id);
        let refunded: Vec<_> = refunds
            .iter()
            .filter(|(key, _, _)| key == &format!("refund:{id}"))
            .collect();
        let replied = |kind: &str| replies.iter().filter(|(s, k)| s == id && k == kind).count();
        match first.get(&i) {
            None | Some(Kind::Cancel) => {
                assert!(charged.is_empty(), "order {i} charged: {charged:?}");
                assert!(row.is_none(), "order {i}: {row:?}");
                assert!(refunded.is_empty());
                assert!(replies.iter().all(|(s, _)| s != id), "order {i} replied");
            }
            Some(Kind::Request) => {
                assert_eq!(charged.len(), 1, "order {i}: {charged:?}");
                let row = row.unwrap_or_else(|| panic!("order {i}'s charge is not recorded"));
                assert_eq!(row.charge_id.as_deref(), Some(charged[0].id.as_str()));
                let succeeded = methods[i] == "pm_card_visa";
                assert_eq!(charged[0].outcome == "succeeded", succeeded);
                let status = match (succeeded, cancelled[i]) {
                    (true, true) => "REFUNDED",
                    (true, false) => "SUCCEEDED",
                    (false, _) => "FAILED",
                };
                assert_eq!(row.status, status, "order {i}");
                let expected_refunds = usize::from(status == "REFUNDED");
                assert_eq!(refunded.len(), expected_refunds, "order {i}: {refunded:?}");
                assert_eq!(replied("PaymentRefunded"), expected_refunds, "order {i}");
                if let Some((_, refund_id, charge_id)) = refunded.first() {
                    assert_eq!(charge_id, &charged[0].id);
                    assert_eq!(row.refund_id.as_deref(), Some(refund_id.as_str()));
                }
                if succeeded {
                    assert!(replied("PaymentSucceeded") >= 1, "order {i}");
                    assert_eq!(replied("PaymentFailed"), 0);
                } else {
                    assert!(replied("PaymentFailed") >= 1, "order {i}");
                    assert_eq!(replied("PaymentSucceeded"), 0);
                }
            }
        }
    }
    // Nothing else was charged or refunded.
    assert_eq!(
        charges.len(),
        first.values().filter(|k| **k == Kind::Request).count()
    );
    assert_eq!(
        refunds.len(),
        rows.iter().filter(|p| p.status == "REFUNDED").count()
    );
}

fn cancelled_envelope(order: &str) -> Envelope {
    cancelled(order, "timeout")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn an_order_is_charged_at_most_once_and_refunded_when_cancelled(
        methods in prop::collection::vec(
            prop::sample::select(vec!["pm_card_visa", "pm_card_chargeDeclined"]),
            ORDERS,
        ),
        steps in prop::collection::vec(step(), 1..24),
        error_rate in prop_oneof![Just(0.0), Just(0.3), Just(0.6)],
        seed in any::<u64>(),
    ) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(run(methods, steps, error_rate, seed));
    }
}
