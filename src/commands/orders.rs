//! `ecom orders`: orders on PostgreSQL (schema `orders`), priced from the catalog, their saga
//! on Kafka (`order.events` out, `inventory.events` and `payment.events` in) and their
//! `PURCHASE` events to the stream's input topic, all through the outbox.

use std::net::SocketAddr;
use std::time::Duration;

use messaging::contract::{DEAD_LETTERS, ORDER_EVENTS};

use super::order_flow::{FlowTopics, SagaFlags, kafka_reader, kafka_topics};
use super::{Body, Database, TokenCheck, parse_duration};

#[derive(clap::Args)]
pub struct Args {
    /// Listen address.
    #[arg(long, env = "ECOM_ADDR", default_value = "0.0.0.0:8087")]
    addr: SocketAddr,
    #[command(flatten)]
    db: Database,
    #[command(flatten)]
    body: Body,
    #[command(flatten)]
    kafka: super::Brokers,
    /// The topic of the PURCHASE events (the stream engine's input).
    #[arg(long, env = "KAFKA_INPUT_TOPIC", default_value = "ecom-raw-events")]
    topic: String,
    /// The catalog's base URL (prices).
    #[arg(long, env = "CATALOG_URL", default_value = "http://127.0.0.1:8082")]
    catalog_url: String,
    /// The customers service's base URL.
    #[arg(long, env = "CUSTOMERS_URL", default_value = "http://127.0.0.1:8083")]
    customers_url: String,
    /// How long a request to the catalog or the customers service may take.
    #[arg(long, env = "ECOM_UPSTREAM_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    upstream_timeout: Duration,
    /// How often the outbox relay looks for events it was not woken for.
    #[arg(long, env = "ECOM_RELAY_POLL", default_value = "1s", value_parser = parse_duration)]
    relay_poll: Duration,
    #[command(flatten)]
    topics: FlowTopics,
    #[command(flatten)]
    saga: SagaFlags,
    #[command(flatten)]
    tokens: TokenCheck,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let _telemetry = service_common::telemetry::init("orders")?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let db = args.db.open(orders::SCHEMA, &orders::MIGRATIONS).await?;
        let cluster = args.kafka.cluster()?;
        args.topics.ensure(&cluster).await?;
        let topics = kafka_topics(&cluster, &[ORDER_EVENTS, DEAD_LETTERS, &args.topic])?;
        let config = orders::Config {
            addr: args.addr,
            body: args.body.limits(),
            upstream: orders::UpstreamConfig {
                catalog_url: args.catalog_url,
                customers_url: args.customers_url,
                timeout: args.upstream_timeout,
            },
            saga: orders::SagaConfig {
                purchases_topic: args.topic,
                step_timeout: args.saga.saga_step_timeout,
            },
            relay_poll: args.relay_poll,
            tokens: Some(args.tokens.config()),
        };
        super::serve(
            "orders",
            args.addr,
            orders::build(
                config,
                db,
                topics,
                move |topic, listener| kafka_reader(&cluster, topic, orders::CONSUMER, listener),
                service_common::shutdown_signal(),
            ),
        )
        .await
    })
}
