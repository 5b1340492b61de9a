//! One contract, two stores: DynamoDB (a real endpoint, moto, started by testkit) and SQLite.
//! Each test runs on both (`<test>::on_dynamodb`, `<test>::on_sqlite`): the write rules that
//! keep a zombie instance from going back, and the queries of the analytics API.

use result_store::dynamo::{DynamoSettings, DynamoStore};
use result_store::sqlite::SqliteStore;
use result_store::{
    CheckpointStore, RangeCursor, ResultQuery, ResultStore, Writes, Written, fired_window,
};
use stream_engine::{Checkpoint, WindowResult};
use testkit::{Moto, window_result as result};

const T0: i64 = 1_704_110_400_000; // 2024-01-01T12:00:00Z
const MINUTE: i64 = 60_000;
const STREAM: &str = "group/topic";

async fn dynamo(moto: &Moto, writes: Writes) -> DynamoStore {
    let store = DynamoStore::new(
        moto.dynamodb_client(),
        DynamoSettings {
            table: "results".into(),
            checkpoint_table: "checkpoints".into(),
            stream: STREAM.into(),
            retry_for: std::time::Duration::from_secs(5),
            concurrency: 4,
            partitions: 4,
        },
        writes,
    );
    store.ensure_tables().await.expect("tables");
    // A second call finds them and changes nothing.
    store.ensure_tables().await.expect("tables again");
    store.check_tables().await.expect("tables checked");
    store
}

async fn sqlite(dir: &tempfile::TempDir, writes: Writes) -> SqliteStore {
    SqliteStore::open(&dir.path().join("store.db"), STREAM, writes)
        .await
        .expect("sqlite")
}

/// Expands `$body` once per store, as two tests in a module named `$name`.
macro_rules! contract {
    ($name:ident, $writes:expr, |$store:ident| $body:block) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn on_dynamodb() {
                let moto = Moto::start();
                let $store = dynamo(&moto, $writes).await;
                $body
            }

            #[tokio::test]
            async fn on_sqlite() {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let $store = sqlite(&dir, $writes).await;
                $body
            }
        }
    };
}

/// (unique users, events) stored for a product's window at T0.
async fn stored(store: &impl ResultQuery, product: &str) -> Option<(u64, u64)> {
    let windows = store
        .product_windows(product, None, 1000)
        .await
        .expect("query");
    windows
        .iter()
        .find(|r| r.window_start_ms == T0)
        .map(|r| (r.unique_users, r.events))
}

contract!(
    conditional_results_never_go_back_to_fewer_events,
    Writes::Conditional,
    |store| {
        let first = [result("p1", T0, 3, 5), result("p2", T0, 1, 1)];
        assert_eq!(store.put_results(&first).await, Ok(0));
        // A zombie's older result (fewer events) is refused; a re-fire with more is stored; the
        // same result again (a replay) is stored, unchanged.
        assert_eq!(store.put_results(&[result("p1", T0, 2, 4)]).await, Ok(1));
        assert_eq!(stored(&store, "p1").await, Some((3, 5)));
        assert_eq!(store.put_results(&[result("p1", T0, 4, 6)]).await, Ok(0));
        assert_eq!(store.put_results(&[result("p1", T0, 4, 6)]).await, Ok(0));
        assert_eq!(stored(&store, "p1").await, Some((4, 6)));
        // A fire and its re-fire in one commit: the re-fire wins, whatever the order.
        let both = [result("p3", T0, 2, 9), result("p3", T0, 1, 8)];
        store.put_results(&both).await.expect("put");
        assert_eq!(stored(&store, "p3").await, Some((2, 9)));
    }
);

contract!(
    unconditional_results_are_all_stored,
    Writes::Unconditional,
    |store| {
        // More than one BatchWriteItem's worth, with a repeated key.
        let mut results: Vec<_> = (0..120)
            .map(|i| result(&format!("p{i}"), T0, i, i + 1))
            .collect();
        results.push(result("p7", T0, 7, 8));
        assert_eq!(store.put_results(&results).await, Ok(0));
        for i in [0, 7, 24, 25, 119] {
            assert_eq!(stored(&store, &format!("p{i}")).await, Some((i, i + 1)));
        }
    }
);

contract!(
    checkpoints_only_move_forward,
    Writes::Unconditional,
    |store| {
        assert_eq!(store.load_checkpoint(3).await, Ok(None));
        let at = |highest: u64| Checkpoint {
            resume_offset: highest / 2,
            highest_offset: Some(highest),
            max_event_time_ms: Some(T0),
            watermark_ms: Some(T0 - 10_000),
            ..Checkpoint::initial()
        };
        assert_eq!(
            store.save_checkpoint(3, &at(100)).await,
            Ok(Written::Stored)
        );
        assert_eq!(
            store.save_checkpoint(3, &at(40)).await,
            Ok(Written::Superseded)
        );
        assert_eq!(store.load_checkpoint(3).await, Ok(Some(at(100))));
        assert_eq!(
            store.save_checkpoint(3, &at(100)).await,
            Ok(Written::Stored)
        );
        assert_eq!(
            store.save_checkpoint(3, &at(200)).await,
            Ok(Written::Stored)
        );
        assert_eq!(store.load_checkpoint(3).await, Ok(Some(at(200))));
        // Partitions are separate.
        assert_eq!(store.load_checkpoint(2).await, Ok(None));
    }
);

