//! The HTTP API of the service as it ships: payments by order and by id, the ownership rules
//! of customers' tokens, the errors, the description and the operational routes.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;

async fn get(url: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the service answers");
    let status = response.status();
    let body = response.text().await.expect("a body");
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    (status, value)
}

/// Charges `order` for `customer` with `method` and waits for its payment.
async fn pay(service: &Service, order: &str, customer: &str, method: &str) {
    service
        .deliver(&[&requested_by(order, customer, method)])
        .await;
    eventually("the payment", async || payment_of(&service.db, order).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_are_read_by_order_and_by_id() {
    with_service(Options::default(), async |service| {
        let (paid, declined) = (service_db::new_id(), service_db::new_id());
        pay(&service, &paid, CUSTOMER, "pm_card_visa").await;
        pay(&service, &declined, CUSTOMER, "pm_card_chargeDeclined").await;

        let (status, list) = get(
            &format!("{}/api/v1/payments?order_id={paid}", service.base),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let items = list["items"].as_array().expect("items");
        assert_eq!(items.len(), 1);
        let payment = &items[0];
        assert_eq!(payment["order_id"], paid.as_str());
        assert_eq!(payment["customer_id"], CUSTOMER);
        assert_eq!(payment["status"], "SUCCEEDED");
        assert_eq!(payment["reason"], Value::Null);
        assert_eq!(
            payment["amount"],
            serde_json::json!({"amount": PRICE, "currency": "EUR"})
        );
        assert_eq!(payment["payment_method"], "pm_card_visa");
        for time in ["created_at", "updated_at"] {
            let text = payment[time].as_str().expect("a time");
            assert!(text.ends_with('Z') && text.contains('T'), "{time}: {text}");
        }
        let fields: Vec<&str> = payment
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            fields.len(),
            9,
            "id, order_id, customer_id, amount, status, reason, payment_method, times: {fields:?}"
        );

        let id = payment["id"].as_str().expect("an id");
        let (status, one) = get(&format!("{}/api/v1/payments/{id}", service.base), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&one, payment);

        let (_, all) = get(&format!("{}/api/v1/payments", service.base), None).await;
        let all = all["items"].as_array().expect("items");
        assert_eq!(all.len(), 2);
        assert_eq!(all[0]["order_id"], declined.as_str(), "newest first");
        assert_eq!(all[0]["status"], "FAILED");
        assert_eq!(all[0]["reason"], "card_declined");

        let (status, none) = get(
            &format!(
                "{}/api/v1/payments?order_id={}",
                service.base,
                service_db::new_id()
            ),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(none["items"], serde_json::json!([]));
        service
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_payments_are_404_and_bad_parameters_400() {
    with_service(Options::default(), async |service| {
        for id in [service_db::new_id(), "not-an-id".to_owned()] {
            let (status, body) = get(&format!("{}/api/v1/payments/{id}", service.base), None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{id}");
            assert_eq!(body["error"]["code"], "not_found");
        }
        let long = "x".repeat(129);
        for query in [
            "colour=blue".to_owned(),
            format!("order_id={long}"),
            "customer_id=a%00b".to_owned(),
        ] {
            let (status, body) =
                get(&format!("{}/api/v1/payments?{query}", service.base), None).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
            assert_eq!(body["error"]["code"], "invalid_parameter", "{query}");
        }
        service
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_sees_only_their_own_payments() {
    with_service(Options::default(), async |service| {
        let (mine, theirs) = (service_db::new_id(), service_db::new_id());
        pay(&service, &mine, "c-ada", "pm_card_visa").await;
        pay(&service, &theirs, "c-bob", "pm_card_visa").await;
        let ada = service.keys.token("c-ada", &["customer"]);
        let admin = service.keys.token("u-admin", &["admin"]);
        let base = &service.base;

        let ids = |list: &Value| -> Vec<String> {
            list["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|p| p["order_id"].as_str().expect("an order").to_owned())
                .collect()
        };
        let (_, list) = get(&format!("{base}/api/v1/payments"), Some(&ada)).await;
        assert_eq!(ids(&list), vec![mine.clone()]);
        let (_, list) = get(
            &format!("{base}/api/v1/payments?customer_id=c-bob"),
            Some(&ada),
        )
        .await;
        assert_eq!(ids(&list), Vec::<String>::new());
        let (_, list) = get(
            &format!("{base}/api/v1/payments?order_id={theirs}"),
            Some(&ada),
        )
        .await;
        assert_eq!(ids(&list), Vec::<String>::new());
        let (_, list) = get(&format!("{base}/api/v1/payments"), Some(&admin)).await;
        assert_eq!(ids(&list).len(), 2);
        let (_, list) = get(
            &format!("{base}/api/v1/payments?customer_id=c-bob"),
            Some(&admin),
        )
        .await;
        assert_eq!(ids(&list), vec![theirs.clone()]);

        let bobs = payment_of(&service.db, &theirs)
            .await
            .expect("a payment")
            .id;
        let (status, _) = get(&format!("{base}/api/v1/payments/{bobs}"), Some(&ada)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "another customer's payment");
        let (status, _) = get(&format!("{base}/api/v1/payments/{bobs}"), Some(&admin)).await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = get(&format!("{base}/api/v1/payments"), Some("not.a.token")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        service
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_describes_itself_and_counts_its_provider_calls() {
    with_service(Options::default(), async |service| {
        let id = service_db::new_id();
        let request = requested(&id, "pm_card_visa");
        // The second request finds the payment stored: it asks the provider nothing.
        service
            .deliver(&[&request, &requested(&id, "pm_card_visa")])
            .await;
        service.replies_about(&id, 2).await;

        let (status, doc) = get(&format!("{}/openapi.json", service.base), None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(doc["paths"]["/api/v1/payments/{id}"].is_object(), "{doc}");
        let (status, _) = get(&format!("{}/readyz", service.base), None).await;
        assert_eq!(status, StatusCode::OK);
        let (status, metrics) = get(&format!("{}/metrics", service.base), None).await;
        assert_eq!(status, StatusCode::OK);
        let metrics = metrics.as_str().expect("text");
        assert!(
            metrics.contains(
                "payment_provider_calls_total{operation=\"charge\",outcome=\"succeeded\"} 1\n"
            ),
            "{metrics}"
        );
        assert!(metrics.contains("messages_handled_total{"), "{metrics}");
        service
    })
    .await;
}
