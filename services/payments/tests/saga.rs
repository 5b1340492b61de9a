//! The payments step of the saga through the real consumer, relay and sandbox: what each
//! message charges or refunds, what it replies, and that an order is charged at most once
//! however its messages come (twice, again, reordered, after a crash, through a flaky
//! provider).

mod common;

use std::time::Duration;

use common::*;
use messaging::Message;
use payments::Settings;
use payments::provider::{ChargeRequest, Outcome, Provider};
use payments::sandbox::{Sandbox, SandboxSettings};

fn order() -> String {
    service_db::new_id()
}

fn message(envelope: &messaging::Envelope) -> Message {
    envelope
        .message()
        .expect("a valid message")
        .expect("a known type")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visa_charge_succeeds_and_replies_payment_succeeded() {
    with_service(Options::default(), async |service| {
        let id = order();
        let request = requested(&id, "pm_card_visa");
        service.deliver(&[&request]).await;
        let payment = service.payment_in(&id, "SUCCEEDED").await;
        assert_eq!(payment.reason, None);

        let ledger = ledger_charges(&service.sandbox_db).await;
        assert_eq!(ledger.len(), 1);
        assert_eq!(ledger[0].idempotency_key, id, "the order id is the key");
        assert_eq!(ledger[0].outcome, "succeeded");
        assert_eq!(payment.charge_id.as_deref(), Some(ledger[0].id.as_str()));

        let replies = service.replies_about(&id, 1).await;
        assert_eq!(replies.len(), 1);
        assert_eq!(replies[0].source, payments::SOURCE);
        assert_eq!(replies[0].subject, id, "the reply is about the order");
        let Message::PaymentSucceeded(succeeded) = message(&replies[0]) else {
            panic!("{:?}", replies[0]);
        };
        assert_eq!(succeeded.payment_id, payment.id);
        assert_eq!(succeeded.amount.amount, PRICE);
        assert_eq!(succeeded.amount.currency, "EUR");
        service
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_decline_fails_the_payment_with_its_code() {
    with_service(Options::default(), async |service| {
        let cases = [
            ("pm_card_chargeDeclined", "card_declined"),
            (
                "pm_card_chargeDeclinedInsufficientFunds",
                "insufficient_funds",
            ),
            ("pm_card_unheard_of", "invalid_payment_method"),
        ];
        let orders: Vec<String> = cases.iter().map(|_| order()).collect();
        let requests: Vec<_> = cases
            .iter()
            .zip(&orders)
            .map(|((method, _), id)| requested(id, method))
            .collect();
        service.deliver(&requests.iter().collect::<Vec<_>>()).await;
        for ((_, code), id) in cases.iter().zip(&orders) {
            let payment = service.payment_in(id, "FAILED").await;
            assert_eq!(payment.reason.as_deref(), Some(*code));
            let replies = service.replies_about(id, 1).await;
            let Message::PaymentFailed(failed) = message(&replies[0]) else {
                panic!("{:?}", replies[0]);
            };
            assert_eq!(failed.reason, *code);
            assert_eq!(failed.payment_id.as_deref(), Some(payment.id.as_str()));
        }
        let ledger = ledger_charges(&service.sandbox_db).await;
        assert_eq!(ledger.len(), 3, "a declined charge is in the ledger too");
        assert!(ledger.iter().all(|c| c.outcome == "declined"));
        service
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_provider_refuses_fails_as_a_provider_error() {
    with_service(Options::default(), async |service| {
        let id = order();
        let mut request = requested(&id, "pm_card_visa");
        request.data["amount"]["currency"] = "EURO".into();
        service.deliver(&[&request]).await;
        let payment = service.payment_in(&id, "FAILED").await;
        assert_eq!(payment.reason.as_deref(), Some("provider_error"));
        assert_eq!(payment.charge_id, None);
        let replies = service.replies_about(&id, 1).await;
        let Message::PaymentFailed(failed) = message(&replies[0]) else {
            panic!("{:?}", replies[0]);
        };
        assert_eq!(failed.reason, "provider_error");
        assert!(ledger_charges(&service.sandbox_db).await.is_empty());
        service
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_delivered_twice_or_sent_again_charges_once() {
    with_service(Options::default(), async |service| {
        let id = order();
        let first = requested(&id, "pm_card_visa");
        // The same envelope twice (the relay's resend), then a new request for the same order.
        let again = requested(&id, "pm_card_visa");
        service.deliver(&[&first, &first]).await;
        service.payment_in(&id, "SUCCEEDED").await;
        service.deliver(&[&again]).await;
        let replies = service.replies_about(&id, 2).await;
        service.caught_up().await;

        assert_eq!(ledger_charges(&service.sandbox_db).await.len(), 1);
        let rows = payment_rows(&service.db).await;
        assert_eq!(rows.len(), 1);
        // The duplicate was dropped; the new request got the same answer again.
        assert_eq!(kinds(&replies), ["PaymentSucceeded", "PaymentSucceeded"]);
        for reply in &replies {
            let Message::PaymentSucceeded(s) = message(reply) else {
                panic!("{reply:?}");
            };
            assert_eq!(s.payment_id, rows[0].id);
        }
        assert_eq!(service.replies().await.len(), 2);
        service
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_provider_answered_reuses_its_charge() {
    with_service(Options::default(), async |service| {
        let id = order();
        // The provider charged and answered; the process died before the commit, so the
        // payments database knows nothing and the request is delivered again.
        let sandbox = Sandbox::new(service.sandbox_db.clone(), SandboxSettings::default());
        let charged = sandbox
            .charge(&ChargeRequest {
                idempotency_key: id.clone(),
                amount: PRICE,
                currency: "EUR".into(),
                payment_method: "pm_card_visa".into(),
            })
            .await
            .expect("the charge");
        assert_eq!(charged.outcome, Outcome::Succeeded);
        assert!(payment_of(&service.db, &id).await.is_none());

        service.deliver(&[&requested(&id, "pm_card_visa")]).await;
        let payment = service.payment_in(&id, "SUCCEEDED").await;
        assert_eq!(payment.charge_id, Some(charged.id.clone()));
        let ledger = ledger_charges(&service.sandbox_db).await;
        assert_eq!(ledger.len(), 1);
        assert_eq!(ledger[0].id, charged.id);
        assert_eq!(
            kinds(&service.replies_about(&id, 1).await),
            ["PaymentSucceeded"]
        );
        service
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_provider_still_charges_each_order_exactly_once() {
    let options = Options {
        sandbox: SandboxSettings::new(Duration::ZERO, 0.5).expect("settings"),
        settings: Settings::default(),
    };
    with_service(options, async |service| {
        let orders: Vec<String> = (0..30).map(|_| order()).collect();
        let requests: Vec<_> = orders
            .iter()
            .map(|id| requested(id, "pm_card_visa"))
            .collect();
        service.deliver(&requests.iter().collect::<Vec<_>>()).await;
        eventually("30 payments", async || {
            let rows = payment_rows(&service.db).await;
            (rows.len() == 30).then_some(())
        })
        .await;
        let rows = payment_rows(&service.db).await;
        assert!(rows.iter().all(|p| p.status == "SUCCEEDED"), "{rows:?}");
        let ledger = ledger_charges(&service.sandbox_db).await;
        assert_eq!(
            ledger.len(),
            30,
            "one charge per order, however often retried"
        );
        for row in &rows {
            let charge = ledger
                .iter()
                .find(|c| c.idempotency_key == row.order_id)
                .expect("the order's charge");
            assert_eq!(row.charge_id.as_deref(), Some(charge.id.as_str()));
        }
        let replies = eventually("30 replies", async || {
            let replies = service.replies().await;
            (replies.len() >= 30).then_some(replies)
        })
        .await;
        assert_eq!(replies.len(), 30);
        assert!(replies.iter().all(|r| r.kind == "PaymentSucceeded"));
        service
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_down_past_the_budget_leaves_the_request_for_later() {
    let dir = tempfile::tempdir().expect("a tempdir");
    let id = order();
    {
        // Every call fails; the budget is short: the request is not handled, nothing stored.
        let service = Service::start(
            dir.path(),
            Options {
                sandbox: SandboxSettings::new(Duration::ZERO, 1.0).expect("settings"),
                settings: Settings {
                    retry_budget: Duration::from_millis(200),
                },
            },
        )
        .await;
        service.deliver(&[&requested(&id, "pm_card_visa")]).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(payment_rows(&service.db).await.is_empty());
        assert!(service.replies().await.is_empty());
        service.stop().await;
    }
    // After a restart with the provider back, the request is handled from the stored position.
    let service = Service::start(dir.path(), Options::default()).await;
    let payment = service.payment_in(&id, "SUCCEEDED").await;
    let ledger = ledger_charges(&service.sandbox_db).await;
    assert_eq!(ledger.len(), 1);
    assert_eq!(payment.charge_id.as_deref(), Some(ledger[0].id.as_str()));
    assert_eq!(
        kinds(&service.replies_about(&id, 1).await),
        ["PaymentSucceeded"]
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_after_the_charge_refunds_it_once() {
    with_service(Options::default(), async |service| {
        let id = order();
        service.deliver(&[&requested(&id, "pm_card_visa")]).await;
        let charged = service.payment_in(&id, "SUCCEEDED").await;

        let cancel = cancelled(&id, "customer");
        service.deliver(&[&cancel, &cancel]).await;
        // A second cancel (new id) and a late request change nothing either.
        service
            .deliver(&[&cancelled(&id, "timeout"), &requested(&id, "pm_card_visa")])
            .await;
        let refunded = service.payment_in(&id, "REFUNDED").await;
        service.caught_up().await;
        assert_eq!(refunded.id, charged.id);
        assert_eq!(refunded.reason.as_deref(), Some("customer"));

        let refunds = ledger_refunds(&service.sandbox_db).await;
        assert_eq!(refunds.len(), 1);
        assert_eq!(refunds[0].0, format!("refund:{id}"));
        assert_eq!(Some(refunds[0].2.clone()), charged.charge_id);
        assert_eq!(refunded.refund_id.as_deref(), Some(refunds[0].1.as_str()));
        assert_eq!(ledger_charges(&service.sandbox_db).await.len(), 1);

        let replies = service.replies_about(&id, 2).await;
        assert_eq!(kinds(&replies), ["PaymentSucceeded", "PaymentRefunded"]);
        let Message::PaymentRefunded(r) = message(&replies[1]) else {
            panic!("{:?}", replies[1]);
        };
        assert_eq!(r.payment_id, charged.id);
        assert_eq!(r.amount.amount, PRICE);
        service
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_of_a_declined_payment_refunds_nothing() {
    with_service(Options::default(), async |service| {
        let id = order();
        service
            .deliver(&[
                &requested(&id, "pm_card_chargeDeclined"),
                &cancelled(&id, "payment_declined"),
            ])
            .await;
        service.caught_up().await;
        let payment = payment_of(&service.db, &id).await.expect("the payment");
        assert_eq!(payment.status, "FAILED");
        assert!(ledger_refunds(&service.sandbox_db).await.is_empty());
        assert_eq!(
            kinds(&service.replies_about(&id, 1).await),
            ["PaymentFailed"]
        );
        service
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_before_the_request_means_the_order_is_never_charged() {
    with_service(Options::default(), async |service| {
        let id = order();
        let other = order();
        service
            .deliver(&[
                &cancelled(&id, "timeout"),
                &requested(&id, "pm_card_visa"),
                &requested(&other, "pm_card_visa"),
            ])
            .await;
        service.payment_in(&other, "SUCCEEDED").await;
        service.caught_up().await;
        assert!(payment_of(&service.db, &id).await.is_none());
        let ledger = ledger_charges(&service.sandbox_db).await;
        assert_eq!(ledger.len(), 1);
        assert_eq!(ledger[0].idempotency_key, other);
        // Replies go out in order; the other order's is there, this one's never will be.
        service.replies_about(&other, 1).await;
        assert!(service.replies().await.iter().all(|r| r.subject != id));
        let tombstone: Option<String> =
            sqlx::query_scalar("SELECT reason FROM cancelled_orders WHERE order_id = $1")
                .bind(&id)
                .fetch_optional(service.db.pool())
                .await
                .expect("the tombstone");
        assert_eq!(tombstone.as_deref(), Some("timeout"));
        service
    })
    .await;
}
