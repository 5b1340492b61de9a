//! Servers, services as processes, the event stream and the oracle of the pipeline tests.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;
use stream_engine::core::partitioner::partition_for;
use stream_engine::core::time::format_rfc3339_ms;
use stream_engine::sample::{Sample, SampleConfig, SampleEvent};
use testkit::{Broker, Moto, free_port};

pub const INPUT: &str = "ecom-raw-events";
pub const RESULTS: &str = "ecom-analytics-results";
pub const DEAD_LETTERS: &str = "ecom-dead-letters";
pub const LATE_EVENTS: &str = "ecom-late-events";
pub const TABLE: &str = "ecom-analytics";
pub const PARTITIONS: u32 = 4;
const OUT_OF_ORDERNESS_MS: i64 = 10_000;
const MINUTE_MS: i64 = 60_000;

/// (product_id, window_start) -> (unique users, events).
pub type Windows = BTreeMap<(String, String), (u64, u64)>;

/// The tests share the two cores; one at a time keeps their timing sane.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

pub struct Stack {
    pub broker: Broker,
    pub moto: Moto,
    dynamo: aws_sdk_dynamodb::Client,
}

impl Stack {
    pub fn start() -> Stack {
        let broker = Broker::start();
        let moto = Moto::start();
        let dynamo = moto.dynamodb_client();
        Stack {
            broker,
            moto,
            dynamo,
        }
    }

    pub fn service(&self, subcommand: &str, env: &[(&str, &str)], stderr: Stdio) -> Service {
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_ecom"));
        command
            .arg(subcommand)
            .env("ECOM_ADDR", format!("127.0.0.1:{port}"))
            .env("KAFKA_BOOTSTRAP_SERVERS", self.broker.bootstrap())
            .env("KAFKA_INPUT_PARTITIONS", PARTITIONS.to_string())
            .env("AWS_ENDPOINT_URL", self.moto.endpoint())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("ecom starts");
        Service {
            stderr: child.stderr.take(),
            child: Some(child),
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        }
    }

    /// Runs `ecom <subcommand>` until it stops by itself (within `timeout`): its exit status
    /// and standard error.
    pub fn run_to_exit(
        &self,
        subcommand: &str,
        env: &[(&str, &str)],
        timeout: Duration,
    ) -> (ExitStatus, String) {
        let mut service = self.service(subcommand, env, Stdio::piped());
        let status = service.wait_exit(timeout);
        let mut stderr = String::new();
        if let Some(mut pipe) = service.stderr.take() {
            std::io::Read::read_to_string(&mut pipe, &mut stderr).expect("stderr");
        }
        (status, stderr)
    }

    /// `ecom analytics`.
    pub fn analytics(&self) -> Service {
        self.service("analytics", &[], Stdio::inherit())
    }

    /// `ecom ingest`.
    pub fn ingest(&self, env: &[(&str, &str)]) -> Service {
        self.service("ingest", env, Stdio::inherit())
    }

    /// `ecom stream-engine`, committing often and leaving the group quickly when killed.
    pub fn engine(&self, env: &[(&str, &str)]) -> Service {
        let mut all = vec![
            ("ECOM_COMMIT_INTERVAL", "100ms"),
            ("KAFKA_SESSION_TIMEOUT", "6s"),
        ];
        all.extend_from_slice(env);
        self.service("stream-engine", &all, Stdio::inherit())
    }

    /// Every item of the results table.
    pub async fn scan(&self) -> Windows {
        let mut windows = Windows::new();
        let mut start = None;
        loop {
            let page = match self
                .dynamo
                .scan()
                .table_name(TABLE)
                .set_exclusive_start_key(start)
                .send()
                .await
            {
                Ok(page) => page,
                // Not created yet.
                Err(_) => return windows,
            };
            for item in page.items() {
                let s = |k: &str| match item.get(k) {
                    Some(AttributeValue::S(s)) => s.clone(),
                    other => panic!("item attribute {k} is {other:?}"),
                };
                let n = |k: &str| match item.get(k) {
                    Some(AttributeValue::N(n)) => n.parse::<u64>().expect("a count"),
                    other => panic!("item attribute {k} is {other:?}"),
                };
                windows.insert(
                    (s("product_id"), s("window_start")),
                    (n("unique_user_count"), n("event_count")),
                );
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return windows;
            }
        }
    }

