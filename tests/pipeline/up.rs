//! `ecom up` as a user runs it: one process over the embedded log and store, killed with
//! `kill -9` and restarted on its data directory, answering through the analytics API.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use event_log::embedded::{EmbeddedLog, LogConfig};
use event_log::{FixedStart, PartitionReader, ReadBatch, StartAt};
use rand::{Rng, SeedableRng};
use stream_engine::decode_event;
use testkit::free_port;

use crate::support::*;

/// Every record value of `ecom up`'s input log, partition by partition in log order (the
/// process must be stopped: opening the log cuts torn tails).
fn input_log(data_dir: &std::path::Path) -> Vec<Vec<u8>> {
    let log = EmbeddedLog::open(
        &data_dir.join("log/ecom-raw-events"),
        LogConfig {
            partitions: PARTITIONS,
            ..LogConfig::default()
        },
    )
    .expect("the log opens");
    let reader = log.reader("test-reader", Arc::new(FixedStart(StartAt::Beginning)));
    let mut by_partition: Vec<Vec<Vec<u8>>> = vec![Vec::new(); PARTITIONS as usize];
    // The first poll assigns the partitions and reads nothing.
    assert!(reader.poll(1, Duration::ZERO).expect("read").is_none());
    while let Some(batch) = reader
        .poll(10_000, Duration::from_millis(100))
        .expect("read")
    {
        for (p, records) in batch.runs() {
            for r in records {
                by_partition[p as usize].push(r.payload.expect("a value").to_vec());
            }
        }
    }
    by_partition.concat()
}

