//! The whole pipeline on real servers: `ecom ingest`, `ecom stream-engine` and
//! `ecom analytics` run as processes against tansu (Kafka protocol) and moto (DynamoDB), both
//! started by testkit; and `ecom up` on its embedded log and store ([`up`]).
//!
//! Every test compares what landed in DynamoDB and on the results topic with a brute-force
//! oracle over the events in the order each partition received them. At the end of a stream
//! one sentinel event per partition, minutes after the rest, moves every watermark past the
//! last real window so that all of them fire; the sentinels' own windows stay open.

mod crud;
mod dashboard;
mod data_dir;
mod import_folder;
mod readme;
mod saga;
mod support;
mod traces;
mod up;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use support::*;

/// End to end: 300,000 generated events POSTed to ingest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_to_dynamodb_and_results_topic_equal_the_oracle() {
    let _serial = serial().await;
    let stack = Stack::start();
    let engine = stack.engine(&[]);
    engine.wait_healthy().await;
    let ingest = stack.ingest(&[]);
    ingest.wait_ready().await;
    // The engine has created the results topic by now; the API's stream follows it.
    engine.wait_ready().await;
    let analytics = stack.analytics();
    analytics.wait_ready().await;
    let stream = tokio::spawn(collect_stream(analytics.url().to_owned()));
    // Let the stream's subscription settle before the first result can fire.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut events = generate(300_000, 1);
    events.extend(sentinels(&events));
    for chunk in events.chunks(2_000) {
        let (status, body) = ingest.post_events(chunk).await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["accepted"], chunk.len());
    }
    let expected = oracle(&events);
    assert!(expected.len() > 1_000, "{} windows", expected.len());
    stack
        .wait_for_results(&expected, Duration::from_secs(180))
        .await;
    stack.assert_results_topic(&expected).await;
    // The analytics API over DynamoDB answers the same, and streamed every result.
    let got = analytics_windows(
        analytics.url(),
        "2024-01-01T00:00:00Z",
        "2024-01-02T00:00:00Z",
    )
    .await;
    assert_same_windows(&got, &expected, |g, e| g == e);
    let streamed = stream.await.expect("the stream reader");
    let streamed: Windows = streamed
        .into_iter()
        .filter(|(k, _)| expected.contains_key(k))
        .collect();
    assert_same_windows(&streamed, &expected, |g, e| g == e);

    let metrics = engine.metrics().await;
    assert_eq!(metric(&metrics, "stream_events_total"), events.len() as f64);
    assert_eq!(metric(&metrics, "stream_events_late_total"), 0.0);
    // SIGTERM: both stop cleanly.
    let (mut engine, mut ingest) = (engine, ingest);
    assert!(ingest.terminate().success());
    assert!(engine.terminate().success());
}

/// `kill -9` of the engine at random moments, three times, while events flow. With an
/// allowed lateness, so that results are written with the conditional (zombie-proof) writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_killed_three_times_mid_stream_loses_and_doubles_nothing() {
    let _serial = serial().await;
    let stack = Stack::start();
    // Nothing in the stream is late, so the lateness changes how results are written, not
    // what they are.
    let lateness = [("ECOM_ALLOWED_LATENESS", "30s")];
    let mut engine = stack.engine(&lateness);
    engine.wait_healthy().await;
    let ingest = Arc::new(stack.ingest(&[]));
    ingest.wait_ready().await;

    let mut events = generate(200_000, 2);
    events.extend(sentinels(&events));
    let expected = oracle(&events);
    let kills_done = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (ingest, kills_done, events) = (ingest.clone(), kills_done.clone(), events.clone());
        tokio::spawn(async move {
            let held_back = events.len() * 4 / 5;
            for (i, chunk) in events.chunks(1_000).enumerate() {
                // Keep the stream flowing until every kill has happened.
                while i * 1_000 >= held_back && !kills_done.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let (status, body) = ingest.post_events(chunk).await;
                assert_eq!(status, 202, "{body}");
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        })
    };
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    for kill in 0..3 {
        engine.wait_processing().await;
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..2_500))).await;
        assert!(
            !feeder.is_finished(),
            "kill {kill} came after the stream ended"
        );
        engine.kill9();
        engine = stack.engine(&lateness);
    }
    kills_done.store(true, Ordering::SeqCst);
    feeder.await.expect("feeder");
    stack
        .wait_for_results(&expected, Duration::from_secs(240))
        .await;
    stack.assert_results_topic(&expected).await;
}

