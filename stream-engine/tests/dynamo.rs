//! The DynamoDB store against a real endpoint (moto, started by testkit): what a zombie
//! instance can and cannot overwrite.

use std::time::Duration;

use prometheus_client::registry::Registry;
use stream_engine::runtime::dynamo::{DynamoSettings, DynamoStore, ResultWrites};
use stream_engine::runtime::metrics::Metrics;
use stream_engine::runtime::sink::{ResultStore, Written};
use stream_engine::{Checkpoint, WindowResult};
use testkit::Moto;

fn client(moto: &Moto) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .endpoint_url(moto.endpoint())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

async fn store(moto: &Moto, writes: ResultWrites) -> DynamoStore {
    let store = DynamoStore::new(
        client(moto),
        DynamoSettings {
            table: "results".into(),
            checkpoint_table: "checkpoints".into(),
            stream: "group/topic".into(),
            retry_for: Duration::from_secs(5),
            concurrency: 4,
        },
        writes,
        Metrics::register(&mut Registry::default()),
    );
    store.ensure_tables().await.expect("tables");
    // A second call finds them and changes nothing.
    store.ensure_tables().await.expect("tables again");
    store
}

fn result(product: &str, users: u64, events: u64) -> WindowResult {
    WindowResult {
        product_id: product.into(),
        window_start_ms: 1_704_110_400_000,
        unique_users: users,
        events,
        approximate: false,
    }
}

async fn stored(moto: &Moto, product: &str) -> (String, String) {
    let item = client(moto)
        .get_item()
        .table_name("results")
        .key(
            "product_id",
            aws_sdk_dynamodb::types::AttributeValue::S(product.into()),
        )
        .key(
            "window_start",
            aws_sdk_dynamodb::types::AttributeValue::S("2024-01-01T12:00:00Z".into()),
        )
        .send()
        .await
        .expect("get")
        .item
        .expect("stored");
    let n = |k: &str| item[k].as_n().expect("a number").clone();
    assert_eq!(item["window_end"].as_s().unwrap(), "2024-01-01T12:01:00Z");
    (n("unique_user_count"), n("event_count"))
}

#[tokio::test]
async fn conditional_results_never_go_back_to_fewer_events() {
    let moto = Moto::start();
    let store = store(&moto, ResultWrites::Conditional).await;
    let superseded = store
        .put_results(&[result("p1", 3, 5), result("p2", 1, 1)])
        .await
        .expect("put");
    assert_eq!(superseded, 0);
    // A zombie's older result (fewer events) is refused; a re-fire with more is stored; the
    // same result again (a replay) is stored, unchanged.
    assert_eq!(store.put_results(&[result("p1", 2, 4)]).await, Ok(1));
    assert_eq!(stored(&moto, "p1").await, ("3".into(), "5".into()));
    assert_eq!(store.put_results(&[result("p1", 4, 6)]).await, Ok(0));
    assert_eq!(store.put_results(&[result("p1", 4, 6)]).await, Ok(0));
    assert_eq!(stored(&moto, "p1").await, ("4".into(), "6".into()));
    // A fire and its re-fire in one commit: the re-fire wins, whatever the order.
    store
        .put_results(&[result("p3", 2, 9), result("p3", 1, 8)])
        .await
        .expect("put");
    assert_eq!(stored(&moto, "p3").await, ("2".into(), "9".into()));
}

#[tokio::test]
async fn batched_results_are_all_stored() {
    let moto = Moto::start();
    let store = store(&moto, ResultWrites::Batched).await;
    // More than one BatchWriteItem's worth, with a repeated key.
    let mut results: Vec<_> = (0..120)
        .map(|i| result(&format!("p{i}"), i, i + 1))
        .collect();
    results.push(result("p7", 7, 8));
    assert_eq!(store.put_results(&results).await, Ok(0));
    for i in [0, 7, 24, 25, 119] {
        assert_eq!(
            stored(&moto, &format!("p{i}")).await,
            (i.to_string(), (i + 1).to_string())
        );
    }
}

#[tokio::test]
async fn checkpoints_only_move_forward() {
    let moto = Moto::start();
    let store = store(&moto, ResultWrites::Batched).await;
    assert_eq!(store.load_checkpoint(3).await, Ok(None));
    let at = |highest: u64| Checkpoint {
        resume_offset: highest / 2,
        highest_offset: Some(highest),
        max_event_time_ms: Some(1_704_110_400_000),
        watermark_ms: Some(1_704_110_390_000),
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

#[tokio::test]
async fn a_corrupt_checkpoint_is_an_error_not_a_fresh_start() {
    let moto = Moto::start();
    let store = store(&moto, ResultWrites::Batched).await;
    client(&moto)
        .put_item()
        .table_name("checkpoints")
        .item(
            "stream_partition",
            aws_sdk_dynamodb::types::AttributeValue::S("group/topic/0".into()),
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
