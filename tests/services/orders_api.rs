//! Orders: pricing from the catalog, status transitions, idempotency under concurrency, the
//! PURCHASE events they feed to the log once confirmed, and what happens when the catalog is
//! down. (The saga itself: tests/services/saga.rs.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::on_both_databases;
use crate::support::{Backend, Platform, log_records};

fn order(customer: &str, lines: &[(&str, i64)]) -> Value {
    let lines: Vec<Value> = lines
        .iter()
        .map(|(product, quantity)| json!({"product_id": product, "quantity": quantity}))
        .collect();
    json!({"customer_id": customer, "lines": lines})
}

async fn an_order_is_priced_from_the_catalog_and_moves_through_its_statuses(backend: Backend) {
    let p = Platform::start(backend).await;
    let mug = p.product("MUG", 1299, "EUR").await;
    let tea = p.product("TEA", 450, "EUR").await;
    let ann = p.customer("ann@example.com").await;
    let created = p
        .post(&p.orders_url(), &order(&ann, &[(&mug, 2), (&tea, 3)]))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.header("location"), format!("/api/v1/orders/{id}"));
    assert_eq!(created.body["status"], "PENDING");
    assert_eq!(
        created.body["total"],
        json!({"amount": 2 * 1299 + 3 * 450, "currency": "EUR"})
    );
    assert_eq!(
        created.body["lines"][1],
        json!({"product_id": tea, "quantity": 3, "unit_price": {"amount": 450, "currency": "EUR"}})
    );

    // A later price change does not touch the order.
    let mug_url = format!("{}/{mug}", p.products());
    let repriced = p
        .call(
            Method::PATCH,
            &mug_url,
            Some(&json!({"price": {"amount": 9999}})),
            &[],
        )
        .await;
    assert_eq!(repriced.status, StatusCode::OK, "{}", repriced.body);
    assert_eq!(
        repriced.body["price"],
        json!({"amount": 9999, "currency": "EUR"})
    );
    let url = format!("{}/{id}", p.orders_url());
    let now = p.get(&url).await.body;
    assert_eq!(
        (&now["lines"], &now["total"]),
        (&created.body["lines"], &created.body["total"])
    );

    // The saga confirms it (stock reserved, payment taken: tests/services/saga.rs); from
    // there an administrator moves it on.
    let confirmed = p.settled(&id, Duration::from_secs(15)).await;
    assert_eq!(confirmed["status"], "CONFIRMED", "{confirmed}");
    let status = format!("{url}/status");
    let stale = p
        .call(
            Method::POST,
            &status,
            Some(&json!({"status": "SHIPPED"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(stale.code(), "precondition_failed");
    let shipped = p
        .call(
            Method::PATCH,
            &url,
            Some(&json!({"status": "SHIPPED"})),
            &[],
        )
        .await;
    assert_eq!(shipped.body["status"], "SHIPPED", "{}", shipped.body);
    let cancel_shipped = p.call(Method::DELETE, &url, None, &[]).await;
    assert_eq!(
        (cancel_shipped.status, cancel_shipped.code()),
        (StatusCode::CONFLICT, "invalid_transition")
    );
    assert_eq!(
        p.post(&status, &json!({"status": "DELIVERED"}))
            .await
            .status,
        StatusCode::OK
    );
    for next in ["PENDING", "CONFIRMED", "SHIPPED", "CANCELLED", "DELIVERED"] {
        assert_eq!(
            p.post(&status, &json!({"status": next})).await.code(),
            "invalid_transition",
            "{next}"
        );
    }
    let unknown = p.post(&status, &json!({"status": "LOST"})).await;
    assert_eq!(unknown.code(), "validation_failed");
    let lines = p
        .call(Method::PATCH, &url, Some(&json!({"lines": []})), &[])
        .await;
    assert_eq!(
        (lines.status, lines.code()),
        (StatusCode::BAD_REQUEST, "validation_failed")
    );

    // Deleting cancels; the order stays readable.
    let second = p.post(&p.orders_url(), &order(&ann, &[(&tea, 1)])).await;
    let second_url = format!("{}/{}", p.orders_url(), second.body["id"].as_str().unwrap());
    assert_eq!(
        p.call(Method::DELETE, &second_url, None, &[]).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(p.get(&second_url).await.body["status"], "CANCELLED");
    assert_eq!(
        p.call(Method::DELETE, &second_url, None, &[]).await.status,
        StatusCode::NO_CONTENT
    );

    // Filters.
    let mine = p
        .walk(&format!("{}?customer_id={ann}", p.orders_url()), 1)
        .await;
    assert_eq!(mine.len(), 2);
    let cancelled = p
        .walk(&format!("{}?status=CANCELLED", p.orders_url()), 10)
        .await;
    assert_eq!(cancelled.len(), 1);
    let bad = p.get(&format!("{}?status=LOST", p.orders_url())).await;
    assert_eq!(bad.code(), "invalid_parameter");
    let nul = p.get(&format!("{}?customer_id=%00", p.orders_url())).await;
    assert_eq!(nul.code(), "invalid_parameter");
}

async fn orders_for_unknown_customers_or_products_or_in_two_currencies_are_refused(
    backend: Backend,
) {
    let p = Platform::start(backend).await;
    let eur = p.product("EUR-1", 100, "EUR").await;
    let usd = p.product("USD-1", 100, "USD").await;
    let ann = p.customer("ann@example.com").await;
    let missing = "0".repeat(32);

    let a = p
        .post(&p.orders_url(), &order(&missing, &[(&eur, 1)]))
        .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown_customer")
    );
    let a = p
        .post(
            &p.orders_url(),
            &order("'; DROP TABLE orders; --", &[(&eur, 1)]),
        )
        .await;
    assert_eq!(a.code(), "unknown_customer");
    let a = p
        .post(
            &p.orders_url(),
            &order(&ann, &[(&eur, 1), (&missing, 1), ("nope", 2)]),
        )
        .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown_product")
    );
    assert_eq!(a.body["product_ids"].as_array().unwrap().len(), 2);
    let a = p
        .post(&p.orders_url(), &order(&ann, &[(&eur, 1), (&usd, 1)]))
        .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "mixed_currencies")
    );

    let lines_101: Vec<(&str, i64)> = (0..101).map(|_| (eur.as_str(), 1)).collect();
    let bad = [
        order(&ann, &[(&eur, -1)]),
        order(&ann, &[(&eur, 0)]),
        order(&ann, &[(&eur, 10_001)]),
        order(&ann, &[]),
        order(&ann, &lines_101),
        json!({"customer_id": ann, "lines": [{"product_id": eur, "quantity": "2"}]}),
        json!({"customer_id": ann, "lines": [{"product_id": eur, "quantity": 1, "unit_price": {"amount": 1, "currency": "EUR"}}]}),
        json!({"customer_id": ann}),
        json!({"customer_id": 7, "lines": []}),
    ];
    for body in bad {
        let a = p.post(&p.orders_url(), &body).await;
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::BAD_REQUEST, "validation_failed"),
            "{body}"
        );
    }
    assert!(p.walk(&p.orders_url(), 50).await.is_empty());
}