/// Waits until the analytics API says every partition fired `window` (or later).
async fn wait_fired(url: &str, window: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        if latest_fired(url)
            .await
            .is_some_and(|w| w.as_str() >= window)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{window} did not fire within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecom_up_killed_three_times_loses_no_acknowledged_event_and_stays_exact() {
    let _serial = serial().await;
    let dir = tempfile::tempdir().expect("a data directory");
    let port = free_port();
    let mut up_process = up(dir.path(), port, &[]);
    up_process.wait_ready().await;
    let url = up_process.url().to_owned();

    let mut events = generate(60_000, 11);
    events.extend(sentinels(&events));
    // POSTs each batch until it gets 202, through the kills (a batch whose answer was lost may
    // be in the log twice: that changes event counts, never unique users). The stream is paced,
    // and its last fifth (with the sentinels) held back until every kill has happened, so that
    // each kill lands mid-stream, with windows open.
    let kills_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poster = {
        let (events, url, kills_done) = (events.clone(), url.clone(), kills_done.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut acknowledged = Vec::new();
            let held_back = events.len() * 4 / 5;
            for (i, chunk) in events.chunks(500).enumerate() {
                while i * 500 >= held_back && !kills_done.load(std::sync::atomic::Ordering::SeqCst)
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    assert!(Instant::now() < deadline, "a batch was never accepted");
                    let sent = http
                        .post(format!("{url}/api/v1/events"))
                        .header("content-type", "application/x-ndjson")
                        .body(ndjson(chunk))
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == 202 => {
                            acknowledged.extend_from_slice(chunk);
                            break;
                        }
                        Ok(r) if r.status() == 503 => {}
                        Ok(r) => panic!("{} {}", r.status(), r.text().await.unwrap_or_default()),
                        // The process is down, or died mid-request.
                        Err(_) => {}
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            acknowledged
        })
    };
    let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..1200))).await;
        up_process.kill9();
        up_process = up(dir.path(), port, &[]);
        up_process.wait_healthy().await;
    }
    kills_done.store(true, std::sync::atomic::Ordering::SeqCst);
    let acknowledged = poster.await.expect("the poster");
    assert_eq!(acknowledged.len(), events.len());
    wait_fired(
        &url,
        &last_window(&events[..events.len() - PARTITIONS as usize]),
        Duration::from_secs(120),
    )
    .await;
    assert!(up_process.terminate().success(), "a clean stop");

    // Every acknowledged event is in the log, and the oracle over the log is the answer.
    let log = input_log(dir.path());
    let mut in_log: HashMap<&[u8], usize> = HashMap::new();
    for value in &log {
        *in_log.entry(value.as_slice()).or_default() += 1;
    }
    for event in &acknowledged {
        let mut line = Vec::new();
        event.write_json(&mut line);
        let line = line.strip_suffix(b"\n").unwrap_or(&line);
        let left = in_log
            .get_mut(line)
            .expect("an acknowledged event is missing from the log");
        *left = left
            .checked_sub(1)
            .expect("an acknowledged event is in the log fewer times than acknowledged");
    }
    let rows = log.iter().map(|value| {
        let event = decode_event(value).expect("the log holds valid events");
        (
            event.product_id.to_string(),
            event.user_id.to_string(),
            event.timestamp_ms,
        )
    });
    let expected = oracle_of(rows);
    assert!(expected.len() > 500, "{} windows", expected.len());

    let up_process = up(dir.path(), port, &[]);
    up_process.wait_ready().await;
    let got = analytics_windows(&url, "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z").await;
    assert_same_windows(&got, &expected, |g, e| g == e);
    // Against what was sent: the same windows and unique users; event counts can only be
    // higher (a batch posted twice).
    assert_same_windows(&got, &oracle(&events), |g, e| g.0 == e.0 && g.1 >= e.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecom_up_streams_every_result_and_resumes_after_a_clean_restart() {
    let _serial = serial().await;
    let dir = tempfile::tempdir().expect("a data directory");
    let port = free_port();
    let up_process = up(dir.path(), port, &[]);
    up_process.wait_ready().await;
    let url = up_process.url().to_owned();

    // A client that opens the stream and never reads it must not hold anything up.
    let mut stalled = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    tokio::io::AsyncWriteExt::write_all(
        &mut stalled,
        b"GET /api/v1/analytics/stream HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await
    .expect("request");
    let stream = tokio::spawn(collect_stream(url.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;

    let first = generate(30_000, 21);
    let mut sent = first.clone();
    sent.extend(sentinels(&first));
    for chunk in sent.chunks(1_000) {
        let (status, body) = up_process.post_events(chunk).await;
        assert_eq!(status, 202, "{body}");
    }
    let expected = oracle(&sent);
    // The stream carries every result (the latest per key is the stored one).
    let streamed = stream.await.expect("the stream reader");
    assert_same_windows(&streamed, &expected, |g, e| g == e);
    wait_fired(&url, &last_window(&first), Duration::from_secs(60)).await;
    let got = analytics_windows(&url, "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z").await;
    assert_same_windows(&got, &expected, |g, e| g == e);
    drop(stalled);

    // Stop cleanly, start again, and go on where the stream stood.
    let mut up_process = up_process;
    assert!(up_process.terminate().success());
    let up_process = up(dir.path(), port, &[]);
    up_process.wait_ready().await;
    let offset = 10 * 60_000;
    let second: Vec<_> = generate(20_000, 22)
        .into_iter()
        .map(|mut e| {
            e.timestamp_ms += offset + 3 * 60_000;
            e
        })
        .collect();
    let mut all = sent.clone();
    all.extend(second.iter().cloned());
    all.extend(sentinels(&all));
    for chunk in all[sent.len()..].chunks(1_000) {
        let (status, body) = up_process.post_events(chunk).await;
        assert_eq!(status, 202, "{body}");
    }
    wait_fired(
        &url,
        &last_window(&all[..all.len() - PARTITIONS as usize]),
        Duration::from_secs(60),
    )
    .await;
    let got = analytics_windows(&url, "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z").await;
    assert_same_windows(&got, &oracle(&all), |g, e| g == e);
    let metrics = up_process.metrics().await;
    assert_eq!(metric(&metrics, "stream_events_late_total"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecom_up_demo_traffic_flows_through_the_pipeline() {
    let _serial = serial().await;
    let dir = tempfile::tempdir().expect("a data directory");
    let up_process = up(dir.path(), free_port(), &["--demo-rate", "500"]);
    up_process.wait_ready().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = up_process.metrics().await;
        if metric(&metrics, "ingest_events_accepted_total") > 0.0
            && metric(&metrics, "stream_events_total") > 0.0
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no demo traffic reached the engine"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The embedded log's own metrics are beside the others.
    let metrics = up_process.metrics().await;
    assert!(
        metric(
            &metrics,
            r#"event_log_group_commits_total{topic="ecom-raw-events"}"#
        ) > 0.0
    );
    assert!(metrics.contains(r#"event_log_end_offset{topic="ecom-raw-events",partition="3"}"#));
    // One description of every route it serves, at the gateway's address.
    let doc: serde_json::Value = reqwest::get(format!("{}/api/v1/openapi.json", up_process.url()))
        .await
        .expect("the description answers")
        .json()
        .await
        .expect("JSON");
    for path in [
        "/api/v1/events",
        "/api/v1/analytics/top",
        "/api/v1/analytics/stream",
        "/api/v1/auth/token",
        "/api/v1/products",
        "/api/v1/orders/{id}/status",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not described");
    }
}

/// `ecom health`, the container health check: 0 for a running process's `/healthz`, 1 (never
/// Docker's reserved 2) with the reason for a wrong path, a closed port or a silent server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecom_health_probes_a_running_process() {
    let _serial = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let up = up(dir.path(), port, &[]);
    up.wait_ready().await;
    let health = |args: &[&str], addr: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ecom"))
            .arg("health")
            .args(args)
            .env("ECOM_ADDR", addr)
            .output()
            .unwrap()
    };
    // The default: /healthz on ECOM_ADDR's port, as inside the service's own container.
    let healthy = health(&[], &format!("0.0.0.0:{port}"));
    assert_eq!(healthy.status.code(), Some(0), "{healthy:?}");
    let wrong = health(&["--url", &format!("http://127.0.0.1:{port}/nope")], "");
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("answered 404"));
    let closed = health(&[], &format!("127.0.0.1:{}", free_port()));
    assert_eq!(closed.status.code(), Some(1));
    // A server that accepts and never answers: refused after the timeout, not hung.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let started = Instant::now();
    let stalled = health(&["--timeout", "300ms"], &format!("127.0.0.1:{silent_port}"));
    assert_eq!(stalled.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(silent);
}

/// A late event is visible to its sender: ingest's 202 counts the events whose window had
/// closed in their partition when they arrived, as the engine then counts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_tells_the_sender_which_events_arrive_after_their_window_closed() {
    let _serial = serial().await;
    let dir = tempfile::tempdir().expect("a data directory");
    let up_process = up(dir.path(), free_port(), &[]);
    up_process.wait_ready().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let event = |user: u32, timestamp_ms: i64| stream_engine::sample::SampleEvent {
        user,
        product: 42,
        event_type: "VIEW_PRODUCT",
        timestamp_ms,
        offset_minutes: 0,
        session: 0,
    };
    let (status, body) = up_process.post_events(&[event(1, now)]).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["late"], 0, "{body}");
    // Once the engine has read it (its partition's watermark is now - 10 s), an event of five
    // minutes ago is late; one of now, beside it, is not.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut sent_late = 0;
    loop {
        let (status, body) = up_process
            .post_events(&[event(2, now - 5 * 60_000), event(3, now)])
            .await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["accepted"], 2, "{body}");
        sent_late += 1;
        if body["late"] == 1 {
            break;
        }
        assert_eq!(body["late"], 0, "{body}");
        assert!(Instant::now() < deadline, "never counted late: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The engine agrees: every old event it read was late.
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&up_process.metrics().await, "stream_events_late_total") < f64::from(sent_late) {
        assert!(
            Instant::now() < deadline,
            "the engine did not count them late"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
