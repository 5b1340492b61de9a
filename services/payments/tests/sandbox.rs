//! The sandbox provider on its ledger (a SQLite file of its own): idempotent charges and
//! refunds by key, the refusals a processor gives, and its simulated network.

mod common;

use std::time::{Duration, Instant};

use common::*;
use payments::provider::{ChargeRequest, Outcome, Provider, ProviderError, RefundRequest};
use payments::sandbox::{Sandbox, SandboxSettings};

fn charge(key: &str, method: &str) -> ChargeRequest {
    ChargeRequest {
        idempotency_key: key.into(),
        amount: PRICE,
        currency: "EUR".into(),
        payment_method: method.into(),
    }
}

fn refund(key: &str, charge_id: &str, amount: i64) -> RefundRequest {
    RefundRequest {
        idempotency_key: key.into(),
        charge_id: charge_id.into(),
        amount,
    }
}

async fn sandbox(settings: SandboxSettings) -> (tempfile::TempDir, Sandbox) {
    let dir = tempfile::tempdir().expect("a tempdir");
    let db = sandbox_db(dir.path()).await;
    (dir, Sandbox::with_seed(db, settings, 7))
}

#[tokio::test]
async fn a_known_key_answers_the_stored_charge() {
    let (_dir, sandbox) = sandbox(SandboxSettings::default()).await;
    let first = sandbox.charge(&charge("o1", "pm_card_visa")).await.unwrap();
    assert_eq!(first.outcome, Outcome::Succeeded);
    assert!(first.id.starts_with("ch_"), "{}", first.id);
    assert_eq!(
        sandbox.charge(&charge("o1", "pm_card_visa")).await,
        Ok(first.clone())
    );

    let declined = sandbox
        .charge(&charge("o2", "pm_card_chargeDeclinedInsufficientFunds"))
        .await
        .unwrap();
    assert_eq!(
        declined.outcome,
        Outcome::Declined {
            code: "insufficient_funds".into()
        }
    );
    assert_eq!(
        sandbox
            .charge(&charge("o2", "pm_card_chargeDeclinedInsufficientFunds"))
            .await,
        Ok(declined)
    );
    assert_eq!(ledger_charges(sandbox.db()).await.len(), 2);
}

#[tokio::test]
async fn a_key_reused_with_other_parameters_or_a_bad_request_is_refused() {
    let (_dir, sandbox) = sandbox(SandboxSettings::default()).await;
    sandbox.charge(&charge("o1", "pm_card_visa")).await.unwrap();
    let other_amount = ChargeRequest {
        amount: PRICE + 1,
        ..charge("o1", "pm_card_visa")
    };
    for request in [
        other_amount,
        charge("o1", "pm_card_amex"),
        ChargeRequest {
            currency: "EURO".into(),
            ..charge("o2", "pm_card_visa")
        },
        ChargeRequest {
            amount: -1,
            ..charge("o3", "pm_card_visa")
        },
        charge("", "pm_card_visa"),
    ] {
        assert!(
            matches!(
                sandbox.charge(&request).await,
                Err(ProviderError::Permanent(_))
            ),
            "{request:?}"
        );
    }
    assert_eq!(ledger_charges(sandbox.db()).await.len(), 1);
}

#[tokio::test]
async fn a_refund_is_made_once_per_key_and_only_of_what_was_charged() {
    let (_dir, sandbox) = sandbox(SandboxSettings::default()).await;
    let paid = sandbox.charge(&charge("o1", "pm_card_visa")).await.unwrap();
    let first = sandbox
        .refund(&refund("refund:o1", &paid.id, PRICE))
        .await
        .unwrap();
    assert!(first.id.starts_with("re_"), "{}", first.id);
    assert_eq!(
        sandbox.refund(&refund("refund:o1", &paid.id, PRICE)).await,
        Ok(first)
    );
    // Under another key, the charge has nothing left to give back.
    assert!(matches!(
        sandbox
            .refund(&refund("refund:again", &paid.id, PRICE))
            .await,
        Err(ProviderError::Permanent(_))
    ));

    let declined = sandbox
        .charge(&charge("o2", "pm_card_chargeDeclined"))
        .await
        .unwrap();
    for request in [
        refund("refund:o2", &declined.id, PRICE),
        refund("refund:o3", "ch_unknown", PRICE),
        refund("refund:o1", &paid.id, 1),
    ] {
        assert!(
            matches!(
                sandbox.refund(&request).await,
                Err(ProviderError::Permanent(_))
            ),
            "{request:?}"
        );
    }
    assert_eq!(ledger_refunds(sandbox.db()).await.len(), 1);
}

#[tokio::test]
async fn a_lost_answer_is_found_again_by_the_retry() {
    let dir = tempfile::tempdir().expect("a tempdir");
    let db = sandbox_db(dir.path()).await;
    // Every call fails: half before the ledger, half after it.
    let failing = Sandbox::with_seed(
        db.clone(),
        SandboxSettings::new(Duration::ZERO, 1.0).unwrap(),
        11,
    );
    let keys: Vec<String> = (0..40).map(|i| format!("o{i}")).collect();
    for key in &keys {
        let answer = failing.charge(&charge(key, "pm_card_visa")).await;
        assert!(
            matches!(answer, Err(ProviderError::Transient(_))),
            "{answer:?}"
        );
    }
    let lost = ledger_charges(&db).await;
    assert!(
        !lost.is_empty() && lost.len() < keys.len(),
        "some answers were lost after the charge: {}",
        lost.len()
    );
    let working = Sandbox::new(db.clone(), SandboxSettings::default());
    for key in &keys {
        let charged = working.charge(&charge(key, "pm_card_visa")).await.unwrap();
        if let Some(made) = lost.iter().find(|c| &c.idempotency_key == key) {
            assert_eq!(charged.id, made.id, "the retry answers the charge made");
        }
    }
    assert_eq!(ledger_charges(&db).await.len(), keys.len());
}

#[tokio::test]
async fn each_call_takes_the_latency() {
    let (_dir, sandbox) =
        sandbox(SandboxSettings::new(Duration::from_millis(150), 0.0).unwrap()).await;
    let started = Instant::now();
    sandbox.charge(&charge("o1", "pm_card_visa")).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));
}
