//! `ecom payments`: payments on PostgreSQL (schema `payments`, the sandbox provider's ledger in
//! schema `payment_sandbox`), the order flow on Kafka.

use std::net::SocketAddr;

use messaging::contract::{DEAD_LETTERS, ORDER_EVENTS, PAYMENT_EVENTS};

use super::order_flow::{FlowTopics, PaymentFlags, kafka_reader, kafka_topics};
use super::{Body, Database, TokenCheck};

#[derive(clap::Args)]
pub struct Args {
    /// Listen address.
    #[arg(long, env = "ECOM_ADDR", default_value = "0.0.0.0:8089")]
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
    payment: PaymentFlags,
    #[command(flatten)]
    tokens: TokenCheck,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let _telemetry = service_common::telemetry::init("payments")?;
    let sandbox = args.payment.sandbox()?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let db = args
            .db
            .open(payments::SCHEMA, &payments::MIGRATIONS)
            .await?;
        let sandbox_db = args
            .db
            .open(
                payments::sandbox::SANDBOX_SCHEMA,
                &payments::sandbox::SANDBOX_MIGRATIONS,
            )
            .await?;
        let cluster = args.kafka.cluster()?;
        args.topics.ensure(&cluster).await?;
        let topics = kafka_topics(&cluster, &[PAYMENT_EVENTS, DEAD_LETTERS])?;
        let config = payments::Config {
            addr: args.addr,
            body: args.body.limits(),
            tokens: Some(args.tokens.config()),
            settings: payments::Settings::default(),
            sandbox,
        };
        super::serve(
            "payments",
            args.addr,
            payments::build(
                config,
                db,
                sandbox_db,
                topics,
                move |listener| kafka_reader(&cluster, ORDER_EVENTS, payments::CONSUMER, listener),
                service_common::shutdown_signal(),
            ),
        )
        .await
    })
}
