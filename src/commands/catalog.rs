//! `ecom catalog`: the product catalog on PostgreSQL (schema `catalog`).

use std::net::SocketAddr;

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
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let _telemetry = service_common::telemetry::init("catalog")?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let db = args.db.open(catalog::SCHEMA, &catalog::MIGRATIONS).await?;
        let config = catalog::Config {
            addr: args.addr,
            body: args.body.limits(),
        };
        super::serve(
            "catalog",
            args.addr,
            catalog::build(config, db, service_common::shutdown_signal()),
        )
        .await
    })
}
