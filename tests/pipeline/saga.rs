//! The order saga end to end. In `ecom up` under `kill -9`: 120 orders placed by four clients
//! while the process is killed twice at random moments and restarted on the same data
//! directory; after the last restart every order ends terminal, no stock leaks or is oversold,
//! and the provider's ledger holds one charge per charged order, each confirmed order's charge
//! standing and each cancelled one's refunded. And its compensations as separate processes on
//! PostgreSQL and tansu.

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

/// The order's state once its saga has settled (and `check` holds), within `timeout`.
async fn wait_order(
    http: &reqwest::Client,
    orders: &str,
    id: &str,
    timeout: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (_, order) = json_of(
            http.get(format!("{orders}/api/v1/orders/{id}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        if order["status"] != "PENDING" && check(&order) {
            return order;
        }
        assert!(Instant::now() < deadline, "{order}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_available(http: &reqwest::Client, inventory: &str, product: &str, available: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, stock) = json_of(
            http.get(format!("{inventory}/api/v1/inventory/{product}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        if stock["available"] == available && stock["reserved"] == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "wanted {available}: {stock}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn outcomes(order: &Value) -> Vec<String> {
    order["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{} {}",
                t["step"].as_str().unwrap(),
                t["outcome"].as_str().unwrap()
            )
        })
        .collect()
}

/// The compensations on the deployed transport: orders, inventory, payments, the catalog and
/// customers as processes on PostgreSQL and tansu. A declined card, a line short of stock, a
/// cancelled confirmed order, and payments down past the step timeout each end as on the
/// embedded log (`tests/services/saga.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_saga_s_compensations_on_postgresql_and_kafka() {
    let _serial = serial().await;
    let stack = Stack::start();
    let url = testkit::Postgres::shared().database();
    let db = [("DATABASE_URL", url.as_str())];
    let catalog = stack.service("catalog", &db, std::process::Stdio::inherit());
    let customers = stack.service("customers", &db, std::process::Stdio::inherit());
    catalog.wait_ready().await;
    customers.wait_ready().await;
    let upstreams = [
        ("DATABASE_URL", url.as_str()),
        ("CATALOG_URL", catalog.url()),
        ("CUSTOMERS_URL", customers.url()),
        ("ECOM_RELAY_POLL", "200ms"),
        ("ECOM_SAGA_STEP_TIMEOUT", "3s"),
    ];
    let orders = stack.service("orders", &upstreams, std::process::Stdio::inherit());
    let inventory = stack.service("inventory", &db, std::process::Stdio::inherit());
    let mut payments = stack.service("payments", &db, std::process::Stdio::inherit());
    orders.wait_ready().await;
    inventory.wait_ready().await;
    payments.wait_ready().await;
    let http = reqwest::Client::new();

    let (status, mug) = json_of(
        http.post(format!("{}/api/v1/products", catalog.url()))
            .json(&json!({"sku": "K-MUG", "name": "Mug", "category": "test",
                          "price": {"amount": 900, "currency": "EUR"}, "stock_quantity": 5}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{mug}");
    let mug = mug["id"].as_str().unwrap().to_owned();
    wait_available(&http, inventory.url(), &mug, 5).await;
    let (_, buyer) = json_of(
        http.post(format!("{}/api/v1/customers", customers.url()))
            .json(&json!({"name": "Lee", "email": "lee@example.com"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let buyer = buyer["id"].as_str().unwrap().to_owned();
    let place = |quantity: i64, method: &'static str| {
        let (http, orders, buyer, mug) = (
            http.clone(),
            orders.url().to_owned(),
            buyer.clone(),
            mug.clone(),
        );
        async move {
            let (status, order) = json_of(
                http.post(format!("{orders}/api/v1/orders"))
                    .json(&json!({"customer_id": buyer, "payment_method": method,
                                  "lines": [{"product_id": mug, "quantity": quantity}]}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(status, 201, "{order}");
            order["id"].as_str().unwrap().to_owned()
        }
    };
    let payment_of = |id: String| {
        let (http, payments) = (http.clone(), payments.url().to_owned());
        async move {
            let (_, list) = json_of(
                http.get(format!("{payments}/api/v1/payments?order_id={id}"))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            list["items"].as_array().unwrap().clone()
        }
    };
    let settle = Duration::from_secs(30);

    // A declined card: cancelled, the stock back.
    let declined = place(1, "pm_card_chargeDeclinedInsufficientFunds").await;
    let order = wait_order(&http, orders.url(), &declined, settle, |_| true).await;
    assert_eq!(order["cancel_reason"], "payment_declined", "{order}");
    wait_available(&http, inventory.url(), &mug, 5).await;
    let charged = payment_of(declined.clone()).await;
    assert_eq!(charged.len(), 1);
    assert_eq!(charged[0]["reason"], "insufficient_funds");

    // Short of stock: cancelled, nothing reserved or charged.
    let short = place(6, "pm_card_visa").await;
    let order = wait_order(&http, orders.url(), &short, settle, |_| true).await;
    assert_eq!(order["cancel_reason"], "out_of_stock", "{order}");
    assert!(payment_of(short).await.is_empty());

    // Confirmed, then cancelled: refunded, the stock returned.
    let kept = place(2, "pm_card_visa").await;
    let order = wait_order(&http, orders.url(), &kept, settle, |_| true).await;
    assert_eq!(order["status"], "CONFIRMED", "{order}");
    wait_available(&http, inventory.url(), &mug, 3).await;
    let cancel = http
        .delete(format!("{}/api/v1/orders/{kept}", orders.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status().as_u16(), 204);
    let order = wait_order(&http, orders.url(), &kept, settle, |o| {
        let done = outcomes(o);
        done.contains(&"payment refunded".to_owned()) && done.contains(&"stock released".to_owned())
    })
    .await;
    assert_eq!(order["cancel_reason"], "admin");
    assert_eq!(payment_of(kept).await[0]["status"], "REFUNDED");
    wait_available(&http, inventory.url(), &mug, 5).await;

    // Payments down past the step timeout: cancelled `timeout`; back, it charges the request
    // it missed and refunds it on the cancellation behind it.
    payments.kill9();
    let late = place(1, "pm_card_visa").await;
    let order = wait_order(&http, orders.url(), &late, settle, |_| true).await;
    assert_eq!(order["cancel_reason"], "timeout", "{order}");
    wait_available(&http, inventory.url(), &mug, 5).await;
    payments = stack.service("payments", &db, std::process::Stdio::inherit());
    payments.wait_ready().await;
    let payments_url = payments.url().to_owned();
    let deadline = Instant::now() + settle;
    loop {
        let (_, list) = json_of(
            http.get(format!("{payments_url}/api/v1/payments?order_id={late}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        if list["items"][0]["status"] == "REFUNDED" {
            break;
        }
        assert!(Instant::now() < deadline, "{list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let order = wait_order(&http, orders.url(), &late, settle, |o| {
        outcomes(o).contains(&"payment refunded".to_owned())
    })
    .await;
    assert!(
        outcomes(&order).contains(&"payment succeeded_after_cancellation".to_owned()),
        "{order}"
    );
}
