//! Window results and checkpoints to and from DynamoDB items: the attributes of the module's
//! schema, the index keys derived from a result (`rank`, `day`, `window_product`), and the
//! start key of a range page. A malformed item decodes to a [`StoreError`], never a panic.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use stream_engine::core::time::{format_rfc3339_ms, parse_rfc3339_ms};
use stream_engine::{Checkpoint, WindowResult};

use super::store_error;
use crate::{RangeCursor, StoreError, next_offset, rank};

pub(super) const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// The item of a window result.
pub(super) fn result_item(result: &WindowResult) -> Vec<(&'static str, AttributeValue)> {
    vec![
        (
            "product_id",
            AttributeValue::S(result.product_id.to_string()),
        ),
        (
            "window_start",
            AttributeValue::S(format_rfc3339_ms(result.window_start_ms)),
        ),
        (
            "window_end",
            AttributeValue::S(format_rfc3339_ms(result.window_end_ms())),
        ),
        (
            "unique_user_count",
            AttributeValue::N(result.unique_users.to_string()),
        ),
        ("event_count", AttributeValue::N(result.events.to_string())),
        ("approximate", AttributeValue::Bool(result.approximate)),
        ("rank", AttributeValue::S(rank(result))),
        ("day", AttributeValue::S(day(result.window_start_ms))),
        ("window_product", AttributeValue::S(window_product(result))),
    ]
}

/// `YYYY-MM-DD` of a time.
pub(super) fn day(ms: i64) -> String {
    format_rfc3339_ms(ms.div_euclid(DAY_MS) * DAY_MS)[..10].to_owned()
}

/// The `by_day` sort key: the window's start, then the product.
fn window_product(result: &WindowResult) -> String {
    format!(
        "{}|{}",
        format_rfc3339_ms(result.window_start_ms),
        result.product_id
    )
}

/// A window result from its item.
pub(super) fn result_from_item(
    item: &HashMap<String, AttributeValue>,
) -> Result<WindowResult, StoreError> {
    let bad = |field: &str| store_error(format!("a result item has no valid `{field}`"));
    let s = |field: &str| match item.get(field) {
        Some(AttributeValue::S(v)) => Ok(v.as_str()),
        _ => Err(bad(field)),
    };
    let n = |field: &str| match item.get(field) {
        Some(AttributeValue::N(v)) => v.parse::<u64>().map_err(|_| bad(field)),
        _ => Err(bad(field)),
    };
    Ok(WindowResult {
        product_id: s("product_id")?.into(),
        window_start_ms: parse_rfc3339_ms(s("window_start")?).map_err(|_| bad("window_start"))?,
        unique_users: n("unique_user_count")?,
        events: n("event_count")?,
        approximate: matches!(item.get("approximate"), Some(AttributeValue::Bool(true))),
    })
}

/// The exclusive start key of a `by_day` Query resuming after the row a cursor names (the
/// index's key and the table's).
pub(super) fn range_start_key(cursor: &RangeCursor) -> HashMap<String, AttributeValue> {
    let window_start = format_rfc3339_ms(cursor.window_start_ms);
    HashMap::from([
        (
            "day".to_owned(),
            AttributeValue::S(day(cursor.window_start_ms)),
        ),
        (
            "window_product".to_owned(),
            AttributeValue::S(format!("{window_start}|{}", cursor.product_id)),
        ),
        (
            "product_id".to_owned(),
            AttributeValue::S(cursor.product_id.clone()),
        ),
        ("window_start".to_owned(), AttributeValue::S(window_start)),
    ])
}