/// Four partitions; one engine, then a second and a third while events flow, then two stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engines_joining_and_leaving_the_group_keep_results_exact() {
    let _serial = serial().await;
    let stack = Stack::start();
    let first = stack.engine(&[]);
    first.wait_healthy().await;
    let ingest = stack.ingest(&[]);
    ingest.wait_ready().await;

    let mut events = generate(150_000, 3);
    events.extend(sentinels(&events));
    let expected = oracle(&events);
    let chunks: Vec<_> = events.chunks(1_000).collect();
    let third = chunks.len() / 3;
    let mut others = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        if i == third || i == 2 * third {
            let engine = stack.engine(&[]);
            engine.wait_processing().await;
            others.push(engine);
        }
        let (status, body) = ingest.post_events(chunk).await;
        assert_eq!(status, 202, "{body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for mut engine in others {
        let status = engine.terminate();
        assert!(status.success(), "a stopped engine exited with {status}");
    }
    stack
        .wait_for_results(&expected, Duration::from_secs(240))
        .await;
    stack.assert_results_topic(&expected).await;
    // The first engine ends up owning every partition, once the group has settled after the
    // others left (a rebalance in progress shows none assigned for a moment).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let assigned = metric(&first.metrics().await, "stream_assigned_partitions");
        if assigned == 4.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the remaining engine owns {assigned} partitions, not 4"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The broker stops answering mid-stream: ingest answers 503 and never 202 meanwhile; a
/// client that retries its refused requests once the broker is back gets every event counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_gets_503s_and_every_accepted_event_is_counted() {
    let _serial = serial().await;
    let stack = Stack::start();
    let engine = stack.engine(&[]);
    engine.wait_healthy().await;
    let ingest = stack.ingest(&[("ECOM_DELIVERY_TIMEOUT", "2s")]);
    ingest.wait_ready().await;

    let mut events = generate(60_000, 4);
    events.extend(sentinels(&events));
    let chunks: Vec<_> = events.chunks(1_000).collect();
    let outage = chunks.len() / 2;
    let mut refused = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        if i == outage {
            stack.broker.freeze();
        }
        if i == outage + 3 {
            stack.broker.thaw();
        }
        let (status, body) = ingest.post_events(chunk).await;
        if (outage..outage + 3).contains(&i) {
            assert_eq!(status, 503, "while the broker is frozen: {body}");
            assert_eq!(body["error"]["code"], "log_unavailable");
            refused.push(*chunk);
            continue;
        }
        // What a client does with a 503: retry the same request in order, until accepted.
        for slow in refused.drain(..) {
            let (status, body) = post_until_accepted(&ingest, slow).await;
            assert_eq!(status, 202, "{body}");
        }
        let (status, body) = if status == 202 {
            (status, body)
        } else {
            post_until_accepted(&ingest, chunk).await
        };
        assert_eq!(status, 202, "{body}");
    }
    // Requests that timed out may have been written in part before their retry: event counts
    // can only be higher, unique users exactly the oracle's.
    let expected = oracle(&events);
    let got = stack
        .wait_for(Duration::from_secs(180), |got| {
            got.len() == expected.len()
                && expected
                    .iter()
                    .all(|(k, v)| got.get(k).is_some_and(|g| g.0 == v.0 && g.1 >= v.1))
        })
        .await;
    assert_same_windows(&got, &expected, |g, e| g.0 == e.0 && g.1 >= e.1);
}

