//! The order saga through HTTP, each test on SQLite and on PostgreSQL: orders, inventory and
//! payments from their `build` functions, the order flow's topics on the embedded log. Every
//! path of the flow and every compensation; concurrency on the last units; a participant down
//! past the step timeout; duplicate delivery of every message; a poison message.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::on_both_databases;
use crate::support::{Backend, Platform, STEP_TIMEOUT, log_records};

const SETTLE: Duration = Duration::from_secs(15);

fn order(customer: &str, lines: &[(&str, i64)], method: Option<&str>) -> Value {
    let lines: Vec<Value> = lines
        .iter()
        .map(|(product, quantity)| json!({"product_id": product, "quantity": quantity}))
        .collect();
    let mut body = json!({"customer_id": customer, "lines": lines});
    if let Some(method) = method {
        body["payment_method"] = method.into();
    }
    body
}

/// Creates the order; its id.
async fn place(p: &Platform, body: &Value) -> String {
    let created = p.post(&p.orders_url(), body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    created.body["id"].as_str().unwrap().to_owned()
}

/// The (step, outcome) pairs of an order's timeline.
fn steps(order: &Value) -> Vec<(String, String)> {
    order["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["step"].as_str().unwrap().to_owned(),
                t["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(s, o)| (s.to_string(), o.to_string()))
        .collect()
}

/// Waits until `check` holds of the order, within the settling time.
async fn wait_order(p: &Platform, id: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let order = p.get(&format!("{}/{id}", p.orders_url())).await.body;
        if check(&order) {
            return order;
        }
        assert!(std::time::Instant::now() < deadline, "{order}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until the product's stock is `(on_hand, reserved)`.
async fn wait_stock(p: &Platform, product: &str, on_hand: i64, reserved: i64) -> Value {
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let stock = p.stock(product).await;
        if stock["on_hand"] == on_hand && stock["reserved"] == reserved {
            assert_eq!(stock["available"], on_hand - reserved);
            return stock;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "wanted {on_hand}/{reserved}: {stock}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn payments_of(p: &Platform, order: &str) -> Vec<Value> {
    let a = p
        .get(&format!("{}?order_id={order}", p.payments_url()))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a.body["items"].as_array().unwrap().clone()
}

/// Sets a product's stock through the inventory, at its current version.
async fn set_stock(p: &Platform, product: &str, on_hand: i64) {
    let version = p.stock(product).await["version"].to_string();
    let a = p
        .call(
            Method::PUT,
            &p.inventory_url(product),
            Some(&json!({"on_hand": on_hand})),
            &[("if-match", &format!("\"{version}\""))],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
}

async fn an_order_is_confirmed_once_its_stock_is_reserved_and_its_payment_taken(backend: Backend) {
    let p = Platform::start(backend).await;
    let mug = p.product("MUG", 1299, "EUR").await;
    let tea = p.product("TEA", 450, "EUR").await;
    let ann = p.customer("ann@example.com").await;
    // `Prefer: wait` answers once the saga has settled.
    let created = p
        .call(
            Method::POST,
            &p.orders_url(),
            Some(&order(&ann, &[(&mug, 2), (&tea, 3)], None)),
            &[("prefer", "wait=10")],
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.header("preference-applied"), "wait=10");
    let body = &created.body;
    assert_eq!(body["status"], "CONFIRMED", "{body}");
    assert_eq!(body["cancel_reason"], Value::Null);
    assert_eq!(body["payment_method"], "pm_card_visa");
    assert_eq!(
        steps(body),
        pairs(&[
            ("order", "created"),
            ("stock", "reserved"),
            ("payment", "succeeded")
        ])
    );
    let id = body["id"].as_str().unwrap();
    wait_stock(&p, &mug, 8, 0).await;
    wait_stock(&p, &tea, 7, 0).await;
    let payments = payments_of(&p, id).await;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["status"], "SUCCEEDED");
    assert_eq!(
        payments[0]["amount"],
        json!({"amount": 2 * 1299 + 3 * 450, "currency": "EUR"})
    );
    let by_id = p
        .get(&format!(
            "{}/{}",
            p.payments_url(),
            payments[0]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(by_id.body, payments[0]);

    // The stream counts buyers who paid: one PURCHASE per line, at the confirmation's time.
    let confirmed_at = humantime::parse_rfc3339(body["updated_at"].as_str().unwrap()).unwrap();
    let confirmed_ms = confirmed_at
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let deadline = std::time::Instant::now() + SETTLE;
    let purchases = loop {
        let purchases: Vec<Value> = log_records(&p.log)
            .into_iter()
            .map(|(_, v)| v)
            .filter(|v| v["metadata"]["order_id"] == id)
            .collect();
        if purchases.len() == 2 || std::time::Instant::now() > deadline {
            break purchases;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(purchases.len(), 2, "{purchases:?}");
    for purchase in &purchases {
        assert_eq!(purchase["event_type"], "PURCHASE");
        assert_eq!(purchase["user_id"], ann.as_str());
        let at = humantime::parse_rfc3339(purchase["timestamp"].as_str().unwrap()).unwrap();
        let at_ms = at
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        assert!((at_ms - confirmed_ms).abs() <= 1, "{purchase} vs {body}");
    }

    // Admins take it on from there; nobody confirms a pending order by hand (see the timeout
    // test), and a shipped order cannot be cancelled.
    let url = format!("{}/{id}", p.orders_url());
    for next in ["SHIPPED", "DELIVERED"] {
        let a = p
            .post(&format!("{url}/status"), &json!({"status": next}))
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    }
    let refused = p.call(Method::DELETE, &url, None, &[]).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "invalid_transition");
}

async fn a_declined_card_cancels_the_order_and_releases_its_stock(backend: Backend) {
    let p = Platform::start(backend).await;
    let mug = p.product("MUG", 1299, "EUR").await;
    let ann = p.customer("ann@example.com").await;
    for (method, code) in [
        ("pm_card_chargeDeclined", "card_declined"),
        (
            "pm_card_chargeDeclinedInsufficientFunds",
            "insufficient_funds",
        ),
    ] {
        let id = place(&p, &order(&ann, &[(&mug, 4)], Some(method))).await;
        let settled = p.settled(&id, SETTLE).await;
        assert_eq!(settled["status"], "CANCELLED", "{settled}");
        assert_eq!(settled["cancel_reason"], "payment_declined");
        let settled = wait_order(&p, &id, |o| steps(o).len() == 4).await;
        assert_eq!(
            steps(&settled),
            pairs(&[
                ("order", "created"),
                ("stock", "reserved"),
                ("payment", "failed"),
                ("stock", "released"),
            ])
        );
        assert_eq!(settled["timeline"][2]["detail"], code);
        let payments = payments_of(&p, &id).await;
        assert_eq!(payments.len(), 1);
        assert_eq!(payments[0]["status"], "FAILED");
        assert_eq!(payments[0]["reason"], code);
        wait_stock(&p, &mug, 10, 0).await;
    }
}

async fn an_order_short_of_one_line_reserves_none_of_them(backend: Backend) {
    let p = Platform::start(backend).await;
    let mug = p.product("MUG", 1299, "EUR").await;
    let tea = p.product("TEA", 450, "EUR").await;
    let ann = p.customer("ann@example.com").await;
    let id = place(&p, &order(&ann, &[(&mug, 2), (&tea, 11)], None)).await;
    let settled = p.settled(&id, SETTLE).await;
    assert_eq!(settled["status"], "CANCELLED", "{settled}");
    assert_eq!(settled["cancel_reason"], "out_of_stock");
    assert_eq!(
        steps(&settled),
        pairs(&[("order", "created"), ("stock", "rejected")])
    );
    let detail = settled["timeline"][1]["detail"].as_str().unwrap();
    assert!(
        detail.contains(&tea) && detail.contains("11 requested, 10 available"),
        "{detail}"
    );
    wait_stock(&p, &mug, 10, 0).await;
    wait_stock(&p, &tea, 10, 0).await;
    assert!(payments_of(&p, &id).await.is_empty(), "nothing charged");
}

async fn twenty_buyers_of_the_last_five_mugs_get_five_mugs(backend: Backend) {
    let p = Arc::new(Platform::start(backend).await);
    let mug = p.product("MUG", 1299, "EUR").await;
    set_stock(&p, &mug, 5).await;
    let mut buyers = Vec::new();
    for i in 0..20 {
        buyers.push(p.customer(&format!("buyer{i}@example.com")).await);
    }
    let tasks: Vec<_> = buyers
        .into_iter()
        .map(|buyer| {
            let (p, mug) = (p.clone(), mug.clone());
            tokio::spawn(async move {
                let a = p
                    .call(
                        Method::POST,
                        &p.orders_url(),
                        Some(&order(&buyer, &[(&mug, 1)], None)),
                        &[("prefer", "wait=10")],
                    )
                    .await;
                assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
                let id = a.body["id"].as_str().unwrap().to_owned();
                p.settled(&id, SETTLE).await
            })
        })
        .collect();
    let mut outcomes = BTreeMap::<String, usize>::new();
    for task in tasks {
        let order = task.await.unwrap();
        let outcome = format!("{} {}", order["status"], order["cancel_reason"]);
        *outcomes.entry(outcome).or_default() += 1;
    }
    assert_eq!(
        outcomes,
        BTreeMap::from([
            (r#""CANCELLED" "out_of_stock""#.to_owned(), 15),
            (r#""CONFIRMED" null"#.to_owned(), 5),
        ])
    );
    wait_stock(&p, &mug, 0, 0).await;
}

async fn cancelling_a_confirmed_order_refunds_it_and_returns_its_stock(backend: Backend) {
    let p = Platform::start(backend).await;
    let mug = p.product("MUG", 1299, "EUR").await;
    let ann = p.customer("ann@example.com").await;
    let id = place(&p, &order(&ann, &[(&mug, 3)], None)).await;
    assert_eq!(p.settled(&id, SETTLE).await["status"], "CONFIRMED");
    wait_stock(&p, &mug, 7, 0).await;
    let url = format!("{}/{id}", p.orders_url());
    let cancelled = p.call(Method::DELETE, &url, None, &[]).await;
    assert_eq!(
        cancelled.status,
        StatusCode::NO_CONTENT,
        "{}",
        cancelled.body
    );
    let order = wait_order(&p, &id, |o| steps(o).len() == 6).await;
    assert_eq!(order["status"], "CANCELLED");
    // No token: another service, which counts as an administrator.
    assert_eq!(order["cancel_reason"], "admin");
    let mut tail = steps(&order)[3..].to_vec();
    tail[1..].sort();
    assert_eq!(
        tail,
        pairs(&[
            ("cancel", "requested"),
            ("payment", "refunded"),
            ("stock", "released")
        ])
    );
    let payments = payments_of(&p, &id).await;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["status"], "REFUNDED");
    wait_stock(&p, &mug, 10, 0).await;
    // Cancelling again changes nothing.
    let again = p.call(Method::DELETE, &url, None, &[]).await;
    assert_eq!(again.status, StatusCode::NO_CONTENT);
    assert_eq!(p.get(&url).await.body["version"], order["version"]);
}

async fn payments_down_past_the_step_timeout_cancel_and_a_late_charge_is_refunded(
    backend: Backend,
) {
    let mut p = Platform::start(backend).await;
    let mug = p.product("MUG", 1299, "EUR").await;
    let ann = p.customer("ann@example.com").await;
    p.payments.stop().await;
    let id = place(&p, &order(&ann, &[(&mug, 2)], None)).await;
    wait_order(&p, &id, |o| steps(o).len() == 2).await;
    // Pending, waiting for its payment: only the saga confirms it.
    let url = format!("{}/{id}", p.orders_url());
    let refused = p
        .post(&format!("{url}/status"), &json!({"status": "CONFIRMED"}))
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "saga_in_progress");
    wait_stock(&p, &mug, 10, 2).await;

    let settled = p.settled(&id, STEP_TIMEOUT * 3).await;
    assert_eq!(settled["status"], "CANCELLED", "{settled}");
    assert_eq!(settled["cancel_reason"], "timeout");
    assert_eq!(settled["timeline"][2]["step"], "payment");
    assert_eq!(settled["timeline"][2]["outcome"], "timed_out");
    wait_stock(&p, &mug, 10, 0).await;

    // Payments comes back: it takes the request it missed (the charge goes through), then
    // the cancellation behind it, and refunds.
    p.payments = Platform::start_payments(&p.flow, &p.payments_db, &p.sandbox_db, None).await;
    let order = wait_order(&p, &id, |o| {
        steps(o).contains(&("payment".to_owned(), "refunded".to_owned()))
    })
    .await;
    assert!(
        steps(&order).contains(&(
            "payment".to_owned(),
            "succeeded_after_cancellation".to_owned()
        )),
        "{order}"
    );
    assert_eq!(order["status"], "CANCELLED");
    let payments = payments_of(&p, &id).await;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["status"], "REFUNDED");
    wait_stock(&p, &mug, 10, 0).await;
}

/// Every message of the flow delivered again (the relays' at-least-once), and a poison
/// message: nothing changes twice, the poison goes to the dead letters, the flow goes on.
async fn duplicates_of_every_message_change_nothing_and_poison_is_set_aside(backend: Backend) {
    let p = Platform::start(backend).await;
    let mug = p.product("MUG", 1299, "EUR").await;
    let ann = p.customer("ann@example.com").await;
    let confirmed = place(&p, &order(&ann, &[(&mug, 1)], None)).await;
    let declined = place(
        &p,
        &order(&ann, &[(&mug, 1)], Some("pm_card_chargeDeclined")),
    )
    .await;
    let refunded = place(&p, &order(&ann, &[(&mug, 1)], None)).await;
    assert_eq!(p.settled(&refunded, SETTLE).await["status"], "CONFIRMED");
    let url = format!("{}/{refunded}", p.orders_url());
    assert_eq!(
        p.call(Method::DELETE, &url, None, &[]).await.status,
        StatusCode::NO_CONTENT
    );
    wait_order(&p, &refunded, |o| steps(o).len() == 6).await;
    wait_order(&p, &declined, |o| steps(o).len() == 4).await;
    let stock = wait_stock(&p, &mug, 9, 0).await;
    let before: Vec<Value> = {
        let mut v = Vec::new();
        for id in [&confirmed, &declined, &refunded] {
            v.push(p.get(&format!("{}/{id}", p.orders_url())).await.body);
            v.push(Value::Array(payments_of(&p, id).await));
        }
        v
    };

    // Every record of the three topics, appended once more, and a record that is no envelope.
    // Each copy must be counted a duplicate by every consumer that handles its type.
    let mut kinds = std::collections::BTreeSet::new();
    let mut expected_duplicates = 0;
    for log in [&p.flow.orders, &p.flow.inventory, &p.flow.payments] {
        let records: Vec<event_log::Record> = log_records(log)
            .into_iter()
            .map(|(key, value)| {
                let kind = value["type"].as_str().unwrap().to_owned();
                expected_duplicates += consumers_of(&kind);
                kinds.insert(kind);
                event_log::Record::new(key, value.to_string())
            })
            .collect();
        event_log::EventLog::append(log, records).await.unwrap();
    }
    for kind in [
        "OrderCreated",
        "PaymentRequested",
        "OrderConfirmed",
        "OrderCancelled",
        "StockReserved",
        "StockReleased",
        "PaymentSucceeded",
        "PaymentFailed",
        "PaymentRefunded",
    ] {
        assert!(kinds.contains(kind), "no {kind} in {kinds:?}");
    }
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let mut duplicates = 0.0;
        for service in [&p.orders, &p.inventory, &p.payments, &p.catalog] {
            duplicates += duplicates_counted(&p, &service.base).await;
        }
        if duplicates >= expected_duplicates as f64 {
            assert_eq!(duplicates, expected_duplicates as f64);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{duplicates} of {expected_duplicates} copies counted duplicates"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    event_log::EventLog::append(
        &p.flow.orders,
        vec![event_log::Record::new("junk", "{\"not\": \"an envelope\"}")],
    )
    .await
    .unwrap();
    // The poison reaches the dead letters from both consumers of order.events.
    let deadline = std::time::Instant::now() + SETTLE;
    let letters = loop {
        let letters = log_records(&p.flow.dead_letters);
        if letters.len() >= 2 || std::time::Instant::now() > deadline {
            break letters;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut consumers: Vec<&str> = letters
        .iter()
        .map(|(_, l)| l["consumer"].as_str().unwrap())
        .collect();
    consumers.sort_unstable();
    assert_eq!(consumers, ["inventory", "payments"], "{letters:?}");

    // Every copy was dropped as a duplicate: nothing changed; and the flow goes on.
    let after = place(&p, &order(&ann, &[(&mug, 1)], None)).await;
    assert_eq!(p.settled(&after, SETTLE).await["status"], "CONFIRMED");
    let mut now = Vec::new();
    for id in [&confirmed, &declined, &refunded] {
        now.push(p.get(&format!("{}/{id}", p.orders_url())).await.body);
        now.push(Value::Array(payments_of(&p, id).await));
    }
    assert_eq!(now, before);
    let stock_now = wait_stock(&p, &mug, 8, 0).await;
    assert_eq!(
        stock_now["on_hand"].as_i64().unwrap(),
        stock["on_hand"].as_i64().unwrap() - 1
    );
}

/// How many consumers of the flow handle messages of `kind` (and so count its copy a
/// duplicate): inventory and payments read `order.events`, orders the replies, the catalog the
/// stock readings.
fn consumers_of(kind: &str) -> usize {
    match kind {
        "OrderCancelled" => 2,
        "OrderCreated" | "OrderConfirmed" | "PaymentRequested" | "StockReserved"
        | "StockRejected" | "StockReleased" | "StockChanged" | "PaymentSucceeded"
        | "PaymentFailed" | "PaymentRefunded" => 1,
        _ => 0,
    }
}

/// The messages a service's consumers dropped as duplicates, from its `/metrics`.
async fn duplicates_counted(p: &Platform, base: &str) -> f64 {
    let text = p
        .http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("messages_handled_total{") && l.contains("outcome=\"duplicate\""))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

on_both_databases!(
    an_order_is_confirmed_once_its_stock_is_reserved_and_its_payment_taken,
    a_declined_card_cancels_the_order_and_releases_its_stock,
    an_order_short_of_one_line_reserves_none_of_them,
    twenty_buyers_of_the_last_five_mugs_get_five_mugs,
    cancelling_a_confirmed_order_refunds_it_and_returns_its_stock,
    payments_down_past_the_step_timeout_cancel_and_a_late_charge_is_refunded,
    duplicates_of_every_message_change_nothing_and_poison_is_set_aside,
);
