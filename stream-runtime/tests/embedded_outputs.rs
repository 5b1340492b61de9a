//! The output topics on the embedded log: what a commit publishes, read back from the files.

use std::sync::Arc;
use std::time::Duration;

use event_log::embedded::{EmbeddedLog, LogConfig};
use event_log::{FixedStart, PartitionReader, ReadBatch, StartAt};
use stream_engine::{LateEvent, WindowResult};
use stream_runtime::embedded::EmbeddedResultLog;
use stream_runtime::sink::{Commit, DeadLetter, ResultLog};

/// Every (key, value) of a topic.
fn read(log: &EmbeddedLog) -> Vec<(String, serde_json::Value)> {
    let reader = log.reader("test", Arc::new(FixedStart(StartAt::Beginning)));
    assert!(reader.poll(1, Duration::ZERO).expect("poll").is_none());
    let mut out = Vec::new();
    while let Some(batch) = reader.poll(1000, Duration::from_millis(20)).expect("poll") {
        for (_, records) in batch.runs() {
            for r in records {
                out.push((
                    String::from_utf8(r.key.expect("a key").to_vec()).expect("UTF-8"),
                    serde_json::from_slice(r.payload.expect("a value")).expect("JSON"),
                ));
            }
        }
    }
    out
}

#[tokio::test]
async fn results_late_events_and_dead_letters_land_in_their_topics() {
    let dir = tempfile::tempdir().expect("a directory");
    let open = |topic: &str, partitions| {
        EmbeddedLog::open(
            &dir.path().join(topic),
            LogConfig {
                partitions,
                ..LogConfig::default()
            },
        )
        .expect("log")
    };
    let log = EmbeddedResultLog {
        results: open("results", 4),
        late: open("late", 1),
        dead_letters: open("dead", 1),
    };
    let commit = Commit {
        results: vec![WindowResult {
            product_id: "42".into(),
            window_start_ms: 1_704_110_400_000,
            unique_users: 17,
            events: 23,
            approximate: false,
        }],
        late: vec![(
            2,
            LateEvent {
                offset: 9,
                product_id: "42".into(),
                user_id: "u1".into(),
                event_type: "VIEW_PRODUCT".into(),
                timestamp_ms: 1_704_110_000_000,
                watermark_ms: 1_704_110_400_000,
            },
        )],
        dead: vec![
            DeadLetter {
                partition: 1,
                offset: 7,
                key: Some(b"k".to_vec()),
                payload: b"{not json".to_vec(),
                code: "invalid_json",
                message: "expected a value".into(),
            },
            DeadLetter {
                partition: 3,
                offset: 8,
                key: None,
                payload: vec![0xff, 0x00],
                code: "invalid_json",
                message: "not UTF-8".into(),
            },
        ],
        ..Commit::default()
    };
    log.publish(&commit).await.expect("published");

    let results = read(&log.results);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].0, "42|2024-01-01T12:00:00Z");
    assert_eq!(results[0].1["unique_user_count"], 17);
    assert_eq!(results[0].1["window_end"], "2024-01-01T12:01:00Z");

    let late = read(&log.late);
    assert_eq!(late.len(), 1);
    assert_eq!(
        (late[0].0.as_str(), &late[0].1["offset"]),
        ("42", &serde_json::json!(9))
    );

    let dead = read(&log.dead_letters);
    assert_eq!(dead.len(), 2);
    let envelope = &dead[0].1;
    assert_eq!(dead[0].0, "k");
    assert_eq!(envelope["code"], "invalid_json");
    assert_eq!(envelope["message"], "expected a value");
    assert_eq!(
        (envelope["partition"].as_u64(), envelope["offset"].as_u64()),
        (Some(1), Some(7))
    );
    assert_eq!(envelope["payload"], "{not json");
    // A payload that is not UTF-8 is kept as its bytes.
    assert_eq!(dead[1].1["payload"], serde_json::json!([255, 0]));
}
