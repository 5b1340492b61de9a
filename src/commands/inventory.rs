//! `ecom inventory`: stock on PostgreSQL (schema `inventory`), the order flow on Kafka.

use std::net::SocketAddr;

use messaging::contract::{DEAD_LETTERS, INVENTORY_EVENTS};

use super::order_flow::{FlowTopics, StockFlags, kafka_reader, kafka_topics};
use super::{Body, Database, TokenCheck};

#[derive(clap::Args)]
pub struct Args {
    /// Listen address.
    #[arg(long, env = "ECOM_ADDR", default_value = "0.0.0.0:8088")]
    addr: SocketAddr,
    #[command(flatten)]
    db: Database,
    #[command(flatten)]
    body: Body,
    #[command(flatten)]
    kafka: super::Brokers,
    #[command(flatten)]
    topics: FlowTopics,
    #[command(flatten)]
    stock: StockFlags,
    #[command(flatten)]
    tokens: TokenCheck,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let _telemetry = service_common::telemetry::init("inventory")?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let db = args
            .db
            .open(inventory::SCHEMA, &inventory::MIGRATIONS)
            .await?;
        let cluster = args.kafka.cluster()?;
        args.topics.ensure(&cluster).await?;
        let topics = kafka_topics(&cluster, &[INVENTORY_EVENTS, DEAD_LETTERS])?;
        let config = inventory::Config {
            addr: args.addr,
            body: args.body.limits(),
            tokens: Some(args.tokens.config()),
            settings: args.stock.settings(),
        };
        super::serve(
            "inventory",
            args.addr,
            inventory::build(
                config,
                db,
                topics,
                move |topic, listener| kafka_reader(&cluster, topic, inventory::CONSUMER, listener),
                service_common::shutdown_signal(),
            ),
        )
        .await
    })
}