async fn twenty_parallel_posts_with_one_idempotency_key_make_one_order(backend: Backend) {
    let p = Arc::new(Platform::start(backend).await);
    let mug = p.product("MUG", 1299, "EUR").await;
    let ann = p.customer("ann@example.com").await;
    let body = order(&ann, &[(&mug, 1)]);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (p, body) = (p.clone(), body.clone());
            tokio::spawn(async move {
                let a = p
                    .call(
                        Method::POST,
                        &p.orders_url(),
                        Some(&body),
                        &[("idempotency-key", "checkout-42")],
                    )
                    .await;
                (a.status, a.body["id"].clone())
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        let (status, id) = t.await.unwrap();
        assert_eq!(status, StatusCode::CREATED);
        ids.push(id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every answer names the one order");
    assert_eq!(p.walk(&p.orders_url(), 50).await.len(), 1);
    let events = wait_for_events(&p, 1).await;
    assert_eq!(events.len(), 1, "one order, one PURCHASE event");
}

/// The log's records once it holds at least `n`.
async fn wait_for_events(p: &Platform, n: usize) -> Vec<(String, Value)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let records = log_records(&p.log);
        if records.len() >= n || Instant::now() > deadline {
            // A moment more, to see any extra.
            tokio::time::sleep(Duration::from_millis(300)).await;
            return log_records(&p.log);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn each_order_line_becomes_a_purchase_event_the_engine_accepts(backend: Backend) {
    let p = Platform::start(backend).await;
    let mug = p.product("MUG", 1299, "EUR").await;
    let tea = p.product("TEA", 450, "EUR").await;
    let ann = p.customer("ann@example.com").await;
    let created = p
        .post(&p.orders_url(), &order(&ann, &[(&mug, 2), (&tea, 1)]))
        .await;
    let order_id = created.body["id"].as_str().unwrap();
    let events = wait_for_events(&p, 2).await;
    assert_eq!(events.len(), 2);
    // Sent when the saga confirms the order, at that time.
    let confirmed = p.settled(order_id, Duration::from_secs(15)).await;
    let created_at = confirmed["updated_at"].as_str().unwrap();
    for (key, event) in &events {
        assert_eq!(event["product_id"], key.as_str(), "keyed by product");
        assert_eq!(event["user_id"], ann.as_str());
        assert_eq!(event["event_type"], "PURCHASE");
        assert_eq!(event["metadata"]["order_id"], order_id);
        // The confirmation's time, to the millisecond.
        assert_eq!(event["timestamp"].as_str().unwrap()[..23], created_at[..23]);
        let bytes = serde_json::to_vec(event).unwrap();
        let decoded =
            stream_engine::core::decode::decode_event(&bytes).expect("the engine decodes it");
        assert_eq!(decoded.product_id, key.as_str());
    }
    let mut keys: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort();
    let mut expected = [mug.as_str(), tea.as_str()];
    expected.sort();
    assert_eq!(keys, expected);
}

async fn the_catalog_down_means_503_and_no_order(backend: Backend) {
    let mut p = Platform::start(backend).await;
    let mug = p.product("MUG", 1299, "EUR").await;
    let ann = p.customer("ann@example.com").await;
    p.catalog.stop().await;
    let a = p.post(&p.orders_url(), &order(&ann, &[(&mug, 1)])).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "upstream_unavailable"),
        "{}",
        a.body
    );
    assert!(
        p.walk(&p.orders_url(), 50).await.is_empty(),
        "no order stored"
    );
    assert!(wait_for_events(&p, 1).await.is_empty(), "no event");
    p.customers.stop().await;
}

async fn a_catalog_that_does_not_answer_means_504_and_no_order(backend: Backend) {
    // Accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            open.push(stream);
        }
    });
    let p = Platform::start_with_catalog(backend, Some(silent_url)).await;
    let mug = p.product("MUG", 1299, "EUR").await;
    let ann = p.customer("ann@example.com").await;
    let started = Instant::now();
    let a = p.post(&p.orders_url(), &order(&ann, &[(&mug, 1)])).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
        "{}",
        a.body
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the timeout held"
    );
    assert!(
        p.walk(&p.orders_url(), 50).await.is_empty(),
        "no order stored"
    );
    held.abort();
}

on_both_databases!(
    a_catalog_that_does_not_answer_means_504_and_no_order,
    an_order_is_priced_from_the_catalog_and_moves_through_its_statuses,
    orders_for_unknown_customers_or_products_or_in_two_currencies_are_refused,
    twenty_parallel_posts_with_one_idempotency_key_make_one_order,
    each_order_line_becomes_a_purchase_event_the_engine_accepts,
    the_catalog_down_means_503_and_no_order,
);
