//! The order saga in `ecom up` under `kill -9`: 120 orders placed by four clients while the
//! process is killed twice at random moments and restarted on the same data directory. After
//! the last restart every order ends terminal, no stock leaks or is oversold, and the
//! provider's ledger holds one charge per charged order, each confirmed order's charge
//! standing and each cancelled one's refunded.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use sqlx::Row;
use testkit::free_port;

use crate::support::*;

const STOCK: i64 = 40;
const ORDERS_PER_CLIENT: usize = 30;

fn env() -> [(&'static str, &'static str); 2] {
    [
        ("ECOM_ADMIN_PASSWORD", "saga-kill-test-password"),
        // Steps interrupted by a kill either resume or time out soon.
        ("ECOM_SAGA_STEP_TIMEOUT", "5s"),
    ]
}

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_survive_kill_9_of_ecom_up_with_no_oversell_no_leak_and_one_charge_each() {
    let _serial = serial().await;
    let dir = tempfile::tempdir().expect("a data directory");
    // One port throughout: the tokens' issuer is the public address.
    let port = free_port();
    let mut platform = up_with_env(dir.path(), port, &[], &env());
    platform.wait_ready().await;
    let base = Arc::new(Mutex::new(platform.url().to_owned()));
    let url = |path: &str| format!("{}{path}", base.lock().unwrap());
    let anonymous = reqwest::Client::new();
    let (_, token) = json_of(
        anonymous
            .post(url("/api/v1/auth/token"))
            .form(&[
                ("grant_type", "password"),
                ("username", "admin"),
                ("password", "saga-kill-test-password"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let http = reqwest::Client::builder()
        .default_headers(reqwest::header::HeaderMap::from_iter([(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", token["access_token"].as_str().unwrap())
                .parse()
                .unwrap(),
        )]))
        .build()
        .unwrap();

    let mut products = Vec::new();
    for sku in ["KILL-A", "KILL-B", "KILL-C"] {
        let (status, product) = json_of(
            http.post(url("/api/v1/products"))
                .json(&json!({"sku": sku, "name": sku, "category": "test",
                              "price": {"amount": 500, "currency": "EUR"}, "stock_quantity": STOCK}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 201, "{product}");
        products.push(product["id"].as_str().unwrap().to_owned());
    }
    for product in &products {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, stock) = json_of(
                anonymous
                    .get(url(&format!("/api/v1/inventory/{product}")))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            if stock["on_hand"] == STOCK {
                break;
            }
            assert!(Instant::now() < deadline, "no stock for {product}: {stock}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let (status, buyer) = json_of(
        http.post(url("/api/v1/customers"))
            .json(&json!({"name": "Kim", "email": "kim@example.com"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{buyer}");
    let buyer = buyer["id"].as_str().unwrap().to_owned();

    // Four clients; a request that fails (the process is gone) is retried with its key.
    let acknowledged = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let (base, acknowledged, products, buyer, http) = (
                base.clone(),
                acknowledged.clone(),
                products.clone(),
                buyer.clone(),
                http.clone(),
            );
            tokio::spawn(async move {
                for i in 0..ORDERS_PER_CLIENT {
                    let lines: Vec<Value> = products
                        .iter()
                        .skip((client + i) % 3)
                        .take(1 + i % 2)
                        .map(|p| json!({"product_id": p, "quantity": 1 + (i % 3)}))
                        .collect();
                    let method = if i % 7 == 3 {
                        "pm_card_chargeDeclined"
                    } else {
                        "pm_card_visa"
                    };
                    let body =
                        json!({"customer_id": buyer, "lines": lines, "payment_method": method});
                    let deadline = Instant::now() + Duration::from_secs(120);
                    loop {
                        let at = base.lock().unwrap().clone();
                        let sent = http
                            .post(format!("{at}/api/v1/orders"))
                            .header("idempotency-key", format!("kill-{client}-{i}"))
                            .json(&body)
                            .send()
                            .await;
                        let last = match sent {
                            Ok(response) => {
                                let status = response.status().as_u16();
                                let body: Value = response.json().await.unwrap_or(Value::Null);
                                if status == 201 {
                                    let id = body["id"].as_str().unwrap().to_owned();
                                    acknowledged.lock().unwrap().insert(id);
                                    break;
                                }
                                format!("{status} {body}")
                            }
                            Err(e) => e.to_string(),
                        };
                        assert!(
                            Instant::now() < deadline,
                            "order {client}-{i} never taken: {last}"
                        );
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    tokio::time::sleep(Duration::from_millis(15)).await;
                }
            })
        })
        .collect();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(22);
    for kill in 1..=2 {
        while acknowledged.lock().unwrap().len() < kill * 35 {
            assert!(
                !clients.iter().any(|c| c.is_finished()),
                "a client stopped before the kill"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
        platform.kill9();
        platform = up_with_env(dir.path(), port, &[], &env());
        platform.wait_ready().await;
    }
    for client in clients {
        client.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert_eq!(acknowledged.len(), 4 * ORDERS_PER_CLIENT);

    // Every order ends terminal (a step the kills interrupted resumes or times out).
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut orders: BTreeMap<String, Value> = BTreeMap::new();
    for id in &acknowledged {
        loop {
            let (status, order) = json_of(
                http.get(url(&format!("/api/v1/orders/{id}")))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(status, 200, "{order}");
            if order["status"] != "PENDING" {
                orders.insert(id.clone(), order);
                break;
            }
            assert!(Instant::now() < deadline, "still pending: {order}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut outcomes = BTreeMap::<String, usize>::new();
    for order in orders.values() {
        *outcomes
            .entry(format!("{} {}", order["status"], order["cancel_reason"]))
            .or_default() += 1;
    }
    eprintln!("outcomes after two kills: {outcomes:?}");
    let confirmed: Vec<&Value> = orders
        .values()
        .filter(|o| o["status"] == "CONFIRMED")
        .collect();
    assert!(
        confirmed.len() >= 10,
        "{} of {} confirmed",
        confirmed.len(),
        orders.len()
    );
    assert!(
        orders
            .values()
            .all(|o| o["status"] == "CONFIRMED" || o["status"] == "CANCELLED"),
        "{orders:?}"
    );

    // Stock: once quiet, nothing reserved, and every unit gone belongs to a confirmed order.
    let mut sold: BTreeMap<&str, i64> = BTreeMap::new();
    for order in &confirmed {
        for line in order["lines"].as_array().unwrap() {
            *sold
                .entry(line["product_id"].as_str().unwrap())
                .or_default() += line["quantity"].as_i64().unwrap();
        }
    }
    for product in &products {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, stock) = json_of(
                anonymous
                    .get(url(&format!("/api/v1/inventory/{product}")))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            let (on_hand, reserved, available) = (
                stock["on_hand"].as_i64().unwrap(),
                stock["reserved"].as_i64().unwrap(),
                stock["available"].as_i64().unwrap(),
            );
            assert_eq!(on_hand, available + reserved, "{stock}");
            assert!(available >= 0, "{stock}");
            let sold = sold.get(product.as_str()).copied().unwrap_or(0);
            if reserved == 0 && on_hand == STOCK - sold {
                break;
            }
            assert!(Instant::now() < deadline, "{product}: {sold} sold, {stock}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Payments: each confirmed order charged once and standing, each cancelled one never
    // charged, declined, or refunded; once quiet, nothing succeeded of a cancelled order.
    let deadline = Instant::now() + Duration::from_secs(30);
    'quiet: loop {
        let mut standing = 0;
        for (id, order) in &orders {
            let (_, payments) = json_of(
                http.get(url(&format!("/api/v1/payments?order_id={id}")))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            let payments = payments["items"].as_array().unwrap();
            assert!(payments.len() <= 1, "{payments:?}");
            let status = payments.first().map(|p| p["status"].as_str().unwrap());
            let settled = match order["status"].as_str().unwrap() {
                "CONFIRMED" => status == Some("SUCCEEDED"),
                _ => matches!(status, None | Some("FAILED") | Some("REFUNDED")),
            };
            if !settled {
                assert!(Instant::now() < deadline, "{order} with {payments:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue 'quiet;
            }
            standing += usize::from(status == Some("SUCCEEDED"));
        }
        assert_eq!(standing, confirmed.len());
        break;
    }
    // The provider's ledger (its own database file): at most one charge per order, and the
    // charges that stand are exactly the confirmed orders'.
    let ledger = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("payment_sandbox.db").display()
    ))
    .await
    .expect("the sandbox's ledger");
    let rows = sqlx::query(
        "SELECT c.idempotency_key AS order_id, c.outcome AS outcome, \
         (SELECT COUNT(*) FROM sandbox_refunds r WHERE r.charge_id = c.id) AS refunds \
         FROM sandbox_charges c",
    )
    .fetch_all(&ledger)
    .await
    .unwrap();
    let mut charged = BTreeSet::new();
    for row in &rows {
        let order: String = row.get("order_id");
        assert!(charged.insert(order.clone()), "{order} charged twice");
        let outcome: String = row.get("outcome");
        let refunds: i64 = row.get("refunds");
        let status = orders[&order]["status"].as_str().unwrap();
        if outcome == "succeeded" {
            assert_eq!(
                refunds,
                i64::from(status == "CANCELLED"),
                "{order} is {status}"
            );
        }
    }
    let standing = rows
        .iter()
        .filter(|r| r.get::<String, _>("outcome") == "succeeded" && r.get::<i64, _>("refunds") == 0)
        .count();
    assert_eq!(standing, confirmed.len());
    ledger.close().await;
    assert!(platform.signal_and_wait("INT").success());
}
