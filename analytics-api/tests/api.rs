//! The analytics API over a real store (SQLite in a temporary directory; the same API over
//! DynamoDB runs in the pipeline tests), through HTTP: queries, bad parameters, the live stream
//! and its slow clients.

use std::sync::Arc;
use std::time::Duration;

use analytics_api::{Config, Feed};
use result_store::sqlite::SqliteStore;
use result_store::{CheckpointStore, ResultStore, Writes};
use serde_json::Value;
use stream_engine::Checkpoint;
use testkit::window_result as result;

const T0: i64 = 1_704_110_400_000; // 2024-01-01T12:00:00Z
const MINUTE: i64 = 60_000;

struct Api {
    url: String,
    http: reqwest::Client,
    store: Arc<SqliteStore>,
    feed: Feed,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(max_stream_clients: usize, feed: Feed) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("store.db"), "g/t", Writes::Unconditional)
            .await
            .unwrap(),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        max_stream_clients,
    };
    let (addr, server) = analytics_api::build(config, store.clone(), feed.clone(), async {
        let _ = stopped.await;
    })
    .await
    .unwrap();
    tokio::spawn(server);
    Api {
        url: format!("http://{addr}"),
        http: reqwest::Client::new(),
        store,
        feed,
        _dir: dir,
        _stop: stop,
    }
}

impl Api {
    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

async fn seeded() -> Api {
    let api = start(4, Feed::default()).await;
    let mut results = Vec::new();
    for minute in 0..30 {
        for (p, users) in [("a", 5), ("b", 9), ("c", 5), ("d", 1)] {
            results.push(result(p, T0 + minute * MINUTE, users + minute as u64, 20));
        }
    }
    api.store.put_results(&results).await.unwrap();
    // Partition 0 has fired up to 12:20, partition 1 up to 12:11.
    for (partition, watermark) in [(0, T0 + 21 * MINUTE), (1, T0 + 12 * MINUTE + 5_000)] {
        let checkpoint = Checkpoint {
            highest_offset: Some(10),
            max_event_time_ms: Some(watermark + 10_000),
            watermark_ms: Some(watermark),
            ..Checkpoint::initial()
        };
        api.store
            .save_checkpoint(partition, &checkpoint)
            .await
            .unwrap();
    }
    api
}

#[tokio::test]
async fn a_product_s_windows_page_newest_first() {
    let api = seeded().await;
    let (status, body) = api
        .get("/api/v1/analytics/products/b/windows?limit=3")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["product_id"], "b");
    let starts: Vec<&str> = body["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["window_start"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        [
            "2024-01-01T12:29:00Z",
            "2024-01-01T12:28:00Z",
            "2024-01-01T12:27:00Z"
        ]
    );
    assert_eq!(body["windows"][0]["window_end"], "2024-01-01T12:30:00Z");
    assert_eq!(body["windows"][0]["unique_user_count"], 38);
    assert_eq!(body["windows"][0]["event_count"], 20);
    assert_eq!(body["windows"][0]["approximate"], false);
    // Walk every page with `next`.
    let mut seen = starts.len();
    let mut next = body["next"].as_str().map(str::to_owned);
    while let Some(before) = next {
        let (status, page) = api
            .get(&format!(
                "/api/v1/analytics/products/b/windows?limit=7&before={before}"
            ))
            .await;
        assert_eq!(status, 200);
        seen += page["windows"].as_array().unwrap().len();
        next = page["next"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, 30);
    // The default limit is 10; an unknown product has no windows.
    let (_, body) = api.get("/api/v1/analytics/products/b/windows").await;
    assert_eq!(body["windows"].as_array().unwrap().len(), 10);
    let (status, body) = api.get("/api/v1/analytics/products/nope/windows").await;
    assert_eq!(
        (status, body["windows"].as_array().unwrap().len()),
        (200, 0)
    );
    assert_eq!(body["next"], Value::Null);
}