/// Records that are not events, produced straight to the topic, go to the dead-letter topic
/// with their reason, and late events to the late-events topic; the engine counts both and
/// keeps going.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_records_go_to_the_dead_letter_topic_and_late_events_to_theirs() {
    let _serial = serial().await;
    let stack = Stack::start();
    let engine = stack.engine(&[]);
    engine.wait_healthy().await;

    let mut events = generate(20_000, 5);
    events.extend(sentinels(&events));
    // After the sentinels every partition's first minute has fired: these three are late.
    let first = events[0].clone();
    let late: Vec<_> = (1..=3)
        .map(|product| stream_engine::sample::SampleEvent {
            product,
            ..first.clone()
        })
        .collect();
    events.extend(late.iter().cloned());
    let bad: [(&str, Option<&[u8]>); 6] = [
        ("invalid_json", Some(b"{\"user_id\":")),
        ("not_an_object", Some(b"[1,2]")),
        ("missing_field", Some(br#"{"user_id":"u1","event_type":"VIEW_PRODUCT","timestamp":"2024-01-01T12:00:00Z"}"#)),
        ("bad_timestamp", Some(br#"{"user_id":"u1","product_id":"p1","event_type":"VIEW_PRODUCT","timestamp":"noon"}"#)),
        ("empty_id", Some(br#"{"user_id":"","product_id":"p1","event_type":"VIEW_PRODUCT","timestamp":"2024-01-01T12:00:00Z"}"#)),
        ("empty_record", None),
    ];
    let mut records: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    let mut bad_count = 0;
    for (i, event) in events.iter().enumerate() {
        if i % 1_000 == 500 {
            bad_count += 1;
            let (_, payload) = bad[(i / 1_000) % bad.len()];
            records.push((b"junk".to_vec(), payload.map(<[u8]>::to_vec)));
        }
        let mut line = Vec::new();
        event.write_json(&mut line);
        line.pop();
        records.push((event.product_id().into_bytes(), Some(line)));
    }
    stack.produce(&records).await;

    let expected = oracle(&events);
    stack
        .wait_for_results(&expected, Duration::from_secs(120))
        .await;
    let dead = stack.read_topic(DEAD_LETTERS);
    assert_eq!(dead.len(), bad_count);
    let mut by_code = BTreeMap::<String, usize>::new();
    for record in &dead {
        let code = record.header("ecom-error-code").expect("a reason header");
        *by_code.entry(code).or_default() += 1;
        assert!(record.header("ecom-source-offset").is_some());
        assert_eq!(record.key.as_deref(), Some(&b"junk"[..]));
    }
    let metrics = engine.metrics().await;
    for (code, _) in bad {
        let n = by_code.get(code).copied().unwrap_or(0);
        assert!(n > 0, "no dead letter with code {code}: {by_code:?}");
        let counted = metric(
            &metrics,
            &format!("stream_events_rejected_total{{reason=\"{code}\"}}"),
        );
        assert_eq!(counted, n as f64, "{code}");
    }
    assert_eq!(
        metric(&metrics, "stream_events_total"),
        (events.len() - late.len()) as f64
    );
    assert_eq!(
        metric(&metrics, "stream_events_late_total"),
        late.len() as f64
    );
    let mut late_products: Vec<String> = stack
        .read_topic(LATE_EVENTS)
        .iter()
        .map(|record| {
            assert!(record.header("ecom-source-partition").is_some());
            let value: serde_json::Value =
                serde_json::from_slice(&record.payload).expect("JSON late event");
            assert_eq!(
                record.key.as_deref(),
                value["product_id"].as_str().map(str::as_bytes)
            );
            assert!(value["watermark"].as_str().is_some(), "{value}");
            value["product_id"].as_str().expect("product_id").to_owned()
        })
        .collect();
    late_products.sort();
    assert_eq!(late_products, ["p1", "p2", "p3"]);
    engine.wait_healthy().await;
}

/// A partition that goes quiet closes its windows by processing time after the idle timeout:
/// no event ever moves the watermark past the last window here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_partitions_close_their_windows_after_the_idle_timeout() {
    let _serial = serial().await;
    let stack = Stack::start();
    let engine = stack.engine(&[("ECOM_IDLE_TIMEOUT", "1s")]);
    engine.wait_healthy().await;

    // 6 s of events ending just before 12:01:00: the watermark stops near 12:00:49, so the
    // 12:00 window needs about 11 s of idleness to close.
    let events: Vec<_> = stream_engine::sample::Sample::new(stream_engine::sample::SampleConfig {
        events: 6_000,
        products: 50,
        users: 500,
        events_per_second: 1_000,
        start_ms: 1_704_110_453_000, // 2024-01-01T12:00:53Z
        seed: 6,
        ..Default::default()
    })
    .collect();
    let records: Vec<_> = events
        .iter()
        .map(|event| {
            let mut line = Vec::new();
            event.write_json(&mut line);
            line.pop();
            (event.product_id().into_bytes(), Some(line))
        })
        .collect();
    stack.produce(&records).await;
    // Every window of these events, as if the stream had gone on.
    let mut closed = events.clone();
    closed.extend(sentinels(&events));
    let expected = oracle(&closed);
    assert!(!expected.is_empty());
    assert!(oracle(&events).is_empty(), "no window closes by event time");
    stack
        .wait_for_results(&expected, Duration::from_secs(90))
        .await;
}

/// With creation switched off and no tables, the engine stops at once with an error instead
/// of running without anywhere to store results.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_tables_and_not_allowed_to_create_them_the_engine_exits() {
    let _serial = serial().await;
    let stack = Stack::start();
    let (status, stderr) = stack.run_to_exit(
        "stream-engine",
        &[("ECOM_NO_CREATE", "1")],
        Duration::from_secs(30),
    );
    assert_eq!(status.code(), Some(2), "{status}: {stderr}");
    assert!(
        stderr.contains("table ecom-analytics does not exist"),
        "{stderr}"
    );
}
