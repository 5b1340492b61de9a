//! `ecom auth`: identity on PostgreSQL (schema `auth`): accounts, machine clients, tokens and
//! their keys.

use std::net::SocketAddr;
use std::time::Duration;

use super::{Body, Database, parse_duration};

#[derive(clap::Args)]
pub struct Args {
    /// Listen address.
    #[arg(long, env = "ECOM_ADDR", default_value = "0.0.0.0:8081")]
    addr: SocketAddr,
    #[command(flatten)]
    db: Database,
    #[command(flatten)]
    body: Body,
    /// The tokens' issuer (`iss`): the platform's public address.
    #[arg(
        long,
        env = "ECOM_TOKEN_ISSUER",
        default_value = "http://127.0.0.1:8080"
    )]
    issuer: String,
    /// The tokens' audience (`aud`).
    #[arg(long, env = "ECOM_TOKEN_AUDIENCE", default_value = "ecom")]
    audience: String,
    /// How long a token is valid.
    #[arg(long, env = "ECOM_TOKEN_TTL", default_value = "15m", value_parser = parse_duration)]
    token_ttl: Duration,
    /// The customers service's base URL (registration creates the customer record).
    #[arg(long, env = "CUSTOMERS_URL", default_value = "http://127.0.0.1:8083")]
    customers_url: String,
    /// Sets the administrator's password (user `admin`) at start.
    #[arg(long, env = "ECOM_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
    /// Sets the secret of the machine client `importer` (scope `catalog:write`) at start.
    #[arg(long, env = "ECOM_IMPORTER_SECRET", hide_env_values = true)]
    importer_secret: Option<String>,
    /// Makes a new signing key at start (the previous ones keep verifying their tokens).
    #[arg(long)]
    rotate_key: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let _telemetry = service_common::telemetry::init("auth")?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let db = args.db.open(auth::SCHEMA, &auth::MIGRATIONS).await?;
        if let Some(password) = &args.admin_password {
            auth::ensure_admin(&db, password).await?;
        }
        if let Some(secret) = &args.importer_secret {
            auth::ensure_client(&db, "importer", secret, "catalog:write").await?;
        }
        if args.rotate_key {
            let keys = auth::Keys::open(db.clone(), args.token_ttl).await?;
            let kid = keys.rotate().await?;
            tracing::info!(%kid, "new signing key");
        }
        let config = auth::Config {
            addr: args.addr,
            body: args.body.limits(),
            tokens: auth::TokenConfig {
                issuer: args.issuer,
                audience: args.audience,
                ttl: args.token_ttl,
            },
            customers_url: args.customers_url,
        };
        super::serve(
            "auth",
            args.addr,
            auth::build(config, db, service_common::shutdown_signal()),
        )
        .await
    })
}
