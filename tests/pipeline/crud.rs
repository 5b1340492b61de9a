//! Orders feeding the stream, end to end: in `ecom up` (SQLite, the embedded log) a confirmed
//! order's buyer is counted in the product's window; as processes on PostgreSQL and Kafka
//! (orders, inventory, payments, the catalog), every acknowledged order is confirmed and
//! charged once and its PURCHASE events reach the topic even when the inventory, payments and
//! orders are each killed with SIGKILL mid-stream.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::free_port;

use crate::support::*;

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    match http.post(url).json(body).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

async fn create(http: &reqwest::Client, url: &str, body: &Value) -> String {
    let (status, created) = post(http, url, body).await;
    assert_eq!(status, 201, "POST {url}: {created}");
    created["id"].as_str().expect("an id").to_owned()
}

/// Waits until the inventory shows `available` units of `product`.
async fn wait_stock(http: &reqwest::Client, base: &str, product: &str, available: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stock: Value = match http
            .get(format!("{base}/api/v1/inventory/{product}"))
            .send()
            .await
        {
            Ok(response) => response.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        if stock["available"] == available {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{product}: wanted {available} available, {stock}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn product(sku: &str) -> Value {
    json!({"sku": sku, "name": sku, "category": "test",
           "price": {"amount": 250, "currency": "EUR"}, "stock_quantity": 3})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_in_ecom_up_counts_its_buyer_in_the_products_window() {
    let _serial = serial().await;
    let dir = tempfile::tempdir().expect("a data directory");
    let platform = up(dir.path(), free_port(), &["--out-of-orderness", "0s"]);
    platform.wait_ready().await;
    let base = platform.url().to_owned();
    let http = reqwest::Client::new();

    // The administrator's password, generated on the first start, kept private and usable.
    let kept = dir.path().join("admin-password");
    let password = std::fs::read_to_string(&kept).expect("the generated password is kept");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&kept).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let login = http
        .post(format!("{base}/api/v1/auth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", password.trim()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status().as_u16(), 200);
    let token: Value = login.json().await.unwrap();

    // Behind the gateway, writes need the token; reading analytics from this machine does not.
    let authorization = format!("Bearer {}", token["access_token"].as_str().unwrap());
    let http = reqwest::Client::builder()
        .default_headers(reqwest::header::HeaderMap::from_iter([(
            reqwest::header::AUTHORIZATION,
            authorization.parse().unwrap(),
        )]))
        .build()
        .unwrap();
    let anonymous = reqwest::Client::new();
    let (status, refused) = post(
        &anonymous,
        &format!("{base}/api/v1/products"),
        &product("NO"),
    )
    .await;
    assert_eq!(status, 401, "{refused}");

    let mug = create(&http, &format!("{base}/api/v1/products"), &product("MUG")).await;
    let ann = create(
        &http,
        &format!("{base}/api/v1/customers"),
        &json!({"name": "Ann", "email": "ann@example.com"}),
    )
    .await;
    // The catalog's stock reaches the inventory (the stock sync) before anyone can buy it.
    wait_stock(&anonymous, &base, &mug, 3).await;
    let order = json!({"customer_id": ann, "lines": [{"product_id": mug, "quantity": 2}]});
    let created = http
        .post(format!("{base}/api/v1/orders"))
        .header("prefer", "wait=10")
        .json(&order)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["status"], "CONFIRMED", "{created}");
    // The buyer is counted when the order is confirmed: that minute's window.
    let window = format!("{}:00Z", &created["updated_at"].as_str().unwrap()[..16]);
    wait_stock(&anonymous, &base, &mug, 1).await;

    // Once the relay has appended the order's PURCHASE event (with no out-of-orderness
    // allowed, a later event arriving first would make it late), a later view of the same
    // product moves its partition's watermark past the order's minute, which closes the
    // window. The orders relay sends OrderCreated, PaymentRequested, OrderConfirmed and the
    // PURCHASE event.
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(
        &platform.metrics().await,
        r#"outbox_sent_total{service="orders"}"#,
    ) < 4.0
    {
        assert!(
            Instant::now() < deadline,
            "the order's event was never relayed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let later = stream_engine::core::time::format_rfc3339_ms(
        stream_engine::core::time::parse_rfc3339_ms(&window).unwrap() + 120_000,
    );
    let view = json!({"user_id": "viewer", "product_id": mug, "event_type": "VIEW_PRODUCT", "timestamp": later});
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, _) = post(&http, &format!("{base}/api/v1/events"), &view).await;
        assert_eq!(status, 202);
        let windows: Value = anonymous
            .get(format!("{base}/api/v1/analytics/products/{mug}/windows"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let found = windows["windows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["window_start"] == window.as_str())
            .cloned();
        if let Some(found) = found {
            // One buyer; one PURCHASE event for the one line.
            assert_eq!(found["unique_user_count"], 1, "{found}");
            assert_eq!(found["event_count"], 1, "{found}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the order's window never fired: {windows}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_on_postgresql_reach_kafka_at_least_once_across_a_kill_9_of_each_saga_service() {
    let _serial = serial().await;
    let stack = Stack::start();
    stack.broker.create_topic(INPUT, PARTITIONS);
    let url = testkit::Postgres::shared().database();
    let (host_port, name) = url
        .trim_start_matches("postgres://ecom@")
        .split_once('/')
        .unwrap();
    let (host, port) = host_port.split_once(':').unwrap();

    // Migrations by the seed's DB_* variables; applying them twice is harmless.
    let db_vars = [
        ("DB_HOST", host),
        ("DB_PORT", port),
        ("DB_NAME", name),
        ("DB_USER", "ecom"),
    ];
    for _ in 0..2 {
        let (status, stderr) = stack.run_to_exit("migrate", &db_vars, Duration::from_secs(60));
        assert!(status.success(), "ecom migrate failed: {stderr}");
    }

    let db = [("DATABASE_URL", url.as_str())];
    let catalog = stack.service("catalog", &db, Stdio::inherit());
    let customers = stack.service("customers", &db, Stdio::inherit());
    catalog.wait_ready().await;
    customers.wait_ready().await;
    let upstreams = [
        ("DATABASE_URL", url.as_str()),
        ("CATALOG_URL", catalog.url()),
        ("CUSTOMERS_URL", customers.url()),
        ("ECOM_RELAY_POLL", "200ms"),
    ];
    let mut orders = stack.service("orders", &upstreams, Stdio::inherit());
    // The saga's participants, on the same database (their own schemas) and broker.
    let mut inventory = stack.service("inventory", &db, Stdio::inherit());
    let mut payments = stack.service("payments", &db, Stdio::inherit());
    orders.wait_ready().await;
    inventory.wait_ready().await;
    payments.wait_ready().await;

    let http = reqwest::Client::new();
    let mut products = Vec::new();
    for i in 0..5 {
        let mut body = product(&format!("P-{i}"));
        body["stock_quantity"] = 1_000.into();
        let id = create(&http, &format!("{}/api/v1/products", catalog.url()), &body).await;
        wait_stock(&http, inventory.url(), &id, 1_000).await;
        products.push(id);
    }
    let buyer = create(
        &http,
        &format!("{}/api/v1/customers", customers.url()),
        &json!({"name": "Bo", "email": "bo@example.com"}),
    )
    .await;

    // Four clients place orders while the service is killed (with requests in flight and the
    // relay busy) and restarted on another port: every acknowledged order must reach the
    // topic. A request that failed (the process was gone) is retried by its client with the
    // same Idempotency-Key, as a client would.
    let url = Arc::new(Mutex::new(orders.url().to_owned()));
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let (url, acknowledged, products, buyer) = (
                url.clone(),
                acknowledged.clone(),
                products.clone(),
                buyer.clone(),
            );
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                for i in 0..15 {
                    let lines: Vec<Value> = products
                        .iter()
                        .take(1 + (client + i) % 5)
                        .map(|p| json!({"product_id": p, "quantity": 1}))
                        .collect();
                    let body = json!({"customer_id": buyer, "lines": lines});
                    let deadline = Instant::now() + Duration::from_secs(60);
                    loop {
                        let base = url.lock().unwrap().clone();
                        let response = http
                            .post(format!("{base}/api/v1/orders"))
                            .header("idempotency-key", format!("order-{client}-{i}"))
                            .json(&body)
                            .send()
                            .await;
                        if let Ok(response) = response
                            && response.status().as_u16() == 201
                        {
                            let created: Value = response.json().await.unwrap();
                            let id = created["id"].as_str().unwrap().to_owned();
                            let mut acknowledged = acknowledged.lock().unwrap();
                            for line in 0..lines.len() {
                                acknowledged.insert(format!("{id}:{line}"));
                            }
                            break;
                        }
                        assert!(
                            Instant::now() < deadline,
                            "order {client}-{i} never acknowledged"
                        );
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            })
        })
        .collect();
    // Each of the saga's services is killed once mid-stream and started again: the
    // inventory, then payments, then orders.
    while acknowledged.lock().unwrap().len() < 15 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    inventory.kill9();
    inventory = stack.service("inventory", &db, Stdio::inherit());
    inventory.wait_ready().await;
    while acknowledged.lock().unwrap().len() < 28 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    payments.kill9();
    payments = stack.service("payments", &db, Stdio::inherit());
    payments.wait_ready().await;
    while acknowledged.lock().unwrap().len() < 40 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    orders.kill9();
    orders = stack.service("orders", &upstreams, Stdio::inherit());
    orders.wait_ready().await;
    *url.lock().unwrap() = orders.url().to_owned();
    for client in clients {
        client.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let records = stack.read_topic(INPUT);
        let mut sent = BTreeSet::new();
        for record in &records {
            let event: Value = serde_json::from_slice(&record.payload).unwrap();
            assert_eq!(event["event_type"], "PURCHASE");
            assert_eq!(event["user_id"], buyer.as_str());
            assert_eq!(
                record.key.as_deref(),
                event["product_id"].as_str().map(str::as_bytes)
            );
            sent.insert(event["event_id"].as_str().unwrap().to_owned());
        }
        let missing: Vec<&String> = acknowledged.difference(&sent).collect();
        if missing.is_empty() {
            assert!(
                sent.is_subset(&acknowledged),
                "events of orders never acknowledged"
            );
            // Every acknowledged order confirmed and charged exactly once, across the kill.
            let mut ids: BTreeSet<&str> = BTreeSet::new();
            for line in &acknowledged {
                ids.insert(line.split(':').next().unwrap());
            }
            for id in ids {
                let order: Value = http
                    .get(format!("{}/api/v1/orders/{id}", orders.url()))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert_eq!(order["status"], "CONFIRMED", "{order}");
                let charges: Value = http
                    .get(format!("{}/api/v1/payments?order_id={id}", payments.url()))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let charges = charges["items"].as_array().unwrap();
                assert_eq!(charges.len(), 1, "{charges:?}");
                assert_eq!(charges[0]["status"], "SUCCEEDED");
            }
            return;
        }
        assert!(Instant::now() < deadline, "never sent: {missing:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The CRUD services on a PostgreSQL that admits TLS only, as RDS does (`rds.force_ssl`):
/// with PGSSLMODE=verify-full and PGSSLROOTCERT, what the Kubernetes overlay sets, they verify
/// the server's certificate against the CA and work; a server certificate from another CA is
/// refused, and so is a connection without TLS (by the server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_reach_postgresql_over_verified_tls_only() {
    let _serial = serial().await;
    let stack = Stack::start();
    let postgres = testkit::Postgres::start_tls();
    let url = postgres.database();
    let (host_port, name) = url
        .trim_start_matches("postgres://ecom@")
        .split_once('/')
        .unwrap();
    let (host, port) = host_port.split_once(':').unwrap();
    let ca = postgres.ca().unwrap().display().to_string();
    let elsewhere = tempfile::tempdir().unwrap();
    let other_ca = testkit::certificate_authority(elsewhere.path(), "another CA")
        .display()
        .to_string();
    let db = |mode: &'static str, root: &str| {
        vec![
            ("DB_HOST", host.to_owned()),
            ("DB_PORT", port.to_owned()),
            ("DB_NAME", name.to_owned()),
            ("DB_USER", "ecom".to_owned()),
            ("PGSSLMODE", mode.to_owned()),
            ("PGSSLROOTCERT", root.to_owned()),
        ]
    };
    let migrate = |vars: Vec<(&'static str, String)>| {
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        stack.run_to_exit("migrate", &vars, Duration::from_secs(60))
    };

    let (status, stderr) = migrate(db("verify-full", &ca));
    assert!(
        status.success(),
        "ecom migrate over verified TLS failed: {stderr}"
    );
    let (status, stderr) = migrate(db("verify-full", &other_ca));
    assert!(
        !status.success(),
        "a server certificate from another CA was accepted"
    );
    assert!(
        stderr.contains("certificate") || stderr.contains("UnknownIssuer"),
        "refused for another reason: {stderr}"
    );
    let (status, stderr) = migrate(db("disable", &ca));
    assert!(!status.success(), "a connection without TLS was accepted");
    assert!(
        stderr.contains("pg_hba.conf"),
        "refused for another reason: {stderr}"
    );

    let vars = db("verify-full", &ca);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let catalog = stack.service("catalog", &vars, Stdio::inherit());
    catalog.wait_ready().await;
    let http = reqwest::Client::new();
    create(
        &http,
        &format!("{}/api/v1/products", catalog.url()),
        &product("TLS-1"),
    )
    .await;
}