/// The item of a checkpoint under its key (`stream_partition`): the checkpoint as JSON, its
/// next offset (what the conditional write compares), its resume offset, and its watermark
/// (RFC 3339 and milliseconds) when it has one.
pub(super) fn checkpoint_item(
    key: AttributeValue,
    checkpoint: &Checkpoint,
) -> Result<Vec<(&'static str, AttributeValue)>, StoreError> {
    let next_offset = next_offset(checkpoint);
    let json = serde_json::to_string(checkpoint)
        .map_err(|e| store_error(format!("cannot encode a checkpoint: {e}")))?;
    let mut item = vec![
        ("stream_partition", key),
        ("checkpoint", AttributeValue::S(json)),
        ("next_offset", AttributeValue::N(next_offset.to_string())),
        (
            "resume_offset",
            AttributeValue::N(checkpoint.resume_offset.to_string()),
        ),
    ];
    if let Some(watermark) = checkpoint.watermark_ms {
        item.push(("watermark", AttributeValue::S(format_rfc3339_ms(watermark))));
        item.push(("watermark_ms", AttributeValue::N(watermark.to_string())));
    }
    Ok(item)
}

/// The checkpoint of an input partition from its item in `table` (both named in the errors).
pub(super) fn checkpoint_from_item(
    item: &HashMap<String, AttributeValue>,
    partition: u32,
    table: &str,
) -> Result<Checkpoint, StoreError> {
    let text = match item.get("checkpoint") {
        Some(AttributeValue::S(text)) => text,
        _ => {
            return Err(store_error(format!(
                "the checkpoint item of partition {partition} in {table} has no `checkpoint` string"
            )));
        }
    };
    serde_json::from_str(text).map_err(|e| {
        store_error(format!(
            "the checkpoint of partition {partition} in {table} is not valid: {e}"
        ))
    })
}

