//! Kafka → engine → sinks throughput, against a bare consumer of the same topic in the same
//! run, and the result latency (a window firing to its item stored in DynamoDB).
//!
//! `cargo run --release --example pipeline_bench -- [EVENTS]` (default 2,000,000). Starts tansu
//! and moto (installed by `scripts/servers.sh install`), fills a 4-partition topic, then reads
//! it three times from the beginning, each with a new consumer group: a bare rdkafka consumer,
//! the engine with its sinks (DynamoDB on moto, the results topic), the bare consumer again.
//! Rates are taken from the first record read to the last, so group joins are not counted.

use std::time::{Duration, Instant};

use event_log::kafka::KafkaReaderSettings;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use result_store::dynamo::DynamoSettings;
use stream_engine::EngineConfig;
use stream_engine::sample::{Sample, SampleConfig};
use stream_runtime::Settings;
use stream_runtime::kafka::OutputTopics;
use testkit::{Broker, Moto, free_port};

const TOPIC: &str = "bench-events";
const PARTITIONS: u32 = 4;

fn main() {
    let events: u64 = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("EVENTS is a number"))
        .unwrap_or(2_000_000);
    let broker = Broker::start();
    let moto = Moto::start();
    broker.create_topic(TOPIC, PARTITIONS);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");

    let started = Instant::now();
    let bytes = runtime.block_on(fill(&broker, events));
    let produce = started.elapsed();
    println!(
        "produced   {events} events ({:.0} MB) in {:.2} s: {:.0} events/s",
        bytes as f64 / 1e6,
        produce.as_secs_f64(),
        events as f64 / produce.as_secs_f64()
    );

    let bare1 = bare_consumer(&broker, "bench-bare-1", events);
    report("bare       ", events, bare1);
    let (engine, latency) = runtime.block_on(engine(&broker, &moto, events));
    report("engine     ", events, engine);
    let bare2 = bare_consumer(&broker, "bench-bare-2", events);
    report("bare again ", events, bare2);
    let bare = (bare1 + bare2) / 2;
    println!(
        "engine / bare (mean of both bare runs): {:.0} %",
        100.0 * bare.as_secs_f64() / engine.as_secs_f64()
    );
    println!("result latency (window fired -> stored in DynamoDB), by histogram bucket:");
    for (quantile, bound) in latency {
        println!("  p{quantile:<4} <= {bound} s");
    }
}

fn report(name: &str, events: u64, took: Duration) {
    println!(
        "{name}{events} records in {:.2} s: {:.0} records/s",
        took.as_secs_f64(),
        events as f64 / took.as_secs_f64()
    );
}

/// Produces the generated stream, keyed by product; returns the payload bytes.
async fn fill(broker: &Broker, events: u64) -> u64 {
    let producer: FutureProducer = event_log::kafka::client_config(&broker.bootstrap())
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    let sample = Sample::new(SampleConfig {
        events,
        products: 1_000,
        users: 100_000,
        ..SampleConfig::default()
    });
    let mut bytes = 0;
    let mut pending = std::collections::VecDeque::new();
    let mut line = Vec::new();
    for event in sample {
        line.clear();
        event.write_json(&mut line);
        line.pop();
        bytes += line.len() as u64;
        let key = event.product_id();
        let record = FutureRecord::to(TOPIC).key(&key).payload(&line);
        pending.push_back(
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("queued"),
        );
        if pending.len() >= 200_000 {
            for delivery in pending.drain(..100_000) {
                delivery.await.expect("delivered").expect("acknowledged");
            }
        }
    }
    for delivery in pending {
        delivery.await.expect("delivered").expect("acknowledged");
    }
    bytes
}

/// Reads `events` records with a plain consumer that touches every payload.
fn bare_consumer(broker: &Broker, group: &str, events: u64) -> Duration {
    let consumer: BaseConsumer = event_log::kafka::client_config(&broker.bootstrap())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[TOPIC]).expect("subscribe");
    let mut read = 0;
    let mut checksum = 0u64;
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while read < events {
        assert!(Instant::now() < deadline, "bare consumer stalled at {read}");
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.expect("a record");
            first.get_or_insert_with(Instant::now);
            checksum = checksum.wrapping_add(message.payload().map_or(0, |p| p.len() as u64));
            read += 1;
        }
    }
    std::hint::black_box(checksum);
    first.expect("records").elapsed()
}

/// Runs the engine in-process until it has read `events` records and stored their windows.
async fn engine(
    broker: &Broker,
    moto: &Moto,
    events: u64,
) -> (Duration, Vec<(&'static str, String)>) {
    // SAFETY: set before the engine starts; nothing else in this process reads them.
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL", moto.endpoint());
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_ACCESS_KEY_ID", "bench");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "bench");
    }
    let port = free_port();
    let settings = Settings {
        addr: format!("127.0.0.1:{port}").parse().expect("address"),
        source: KafkaReaderSettings {
            cluster: event_log::kafka::Cluster::plaintext(broker.bootstrap()),
            topic: TOPIC.into(),
            group_id: "bench-engine".into(),
            session_timeout: Duration::from_secs(10),
        },
        outputs: OutputTopics {
            results: "bench-results".into(),
            late: "bench-late".into(),
            dead_letter: "bench-dead".into(),
        },
        dynamo: DynamoSettings {
            table: "bench".into(),
            checkpoint_table: "bench-checkpoints".into(),
            stream: "bench-engine/bench-events".into(),
            retry_for: Duration::from_secs(60),
            concurrency: 32,
            partitions: PARTITIONS,
        },
        engine: EngineConfig::default(),
        commit_interval: Duration::from_millis(200),
        create: Some(PARTITIONS as i32),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let engine = tokio::spawn(stream_runtime::run(settings, async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(900);
    let took = loop {
        assert!(Instant::now() < deadline, "the engine stalled");
        tokio::time::sleep(Duration::from_millis(20)).await;
        let Ok(response) = http.get(&url).send().await else {
            continue;
        };
        let text = response.text().await.unwrap_or_default();
        let records = testkit::prometheus::value(&text, "stream_records_total") as u64;
        if records > 0 {
            first.get_or_insert_with(Instant::now);
        }
        if records >= events {
            break first.expect("records").elapsed();
        }
    };
    // Let the last commits land, then read the latency histogram.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let text = http
        .get(&url)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for sink in ["store", "log", "checkpoint"] {
        let label = format!("{{sink=\"{sink}\"}}");
        println!(
            "sink {sink:<10}: {:.0} commits, {:.2} s in all",
            testkit::prometheus::value(
                &text,
                &format!("stream_sink_duration_seconds_count{label}")
            ),
            testkit::prometheus::value(&text, &format!("stream_sink_duration_seconds_sum{label}")),
        );
    }
    println!(
        "windows fired: {:.0}",
        testkit::prometheus::value(&text, "stream_windows_fired_total")
    );
    let latency = testkit::prometheus::quantiles(
        &text,
        "stream_result_latency_seconds",
        &[("50", 0.5), ("99", 0.99), ("99.9", 0.999)],
    );
    let _ = stop.send(());
    engine.await.expect("engine task").expect("engine");
    (took, latency)
}
