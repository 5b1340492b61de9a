//! Customers: the contract, emails unique in any case, filters and bad input.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::on_both_databases;
use crate::support::{Backend, Platform};

async fn a_customer_is_created_read_patched_and_deleted(backend: Backend) {
    let p = Platform::start(backend).await;
    let created = p
        .post(
            &p.customers_url(),
            &json!({"name": "Zoë Ångström", "email": "Zoe@Example.com", "phone": "+44 20 7946 0000",
                    "address": "1 High St\nLondon"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.header("location"),
        format!("/api/v1/customers/{id}")
    );
    assert_eq!(created.body["email"], "Zoe@Example.com");
    let url = format!("{}/{id}", p.customers_url());
    assert_eq!(p.get(&url).await.body, created.body);

    let patched = p
        .call(
            Method::PATCH,
            &url,
            Some(&json!({"phone": null, "name": "Zoë A."})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(
        (
            patched.body["phone"].clone(),
            patched.body["version"].clone()
        ),
        (json!(null), json!(2))
    );
    let stale = p
        .call(
            Method::PATCH,
            &url,
            Some(&json!({"name": "Z"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(stale.code(), "precondition_failed");

    assert_eq!(
        p.call(Method::DELETE, &url, None, &[]).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(p.get(&url).await.code(), "not_found");
}

async fn emails_are_unique_in_any_case_and_filter_in_any_case(backend: Backend) {
    let p = Platform::start(backend).await;
    let ann = p.customer("ann@example.com").await;
    let dup = p
        .post(
            &p.customers_url(),
            &json!({"name": "Ann", "email": "ANN@example.COM"}),
        )
        .await;
    assert_eq!(
        (dup.status, dup.code()),
        (StatusCode::CONFLICT, "email_taken")
    );
    let bob = p.customer("bob@example.com").await;
    let taken = p
        .call(
            Method::PATCH,
            &format!("{}/{bob}", p.customers_url()),
            Some(&json!({"email": "Ann@Example.com"})),
            &[],
        )
        .await;
    assert_eq!(
        (taken.status, taken.code()),
        (StatusCode::CONFLICT, "email_taken")
    );

    let found = p
        .get(&format!("{}?email=ANN%40EXAMPLE.com", p.customers_url()))
        .await;
    let items = found.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], ann.as_str());
    assert_eq!(p.walk(&p.customers_url(), 1).await.len(), 2);
}

async fn bad_customers_are_refused_with_the_field(backend: Backend) {
    let p = Platform::start(backend).await;
    let cases = [
        (json!({"name": "A", "email": "not-an-email"}), "email"),
        (json!({"name": "A", "email": "a@b"}), "email"),
        (json!({"name": "A", "email": "a b@example.com"}), "email"),
        (
            json!({"name": "A", "email": "a@example.com", "phone": "call me"}),
            "phone",
        ),
        (json!({"name": "", "email": "a@example.com"}), "name"),
        (
            json!({"name": "A", "email": "a@example.com", "address": "x".repeat(501)}),
            "address",
        ),
        (
            json!({"name": "A", "email": "a@example.com", "vip": true}),
            "vip",
        ),
        (json!({"name": "A"}), "email"),
    ];
    for (body, field) in cases {
        let a = p.post(&p.customers_url(), &body).await;
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::BAD_REQUEST, "validation_failed"),
            "{body}"
        );
        assert_eq!(a.body["fields"][0]["field"], field, "{body}: {}", a.body);
    }
    let long = p
        .get(&format!("{}?email={}", p.customers_url(), "x".repeat(300)))
        .await;
    assert_eq!(long.code(), "invalid_parameter");
    let nul = p.get(&format!("{}?email=a%00b", p.customers_url())).await;
    assert_eq!(nul.code(), "invalid_parameter");
}

on_both_databases!(
    a_customer_is_created_read_patched_and_deleted,
    emails_are_unique_in_any_case_and_filter_in_any_case,
    bad_customers_are_refused_with_the_field,
);
