//! `ecom ingest`: the activity-event ingestion service.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use event_log::kafka::{KafkaLog, KafkaSettings, TopicSpec, ensure_topics};

use super::parse_duration;

#[derive(clap::Args)]
pub struct Args {
    /// Listen address.
    #[arg(long, env = "ECOM_ADDR", default_value = "0.0.0.0:8084")]
    addr: SocketAddr,
    #[command(flatten)]
    kafka: super::Brokers,
    /// Topic the events are produced to, keyed by `product_id`.
    #[arg(long, env = "KAFKA_INPUT_TOPIC", default_value = "ecom-raw-events")]
    topic: String,
    /// Bodies over this many bytes get 413.
    #[arg(long, env = "ECOM_MAX_BODY_BYTES", default_value_t = 4 << 20)]
    max_body_bytes: usize,
    /// A body not received whole within this gets 408.
    #[arg(long, env = "ECOM_BODY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    body_timeout: Duration,
    /// How long a request waits for the broker's acknowledgement before it gets 503.
    #[arg(long, env = "ECOM_DELIVERY_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    delivery_timeout: Duration,
    /// Events waiting for acknowledgement above which requests get 503.
    #[arg(long, env = "ECOM_PRODUCER_QUEUE", default_value_t = 200_000)]
    producer_queue: usize,
    /// Partitions of the topic when ingest creates it.
    #[arg(long, env = "KAFKA_INPUT_PARTITIONS", default_value_t = 4)]
    partitions: i32,
    /// Do not create the topic when it is missing.
    #[arg(long, env = "ECOM_NO_CREATE", value_parser = clap::builder::BoolishValueParser::new())]
    no_create: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let _telemetry = service_common::telemetry::init("ingest")?;
    let kafka = KafkaSettings {
        cluster: args.kafka.cluster()?,
        topic: args.topic,
        delivery_timeout: args.delivery_timeout,
        max_in_flight: args.producer_queue,
    };
    let config = ingest::Config {
        addr: args.addr,
        body: ingest::BodyLimits {
            max_bytes: args.max_body_bytes,
            read_timeout: args.body_timeout,
        },
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        if !args.no_create {
            let topic = TopicSpec {
                name: kafka.topic.clone(),
                partitions: args.partitions,
            };
            ensure_topics(&kafka.cluster, &[topic], Duration::from_secs(10)).await?;
        }
        let log = KafkaLog::new(kafka.clone()).context("cannot create the Kafka producer")?;
        let (addr, server) = ingest::build(config.clone(), log, service_common::shutdown_signal())
            .await
            .with_context(|| format!("cannot listen on {}", config.addr))?;
        tracing::info!(%addr, topic = %kafka.topic, "ingest listening");
        server.await?;
        Ok(())
    })
}