contract!(
    a_product_s_windows_come_newest_first_in_pages,
    Writes::Unconditional,
    |store| {
        let results: Vec<_> = (0..25)
            .map(|i| result("p1", T0 + i * MINUTE, 1, 1))
            .chain([result("p2", T0, 9, 9)])
            .collect();
        store.put_results(&results).await.expect("put");
        let page = store.product_windows("p1", None, 10).await.expect("query");
        let starts: Vec<i64> = page.iter().map(|r| r.window_start_ms).collect();
        let expected: Vec<i64> = (15..25).rev().map(|i| T0 + i * MINUTE).collect();
        assert_eq!(starts, expected);
        // The next page starts before the last start seen.
        let page = store
            .product_windows("p1", Some(T0 + 15 * MINUTE), 100)
            .await
            .expect("query");
        assert_eq!(page.len(), 15);
        assert_eq!(page[0].window_start_ms, T0 + 14 * MINUTE);
        assert!(page.iter().all(|r| &*r.product_id == "p1"));
        assert_eq!(store.product_windows("nobody", None, 10).await, Ok(vec![]));
    }
);

contract!(
    the_top_of_a_window_is_by_users_then_product,
    Writes::Unconditional,
    |store| {
        let results = [
            result("b", T0, 5, 5),
            result("a", T0, 5, 50),
            result("c", T0, 7, 7),
            result("d", T0, 1000, 1000),
            result("e", T0, 1, 1),
            result("z", T0 + MINUTE, 99_999, 99_999),
        ];
        store.put_results(&results).await.expect("put");
        let top = store.top(T0, 4).await.expect("top");
        let order: Vec<&str> = top.iter().map(|r| &*r.product_id).collect();
        assert_eq!(order, ["d", "c", "a", "b"]);
        assert_eq!(top[2].events, 50);
        assert_eq!(store.top(T0 - MINUTE, 4).await, Ok(vec![]));
    }
);

contract!(
    a_time_range_walks_every_result_once,
    Writes::Unconditional,
    |store| {
        // Three populated minutes in a two-hour range, 7 products each.
        let mut results = Vec::new();
        for minute in [0, 1, 90] {
            for p in 0..7u64 {
                results.push(result(&format!("p{p}"), T0 + minute * MINUTE, p % 3, p));
            }
        }
        store.put_results(&results).await.expect("put");
        let (from, to) = (T0 - 30_000, T0 + 120 * MINUTE);
        let mut seen = Vec::new();
        let mut cursor: Option<RangeCursor> = None;
        let mut pages = 0;
        loop {
            pages += 1;
            assert!(pages < 50, "the walk does not end");
            let page = store.windows(from, to, cursor, 5).await.expect("range");
            assert!(page.results.len() <= 5);
            seen.extend(page.results);
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let mut expected = results.clone();
        expected.sort_by(|a, b| {
            (a.window_start_ms, &a.product_id).cmp(&(b.window_start_ms, &b.product_id))
        });
        assert_eq!(seen, expected);
        // Counts that change between two pages (re-fires) move nothing: keys do not change.
        let page = store.windows(from, to, None, 4).await.expect("range");
        let bumped: Vec<_> = results
            .iter()
            .map(|r| {
                result(
                    &r.product_id,
                    r.window_start_ms,
                    r.unique_users + 100,
                    r.events + 100,
                )
            })
            .collect();
        store.put_results(&bumped).await.expect("re-fire");
        let key = |r: &WindowResult| (r.window_start_ms, r.product_id.to_string());
        let mut walked: Vec<(i64, String)> = page.results.iter().map(key).collect();
        let mut cursor = page.next;
        while let Some(next) = cursor {
            let page = store.windows(from, to, Some(next), 4).await.expect("range");
            walked.extend(page.results.iter().map(key));
            cursor = page.next;
        }
        assert_eq!(walked, expected.iter().map(key).collect::<Vec<_>>());
        // A range before everything is empty and says so.
        let page = store
            .windows(T0 - 10 * MINUTE, T0 - MINUTE, None, 5)
            .await
            .expect("range");
        assert_eq!((page.results.len(), page.next), (0, None));
    }
);

contract!(
    bounds_with_fractions_of_a_second_cut_between_the_right_windows,
    Writes::Unconditional,
    |store| {
        let results = [result("a", T0, 1, 1), result("a", T0 + MINUTE, 2, 2)];
        store.put_results(&results).await.expect("put");
        let starts =
            |rows: &[WindowResult]| rows.iter().map(|r| r.window_start_ms).collect::<Vec<_>>();
        let page = store
            .windows(T0, T0 + MINUTE + 500, None, 10)
            .await
            .expect("range");
        assert_eq!(starts(&page.results), [T0, T0 + MINUTE]);
        let page = store
            .windows(T0, T0 + MINUTE, None, 10)
            .await
            .expect("range");
        assert_eq!(starts(&page.results), [T0]);
        let page = store
            .windows(T0 + 1, T0 + 2 * MINUTE, None, 10)
            .await
            .expect("range");
        assert_eq!(starts(&page.results), [T0 + MINUTE]);
        let before = store
            .product_windows("a", Some(T0 + MINUTE + 500), 10)
            .await
            .expect("before");
        assert_eq!(starts(&before), [T0 + MINUTE, T0]);
        let before = store
            .product_windows("a", Some(T0 + MINUTE), 10)
            .await
            .expect("before");
        assert_eq!(starts(&before), [T0]);
    }
);

contract!(
    the_latest_fired_window_is_every_partition_s,
    Writes::Unconditional,
    |store| {
        assert_eq!(store.latest_fired().await, Ok(None));
        let at = |watermark: i64| Checkpoint {
            resume_offset: 0,
            highest_offset: Some(10),
            max_event_time_ms: Some(watermark + 10_000),
            watermark_ms: Some(watermark),
            ..Checkpoint::initial()
        };
        store
            .save_checkpoint(0, &at(T0 + 5 * MINUTE + 1))
            .await
            .expect("save");
        store
            .save_checkpoint(1, &at(T0 + 3 * MINUTE))
            .await
            .expect("save");
        // A partition that has seen nothing does not hold the others back.
        store
            .save_checkpoint(2, &Checkpoint::initial())
            .await
            .expect("save");
        assert_eq!(store.latest_fired().await, Ok(Some(T0 + 2 * MINUTE)));
        assert_eq!(fired_window(T0 + 3 * MINUTE), T0 + 2 * MINUTE);
    }
);

#[tokio::test]
async fn a_corrupt_checkpoint_is_an_error_not_a_fresh_start_on_dynamodb() {
    let moto = Moto::start();
    let store = dynamo(&moto, Writes::Unconditional).await;
    moto.dynamodb_client()
        .put_item()
        .table_name("checkpoints")
        .item(
            "stream_partition",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("{STREAM}/0")),
        )
        .item(
            "checkpoint",
            aws_sdk_dynamodb::types::AttributeValue::S("{\"version\":1".into()),
        )
        .send()
        .await
        .expect("put");
    let error = store.load_checkpoint(0).await.expect_err("corrupt");
    assert!(error.message.contains("not valid"), "{error}");
}

