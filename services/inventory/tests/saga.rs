//! Inventory's side of the order saga through the real consumer, on SQLite and the embedded
//! log: reservations all or none, sales, releases and returns, each once however the messages
//! are repeated or reordered, and `StockLow` once per fall below the threshold.

mod common;

use common::{Saga, cancelled, confirmed, created, kinds, levels};
use messaging::Message;
use messaging::contract::{StockLow, StockRejected};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_becomes_a_sale_when_the_order_is_confirmed() {
    let saga = Saga::new().await;
    saga.put("p1", 10).await;
    saga.put("p2", 4).await;
    let consumer = saga.start();

    // p1 is listed twice: 3 + 2.
    let order = created("o1", &[("p1", 3), ("p2", 1), ("p1", 2)]);
    saga.deliver(&[&order]).await;
    assert_eq!(levels(&saga.stock("p1").await), (10, 5, 5));
    assert_eq!(levels(&saga.stock("p2").await), (4, 1, 3));
    assert_eq!(saga.state("o1").await.as_deref(), Some("RESERVED"));
    let replies = saga.replies_about("o1").await;
    assert_eq!(kinds(&replies), ["StockReserved"]);
    let envelope = saga
        .replies()
        .await
        .into_iter()
        .find(|e| e.subject == "o1")
        .unwrap();
    assert_eq!(envelope.source, inventory::SOURCE);

    saga.deliver(&[&confirmed("o1")]).await;
    consumer.stop().await;
    // Sold: out of the warehouse and no longer reserved; available unchanged.
    assert_eq!(levels(&saga.stock("p1").await), (5, 0, 5));
    assert_eq!(levels(&saga.stock("p2").await), (3, 0, 3));
    assert_eq!(saga.state("o1").await.as_deref(), Some("SOLD"));
    assert_eq!(
        kinds(&saga.replies_about("o1").await),
        ["StockReserved"],
        "a confirmation is not answered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_line_reserves_nothing_of_the_order() {
    let saga = Saga::new().await;
    saga.put("p1", 10).await;
    saga.put("p2", 2).await;
    saga.put("p3", 5).await;
    let consumer = saga.start();

    // p1 comes first and is reserved, then p2 is short: p1 is given back in the same
    // transaction.
    saga.deliver(&[&created("o1", &[("p3", 1), ("p2", 3), ("p1", 4)])])
        .await;
    for (product, on_hand) in [("p1", 10), ("p2", 2), ("p3", 5)] {
        assert_eq!(
            levels(&saga.stock(product).await),
            (on_hand, 0, on_hand),
            "{product}"
        );
    }
    assert_eq!(saga.state("o1").await.as_deref(), Some("REJECTED"));
    assert_eq!(
        saga.replies_about("o1").await,
        [Message::StockRejected(StockRejected {
            product_id: "p2".into(),
            requested: 3,
            available: 2,
        })]
    );

    // A product without a stock row has nothing available; a product listed twice is asked
    // for its sum.
    saga.deliver(&[
        &created("o2", &[("p1", 1), ("p9", 1)]),
        &created("o3", &[("p2", 1), ("p2", 2)]),
    ])
    .await;
    assert_eq!(
        saga.replies_about("o2").await,
        [Message::StockRejected(StockRejected {
            product_id: "p9".into(),
            requested: 1,
            available: 0,
        })]
    );
    assert_eq!(
        saga.replies_about("o3").await,
        [Message::StockRejected(StockRejected {
            product_id: "p2".into(),
            requested: 3,
            available: 2,
        })]
    );

    // A refused order is never sold, nor released.
    saga.deliver(&[&confirmed("o1"), &cancelled("o2")]).await;
    consumer.stop().await;
    assert_eq!(levels(&saga.stock("p1").await), (10, 0, 10));
    assert_eq!(levels(&saga.stock("p2").await), (2, 0, 2));
    assert_eq!(saga.state("o1").await.as_deref(), Some("REJECTED"));
    assert_eq!(saga.replies_about("o2").await.len(), 1);
    assert!(
        inventory::repo::get(&saga.db, "p9")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_releases_a_reservation_and_returns_a_sale() {
    let saga = Saga::new().await;
    saga.put("p1", 10).await;
    let consumer = saga.start();

    saga.deliver(&[
        &created("o1", &[("p1", 3)]),
        &created("o2", &[("p1", 2)]),
        &confirmed("o2"),
    ])
    .await;
    assert_eq!(levels(&saga.stock("p1").await), (8, 3, 5));

    // o1 was reserved: its units are available again.
    saga.deliver(&[&cancelled("o1")]).await;
    assert_eq!(levels(&saga.stock("p1").await), (8, 0, 8));
    assert_eq!(saga.state("o1").await.as_deref(), Some("RELEASED"));

    // o2 was sold: its units are back on hand.
    saga.deliver(&[&cancelled("o2")]).await;
    assert_eq!(levels(&saga.stock("p1").await), (10, 0, 10));
    assert_eq!(saga.state("o2").await.as_deref(), Some("RETURNED"));

    // Cancelled again (another message, not a copy), and confirmed after the cancellation:
    // nothing moves, nothing is answered.
    saga.deliver(&[&cancelled("o1"), &cancelled("o2"), &confirmed("o1")])
        .await;
    consumer.stop().await;
    assert_eq!(levels(&saga.stock("p1").await), (10, 0, 10));
    assert_eq!(saga.state("o1").await.as_deref(), Some("RELEASED"));
    for order in ["o1", "o2"] {
        assert_eq!(
            kinds(&saga.replies_about(order).await),
            ["StockReserved", "StockReleased"],
            "{order}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_envelope_delivered_twice_has_one_effect() {
    let saga = Saga::new().await;
    saga.put("p1", 100).await;
    let consumer = saga.start();

    let create_1 = created("o1", &[("p1", 3)]);
    let confirm_1 = confirmed("o1");
    let create_2 = created("o2", &[("p1", 4)]);
    let cancel_2 = cancelled("o2");
    saga.deliver(&[&create_1, &create_1, &create_2, &create_2])
        .await;
    assert_eq!(levels(&saga.stock("p1").await), (100, 7, 93));
    saga.deliver(&[&confirm_1, &cancel_2, &confirm_1, &cancel_2])
        .await;
    assert_eq!(levels(&saga.stock("p1").await), (97, 0, 97));

    // A copy that comes much later (the relay resending after a crash) is dropped too, also
    // by a consumer started again.
    consumer.stop().await;
    let consumer = saga.start();
    saga.deliver(&[&create_1, &confirm_1, &cancel_2, &create_2])
        .await;
    consumer.stop().await;
    assert_eq!(levels(&saga.stock("p1").await), (97, 0, 97));
    assert_eq!(kinds(&saga.replies_about("o1").await), ["StockReserved"]);
    assert_eq!(
        kinds(&saga.replies_about("o2").await),
        ["StockReserved", "StockReleased"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_before_the_creation_reserves_nothing_ever() {
    let saga = Saga::new().await;
    saga.put("p1", 10).await;
    let consumer = saga.start();

    // In one batch, and across two.
    saga.deliver(&[&cancelled("o1"), &created("o1", &[("p1", 3)])])
        .await;
    assert_eq!(levels(&saga.stock("p1").await), (10, 0, 10));
    saga.deliver(&[&cancelled("o2")]).await;
    assert_eq!(saga.state("o2").await.as_deref(), Some("CANCELLED"));
    saga.deliver(&[&created("o2", &[("p1", 4)])]).await;
    assert_eq!(levels(&saga.stock("p1").await), (10, 0, 10));

    // A confirmation that comes late anyway sells nothing.
    saga.deliver(&[&confirmed("o1"), &confirmed("o2")]).await;
    consumer.stop().await;
    assert_eq!(levels(&saga.stock("p1").await), (10, 0, 10));
    for order in ["o1", "o2"] {
        assert_eq!(saga.state(order).await.as_deref(), Some("CANCELLED"));
        assert_eq!(saga.replies_about(order).await, [], "{order}");
    }
    assert_eq!(saga.stock("p1").await.version, 1, "the row never changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_low_is_sent_once_when_available_stock_crosses_the_threshold() {
    let saga = Saga::new().await;
    assert_eq!(saga.settings.low_stock_threshold, 5);
    saga.put("p1", 7).await;
    saga.put("p2", 50).await;
    let consumer = saga.start();

    // 7 → 5: at the threshold, not below it.
    saga.deliver(&[&created("o1", &[("p1", 2)])]).await;
    assert_eq!(kinds(&saga.replies_about("o1").await), ["StockReserved"]);
    // 5 → 4: below. p2 stays far above.
    saga.deliver(&[&created("o2", &[("p1", 1), ("p2", 1)])])
        .await;
    assert_eq!(
        saga.replies_about("o2").await,
        [
            Message::StockReserved(Default::default()),
            Message::StockLow(StockLow {
                product_id: "p1".into(),
                available: 4,
            })
        ]
    );
    // 4 → 3: still below, no second alert.
    saga.deliver(&[&created("o3", &[("p1", 1)])]).await;
    assert_eq!(kinds(&saga.replies_about("o3").await), ["StockReserved"]);
    // Released back to 5, then 5 → 4 again: a new fall, a new alert.
    saga.deliver(&[&cancelled("o2"), &cancelled("o3")]).await;
    assert_eq!(saga.stock("p1").await.available, 5);
    saga.deliver(&[&created("o4", &[("p1", 1)])]).await;
    consumer.stop().await;
    assert_eq!(
        kinds(&saga.replies_about("o4").await),
        ["StockReserved", "StockLow"]
    );

    // A change of on-hand stock that takes it below alerts too, about the product.
    saga.put("p1", 20).await;
    assert_eq!(saga.replies_about("p1").await, []);
    let stock = saga.put("p1", 6).await;
    assert_eq!((stock.reserved, stock.available), (3, 3));
    saga.put("p1", 7).await;
    assert_eq!(
        saga.replies_about("p1").await,
        [Message::StockLow(StockLow {
            product_id: "p1".into(),
            available: 3,
        })]
    );
    let lows = saga
        .replies()
        .await
        .iter()
        .filter(|e| e.kind == "StockLow")
        .count();
    assert_eq!(lows, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_with_a_quantity_below_1_goes_to_the_dead_letters() {
    let saga = Saga::new().await;
    saga.put("p1", 10).await;
    let consumer = saga.start();
    saga.deliver(&[
        &created("o1", &[("p1", 2), ("p1", 0)]),
        &created("o2", &[("p1", 1)]),
    ])
    .await;
    consumer.stop().await;
    assert_eq!(levels(&saga.stock("p1").await), (10, 1, 9));
    assert_eq!(saga.state("o1").await, None);
    assert_eq!(saga.replies_about("o1").await, []);
    let letters = saga.dead_letters().await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(
        letters[0]["error"]
            .as_str()
            .unwrap()
            .contains("quantities are at least 1"),
        "{letters:?}"
    );
}