    /// Waits until the table satisfies `done` (or the timeout passes) and returns it.
    pub async fn wait_for(&self, timeout: Duration, done: impl Fn(&Windows) -> bool) -> Windows {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.scan().await;
            if done(&got) || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Waits for the table to hold exactly `expected`, then checks that it does.
    pub async fn wait_for_results(&self, expected: &Windows, timeout: Duration) {
        let got = self.wait_for(timeout, |got| got == expected).await;
        assert_same_windows(&got, expected, |g, e| g == e);
    }

    /// The results topic, read to its end until its last record per key equals `expected`
    /// (it is published beside the table, so it may lag the table by a commit). Every key is
    /// `product_id|window_start` of its value, and the records of one key are identical.
    pub async fn assert_results_topic(&self, expected: &Windows) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let windows = self.results_topic();
            if &windows == expected || Instant::now() > deadline {
                assert_same_windows(&windows, expected, |g, e| g == e);
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    fn results_topic(&self) -> Windows {
        let mut seen: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        let mut windows = Windows::new();
        for record in self.read_topic(RESULTS) {
            let value: Value = serde_json::from_slice(&record.payload).expect("JSON result");
            let product = value["product_id"].as_str().expect("product_id").to_owned();
            let start = value["window_start"]
                .as_str()
                .expect("window_start")
                .to_owned();
            let key = record.key.clone().expect("a key");
            assert_eq!(key, format!("{product}|{start}").into_bytes());
            if let Some(before) = seen.insert(key, record.payload.clone()) {
                assert_eq!(before, record.payload, "two different results for one key");
            }
            let count = |f: &str| value[f].as_u64().expect("a count");
            windows.insert(
                (product, start),
                (count("unique_user_count"), count("event_count")),
            );
        }
        windows
    }

    /// Every record of a topic, partition by partition.
    pub fn read_topic(&self, topic: &str) -> Vec<Received> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.broker.bootstrap())
            .set("group.id", "pipeline-test-reader")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata");
        let partitions = metadata.topics()[0].partitions().len() as i32;
        let mut tpl = TopicPartitionList::new();
        for partition in 0..partitions {
            tpl.add_partition_offset(topic, partition, Offset::Beginning)
                .expect("offset");
        }
        consumer.assign(&tpl).expect("assign");
        // Read until two quiet seconds: reading up to the high watermark tansu reported left
        // the last records of some partitions unread.
        let mut records = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut quiet_since = Instant::now();
        while quiet_since.elapsed() < Duration::from_secs(2) {
            assert!(Instant::now() < deadline, "{topic} did not go quiet");
            let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = message.expect("a record");
            quiet_since = Instant::now();
            records.push(Received {
                key: message.key().map(<[u8]>::to_vec),
                payload: message.payload().unwrap_or_default().to_vec(),
                headers: message
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                let value = h.value.unwrap_or_default();
                                (h.key.to_owned(), String::from_utf8_lossy(value).into())
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
        records
    }

    /// Produces records straight to the input topic, in order, and waits for all of them.
    pub async fn produce(&self, records: &[(Vec<u8>, Option<Vec<u8>>)]) {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", self.broker.bootstrap())
            .set("enable.idempotence", "true")
            .set("partitioner", "murmur2_random")
            .create()
            .expect("producer");
        let mut deliveries = Vec::new();
        for (key, payload) in records {
            let mut record = FutureRecord::<[u8], [u8]>::to(INPUT).key(&key[..]);
            if let Some(payload) = payload {
                record = record.payload(&payload[..]);
            }
            deliveries.push(
                producer
                    .send_result(record)
                    .map_err(|(e, _)| e)
                    .expect("queued"),
            );
        }
        for delivery in deliveries {
            delivery.await.expect("delivered").expect("acknowledged");
        }
    }
}

pub struct Received {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    headers: Vec<(String, String)>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

/// `ecom up` on `port` over `data_dir`, without demo traffic unless `args` set `--demo-rate`.
pub fn up(data_dir: &std::path::Path, port: u16, args: &[&str]) -> Service {
    up_with_env(data_dir, port, args, &[])
}

/// [`up`] with more environment variables.
pub fn up_with_env(
    data_dir: &std::path::Path,
    port: u16,
    args: &[&str],
    env: &[(&str, &str)],
) -> Service {
    spawn_up(data_dir, port, args, env, Stdio::inherit())
}

/// [`up`] with its standard error kept, for [`Service::stderr_lines`].
pub fn up_logging(data_dir: &std::path::Path, port: u16, env: &[(&str, &str)]) -> Service {
    spawn_up(data_dir, port, &[], env, Stdio::piped())
}

fn spawn_up(
    data_dir: &std::path::Path,
    port: u16,
    args: &[&str],
    env: &[(&str, &str)],
    stderr: Stdio,
) -> Service {
    let mut command = up_command(data_dir, port, args);
    command
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(stderr);
    Service::spawn(command, port)
}

/// The command line of [`up`], its standard streams still to choose (stdin is closed).
pub fn up_command(data_dir: &std::path::Path, port: u16, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ecom"));
    command
        .arg("up")
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--partitions", &PARTITIONS.to_string()])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    if !args.contains(&"--demo-rate") {
        command.arg("--no-demo");
    }
    command
}

/// The analytics API's results over `[from, to)`, every page walked.
pub async fn analytics_windows(url: &str, from: &str, to: &str) -> Windows {
    let http = reqwest::Client::new();
    let mut windows = Windows::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut request = http.get(format!("{url}/api/v1/analytics/windows")).query(&[
            ("from", from),
            ("to", to),
            ("limit", "1000"),
        ]);
        if let Some(c) = &cursor {
            request = request.query(&[("cursor", c)]);
        }
        let page: Value = request
            .send()
            .await
            .expect("the analytics API answers")
            .json()
            .await
            .expect("a JSON page");
        for w in page["windows"].as_array().expect("windows") {
            let s = |k: &str| w[k].as_str().expect("a string").to_owned();
            let n = |k: &str| w[k].as_u64().expect("a count");
            windows.insert(
                (s("product_id"), s("window_start")),
                (n("unique_user_count"), n("event_count")),
            );
        }
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return windows,
        }
    }
}

/// The `window` events of the analytics API's stream until it has been quiet for 10 s (or two
/// minutes have passed), the latest per key.
pub async fn collect_stream(url: String) -> Windows {
    let mut response = reqwest::Client::new()
        .get(format!("{url}/api/v1/analytics/stream"))
        .send()
        .await
        .expect("the stream answers");
    assert_eq!(response.status(), 200);
    let mut windows = Windows::new();
    let mut buffer = String::new();
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut last_event = Instant::now();
    while Instant::now() < deadline {
        let Ok(chunk) = tokio::time::timeout(Duration::from_secs(1), response.chunk()).await else {
            if !windows.is_empty() && last_event.elapsed() > Duration::from_secs(10) {
                break;
            }
            continue;
        };
        let Some(chunk) = chunk.expect("the stream") else {
            break;
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            if !block.contains("event: window") {
                continue;
            }
            last_event = Instant::now();
            let data = block
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .expect("data");
            let value: Value = serde_json::from_str(data).expect("JSON");
            let s = |k: &str| value[k].as_str().expect("a string").to_owned();
            let n = |k: &str| value[k].as_u64().expect("a count");
            windows.insert(
                (s("product_id"), s("window_start")),
                (n("unique_user_count"), n("event_count")),
            );
        }
    }
    windows
}

/// The start of the window the analytics API's `top` defaults to (the latest every partition
/// has fired), if any.
pub async fn latest_fired(url: &str) -> Option<String> {
    let body: Value = reqwest::get(format!("{url}/api/v1/analytics/top"))
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    body["window_start"].as_str().map(str::to_owned)
}

/// The start (RFC 3339) of the last window holding a real (non-sentinel) event.
pub fn last_window(events: &[SampleEvent]) -> String {
    let last = events.iter().map(|e| e.timestamp_ms).max().unwrap_or(0);
    format_rfc3339_ms(last.div_euclid(MINUTE_MS) * MINUTE_MS)
}

/// An `ecom` process; killed when dropped.
pub struct Service {
    child: Option<Child>,
    stderr: Option<std::process::ChildStderr>,
    url: String,
    http: reqwest::Client,
}

impl Service {
    /// Starts `command`, a process serving on `port` of loopback.
    pub fn spawn(mut command: Command, port: u16) -> Service {
        let mut child = command.spawn().expect("the process starts");
        Service {
            stderr: child.stderr.take(),
            child: Some(child),
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The child's standard output, if it was piped.
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.as_mut().and_then(|c| c.stdout.take())
    }

    /// The child's standard error, if it was piped.
    pub fn take_stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.stderr.take()
    }

