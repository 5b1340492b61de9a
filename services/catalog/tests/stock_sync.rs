//! The catalog's side of the stock sync, served by `catalog::build` over SQLite with its relay
//! and consumer on the embedded log: stock set on a product is staged as one `ProductStockSet`
//! in the write's transaction, and the inventory's `StockChanged` becomes the product's
//! `stock_quantity` without a new version; then both services together.

mod common;

use std::time::{Duration, Instant};

use messaging::contract::{self, ItemLine, OrderCreated};
use messaging::{Envelope, Message};
use reqwest::StatusCode;
use serde_json::json;
use service_db::Db;

use common::{
    Answer, Logs, database, product, read_all, send, serve_catalog, serve_inventory, stock_changed,
    stock_sets, tell, wait_for,
};

/// The catalog served over a fresh database and topics.
struct Catalog {
    db: Db,
    logs: Logs,
    served: common::Served,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Catalog {
    async fn start() -> Catalog {
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path(), catalog::SCHEMA, &catalog::MIGRATIONS).await;
        let logs = Logs::open(dir.path());
        let served = serve_catalog(db.clone(), &logs).await;
        Catalog {
            db,
            logs,
            served,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.served.base)
    }

    async fn create(&self, body: serde_json::Value, key: Option<&str>) -> Answer {
        let mut request = self.http.post(self.url("/api/v1/products")).json(&body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        send(request).await
    }

    async fn batch(&self, items: serde_json::Value) -> Answer {
        send(
            self.http
                .post(self.url("/api/v1/products/batch"))
                .json(&json!({ "items": items })),
        )
        .await
    }

    async fn patch(&self, id: &str, patch: serde_json::Value, if_match: Option<&str>) -> Answer {
        let mut request = self
            .http
            .patch(self.url(&format!("/api/v1/products/{id}")))
            .header("content-type", "application/merge-patch+json")
            .body(patch.to_string());
        if let Some(tag) = if_match {
            request = request.header("if-match", tag);
        }
        send(request).await
    }

    async fn get(&self, id: &str) -> Answer {
        send(self.http.get(self.url(&format!("/api/v1/products/{id}")))).await
    }
}

fn set(subject: &str, on_hand: i64) -> (String, String, i64) {
    (subject.to_owned(), subject.to_owned(), on_hand)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_a_product_stages_one_stock_set_with_its_stock() {
    let catalog = Catalog::start().await;
    let made = catalog.create(product("MUG-001", 12), Some("k1")).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let id = made.body["id"].as_str().unwrap().to_owned();
    assert_eq!(stock_sets(&catalog.db).await, [set(&id, 12)]);

    // The same request again answers the same and stages nothing more; a refused one stages
    // nothing.
    let again = catalog.create(product("MUG-001", 12), Some("k1")).await;
    assert_eq!(again.body["id"], id.as_str());
    let taken = catalog.create(product("MUG-001", 5), None).await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    assert_eq!(stock_sets(&catalog.db).await, [set(&id, 12)]);

    // The relay sends it to catalog.events, from the catalog, about the product.
    let deadline = Instant::now() + Duration::from_secs(20);
    let sent = loop {
        let sent: Vec<Envelope> = read_all(&catalog.logs.catalog)
            .iter()
            .map(|r| Envelope::parse(r).unwrap())
            .collect();
        if !sent.is_empty() {
            break sent;
        }
        assert!(Instant::now() < deadline, "nothing sent to catalog.events");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].source, catalog::SOURCE);
    assert_eq!(sent[0].subject, id);
    assert_eq!(
        sent[0].data,
        json!({"product_id": id.as_str(), "on_hand": 12})
    );
    catalog.served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upsert_stages_a_stock_set_per_product_created_or_given_other_stock() {
    let catalog = Catalog::start().await;
    let first = catalog
        .batch(json!([product("A-1", 3), product("B-2", 8)]))
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["created"], 2);
    let ids: Vec<String> = first.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let mut expected = vec![set(&ids[0], 3), set(&ids[1], 8)];
    assert_eq!(stock_sets(&catalog.db).await, expected);

    // Unchanged: nothing staged.
    let same = catalog
        .batch(json!([product("A-1", 3), product("B-2", 8)]))
        .await;
    assert_eq!(same.body["unchanged"], 2, "{}", same.body);
    assert_eq!(stock_sets(&catalog.db).await, expected);

    // A new name is an update that sets no stock; a new stock_quantity sets it.
    let mut renamed = product("A-1", 3);
    renamed["name"] = json!("Renamed");
    let changed = catalog.batch(json!([renamed, product("B-2", 20)])).await;
    assert_eq!(changed.body["updated"], 2, "{}", changed.body);
    expected.push(set(&ids[1], 20));
    assert_eq!(stock_sets(&catalog.db).await, expected);
    catalog.served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_naming_the_stock_stages_a_stock_set_and_another_patch_none() {
    let catalog = Catalog::start().await;
    let made = catalog.create(product("MUG-001", 12), None).await;
    let id = made.body["id"].as_str().unwrap().to_owned();

    let renamed = catalog
        .patch(&id, json!({"name": "Big mug"}), Some("\"1\""))
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert_eq!(stock_sets(&catalog.db).await, [set(&id, 12)]);

    let restocked = catalog
        .patch(&id, json!({"stock_quantity": 40}), Some("\"2\""))
        .await;
    assert_eq!(restocked.status, StatusCode::OK, "{}", restocked.body);
    assert_eq!(restocked.body["stock_quantity"], 40);
    // Even to the value shown: naming it sets it.
    let again = catalog
        .patch(&id, json!({"stock_quantity": 40}), None)
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(
        stock_sets(&catalog.db).await,
        [set(&id, 12), set(&id, 40), set(&id, 40)]
    );

    // A refused patch stages nothing.
    let stale = catalog
        .patch(&id, json!({"stock_quantity": 1}), Some("\"1\""))
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let invalid = catalog
        .patch(&id, json!({"stock_quantity": -1}), None)
        .await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    assert_eq!(stock_sets(&catalog.db).await.len(), 3);
    catalog.served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_changed_becomes_the_stock_quantity_without_a_new_version() {
    let catalog = Catalog::start().await;
    let made = catalog.create(product("MUG-001", 12), None).await;
    let id = made.body["id"].as_str().unwrap().to_owned();

    tell(
        &catalog.db,
        &catalog.logs,
        &[&stock_changed("o1", &id, 9, 2)],
    )
    .await;
    let read = catalog.get(&id).await;
    assert_eq!(read.body["stock_quantity"], 9);
    assert_eq!(read.body["version"], 1);
    assert_eq!(read.etag.as_deref(), Some("\"1\""));
    assert_eq!(read.body["updated_at"], made.body["updated_at"]);

    // An administrator's If-Match still holds, and a patch not naming the stock keeps the
    // reading.
    let renamed = catalog
        .patch(&id, json!({"name": "Big mug"}), Some("\"1\""))
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert_eq!(renamed.body["stock_quantity"], 9);

    // A product the catalog does not have: nothing, and no dead letter.
    tell(
        &catalog.db,
        &catalog.logs,
        &[&stock_changed("p-elsewhere", "p-elsewhere", 4, 1)],
    )
    .await;
    catalog.served.stop().await;
    assert!(read_all(&catalog.logs.letters).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_changed_delivered_twice_or_late_changes_nothing_more() {
    let catalog = Catalog::start().await;
    let made = catalog.create(product("MUG-001", 12), None).await;
    let id = made.body["id"].as_str().unwrap().to_owned();

    let v3 = stock_changed("o2", &id, 5, 3);
    tell(&catalog.db, &catalog.logs, &[&v3, &v3]).await;
    assert_eq!(catalog.get(&id).await.body["stock_quantity"], 5);

    // An earlier change that comes late (another order's, on another partition) does not undo
    // the later one; the copy of the later one does nothing either.
    tell(
        &catalog.db,
        &catalog.logs,
        &[&stock_changed("o1", &id, 7, 2), &v3],
    )
    .await;
    assert_eq!(catalog.get(&id).await.body["stock_quantity"], 5);

    // The same reading again after a stock set replaces what the set wrote.
    catalog
        .patch(&id, json!({"stock_quantity": 50}), None)
        .await;
    tell(
        &catalog.db,
        &catalog.logs,
        &[&stock_changed(&id, &id, 5, 3)],
    )
    .await;
    let read = catalog.get(&id).await;
    assert_eq!(read.body["stock_quantity"], 5);
    assert_eq!(read.body["version"], 2);
    catalog.served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stock_set_in_the_catalog_is_the_inventorys_and_its_available_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let logs = Logs::open(dir.path());
    let catalog_db = database(dir.path(), catalog::SCHEMA, &catalog::MIGRATIONS).await;
    let inventory_db = database(dir.path(), inventory::SCHEMA, &inventory::MIGRATIONS).await;
    let catalog = serve_catalog(catalog_db, &logs).await;
    let inventory = serve_inventory(inventory_db, &logs).await;
    let http = reqwest::Client::new();

    let made = send(
        http.post(format!("{}/api/v1/products", catalog.base))
            .json(&product("MUG-001", 10)),
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let id = made.body["id"].as_str().unwrap().to_owned();
    let stock_path = format!("/api/v1/inventory/{id}");
    let product_path = format!("/api/v1/products/{id}");
    let stock = wait_for(&inventory.base, &stock_path, |s| s["on_hand"] == 10).await;
    assert_eq!(stock["available"], 10);

    // An order reserves 3: the catalog shows the 7 left.
    let order = Envelope::traced(
        "/ecom/orders",
        "o1",
        &Message::OrderCreated(OrderCreated {
            customer_id: "c1".into(),
            lines: vec![ItemLine {
                product_id: id.clone(),
                quantity: 3,
            }],
            total: contract::Amount {
                amount: 3897,
                currency: "EUR".into(),
            },
        }),
        None,
    );
    let since = Instant::now();
    common::append(&logs.orders, &[&order]).await;
    let shown = wait_for(&catalog.base, &product_path, |p| p["stock_quantity"] == 7).await;
    let took = since.elapsed();
    assert_eq!(shown["version"], 1);
    // The bound is a second in `ecom up`; a loaded test machine gets some slack.
    assert!(took < Duration::from_secs(5), "took {took:?}");

    // The administrator restocks in the catalog: on hand 20, of which 3 promised.
    let restocked = send(
        http.patch(format!("{}{product_path}", catalog.base))
            .header("content-type", "application/merge-patch+json")
            .header("if-match", "\"1\"")
            .body(json!({"stock_quantity": 20}).to_string()),
    )
    .await;
    assert_eq!(restocked.status, StatusCode::OK, "{}", restocked.body);
    let stock = wait_for(&inventory.base, &stock_path, |s| s["on_hand"] == 20).await;
    assert_eq!(
        (stock["reserved"].as_i64(), stock["available"].as_i64()),
        (Some(3), Some(17))
    );
    wait_for(&catalog.base, &product_path, |p| p["stock_quantity"] == 17).await;

    catalog.stop().await;
    inventory.stop().await;
    assert!(read_all(&logs.letters).is_empty());
}