#[tokio::test]
async fn the_top_defaults_to_the_latest_window_every_partition_fired() {
    let api = seeded().await;
    let (status, body) = api.get("/api/v1/analytics/top?limit=3").await;
    assert_eq!(status, 200, "{body}");
    // Partition 1's watermark (12:12:05) has fired windows up to 12:11.
    assert_eq!(body["window_start"], "2024-01-01T12:11:00Z");
    assert_eq!(body["window_end"], "2024-01-01T12:12:00Z");
    let order: Vec<&str> = body["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["product_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        ["b", "a", "c"],
        "users descending, ties by product_id"
    );
    assert_eq!(body["products"][0]["unique_user_count"], 20);
    let (_, body) = api
        .get("/api/v1/analytics/top?window_start=2024-01-01T12:05:00%2B00:00")
        .await;
    assert_eq!(body["window_start"], "2024-01-01T12:05:00Z");
    assert_eq!(body["products"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn nothing_fired_yet_is_an_empty_top_not_an_error() {
    let api = start(4, Feed::default()).await;
    let (status, body) = api.get("/api/v1/analytics/top").await;
    assert_eq!(status, 200);
    assert_eq!(body["window_start"], Value::Null);
    assert_eq!(body["products"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn a_time_range_pages_through_every_result_once() {
    let api = seeded().await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let path = match &cursor {
            Some(c) => format!(
                "/api/v1/analytics/windows?from=2024-01-01T12:03:00Z&to=2024-01-01T12:13:00Z&limit=7&cursor={c}"
            ),
            None => "/api/v1/analytics/windows?from=2024-01-01T12:03:00Z&to=2024-01-01T12:13:00Z&limit=7".to_owned(),
        };
        let (status, page) = api.get(&path).await;
        assert_eq!(status, 200, "{page}");
        for w in page["windows"].as_array().unwrap() {
            seen.push((
                w["window_start"].as_str().unwrap().to_owned(),
                w["product_id"].as_str().unwrap().to_owned(),
            ));
        }
        cursor = page["next"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen.len(), 40, "ten minutes of four products");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 40, "no result twice");
    assert_eq!(seen[0], ("2024-01-01T12:03:00Z".into(), "a".into()));
    assert_eq!(seen[1], ("2024-01-01T12:03:00Z".into(), "b".into()));
}

#[tokio::test]
async fn bad_parameters_get_400_with_the_standard_error_body() {
    let api = seeded().await;
    let long_id = "x".repeat(200);
    let cases = [
        "/api/v1/analytics/products/a/windows?limit=0".to_owned(),
        "/api/v1/analytics/products/a/windows?limit=1001".to_owned(),
        "/api/v1/analytics/products/a/windows?limit=-3".to_owned(),
        "/api/v1/analytics/products/a/windows?limit=ten".to_owned(),
        "/api/v1/analytics/products/a/windows?limit=99999999999999999999999".to_owned(),
        "/api/v1/analytics/products/a/windows?before=yesterday".to_owned(),
        "/api/v1/analytics/products/a/windows?before=2024-13-01T00:00:00Z".to_owned(),
        "/api/v1/analytics/products/a/windows?before=2024-01-01T12:00:00".to_owned(),
        format!("/api/v1/analytics/products/{long_id}/windows"),
        "/api/v1/analytics/top?window_start=2024-01-01T12:00:30Z".to_owned(),
        "/api/v1/analytics/top?window_start=noon".to_owned(),
        "/api/v1/analytics/top?limit=100000".to_owned(),
        "/api/v1/analytics/windows".to_owned(),
        "/api/v1/analytics/windows?from=2024-01-01T12:00:00Z".to_owned(),
        "/api/v1/analytics/windows?from=2024-01-01T12:00:00Z&to=2024-01-01T12:00:00Z".to_owned(),
        "/api/v1/analytics/windows?from=2024-01-01T12:00:00Z&to=2024-02-01T12:00:01Z".to_owned(),
        "/api/v1/analytics/windows?from=2024-01-01T12:00:00Z&to=2024-01-01T13:00:00Z&cursor=zz"
            .to_owned(),
        "/api/v1/analytics/windows?from=2024-01-01T12:00:00Z&to=2024-01-01T13:00:00Z&cursor=3132"
            .to_owned(),
        "/api/v1/analytics/windows?from=2024-01-01T12:00:00Z&to=2024-01-01T13:00:00Z&limit=0"
            .to_owned(),
        "/api/v1/analytics/top?limit=%FF%FE".to_owned(),
    ];
    for path in &cases {
        let (status, body) = api.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["code"], "invalid_parameter", "{path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{path}"
        );
    }
    // Unknown parameters are ignored.
    let (status, _) = api.get("/api/v1/analytics/top?colour=blue").await;
    assert_eq!(status, 200);
}

/// Reads an SSE body until `done` says enough, or 10 s pass.
async fn read_events(
    response: &mut reqwest::Response,
    mut done: impl FnMut(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done(&events) {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .expect("the stream went quiet")
            .expect("the stream failed");
        let Some(chunk) = chunk else {
            break;
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut name = String::from("message");
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if !data.is_empty() {
                events.push((name, data));
            }
        }
    }
    events
}

#[tokio::test]
async fn the_stream_delivers_each_result_as_a_window_event() {
    let api = start(4, Feed::default()).await;
    let mut response = api
        .http
        .get(format!("{}/api/v1/analytics/stream", api.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    // Subscribed once the response has started.
    for i in 0..5 {
        let json = serde_json::to_string(&result(&format!("p{i}"), T0, i, i)).unwrap();
        api.feed.publish(json.into());
    }
    let events = read_events(&mut response, |e| e.len() >= 5).await;
    assert_eq!(events.len(), 5);
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!(name, "window");
        let value: Value = serde_json::from_str(data).unwrap();
        assert_eq!(value["product_id"], format!("p{i}"));
        assert_eq!(value["window_start"], "2024-01-01T12:00:00Z");
    }
}

#[tokio::test]
async fn a_stream_client_that_falls_behind_is_closed_clearly_and_others_are_served() {
    let api = start(4, Feed::new(16)).await;
    let mut stalled = api
        .http
        .get(format!("{}/api/v1/analytics/stream", api.url))
        .send()
        .await
        .unwrap();
    assert_eq!(stalled.status(), 200);
    // Far more than the socket buffers hold, while the client reads nothing.
    let payload = "x".repeat(400);
    for i in 0..100_000 {
        let json = format!(r#"{{"product_id":"p{i}","pad":"{payload}"}}"#);
        api.feed.publish(json.into());
        if i % 10_000 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // The server goes on answering meanwhile.
    let (status, _) = api.get("/api/v1/analytics/top").await;
    assert_eq!(status, 200);
    let events = read_events(&mut stalled, |e| e.iter().any(|(n, _)| n == "close")).await;
    let (name, data) = events.last().expect("events");
    assert_eq!(name, "close", "the stream ends with a close event");
    let body: Value = serde_json::from_str(data).unwrap();
    assert_eq!(body["error"]["code"], "slow_consumer");
    // And the stream then ends.
    let rest = tokio::time::timeout(Duration::from_secs(10), stalled.chunk())
        .await
        .expect("the stream ends");
    assert!(matches!(rest, Ok(None)), "{rest:?}");
}

#[tokio::test]
async fn stream_clients_are_bounded() {
    let api = start(2, Feed::default()).await;
    let mut open = Vec::new();
    for _ in 0..2 {
        let response = api
            .http
            .get(format!("{}/api/v1/analytics/stream", api.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        open.push(response);
    }
    let (status, body) = api.get("/api/v1/analytics/stream").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "too_many_stream_clients");
    drop(open);
    // Slots free up when clients leave.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let response = api
            .http
            .get(format!("{}/api/v1/analytics/stream", api.url))
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "slots never freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_store_that_does_not_answer_gives_503() {
    let api = seeded().await;
    api.store.close().await;
    for path in [
        "/api/v1/analytics/top",
        "/api/v1/analytics/products/a/windows",
        "/api/v1/analytics/windows?from=2024-01-01T12:00:00Z&to=2024-01-01T13:00:00Z",
    ] {
        let (status, body) = api.get(path).await;
        assert_eq!(status, 503, "{path}: {body}");
        assert_eq!(body["error"]["code"], "store_unavailable", "{path}");
    }
}

#[tokio::test]
async fn the_api_describes_itself() {
    let api = start(1, Feed::default()).await;
    let (status, doc) = api.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/v1/analytics/products/{product_id}/windows",
        "/api/v1/analytics/top",
        "/api/v1/analytics/windows",
        "/api/v1/analytics/stream",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    let page = api
        .http
        .get(format!("{}/docs/", api.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("swagger"));
}