    /// Sends `signal` (`INT`, `TERM`, ...) and returns the exit status once the process stopped.
    pub fn signal_and_wait(&mut self, signal: &str) -> ExitStatus {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        self.wait_exit(Duration::from_secs(60))
    }

    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }

    async fn wait_for_status(&self, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some((200, _)) = self.get(path).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{}{path} did not answer 200 within 60 s", self.url);
    }

    pub async fn wait_healthy(&self) {
        self.wait_for_status("/healthz").await;
    }

    pub async fn wait_ready(&self) {
        self.wait_for_status("/readyz").await;
    }

    /// Waits until the engine owns partitions and has read records.
    pub async fn wait_processing(&self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if let Some((200, text)) = self.get("/metrics").await
                && metric(&text, "stream_assigned_partitions") > 0.0
                && metric(&text, "stream_records_total") > 0.0
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("the engine at {} did not start processing", self.url);
    }

    pub async fn metrics(&self) -> String {
        let (status, text) = self.get("/metrics").await.expect("metrics answer");
        assert_eq!(status, 200);
        text
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub async fn post_events(&self, events: &[SampleEvent]) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/api/v1/events", self.url))
            .header("content-type", "application/x-ndjson")
            .body(ndjson(events))
            .send()
            .await
            .expect("ingest answers");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON body"))
    }