#[tokio::test]
async fn a_corrupt_checkpoint_is_an_error_not_a_fresh_start_on_sqlite() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = sqlite(&dir, Writes::Unconditional).await;
    store.close().await;
    let raw = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("store.db").display()
    ))
    .await
    .expect("raw connection");
    sqlx::query(
        "INSERT INTO checkpoints (stream, partition, next_offset, checkpoint) VALUES (?, 0, 1, ?)",
    )
    .bind(STREAM)
    .bind("{\"version\":1")
    .execute(&raw)
    .await
    .expect("insert");
    raw.close().await;
    let store = sqlite(&dir, Writes::Unconditional).await;
    let error = store.load_checkpoint(0).await.expect_err("corrupt");
    assert!(error.message.contains("not valid"), "{error}");
}

#[tokio::test]
async fn a_results_table_from_before_the_index_gets_it() {
    let moto = Moto::start();
    // The table as the engine created it before the top-K index existed.
    moto.dynamodb_client()
        .create_table()
        .table_name("results")
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .attribute_definitions(
            aws_sdk_dynamodb::types::AttributeDefinition::builder()
                .attribute_name("product_id")
                .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
                .build()
                .expect("definition"),
        )
        .attribute_definitions(
            aws_sdk_dynamodb::types::AttributeDefinition::builder()
                .attribute_name("window_start")
                .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
                .build()
                .expect("definition"),
        )
        .key_schema(
            aws_sdk_dynamodb::types::KeySchemaElement::builder()
                .attribute_name("product_id")
                .key_type(aws_sdk_dynamodb::types::KeyType::Hash)
                .build()
                .expect("key"),
        )
        .key_schema(
            aws_sdk_dynamodb::types::KeySchemaElement::builder()
                .attribute_name("window_start")
                .key_type(aws_sdk_dynamodb::types::KeyType::Range)
                .build()
                .expect("key"),
        )
        .send()
        .await
        .expect("create");
    let store = dynamo(&moto, Writes::Unconditional).await;
    store
        .put_results(&[result("a", T0, 2, 2), result("b", T0, 3, 3)])
        .await
        .expect("put");
    let top = store.top(T0, 10).await.expect("top through the index");
    assert_eq!(top.len(), 2);
    assert_eq!(&*top[0].product_id, "b");
    let range = store
        .windows(T0, T0 + MINUTE, None, 10)
        .await
        .expect("a range through the other index");
    assert_eq!(range.results.len(), 2);
}
