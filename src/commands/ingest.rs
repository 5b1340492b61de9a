//! `ecom ingest`: the activity-event ingestion service.

use std::net::SocketAddr;
use std::time::Duration;

use ingest::Config;
use ingest::log::KafkaSettings;

use super::parse_duration;

#[derive(clap::Args)]
pub struct Args {
    /// Listen address.
    #[arg(long, env = "ECOM_ADDR", default_value = "0.0.0.0:8084")]
    addr: SocketAddr,
    /// Kafka bootstrap servers (`host:port,...`).
    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092"
    )]
    bootstrap_servers: String,
    /// Topic the events are produced to, keyed by `product_id`.
    #[arg(long, env = "KAFKA_INPUT_TOPIC", default_value = "ecom-raw-events")]
    topic: String,
    /// Bodies over this many bytes get 413.
    #[arg(long, env = "ECOM_MAX_BODY_BYTES", default_value_t = 4 << 20)]
    max_body_bytes: usize,
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
    service_common::init_tracing();
    let config = Config {
        addr: args.addr,
        kafka: KafkaSettings {
            bootstrap_servers: args.bootstrap_servers,
            topic: args.topic,
            delivery_timeout: args.delivery_timeout,
            max_in_flight: args.producer_queue,
        },
        max_body_bytes: args.max_body_bytes,
        create_topic: (!args.no_create).then_some(args.partitions),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime
        .block_on(ingest::run(config, service_common::shutdown_signal()))
        .map_err(anyhow::Error::msg)
}