    /// SIGKILL: no chance to store or checkpoint anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9");
            child.wait().expect("reaped");
        }
    }

    /// The exit status of a process that stops by itself within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("still running after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, and the exit status once the process has stopped.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal_and_wait("TERM")
    }
}

impl Service {
    /// What the process wrote to standard error (started with it piped), once it has exited.
    pub fn stderr_lines(&mut self) -> Vec<String> {
        let mut text = String::new();
        if let Some(mut pipe) = self.stderr.take() {
            std::io::Read::read_to_string(&mut pipe, &mut text).expect("stderr");
        }
        text.lines().map(str::to_owned).collect()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Posts until ingest accepts (it answers 503 while the broker cannot take events).
pub async fn post_until_accepted(ingest: &Service, events: &[SampleEvent]) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = ingest.post_events(events).await;
        if status != 503 || Instant::now() > deadline {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A value of the Prometheus text `text`: the sample named exactly `name` (labels included).
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            (key == name).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

/// A realistic stream: 300 products (Zipf), 5,000 users, 1,000 events per second of event
/// time, up to 8 s out of order (inside the 10 s out-of-orderness: nothing is late).
pub fn generate(events: u64, seed: u64) -> Vec<SampleEvent> {
    Sample::new(SampleConfig {
        events,
        products: 300,
        users: 5_000,
        events_per_second: 1_000,
        seed,
        ..SampleConfig::default()
    })
    .collect()
}

/// One event per partition, two minutes after the last one: every real window fires.
pub fn sentinels(events: &[SampleEvent]) -> Vec<SampleEvent> {
    let last = events.iter().map(|e| e.timestamp_ms).max().unwrap_or(0);
    let template = events.first().cloned().expect("events");
    let mut out = Vec::new();
    let mut product = 1_000_000;
    for partition in 0..PARTITIONS {
        while partition_for(format!("p{product}").as_bytes(), PARTITIONS) != partition {
            product += 1;
        }
        out.push(SampleEvent {
            product,
            timestamp_ms: last + 2 * MINUTE_MS,
            ..template.clone()
        });
    }
    out
}

pub fn ndjson(events: &[SampleEvent]) -> Vec<u8> {
    let mut body = Vec::with_capacity(events.len() * 160);
    for event in events {
        event.write_json(&mut body);
    }
    body
}

/// The windows that fire, by brute force: per partition, in the order sent, an event is late
/// when its window ended at or before the watermark (largest earlier event time minus the
/// out-of-orderness); a window fires once its partition's final watermark passed its end.
pub fn oracle(events: &[SampleEvent]) -> Windows {
    oracle_of(
        events
            .iter()
            .map(|e| (e.product_id(), e.user_id(), e.timestamp_ms)),
    )
}

/// [`oracle`] over (product_id, user_id, event time) in the order each partition holds them.
pub fn oracle_of(events: impl IntoIterator<Item = (String, String, i64)>) -> Windows {
    type State = (
        Option<i64>,
        BTreeMap<(String, i64), (BTreeSet<String>, u64)>,
    );
    let mut partitions: HashMap<u32, State> = HashMap::new();
    for (product, user, timestamp_ms) in events {
        let (max, windows) = partitions
            .entry(partition_for(product.as_bytes(), PARTITIONS))
            .or_default();
        let start = timestamp_ms.div_euclid(MINUTE_MS) * MINUTE_MS;
        if max.is_some_and(|m| start + MINUTE_MS <= m - OUT_OF_ORDERNESS_MS) {
            continue;
        }
        let window = windows.entry((product, start)).or_default();
        window.0.insert(user);
        window.1 += 1;
        *max = Some(max.map_or(timestamp_ms, |m| m.max(timestamp_ms)));
    }
    let mut fired = Windows::new();
    for (max, windows) in partitions.into_values() {
        let watermark = max.map_or(i64::MIN, |m| m - OUT_OF_ORDERNESS_MS);
        for ((product, start), (users, events)) in windows {
            if start + MINUTE_MS <= watermark {
                fired.insert(
                    (product, format_rfc3339_ms(start)),
                    (users.len() as u64, events),
                );
            }
        }
    }
    fired
}

/// Asserts that `got` has exactly the keys of `expected`, each matching, with a short report.
pub fn assert_same_windows(
    got: &Windows,
    expected: &Windows,
    matches: impl Fn(&(u64, u64), &(u64, u64)) -> bool,
) {
    let missing: Vec<_> = expected.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<_> = got.keys().filter(|k| !expected.contains_key(*k)).collect();
    let wrong: Vec<_> = expected
        .iter()
        .filter_map(|(k, e)| {
            let g = got.get(k)?;
            (!matches(g, e)).then_some((k, g, e))
        })
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && wrong.is_empty(),
        "{} windows expected, {} got: {} missing (first {:?}), {} extra (first {:?}), {} wrong (first (key, got, expected) {:?})",
        expected.len(),
        got.len(),
        missing.len(),
        missing.first(),
        extra.len(),
        extra.first(),
        wrong.len(),
        wrong.first(),
    );
}
