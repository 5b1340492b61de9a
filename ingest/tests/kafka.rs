//! `POST /api/v1/events` against a real Kafka-protocol broker (tansu, started by testkit).

use std::collections::HashMap;
use std::time::Duration;

use event_log::kafka::{KafkaLog, KafkaSettings};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};
use stream_engine::core::partitioner::partition_for;
use testkit::Broker;

const TOPIC: &str = "ecom-raw-events";
const PARTITIONS: u32 = 4;

struct Service {
    url: String,
    client: reqwest::Client,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

async fn start(broker: &Broker, delivery_timeout: Duration, max_body_bytes: usize) -> Service {
    let log = KafkaLog::new(KafkaSettings {
        cluster: event_log::kafka::Cluster::plaintext(broker.bootstrap()),
        topic: TOPIC.into(),
        delivery_timeout,
        max_in_flight: 100_000,
    })
    .expect("producer");
    let config = ingest::Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        body: ingest::BodyLimits {
            max_bytes: max_body_bytes,
            read_timeout: Duration::from_secs(2),
        },
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (addr, server) = ingest::build(config, log, async {
        let _ = rx.await;
    })
    .await
    .expect("bind");
    tokio::spawn(server);
    Service {
        url: format!("http://{addr}"),
        client: reqwest::Client::new(),
        _shutdown: tx,
    }
}

fn event(i: usize) -> Value {
    json!({
        "user_id": format!("u{}", i % 37),
        "product_id": format!("p{}", i % 11),
        "event_type": "VIEW_PRODUCT",
        "timestamp": format!("2024-01-01T12:{:02}:{:02}Z", (i / 60) % 60, i % 60),
        "metadata": {"i": i},
    })
}

impl Service {
    async fn post(&self, content_type: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/api/v1/events", self.url))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let retry_after = response.headers().get("retry-after").cloned();
        let body: Value = response.json().await.expect("JSON body");
        if status == 503 {
            assert!(retry_after.is_some(), "503 without Retry-After: {body}");
        }
        (status, body)
    }