/// The watermark of a checkpoint item (read alone, through a projection), if it has a valid one.
pub(super) fn watermark_of(item: &HashMap<String, AttributeValue>) -> Option<i64> {
    match item.get("watermark_ms") {
        Some(AttributeValue::N(n)) => n.parse::<i64>().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use stream_engine::EngineStats;

    use super::*;

    /// 0000-01-01T00:00:00Z and 9999-12-31T23:59:00Z: the first and last whole minutes RFC
    /// 3339 writes with four-digit years.
    const FIRST_MINUTE: i64 = -62_167_219_200_000;
    const LAST_MINUTE: i64 = 253_402_300_740_000;

    fn window(
        product: &str,
        start: i64,
        users: u64,
        events: u64,
        approximate: bool,
    ) -> WindowResult {
        WindowResult {
            product_id: product.into(),
            window_start_ms: start,
            unique_users: users,
            events,
            approximate,
        }
    }

    /// An item as a Query or GetItem returns it.
    fn as_read(item: Vec<(&'static str, AttributeValue)>) -> HashMap<String, AttributeValue> {
        item.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    fn result_item_of(result: &WindowResult) -> HashMap<String, AttributeValue> {
        as_read(result_item(result))
    }

    fn s(item: &HashMap<String, AttributeValue>, name: &str) -> String {
        match item.get(name) {
            Some(AttributeValue::S(v)) => v.clone(),
            other => panic!("`{name}` is not a string: {other:?}"),
        }
    }

    fn n(item: &HashMap<String, AttributeValue>, name: &str) -> String {
        match item.get(name) {
            Some(AttributeValue::N(v)) => v.clone(),
            other => panic!("`{name}` is not a number: {other:?}"),
        }
    }

    #[test]
    fn window_results_round_trip_through_their_items() {
        let long = "p".repeat(1000) + "-λ|" + &"x".repeat(1000);
        let results = [
            window("p1", 1_704_110_400_000, 3, 5, false),
            window("p1", 1_704_110_400_000, 3, 5, true),
            window("sku-ü-日本-🛒", 60_000, 1, 1, true),
            window("a|b|", 0, 0, 0, false),
            window("|", 120_000, u64::MAX, u64::MAX, false),
            window("", 180_000, 7, 9, true),
            window(&long, 1_704_110_460_000, 12, 40, false),
            window("before-1970", -60_000, 2, 2, false),
            window("1900", -2_208_988_800_000, 4, 8, true),
            window("year-0", FIRST_MINUTE, 1, 1, false),
            window("far-ahead", 4_102_444_800_000, 5, 6, false),
            window("year-9999", LAST_MINUTE, 1, 2, true),
            window("millis", 1_704_110_400_123, 1, 1, false),
        ];
        for result in results {
            let item = result_item_of(&result);
            assert_eq!(result_from_item(&item).as_ref(), Ok(&result), "{item:?}");
        }
    }

    #[test]
    fn a_result_item_carries_its_index_keys() {
        let result = window("p|1", -60_000, 5, 9, false);
        let item = result_item_of(&result);
        assert_eq!(s(&item, "window_start"), "1969-12-31T23:59:00Z");
        assert_eq!(s(&item, "window_end"), "1970-01-01T00:00:00Z");
        assert_eq!(s(&item, "day"), "1969-12-31");
        assert_eq!(s(&item, "window_product"), "1969-12-31T23:59:00Z|p|1");
        assert_eq!(s(&item, "rank"), rank(&result));
        assert_eq!(n(&item, "unique_user_count"), "5");
        assert_eq!(n(&item, "event_count"), "9");
        assert_eq!(item.get("approximate"), Some(&AttributeValue::Bool(false)));
        assert_eq!(item.len(), 9);
    }

    #[test]
    fn a_range_cursor_resumes_at_its_rows_index_key() {
        let cursor = RangeCursor {
            window_start_ms: 1_704_153_540_000, // 2024-01-01T23:59:00Z
            product_id: "p|ü".into(),
        };
        let result = window("p|ü", cursor.window_start_ms, 1, 1, false);
        let key = range_start_key(&cursor);
        let item = result_item_of(&result);
        for name in ["day", "window_product", "product_id", "window_start"] {
            assert_eq!(key.get(name), item.get(name), "{name}");
        }
        assert_eq!(key.len(), 4);
    }

    fn checkpoints() -> Vec<Checkpoint> {
        vec![
            Checkpoint::initial(),
            Checkpoint {
                version: Checkpoint::VERSION,
                resume_offset: 17,
                highest_offset: Some(41),
                max_event_time_ms: Some(1_704_110_459_999),
                watermark_ms: Some(1_704_110_449_999),
                stats: EngineStats {
                    events: 40,
                    late: 2,
                    results: 9,
                    refires: 1,
                },
            },
            Checkpoint {
                version: Checkpoint::VERSION,
                resume_offset: u64::MAX,
                highest_offset: Some(u64::MAX - 1),
                max_event_time_ms: Some(-1),
                watermark_ms: Some(-86_400_001),
                stats: EngineStats {
                    events: u64::MAX,
                    late: u64::MAX,
                    results: u64::MAX,
                    refires: u64::MAX,
                },
            },
            Checkpoint {
                version: 0,
                resume_offset: 3,
                highest_offset: None,
                max_event_time_ms: Some(LAST_MINUTE),
                watermark_ms: None,
                stats: EngineStats::default(),
            },
            Checkpoint {
                version: Checkpoint::VERSION,
                resume_offset: 0,
                highest_offset: Some(0),
                max_event_time_ms: None,
                watermark_ms: Some(FIRST_MINUTE),
                stats: EngineStats::default(),
            },
        ]
    }

    #[test]
    fn checkpoints_round_trip_through_their_items() {
        for checkpoint in checkpoints() {
            let key = AttributeValue::S("group/topic/3".into());
            let item = as_read(checkpoint_item(key.clone(), &checkpoint).expect("encoded"));
            assert_eq!(
                checkpoint_from_item(&item, 3, "checkpoints").as_ref(),
                Ok(&checkpoint),
                "{item:?}"
            );
            assert_eq!(item.get("stream_partition"), Some(&key));
            assert_eq!(
                n(&item, "next_offset"),
                next_offset(&checkpoint).to_string()
            );
            assert_eq!(
                n(&item, "resume_offset"),
                checkpoint.resume_offset.to_string()
            );
            // The watermark, beside the JSON, is what `latest_fired` reads alone.
            assert_eq!(watermark_of(&item), checkpoint.watermark_ms);
            match checkpoint.watermark_ms {
                Some(ms) => assert_eq!(s(&item, "watermark"), format_rfc3339_ms(ms)),
                None => assert!(!item.contains_key("watermark")),
            }
            assert_eq!(
                item.len(),
                4 + 2 * usize::from(checkpoint.watermark_ms.is_some())
            );
        }
    }

    fn result_error(field: &str) -> StoreError {
        StoreError {
            store: "dynamodb",
            message: format!("a result item has no valid `{field}`"),
        }
    }

    #[test]
    fn a_result_item_missing_an_attribute_is_an_error() {
        let item = result_item_of(&window("p1", 0, 1, 2, false));
        for field in [
            "product_id",
            "window_start",
            "unique_user_count",
            "event_count",
        ] {
            let mut damaged = item.clone();
            damaged.remove(field);
            assert_eq!(result_from_item(&damaged), Err(result_error(field)));
        }
        assert_eq!(
            result_from_item(&HashMap::new()),
            Err(result_error("product_id"))
        );
        // The attributes a read does not use may be missing (`approximate` reads as false).
        let mut partial = item.clone();
        for field in ["window_end", "rank", "day", "window_product", "approximate"] {
            partial.remove(field);
        }
        assert_eq!(result_from_item(&partial), Ok(window("p1", 0, 1, 2, false)));
    }

    #[test]
    fn a_result_item_with_a_wrong_type_is_an_error() {
        let item = result_item_of(&window("p1", 0, 1, 2, true));
        let wrong = [
            ("product_id", AttributeValue::N("1".into())),
            ("window_start", AttributeValue::N("0".into())),
            ("unique_user_count", AttributeValue::S("1".into())),
            ("event_count", AttributeValue::Bool(true)),
            ("event_count", AttributeValue::Null(true)),
        ];
        for (field, value) in wrong {
            let mut damaged = item.clone();
            damaged.insert(field.to_owned(), value);
            assert_eq!(result_from_item(&damaged), Err(result_error(field)));
        }
        // `approximate` of another type reads as false, as before.
        let mut damaged = item.clone();
        damaged.insert("approximate".to_owned(), AttributeValue::S("true".into()));
        assert!(!result_from_item(&damaged).expect("decoded").approximate);
    }

    #[test]
    fn a_result_item_with_a_bad_number_or_time_is_an_error() {
        let item = result_item_of(&window("p1", 0, 1, 2, false));
        let numbers = ["", "-1", "1.5", "1e3", "abc", " 1", "18446744073709551616"];
        for field in ["unique_user_count", "event_count"] {
            for bad in numbers {
                let mut damaged = item.clone();
                damaged.insert(field.to_owned(), AttributeValue::N(bad.into()));
                assert_eq!(
                    result_from_item(&damaged),
                    Err(result_error(field)),
                    "{bad:?}"
                );
            }
        }
        let times = [
            "",
            "yesterday",
            "2024-01-01",
            "2024-13-01T00:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00Zjunk",
            "２０２４-01-01T00:00:00Z",
        ];
        for bad in times {
            let mut damaged = item.clone();
            damaged.insert("window_start".to_owned(), AttributeValue::S(bad.into()));
            assert_eq!(
                result_from_item(&damaged),
                Err(result_error("window_start")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_malformed_checkpoint_item_is_an_error() {
        let item = as_read(
            checkpoint_item(AttributeValue::S("g/t/2".into()), &checkpoints()[1]).expect("encoded"),
        );
        let no_string = StoreError {
            store: "dynamodb",
            message: "the checkpoint item of partition 2 in cp has no `checkpoint` string".into(),
        };
        let mut missing = item.clone();
        missing.remove("checkpoint");
        assert_eq!(
            checkpoint_from_item(&missing, 2, "cp"),
            Err(no_string.clone())
        );
        let mut wrong = item.clone();
        wrong.insert("checkpoint".into(), AttributeValue::N("1".into()));
        assert_eq!(checkpoint_from_item(&wrong, 2, "cp"), Err(no_string));
        for bad in [
            "",
            "{",
            "null",
            "[]",
            r#"{"version":1}"#,
            r#"{"version":1,"resume_offset":-1,"highest_offset":null,"max_event_time_ms":null,"watermark_ms":null,"stats":{"events":0,"late":0,"results":0,"refires":0}}"#,
        ] {
            let mut damaged = item.clone();
            damaged.insert("checkpoint".into(), AttributeValue::S(bad.into()));
            let error = checkpoint_from_item(&damaged, 2, "cp").expect_err(bad);
            assert_eq!(error.store, "dynamodb");
            assert!(
                error
                    .message
                    .starts_with("the checkpoint of partition 2 in cp is not valid: "),
                "{bad:?}: {error}"
            );
        }
        // A watermark that is not a number is no watermark (the partition has not fired).
        let mut damaged = item.clone();
        damaged.insert("watermark_ms".into(), AttributeValue::N("soon".into()));
        assert_eq!(watermark_of(&damaged), None);
        damaged.insert("watermark_ms".into(), AttributeValue::S("1".into()));
        assert_eq!(watermark_of(&damaged), None);
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn any_window() -> impl Strategy<Value = WindowResult> {
            (
                any::<String>(),
                FIRST_MINUTE..=LAST_MINUTE,
                any::<u64>(),
                any::<u64>(),
                any::<bool>(),
            )
                .prop_map(|(product, start, users, events, approximate)| {
                    window(&product, start, users, events, approximate)
                })
        }

        fn any_checkpoint() -> impl Strategy<Value = Checkpoint> {
            (
                any::<u32>(),
                any::<u64>(),
                any::<Option<u64>>(),
                any::<Option<i64>>(),
                any::<Option<i64>>(),
                any::<[u64; 4]>(),
            )
                .prop_map(
                    |(
                        version,
                        resume_offset,
                        highest_offset,
                        max_event_time_ms,
                        watermark_ms,
                        s,
                    )| {
                        Checkpoint {
                            version,
                            resume_offset,
                            highest_offset,
                            max_event_time_ms,
                            watermark_ms,
                            stats: EngineStats {
                                events: s[0],
                                late: s[1],
                                results: s[2],
                                refires: s[3],
                            },
                        }
                    },
                )
        }

        proptest! {
            #[test]
            fn a_window_result_round_trips(result in any_window()) {
                let item = result_item_of(&result);
                prop_assert_eq!(result_from_item(&item), Ok(result));
            }

            #[test]
            fn a_checkpoint_round_trips(checkpoint in any_checkpoint()) {
                let key = AttributeValue::S("g/t/0".into());
                let item = as_read(checkpoint_item(key, &checkpoint).expect("encoded"));
                prop_assert_eq!(watermark_of(&item), checkpoint.watermark_ms);
                prop_assert_eq!(checkpoint_from_item(&item, 0, "cp"), Ok(checkpoint));
            }

            #[test]
            fn a_damaged_result_item_never_panics(
                result in any_window(),
                field in prop::sample::select(vec![
                    "product_id", "window_start", "unique_user_count", "event_count", "approximate",
                ]),
                text in any::<String>(),
                kind in 0..3u8,
            ) {
                let mut item = result_item_of(&result);
                let value = match kind {
                    0 => AttributeValue::S(text),
                    1 => AttributeValue::N(text),
                    _ => AttributeValue::Bool(text.is_empty()),
                };
                item.insert(field.to_owned(), value);
                if let Err(error) = result_from_item(&item) {
                    prop_assert_eq!(error, result_error(field));
                }
            }
        }
    }
}
