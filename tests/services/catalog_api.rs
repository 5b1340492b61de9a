//! Products: the contract, bad input, concurrency, pagination and the batch upsert.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::on_both_databases;
use crate::support::{Backend, Platform};

fn mug(sku: &str) -> Value {
    json!({"sku": sku, "name": "Blue Mug", "description": "Holds tea.", "category": "kitchen",
           "price": {"amount": 1299, "currency": "EUR"}, "stock_quantity": 5})
}

async fn a_product_is_created_read_patched_and_deleted(backend: Backend) {
    let p = Platform::start(backend).await;
    let created = p.post(&p.products(), &mug("MUG-1")).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.header("location"), format!("/api/v1/products/{id}"));
    assert_eq!(created.header("etag"), "\"1\"");
    assert_eq!(
        created.body["price"],
        json!({"amount": 1299, "currency": "EUR"})
    );
    assert_eq!(created.body["version"], 1);
    assert!(created.body["created_at"].as_str().unwrap().ends_with('Z'));

    let url = format!("{}/{id}", p.products());
    let read = p.get(&url).await;
    assert_eq!(
        (read.status, read.header("etag")),
        (StatusCode::OK, "\"1\"")
    );
    assert_eq!(read.body, created.body);

    // A merge patch: changed fields change, null removes, the rest stays.
    let patched = p
        .call(
            Method::PATCH,
            &url,
            Some(&json!({"name": "Red Mug", "description": null})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["name"], "Red Mug");
    assert_eq!(patched.body["description"], Value::Null);
    assert_eq!(patched.body["category"], "kitchen");
    assert_eq!(patched.body["version"], 2);
    assert_eq!(patched.header("etag"), "\"2\"");

    // A stale If-Match changes nothing.
    let stale = p
        .call(
            Method::PATCH,
            &url,
            Some(&json!({"name": "Green Mug"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(
        (stale.status, stale.code()),
        (StatusCode::PRECONDITION_FAILED, "precondition_failed")
    );
    assert_eq!(p.get(&url).await.body["name"], "Red Mug");

    // Read-only fields cannot be patched.
    let read_only = p
        .call(Method::PATCH, &url, Some(&json!({"version": 9})), &[])
        .await;
    assert_eq!(
        (read_only.status, read_only.code()),
        (StatusCode::BAD_REQUEST, "validation_failed")
    );

    for foreign in ["\"0\"", "\"abc\"", "W/\"2\"", "2", "\"-1\""] {
        let refused = p
            .call(Method::DELETE, &url, None, &[("if-match", foreign)])
            .await;
        assert_eq!(
            refused.status,
            StatusCode::PRECONDITION_FAILED,
            "If-Match: {foreign}"
        );
    }
    assert_eq!(p.get(&url).await.status, StatusCode::OK, "still there");
    let stale_delete = p
        .call(Method::DELETE, &url, None, &[("if-match", "\"1\"")])
        .await;
    assert_eq!(stale_delete.status, StatusCode::PRECONDITION_FAILED);
    let deleted = p
        .call(Method::DELETE, &url, None, &[("if-match", "\"2\"")])
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = p.get(&url).await;
    assert_eq!(
        (gone.status, gone.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let again = p.call(Method::DELETE, &url, None, &[]).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

async fn skus_are_unique(backend: Backend) {
    let p = Platform::start(backend).await;
    assert_eq!(
        p.post(&p.products(), &mug("DUP-1")).await.status,
        StatusCode::CREATED
    );
    let dup = p.post(&p.products(), &mug("DUP-1")).await;
    assert_eq!(
        (dup.status, dup.code()),
        (StatusCode::CONFLICT, "sku_taken")
    );
    let other = p.post(&p.products(), &mug("DUP-2")).await;
    let url = format!("{}/{}", p.products(), other.body["id"].as_str().unwrap());
    let taken = p
        .call(Method::PATCH, &url, Some(&json!({"sku": "DUP-1"})), &[])
        .await;
    assert_eq!(
        (taken.status, taken.code()),
        (StatusCode::CONFLICT, "sku_taken")
    );
}

async fn bad_input_gets_a_structured_400_and_never_a_500(backend: Backend) {
    let p = Platform::start(backend).await;
    let products = p.products();
    let field_codes = |body: &Value| -> Vec<(String, String)> {
        body["fields"]
            .as_array()
            .unwrap_or(&Vec::new())
            .iter()
            .map(|f| {
                (
                    f["field"].as_str().unwrap().to_owned(),
                    f["code"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"sku": "X"}), "name", "required"),
        (
            json!({"sku": "X", "name": "n", "category": "c", "price": {"amount": -1, "currency": "EUR"}, "stock_quantity": 1}),
            "price.amount",
            "out_of_range",
        ),
        (
            json!({"sku": "X", "name": "n", "category": "c", "price": {"amount": 1, "currency": "EUR"}, "stock_quantity": -3}),
            "stock_quantity",
            "out_of_range",
        ),
        (
            json!({"sku": "X", "name": "n", "category": "c", "price": {"amount": 1.5, "currency": "EUR"}, "stock_quantity": 1}),
            "price.amount",
            "invalid_type",
        ),
        (
            json!({"sku": "X", "name": "n", "category": "c", "price": {"amount": 1, "currency": "EURO"}, "stock_quantity": 1}),
            "price.currency",
            "invalid_value",
        ),
        (
            json!({"sku": "X", "name": 5, "category": "c", "price": {"amount": 1, "currency": "EUR"}, "stock_quantity": 1}),
            "name",
            "invalid_type",
        ),
        (
            json!({"sku": "X", "name": "n", "category": "c", "price": {"amount": 1, "currency": "EUR"}, "stock_quantity": 1, "colour": "red"}),
            "colour",
            "unknown_field",
        ),
        (
            json!({"sku": "bad sku!", "name": "n", "category": "c", "price": {"amount": 1, "currency": "EUR"}, "stock_quantity": 1}),
            "sku",
            "invalid_format",
        ),
        (
            json!({"sku": "X", "name": "nul\u{0}byte", "category": "c", "price": {"amount": 1, "currency": "EUR"}, "stock_quantity": 1}),
            "name",
            "invalid_character",
        ),
        (
            json!({"sku": "X", "name": "x".repeat(201), "category": "c", "price": {"amount": 1, "currency": "EUR"}, "stock_quantity": 1}),
            "name",
            "too_long",
        ),
        (
            json!({"sku": "X", "name": "", "category": "c", "price": {"amount": 1, "currency": "EUR"}, "stock_quantity": 1}),
            "name",
            "required",
        ),
        (json!([1, 2]), "", "invalid_type"),
    ];
    for (body, field, code) in cases {
        let a = p.post(&products, &body).await;
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::BAD_REQUEST, "validation_failed"),
            "{body}"
        );
        assert!(
            field_codes(&a.body).contains(&(field.to_owned(), code.to_owned())),
            "{body} -> {}",
            a.body
        );
    }

    // Not JSON, not JSON at all, and the wrong media type.
    for raw in ["{\"sku\": ", "", "nul\u{0}", "\u{feff}{}"] {
        let r = p
            .http
            .post(&products)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        let a = crate::support::Answer::read(r, raw).await;
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::BAD_REQUEST, "malformed_json"),
            "{raw:?}"
        );
    }
    let r = p
        .http
        .post(&products)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        crate::support::Answer::read(r, "text").await.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );

    // 10 MB: refused on its declared length, without reading it.
    let answer = raw_exchange(
        &p.catalog.base,
        &format!(
            "POST /api/v1/products HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{{\"sku\": \"{}",
            10 << 20,
            "x".repeat(60_000)
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("body_too_large"), "{answer}");

    // SQL metacharacters and Unicode are data.
    let name = "Robert'); DROP TABLE products;-- ☕ 漢字 \u{1F600} %_\\";
    let body = json!({"sku": "SQL-1", "name": name, "description": "line 1\nline 2\t'\"",
                      "category": "a'b", "price": {"amount": 0, "currency": "JPY"}, "stock_quantity": 0});
    let created = p.post(&products, &body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let read = p
        .get(&format!(
            "{products}/{}",
            created.body["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(read.body["name"], name);
    let found = p.get(&format!("{products}?q=%25_%5C&category=a%27b")).await;
    assert_eq!(
        found.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        found.body
    );
    let none = p.get(&format!("{products}?q=%25%25")).await;
    assert_eq!(
        none.body["items"].as_array().unwrap().len(),
        0,
        "% is literal: {}",
        none.body
    );

    // Ids, cursors and limits that mean nothing.
    for id in [
        "nope",
        "00000000000000000000000000000000",
        "'; --",
        "%E2%98%95",
    ] {
        let url = format!("{products}/{id}");
        assert_eq!(p.get(&url).await.status, StatusCode::NOT_FOUND, "{id}");
        assert_eq!(
            p.call(Method::PATCH, &url, Some(&json!({})), &[])
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            p.call(Method::DELETE, &url, None, &[]).await.status,
            StatusCode::NOT_FOUND
        );
    }
    for query in [
        "q=%00",
        "category=%01x",
        "limit=0",
        "limit=201",
        "limit=x",
        "cursor=zz",
        "cursor=6b313a",
        "cursor='%20OR%201=1",
    ] {
        let a = p.get(&format!("{products}?{query}")).await;
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::BAD_REQUEST, "invalid_parameter"),
            "{query}"
        );
    }
    let key = p
        .call(
            Method::POST,
            &products,
            Some(&mug("K-1")),
            &[("idempotency-key", "")],
        )
        .await;
    assert_eq!(
        (key.status, key.code()),
        (StatusCode::BAD_REQUEST, "invalid_idempotency_key")
    );
}

/// Sends `request` as raw bytes and reads the answer until the server closes or 10 s pass.
async fn raw_exchange(base: &str, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    // The answer comes before the body is read; stop at the end of its JSON.
    while !String::from_utf8_lossy(&answer).contains("}}") {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

async fn two_patches_with_one_if_match_make_exactly_one_change(backend: Backend) {
    let p = std::sync::Arc::new(Platform::start(backend).await);
    let created = p.post(&p.products(), &mug("RACE-1")).await;
    let url = format!("{}/{}", p.products(), created.body["id"].as_str().unwrap());
    for round in 0..5 {
        let etag = p.get(&url).await.header("etag").to_owned();
        let tasks: Vec<_> = (0..2)
            .map(|i| {
                let (p, url, etag) = (p.clone(), url.clone(), etag.clone());
                tokio::spawn(async move {
                    let body = json!({"stock_quantity": round * 10 + i});
                    p.call(Method::PATCH, &url, Some(&body), &[("if-match", &etag)])
                        .await
                        .status
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for t in tasks {
            statuses.push(t.await.unwrap());
        }
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::PRECONDITION_FAILED],
            "round {round}"
        );
    }
    assert_eq!(p.get(&url).await.body["version"], 6);
}

async fn a_walk_sees_every_existing_row_once_while_rows_are_inserted(backend: Backend) {
    use rand::{Rng, SeedableRng};
    let p = std::sync::Arc::new(Platform::start(backend).await);
    let mut existing = Vec::new();
    for i in 0..60 {
        existing.push(p.product(&format!("WALK-{i:03}"), 100 + i, "EUR").await);
    }
    // Meanwhile: rows with random ids (sorting before and after the walk's cursor) are
    // inserted, and some of them deleted again.
    let writer = {
        let p = p.clone();
        tokio::spawn(async move {
            let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
            for i in 0..80 {
                let id = format!("{:032x}", rng.random::<u128>());
                let input: catalog::product::ProductInput =
                    serde_json::from_value(mug(&format!("NEW-{i:03}"))).unwrap();
                let fields = catalog::product::ProductFields::parse(input).unwrap();
                let mut tx = p.catalog_db.begin_write().await.unwrap();
                catalog::repo::insert(&mut tx, &id, &fields).await.unwrap();
                tx.commit().await.unwrap();
                if i % 3 == 0 {
                    catalog::repo::delete(&p.catalog_db, &id, None)
                        .await
                        .unwrap();
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let seen = p.walk(&p.products(), 7).await;
    writer.await.unwrap();
    let ids: Vec<&str> = seen.iter().map(|v| v["id"].as_str().unwrap()).collect();
    for id in &existing {
        assert_eq!(ids.iter().filter(|s| *s == id).count(), 1, "{id} seen once");
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "no row twice");
    let mut in_order = ids.clone();
    in_order.sort();
    assert_eq!(in_order, ids, "in id order");

    // Filters page too.
    let kitchen = p.walk(&format!("{}?q=walk-0", p.products()), 4).await;
    assert_eq!(kitchen.len(), 60);
}

async fn one_version_admits_one_update_however_many_race_for_it(backend: Backend) {
    // Below the handlers' own check of If-Match: the UPDATE's version condition alone.
    let p = std::sync::Arc::new(Platform::start(backend).await);
    let id = p.product("RACE-2", 100, "EUR").await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (p, id) = (p.clone(), id.clone());
            tokio::spawn(async move {
                let mut input: catalog::product::ProductInput =
                    serde_json::from_value(mug("RACE-2")).unwrap();
                input.stock_quantity = i;
                let fields = catalog::product::ProductFields::parse(input).unwrap();
                let Ok(mut tx) = p.catalog_db.begin_write().await else {
                    return false;
                };
                match catalog::repo::update(&mut tx, &id, 1, &fields, true).await {
                    Ok(_) => tx.commit().await.is_ok(),
                    Err(_) => false,
                }
            })
        })
        .collect();
    let mut applied = 0;
    for t in tasks {
        applied += usize::from(t.await.unwrap());
    }
    assert_eq!(applied, 1);
    assert_eq!(
        p.get(&format!("{}/{id}", p.products())).await.body["version"],
        2
    );
}

async fn concurrent_posts_with_one_key_create_one_product(backend: Backend) {
    let p = std::sync::Arc::new(Platform::start(backend).await);
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let p = p.clone();
            tokio::spawn(async move {
                let a = p
                    .call(
                        Method::POST,
                        &p.products(),
                        Some(&mug("ONCE-1")),
                        &[("idempotency-key", "same")],
                    )
                    .await;
                (a.status, a.body["id"].clone())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    answers.dedup();
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0].0, StatusCode::CREATED);
    assert_eq!(p.walk(&p.products(), 50).await.len(), 1);
}

async fn the_same_idempotency_key_creates_once(backend: Backend) {
    let p = Platform::start(backend).await;
    let key = [("idempotency-key", "create-mug-1")];
    let first = p
        .call(Method::POST, &p.products(), Some(&mug("IDEM-1")), &key)
        .await;
    let second = p
        .call(Method::POST, &p.products(), Some(&mug("IDEM-1")), &key)
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(
        (second.status, &second.body),
        (StatusCode::CREATED, &first.body)
    );
    assert_eq!(second.header("location"), first.header("location"));
    let reused = p
        .call(Method::POST, &p.products(), Some(&mug("IDEM-2")), &key)
        .await;
    assert_eq!(
        (reused.status, reused.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
    );
    assert_eq!(p.walk(&p.products(), 50).await.len(), 1);

    // Forgotten once purged (the services purge keys older than a day, hourly).
    let purged = service_db::idempotency::purge(&p.catalog_db, 0)
        .await
        .unwrap();
    assert_eq!(purged, 1);
    let fresh = p
        .call(Method::POST, &p.products(), Some(&mug("IDEM-2")), &key)
        .await;
    assert_eq!(fresh.status, StatusCode::CREATED, "{}", fresh.body);
}

async fn the_batch_upserts_by_sku_and_reports_every_item(backend: Backend) {
    let p = Platform::start(backend).await;
    let batch = format!("{}/batch", p.products());
    let mut items = vec![mug("B-1"), mug("B-2")];
    items.push(json!({"sku": "B-3", "name": "x"}));
    items.push(json!({"sku": "B-4", "name": "n", "category": "c", "price": {"amount": -5, "currency": "EUR"}, "stock_quantity": 1}));
    let first = p.post(&batch, &json!({"items": items})).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(
        (
            first.body["created"].as_i64(),
            first.body["rejected"].as_i64()
        ),
        (Some(2), Some(2))
    );
    let results = first.body["results"].as_array().unwrap();
    assert_eq!(results[2]["status"], "rejected");
    assert_eq!(results[2]["fields"][0]["field"], "category");
    assert_eq!(results[3]["fields"][0]["field"], "price.amount");

    // Sent again: nothing is created twice; a change is an update.
    let mut changed = mug("B-2");
    changed["stock_quantity"] = json!(99);
    let again = p
        .post(&batch, &json!({"items": [mug("B-1"), changed, mug("B-5")]}))
        .await;
    let counts: Vec<i64> = ["created", "updated", "unchanged", "rejected"]
        .iter()
        .map(|k| again.body[k].as_i64().unwrap())
        .collect();
    assert_eq!(counts, [1, 1, 1, 0], "{}", again.body);
    assert_eq!(again.body["results"][1]["status"], "updated");
    assert_eq!(p.walk(&p.products(), 50).await.len(), 3);

    let too_many: Vec<Value> = (0..1001).map(|i| mug(&format!("M-{i}"))).collect();
    let refused = p.post(&batch, &json!({"items": too_many})).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::BAD_REQUEST, "validation_failed")
    );
    let not_items = p.post(&batch, &json!([mug("B-9")])).await;
    assert_eq!(not_items.status, StatusCode::BAD_REQUEST);
}

async fn a_stalled_body_gets_408_while_others_are_served(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let p = Platform::start(backend).await;
    let addr = p.catalog.base.trim_start_matches("http://").to_owned();
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream
            .write_all(b"POST /api/v1/products HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"sku\":")
            .await
            .unwrap();
        stalled.push(stream);
    }
    // Served meanwhile.
    assert_eq!(
        p.post(&p.products(), &mug("LIVE-1")).await.status,
        StatusCode::CREATED
    );
    for mut stream in stalled {
        let mut answer = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            stream.read_to_end(&mut answer),
        )
        .await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(read.is_ok(), "the stalled request was never answered");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("body_timeout"), "{answer}");
    }
    assert_eq!(
        p.walk(&p.products(), 50).await.len(),
        1,
        "nothing half-written"
    );
}

/// A row held by another transaction longer than the lock timeout: 503, not a wait without
/// end and not a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lock_held_past_the_lock_timeout_is_503() {
    let p = Platform::start(Backend::Postgres).await;
    let id = p.product("LOCKED-1", 100, "EUR").await;
    let mut holder = p.catalog_db.begin_write().await.unwrap();
    sqlx::query("SELECT id FROM products WHERE id = $1 FOR UPDATE")
        .bind(&id)
        .fetch_one(&mut *holder)
        .await
        .unwrap();
    let url = format!("{}/{id}", p.products());
    let started = std::time::Instant::now();
    let a = p
        .call(
            Method::PATCH,
            &url,
            Some(&json!({"stock_quantity": 1})),
            &[],
        )
        .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable"),
        "{}",
        a.body
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    holder.rollback().await.unwrap();
    let a = p
        .call(
            Method::PATCH,
            &url,
            Some(&json!({"stock_quantity": 1})),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
}

/// PostgreSQL gone: requests are 503 `database_unavailable` (never 500) and `/readyz` says
/// not ready, until it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_that_goes_away_is_503_and_not_ready() {
    let postgres = testkit::Postgres::start();
    let url = postgres.database();
    let db = service_db::Db::connect(&service_db::DbConfig {
        acquire_timeout: std::time::Duration::from_secs(1),
        ..service_db::DbConfig::new(url, catalog::SCHEMA)
    })
    .await
    .unwrap();
    db.migrate(&catalog::MIGRATIONS).await.unwrap();
    let config = catalog::Config {
        addr: ([127, 0, 0, 1], 0).into(),
        body: crate::support::body_limits(),
    };
    let logs = tempfile::tempdir().unwrap();
    let flow = crate::support::FlowLogs::open(logs.path());
    let inventory = flow.inventory.clone();
    let (addr, server) = catalog::build(
        config,
        db,
        flow.topics(&[messaging::contract::CATALOG_EVENTS]),
        move |listener| Ok(inventory.reader(catalog::CONSUMER, listener)),
        std::future::pending(),
    )
    .await
    .unwrap();
    let server = tokio::spawn(server);
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{base}/api/v1/products"))
        .json(&mug("GONE-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);

    drop(postgres);
    for request in [
        http.get(format!("{base}/api/v1/products")),
        http.post(format!("{base}/api/v1/products"))
            .json(&mug("GONE-2")),
    ] {
        let answer =
            crate::support::Answer::read(request.send().await.unwrap(), "without a database").await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable"),
            "{}",
            answer.body
        );
        assert_eq!(answer.header("retry-after"), "1");
    }
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    server.abort();
}

on_both_databases!(
    one_version_admits_one_update_however_many_race_for_it,
    concurrent_posts_with_one_key_create_one_product,
    a_stalled_body_gets_408_while_others_are_served,
    a_product_is_created_read_patched_and_deleted,
    skus_are_unique,
    bad_input_gets_a_structured_400_and_never_a_500,
    two_patches_with_one_if_match_make_exactly_one_change,
    a_walk_sees_every_existing_row_once_while_rows_are_inserted,
    the_same_idempotency_key_creates_once,
    the_batch_upserts_by_sku_and_reports_every_item,
);
