//! `ecom catalog`: the product catalog on PostgreSQL (schema `catalog`); the stock it is given
//! goes to the inventory (`catalog.events`), and it reads the inventory's available stock back
//! (`inventory.events`), on Kafka.

use std::net::SocketAddr;

use messaging::contract::{CATALOG_EVENTS, DEAD_LETTERS, INVENTORY_EVENTS};

use super::order_flow::{FlowTopics, kafka_reader, kafka_topics};
use super::{Body, Database};

#[derive(clap::Args)]
pub struct Args {
    /// Listen address.
    #[arg(long, env = "ECOM_ADDR", default_value = "0.0.0.0:8082")]
    addr: SocketAddr,
    #[command(flatten)]
    db: Database,
    #[command(flatten)]
    body: Body,
    #[command(flatten)]
    kafka: super::Brokers,
    #[command(flatten)]
    topics: FlowTopics,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let _telemetry = service_common::telemetry::init("catalog")?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let db = args.db.open(catalog::SCHEMA, &catalog::MIGRATIONS).await?;
        let cluster = args.kafka.cluster()?;
        args.topics.ensure(&cluster).await?;
        let topics = kafka_topics(&cluster, &[CATALOG_EVENTS, DEAD_LETTERS])?;
        let config = catalog::Config {
            addr: args.addr,
            body: args.body.limits(),
        };
        super::serve(
            "catalog",
            args.addr,
            catalog::build(
                config,
                db,
                topics,
                move |listener| {
                    kafka_reader(&cluster, INVENTORY_EVENTS, catalog::CONSUMER, listener)
                },
                service_common::shutdown_signal(),
            ),
        )
        .await
    })
}
