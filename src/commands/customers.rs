//! `ecom customers`: customers on PostgreSQL (schema `customers`), with the ownership rules
//! of customers' tokens.

use std::net::SocketAddr;

use super::{Body, Database, TokenCheck};

#[derive(clap::Args)]
pub struct Args {
    /// Listen address.
    #[arg(long, env = "ECOM_ADDR", default_value = "0.0.0.0:8083")]
    addr: SocketAddr,
    #[command(flatten)]
    db: Database,
    #[command(flatten)]
    body: Body,
    #[command(flatten)]
    tokens: TokenCheck,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let _telemetry = service_common::telemetry::init("customers")?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let db = args
            .db
            .open(customers::SCHEMA, &customers::MIGRATIONS)
            .await?;
        let config = customers::Config {
            addr: args.addr,
            body: args.body.limits(),
            tokens: Some(args.tokens.config()),
        };
        super::serve(
            "customers",
            args.addr,
            customers::build(config, db, service_common::shutdown_signal()),
        )
        .await
    })
}
