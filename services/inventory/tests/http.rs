//! Inventory's HTTP API, served by `inventory::build` on a loopback port over SQLite, with its
//! consumers and relay running on the embedded log: reads, versioned changes and their
//! refusals, the low-stock list, `StockLow` and `StockChanged` from a change, and the
//! catalog's `ProductStockSet` reaching the stock.

mod common;

use std::time::{Duration, Instant};

use event_log::embedded::EmbeddedLog;
use event_log::{EventLog, Record};
use messaging::Envelope;
use messaging::contract;
use reqwest::StatusCode;
use serde_json::{Value, json};

use common::{created, database, read_all, stock_set, topic};

struct Served {
    base: String,
    http: reqwest::Client,
    orders: EmbeddedLog,
    catalog: EmbeddedLog,
    replies: EmbeddedLog,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    etag: Option<String>,
    location: Option<String>,
    body: Value,
}

impl Served {
    async fn start() -> Served {
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path()).await;
        let orders = topic(dir.path(), contract::ORDER_EVENTS, 2);
        let catalog = topic(dir.path(), contract::CATALOG_EVENTS, 2);
        let replies = topic(dir.path(), contract::INVENTORY_EVENTS, 2);
        let letters = topic(dir.path(), contract::DEAD_LETTERS, 1);
        let topics = messaging::Topics::default()
            .with(contract::INVENTORY_EVENTS, replies.clone())
            .with(contract::DEAD_LETTERS, letters);
        let config = inventory::Config {
            addr: ([127, 0, 0, 1], 0).into(),
            body: service_common::rest::BodyLimits::default(),
            tokens: None,
            settings: inventory::Settings::default(),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let logs = (orders.clone(), catalog.clone());
        let (addr, server) = inventory::build(
            config,
            db,
            topics,
            move |topic, listener| {
                let log = match topic {
                    contract::ORDER_EVENTS => &logs.0,
                    contract::CATALOG_EVENTS => &logs.1,
                    other => panic!("inventory reads no {other}"),
                };
                Ok(log.reader(inventory::CONSUMER, listener))
            },
            async move {
                let _ = stopped.await;
            },
        )
        .await
        .expect("inventory binds");
        Served {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            orders,
            catalog,
            replies,
            stop,
            server: tokio::spawn(server),
            _dir: dir,
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.expect("an answer");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let (status, etag, location) = (response.status(), header("etag"), header("location"));
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer {
            status,
            etag,
            location,
            body,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn put(&self, product_id: &str, body: Value, if_match: Option<&str>) -> Answer {
        let mut request = self
            .http
            .put(format!("{}/api/v1/inventory/{product_id}", self.base))
            .json(&body);
        if let Some(tag) = if_match {
            request = request.header("if-match", tag);
        }
        self.send(request).await
    }

    /// Waits until `check` holds of the product's stock.
    async fn wait_for(&self, product_id: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let answer = self.get(&format!("/api/v1/inventory/{product_id}")).await;
            if answer.status == StatusCode::OK && check(&answer.body) {
                return answer.body;
            }
            assert!(Instant::now() < deadline, "{}", answer.body);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until a reply of `kind` about `subject` is on `inventory.events`.
    async fn wait_for_reply(&self, kind: &str, subject: &str) -> Envelope {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found = read_all(&self.replies)
                .iter()
                .map(|r| Envelope::parse(r).unwrap())
                .find(|e| e.kind == kind && e.subject == subject);
            if let Some(envelope) = found {
                return envelope;
            }
            assert!(Instant::now() < deadline, "no {kind} about {subject}");
        }
    }

    /// Every `StockChanged` about `subject` on `inventory.events` so far, as JSON data.
    fn changes_about(&self, subject: &str) -> Vec<Value> {
        read_all(&self.replies)
            .iter()
            .map(|r| Envelope::parse(r).unwrap())
            .filter(|e| e.kind == "StockChanged" && e.subject == subject)
            .map(|e| e.data)
            .collect()
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.server
            .await
            .expect("the server task")
            .expect("the server stops cleanly");
    }
}

fn code(answer: &Answer) -> &str {
    answer.body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_is_created_read_and_changed_at_the_version_read() {
    let served = Served::start().await;

    let missing = served.get("/api/v1/inventory/p1").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(code(&missing), "not_found");
    let malformed = served.get("/api/v1/inventory/not%20an%20id").await;
    assert_eq!(malformed.status, StatusCode::NOT_FOUND);

    // Created without If-Match.
    let made = served.put("p1", json!({"on_hand": 10}), None).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    assert_eq!(made.etag.as_deref(), Some("\"1\""));
    assert_eq!(made.location.as_deref(), Some("/api/v1/inventory/p1"));
    let expected =
        json!({"product_id": "p1", "on_hand": 10, "reserved": 0, "available": 10, "version": 1});
    assert_eq!(made.body, expected);
    let read = served.get("/api/v1/inventory/p1").await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.etag.as_deref(), Some("\"1\""));
    assert_eq!(read.body, expected);

    // Changing it needs its version.
    let blind = served.put("p1", json!({"on_hand": 12}), None).await;
    assert_eq!(blind.status, StatusCode::PRECONDITION_REQUIRED);
    assert_eq!(code(&blind), "precondition_required");
    let stale = served
        .put("p1", json!({"on_hand": 12}), Some("\"7\""))
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(code(&stale), "precondition_failed");
    let weak = served
        .put("p1", json!({"on_hand": 12}), Some("W/\"1\""))
        .await;
    assert_eq!(weak.status, StatusCode::PRECONDITION_FAILED);
    let changed = served
        .put("p1", json!({"on_hand": 12}), Some("\"1\""))
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(changed.etag.as_deref(), Some("\"2\""));
    assert_eq!(changed.body["on_hand"], 12);
    let any = served.put("p1", json!({"on_hand": 12}), Some("*")).await;
    assert_eq!(any.status, StatusCode::OK);
    assert_eq!(any.etag.as_deref(), Some("\"3\""));

    // If-Match names a version of stock that does not exist.
    let nothing = served.put("p2", json!({"on_hand": 1}), Some("\"1\"")).await;
    assert_eq!(nothing.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(
        served.get("/api/v1/inventory/p2").await.status,
        StatusCode::NOT_FOUND
    );

    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_bodies_are_refused_with_the_field_named() {
    let served = Served::start().await;
    for (body, field, field_code) in [
        (json!({"on_hand": -1}), "on_hand", "out_of_range"),
        (json!({"on_hand": 1_000_000_001}), "on_hand", "out_of_range"),
        (json!({"on_hand": "3"}), "on_hand", "invalid_type"),
        (
            json!({"on_hand": 3, "reserved": 0}),
            "reserved",
            "unknown_field",
        ),
        (json!({}), "on_hand", "required"),
    ] {
        let answer = served.put("p1", body.clone(), None).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(code(&answer), "validation_failed", "{body}");
        assert_eq!(answer.body["fields"][0]["field"], field, "{body}");
        assert_eq!(answer.body["fields"][0]["code"], field_code, "{body}");
    }
    let bad_id = served.put("a%20b", json!({"on_hand": 1}), None).await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_id.body["fields"][0]["field"], "product_id");

    let not_json = served
        .send(
            served
                .http
                .put(format!("{}/api/v1/inventory/p1", served.base))
                .header("content-type", "application/json")
                .body("{\"on_hand\":"),
        )
        .await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&not_json), "malformed_json");
    let not_typed = served
        .send(
            served
                .http
                .put(format!("{}/api/v1/inventory/p1", served.base))
                .body("{\"on_hand\": 1}"),
        )
        .await;
    assert_eq!(not_typed.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        served.get("/api/v1/inventory/p1").await.status,
        StatusCode::NOT_FOUND
    );
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_hand_cannot_go_below_what_orders_reserved_and_a_fall_below_the_threshold_alerts() {
    let served = Served::start().await;
    assert_eq!(
        served.put("p1", json!({"on_hand": 12}), None).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        served.put("p3", json!({"on_hand": 100}), None).await.status,
        StatusCode::CREATED
    );

    // An order reserves 9 of p1 through the saga: 3 available, StockLow about the order.
    let order = created("o1", &[("p1", 9)]);
    served
        .orders
        .append(vec![Record::new("o1", order.to_json())])
        .await
        .unwrap();
    let stock = served.wait_for("p1", |s| s["reserved"] == 9).await;
    assert_eq!(stock["available"], 3);
    served.wait_for_reply("StockReserved", "o1").await;
    served.wait_for_reply("StockLow", "o1").await;

    let version = stock["version"].as_i64().unwrap();
    let below = served
        .put("p1", json!({"on_hand": 8}), Some(&format!("\"{version}\"")))
        .await;
    assert_eq!(below.status, StatusCode::CONFLICT);
    assert_eq!(code(&below), "below_reserved");
    assert_eq!(
        below.body["error"]["message"],
        "9 units are reserved by orders: on_hand cannot go below that"
    );
    assert_eq!(below.body["reserved"], 9);

    // Up to 21 available, then down to 3: a fall below the threshold, about the product.
    let up = served
        .put(
            "p1",
            json!({"on_hand": 30}),
            Some(&format!("\"{version}\"")),
        )
        .await;
    assert_eq!(up.status, StatusCode::OK, "{}", up.body);
    let tag = up.etag.unwrap();
    let down = served.put("p1", json!({"on_hand": 12}), Some(&tag)).await;
    assert_eq!(down.status, StatusCode::OK, "{}", down.body);
    assert_eq!(down.body["available"], 3);
    let low = served.wait_for_reply("StockLow", "p1").await;
    assert_eq!(low.source, inventory::SOURCE);
    assert_eq!(low.data, json!({"product_id": "p1", "available": 3}));

    // The dashboard's lists.
    let all = served.get("/api/v1/inventory").await;
    assert_eq!(all.status, StatusCode::OK);
    let ids: Vec<&str> = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["product_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["p1", "p3"]);
    let low = served.get("/api/v1/inventory?low=true").await;
    assert_eq!(low.status, StatusCode::OK);
    assert_eq!(
        low.body,
        json!({"items": [{"product_id": "p1", "on_hand": 12, "reserved": 9, "available": 3, "version": 4}]})
    );
    let not_low = served.get("/api/v1/inventory?low=false").await;
    assert_eq!(not_low.body["items"].as_array().unwrap().len(), 2);
    let wrong = served.get("/api/v1/inventory?low=maybe").await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&wrong), "invalid_parameter");

    let doc = served.get("/openapi.json").await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.body["paths"]["/api/v1/inventory/{product_id}"]["put"].is_object());
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_sends_stock_changed_and_the_catalogs_stock_set_reaches_the_stock() {
    let served = Served::start().await;

    // An administrator's change: StockChanged about the product, with the row after it.
    let made = served.put("p1", json!({"on_hand": 10}), None).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let change = served.wait_for_reply("StockChanged", "p1").await;
    assert_eq!(change.source, inventory::SOURCE);
    assert_eq!(
        change.data,
        json!({"product_id": "p1", "on_hand": 10, "reserved": 0, "available": 10, "version": 1})
    );

    // The catalog sets stock on a product inventory has no row of, and on p1: both through
    // the consumer of catalog.events that build started beside that of order.events.
    let records = [stock_set("p2", 7), stock_set("p1", 15)]
        .iter()
        .map(|e| Record::new(e.subject.clone(), e.to_json()))
        .collect();
    served.catalog.append(records).await.unwrap();
    let p2 = served.wait_for("p2", |s| s["on_hand"] == 7).await;
    assert_eq!(p2["version"], 1);
    let p1 = served.wait_for("p1", |s| s["on_hand"] == 15).await;
    assert_eq!(p1["version"], 2);
    let deadline = Instant::now() + Duration::from_secs(20);
    while served.changes_about("p1").len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no StockChanged of the stock set"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        served.changes_about("p1")[1],
        json!({"product_id": "p1", "on_hand": 15, "reserved": 0, "available": 15, "version": 2})
    );
    served.wait_for_reply("StockChanged", "p2").await;
    served.stop().await;
}
