//! The catalog's stock sync through the real consumers, on SQLite and the embedded log:
//! `ProductStockSet` on `catalog.events` sets a product's on-hand stock (creating its row,
//! never below what orders hold), and every change of a stock row sends `StockChanged` with
//! the row after it, about the order that caused it or else the product.

mod common;

use common::{Saga, cancelled, changed, confirmed, created, kinds, levels, stock_set};
use messaging::Message;
use messaging::contract::StockLow;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_set_creates_a_missing_row_and_sets_on_hand() {
    let saga = Saga::new().await;
    let consumer = saga.start_catalog();

    saga.deliver_catalog(&[&stock_set("p1", 12)]).await;
    let stock = saga.stock("p1").await;
    assert_eq!((levels(&stock), stock.version), ((12, 0, 12), 1));

    saga.deliver_catalog(&[&stock_set("p1", 20)]).await;
    assert_eq!(levels(&saga.stock("p1").await), (20, 0, 20));
    saga.deliver_catalog(&[&stock_set("p1", 0)]).await;
    consumer.stop().await;
    assert_eq!(levels(&saga.stock("p1").await), (0, 0, 0));

    let changes = saga.changes_about("p1").await;
    assert_eq!(
        changes.iter().map(changed).collect::<Vec<_>>(),
        [
            ("p1", 12, 0, 12, 1),
            ("p1", 20, 0, 20, 2),
            ("p1", 0, 0, 0, 3)
        ]
    );
    let envelope = saga
        .replies()
        .await
        .into_iter()
        .find(|e| e.kind == "StockChanged")
        .unwrap();
    assert_eq!(envelope.source, inventory::SOURCE);
    // From 20 to 0: below the threshold, about the product; the row's creation alerts nothing
    // (as a PUT's does not).
    assert_eq!(
        saga.replies_about("p1").await,
        [Message::StockLow(StockLow {
            product_id: "p1".into(),
            available: 0,
        })]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_set_never_takes_on_hand_below_what_orders_hold() {
    let saga = Saga::new().await;
    saga.put("p1", 10).await;
    let orders = saga.start();
    let catalog = saga.start_catalog();

    saga.deliver(&[&created("o1", &[("p1", 3)])]).await;
    assert_eq!(levels(&saga.stock("p1").await), (10, 3, 7));

    // 4 on hand, 3 of them promised: 1 available, a fall below the threshold.
    saga.deliver_catalog(&[&stock_set("p1", 4)]).await;
    assert_eq!(levels(&saga.stock("p1").await), (4, 3, 1));
    // Asked for 1: kept at the 3 orders hold.
    saga.deliver_catalog(&[&stock_set("p1", 1)]).await;
    assert_eq!(levels(&saga.stock("p1").await), (3, 3, 0));

    // The order is still whole: its sale takes what it holds.
    saga.deliver(&[&confirmed("o1")]).await;
    orders.stop().await;
    catalog.stop().await;
    assert_eq!(levels(&saga.stock("p1").await), (0, 0, 0));
    assert_eq!(saga.state("o1").await.as_deref(), Some("SOLD"));

    let changes = saga.changes_about("p1").await;
    let levels_sent: Vec<_> = changes.iter().map(|c| (c.on_hand, c.available)).collect();
    // The PUT, then the two stock sets.
    assert_eq!(levels_sent, [(10, 10), (4, 1), (3, 0)]);
    assert_eq!(
        saga.replies_about("p1").await,
        [Message::StockLow(StockLow {
            product_id: "p1".into(),
            available: 1,
        })],
        "0 after 1 is no new fall"
    );
    assert!(saga.dead_letters().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_an_order_makes_sends_stock_changed_about_the_order() {
    let saga = Saga::new().await;
    saga.put("p1", 10).await;
    saga.put("p2", 4).await;
    let consumer = saga.start();

    // Reserved: one StockChanged per product, in product order, with what is left available.
    saga.deliver(&[&created("o1", &[("p2", 1), ("p1", 3)])])
        .await;
    assert_eq!(
        saga.changes_about("o1")
            .await
            .iter()
            .map(changed)
            .collect::<Vec<_>>(),
        [("p1", 10, 3, 7, 2), ("p2", 4, 1, 3, 2)]
    );
    assert_eq!(
        kinds(&saga.messages_about("o1").await),
        ["StockReserved", "StockChanged", "StockChanged"],
        "p1 stays above the threshold, p2 was below it already"
    );

    saga.deliver(&[&created("o2", &[("p1", 2)])]).await;
    // Released.
    saga.deliver(&[&cancelled("o1")]).await;
    // Sold, then returned.
    saga.deliver(&[&confirmed("o2")]).await;
    saga.deliver(&[&cancelled("o2")]).await;
    // Refused: nothing changed, nothing is told.
    saga.deliver(&[&created("o3", &[("p1", 100)])]).await;
    // Copies and late messages change nothing either.
    saga.deliver(&[&cancelled("o1"), &confirmed("o1"), &cancelled("o2")])
        .await;
    consumer.stop().await;

    assert_eq!(
        saga.changes_about("o1")
            .await
            .iter()
            .map(changed)
            .collect::<Vec<_>>(),
        [
            ("p1", 10, 3, 7, 2),
            ("p2", 4, 1, 3, 2),
            ("p1", 10, 2, 8, 4),
            ("p2", 4, 0, 4, 3)
        ]
    );
    assert_eq!(
        saga.changes_about("o2")
            .await
            .iter()
            .map(changed)
            .collect::<Vec<_>>(),
        [
            ("p1", 10, 5, 5, 3),
            ("p1", 8, 0, 8, 5),
            ("p1", 10, 0, 10, 6)
        ]
    );
    assert_eq!(saga.changes_about("o3").await, []);
    // The last change told of each product is its row.
    for product in ["p1", "p2"] {
        let stock = saga.stock(product).await;
        let last = saga
            .replies()
            .await
            .iter()
            .filter_map(|e| match e.message().unwrap() {
                Some(Message::StockChanged(c)) if c.product_id == product => Some(c),
                _ => None,
            })
            .max_by_key(|c| c.version)
            .unwrap();
        assert_eq!(
            (last.on_hand, last.reserved, last.available, last.version),
            (
                stock.on_hand,
                stock.reserved,
                stock.available,
                stock.version
            ),
            "{product}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_stock_set_delivered_twice_has_one_effect() {
    let saga = Saga::new().await;
    let orders = saga.start();
    let consumer = saga.start_catalog();

    let set = stock_set("p1", 10);
    saga.deliver_catalog(&[&set, &set]).await;
    assert_eq!(saga.stock("p1").await.version, 1);

    // An order reserves in between; the copy that comes much later (after a restart) does
    // not set the stock again.
    saga.deliver(&[&created("o1", &[("p1", 4)])]).await;
    consumer.stop().await;
    let consumer = saga.start_catalog();
    saga.deliver_catalog(&[&set]).await;
    consumer.stop().await;
    orders.stop().await;
    let stock = saga.stock("p1").await;
    assert_eq!((levels(&stock), stock.version), ((10, 4, 6), 2));
    assert_eq!(saga.changes_about("p1").await.len(), 1);
    assert!(saga.dead_letters().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_set_out_of_range_goes_to_the_dead_letters() {
    let saga = Saga::new().await;
    let consumer = saga.start_catalog();
    saga.deliver_catalog(&[
        &stock_set("p1", -1),
        &stock_set("a b", 3),
        &stock_set("p2", 3),
    ])
    .await;
    consumer.stop().await;
    assert!(
        inventory::repo::get(&saga.db, "p1")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(levels(&saga.stock("p2").await), (3, 0, 3));
    let letters = saga.dead_letters().await;
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert!(
        letters
            .iter()
            .all(|l| l["topic"] == messaging::contract::CATALOG_EVENTS),
        "{letters:?}"
    );
}