    /// NDJSON of `events` in chunked transfer encoding, one chunk per event, by hand.
    async fn post_chunked(&self, events: &[Value]) -> (u16, Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.url.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let mut request = format!(
            "POST /api/v1/events HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-ndjson\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        for event in events {
            let line = format!("{event}\n");
            request.push_str(&format!("{:x}\r\n{line}\r\n", line.len()));
        }
        request.push_str("0\r\n\r\n");
        // The server may answer and close before reading everything: ignore write errors.
        let _ = stream.write_all(request.as_bytes()).await;
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        let response = String::from_utf8_lossy(&response);
        let status = response[9..12].parse().expect("status code");
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
        // The body may itself be chunked: take the JSON object inside.
        let json = &body[body.find('{').unwrap_or(0)..=body.rfind('}').unwrap_or(0)];
        (status, serde_json::from_str(json).expect("JSON body"))
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("request");
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

/// Every record of the topic, as (partition, key, payload).
fn consume_all(broker: &Broker, expected: usize) -> Vec<(u32, String, Value)> {
    let consumer: BaseConsumer = event_log::kafka::client_config(&broker.bootstrap())
        .set("group.id", "ingest-test")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS as i32 {
        assignment
            .add_partition_offset(TOPIC, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).expect("assign");
    let mut records = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut quiet_since = std::time::Instant::now();
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                quiet_since = std::time::Instant::now();
                records.push((
                    m.partition() as u32,
                    String::from_utf8(m.key().unwrap().to_vec()).unwrap(),
                    serde_json::from_slice(m.payload().unwrap()).unwrap(),
                ));
            }
            Some(Err(e)) => panic!("consume: {e}"),
            None if records.len() >= expected && quiet_since.elapsed() > Duration::from_secs(2) => {
                break;
            }
            None => {}
        }
    }
    records
}

#[tokio::test(flavor = "multi_thread")]
async fn accepted_events_are_in_the_topic_keyed_and_partitioned_by_product() {
    let broker = Broker::start();
    broker.create_topic(TOPIC, PARTITIONS);
    let service = start(&broker, Duration::from_secs(10), 1 << 20).await;

    // An array with bad events among 300 good ones.
    let mut array: Vec<Value> = (0..300).map(event).collect();
    array.insert(5, json!({"user_id": "u1"}));
    array.insert(9, json!("not an object"));
    let (status, body) = service
        .post("application/json", serde_json::to_vec(&array).unwrap())
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 300);
    let rejected: Vec<(u64, &str)> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), r["code"].as_str().unwrap()))
        .collect();
    assert_eq!(rejected, vec![(5, "missing_field"), (9, "not_an_object")]);

    // NDJSON, with a blank line and a bad line.
    let mut ndjson = String::new();
    for i in 300..400 {
        ndjson.push_str(&event(i).to_string());
        ndjson.push('\n');
        if i == 350 {
            ndjson.push_str("\n{\"user_id\": \n");
        }
    }
    let (status, body) = service.post("application/x-ndjson", ndjson).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 100);
    assert_eq!(body["rejected"][0]["index"], 52);

    // One object.
    let (status, body) = service
        .post("application/json; charset=utf-8", event(400).to_string())
        .await;
    assert_eq!((status, body["accepted"].as_u64()), (202, Some(1)));

    let records = consume_all(&broker, 401);
    assert_eq!(records.len(), 401, "every acknowledged event, once");
    let mut seen = HashMap::new();
    for (partition, key, payload) in &records {
        assert_eq!(payload["product_id"].as_str(), Some(key.as_str()));
        assert_eq!(*partition, partition_for(key.as_bytes(), PARTITIONS));
        let i = payload["metadata"]["i"].as_u64().unwrap() as usize;
        assert_eq!(*payload, event(i));
        *seen.entry(i).or_insert(0) += 1;
    }
    assert!((0..=400).all(|i| seen.get(&i) == Some(&1)));

    let (status, metrics) = service.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("ingest_events_accepted_total 401"),
        "{metrics}"
    );
    assert!(metrics.contains(r#"ingest_events_rejected_total{reason="missing_field"} 1"#));
    assert!(metrics.contains(r#"http_requests_total{service="ingest",method="POST",route="/api/v1/events",status="202"} 3"#));
    assert!(metrics.contains("http_request_duration_seconds_bucket"));
    assert!(metrics.contains("ingest_producer_queue_depth 0"));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_structured_errors() {
    let broker = Broker::start();
    broker.create_topic(TOPIC, PARTITIONS);
    let service = start(&broker, Duration::from_secs(10), 4096).await;

    let (status, body) = service.post("text/plain", event(1).to_string()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );

    let big: Vec<Value> = (0..100).map(event).collect();
    let (status, body) = service
        .post("application/json", serde_json::to_vec(&big).unwrap())
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("body_too_large"))
    );

    // Without a Content-Length (chunked): the limit holds while the body streams in.
    let (status, body) = service.post_chunked(&big).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("body_too_large"))
    );

    let (status, body) = service.post("application/json", "[{\"user_id\": ").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_json"))
    );

    let (status, body) = service.post("application/json", "").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("empty_body"))
    );

    let (status, body) = service
        .post(
            "application/json",
            r#"[{"user_id":"u"}, {"product_id":""}]"#,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("no_valid_events"))
    );
    assert_eq!(body["rejected"].as_array().map(Vec::len), Some(2));

    // A client that stops halfway through its body gets 408 once the read timeout (2 s here)
    // passes, and the connection is not held beyond it.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = service.url.trim_start_matches("http://").to_owned();
        let mut stream = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        let head = format!(
            "POST /api/v1/events HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[{{\"user_id\""
        );
        stream.write_all(head.as_bytes()).await.expect("write");
        let started = std::time::Instant::now();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
            .await
            .expect("the server answers a stalled body");
        read.expect("read");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("body_timeout"), "{answer}");
        assert!(started.elapsed() >= Duration::from_millis(1500));
    }

    assert_eq!(service.get("/healthz").await.0, 200);
    assert_eq!(service.get("/readyz").await.0, 200);
    let (status, doc) = service.get("/openapi.json").await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&doc).expect("JSON");
    for status in ["202", "400", "408", "413", "415", "503"] {
        assert!(
            doc["paths"]["/api/v1/events"]["post"]["responses"][status].is_object(),
            "{status} is not described"
        );
    }
    // Nothing was produced by any of these.
    assert!(consume_all(&broker, 0).is_empty());
}

/// While the broker does not answer, requests get 503 and never 202; once it is back, every
/// event that got 202 is in the topic.
#[tokio::test(flavor = "multi_thread")]
async fn a_broker_that_does_not_answer_gives_503_never_202() {
    let broker = Broker::start();
    broker.create_topic(TOPIC, PARTITIONS);
    let service = start(&broker, Duration::from_secs(2), 1 << 20).await;
    let mut acknowledged = Vec::new();
    let mut next = 0usize;
    let mut batch = |n: usize| {
        let events: Vec<Value> = (next..next + n).map(event).collect();
        next += n;
        events
    };

    let before = batch(50);
    let (status, _) = service
        .post("application/json", serde_json::to_vec(&before).unwrap())
        .await;
    assert_eq!(status, 202);
    acknowledged.extend(before);

    broker.freeze();
    for _ in 0..3 {
        let events = batch(20);
        let (status, body) = service
            .post("application/json", serde_json::to_vec(&events).unwrap())
            .await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "log_unavailable");
    }
    assert_eq!(service.get("/readyz").await.0, 503);
    broker.thaw();

    // The producer reconnects; retry until accepted, as a client would.
    let after = batch(50);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = service
            .post("application/json", serde_json::to_vec(&after).unwrap())
            .await;
        if status == 202 {
            break;
        }
        eprintln!("after thaw: {status} {body}");
        assert_eq!(status, 503, "{body}");
        assert!(
            std::time::Instant::now() < deadline,
            "the broker never came back: {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    acknowledged.extend(after);
    assert_eq!(service.get("/readyz").await.0, 200);

    let records = consume_all(&broker, acknowledged.len());
    let in_topic: Vec<&Value> = records.iter().map(|(_, _, v)| v).collect();
    for event in &acknowledged {
        assert!(
            in_topic.contains(&event),
            "acknowledged event missing: {event}"
        );
    }
}
