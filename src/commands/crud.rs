//! `ecom auth`, `ecom catalog`, `ecom customers`, `ecom orders` and `ecom migrate`: the
//! services on PostgreSQL, each in its own schema of one database.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use event_log::kafka::{KafkaLog, KafkaSettings};
use service_db::{Db, DbConfig, Migrations};

use super::parse_duration;

/// The database of a CRUD service: `DATABASE_URL`, or the seed's `DB_HOST`/`DB_PORT`/
/// `DB_NAME`/`DB_USER`/`DB_PASSWORD`.
#[derive(clap::Args, Debug, Clone)]
pub struct Database {
    /// `postgres://user:password@host:port/database` (or `sqlite://FILE`).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// When DATABASE_URL is not set: the PostgreSQL host...
    #[arg(long, env = "DB_HOST")]
    db_host: Option<String>,
    #[arg(long, env = "DB_PORT", default_value_t = 5432)]
    db_port: u16,
    #[arg(long, env = "DB_NAME", default_value = "ecom")]
    db_name: String,
    #[arg(long, env = "DB_USER", default_value = "ecom")]
    db_user: String,
    #[arg(long, env = "DB_PASSWORD", hide_env_values = true, default_value = "")]
    db_password: String,
    /// Connections in the service's pool.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 16)]
    db_max_connections: u32,
}

impl Database {
    fn url(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.database_url {
            return Ok(url.clone());
        }
        let host = self.db_host.as_deref().context(
            "no database: set DATABASE_URL (postgres://user:password@host:port/database) or DB_HOST",
        )?;
        let credentials = if self.db_password.is_empty() {
            encode(&self.db_user)
        } else {
            format!("{}:{}", encode(&self.db_user), encode(&self.db_password))
        };
        Ok(format!(
            "postgres://{credentials}@{host}:{}/{}",
            self.db_port,
            encode(&self.db_name)
        ))
    }

    /// Connects to the service's schema and applies its migrations.
    pub async fn open(&self, schema: &'static str, migrations: &Migrations) -> anyhow::Result<Db> {
        let config = DbConfig {
            max_connections: self.db_max_connections.max(1),
            ..DbConfig::new(self.url()?, schema)
        };
        let db = Db::connect(&config)
            .await
            .with_context(|| format!("cannot connect to the database for {schema}"))?;
        db.migrate(migrations)
            .await
            .with_context(|| format!("cannot migrate the {schema} schema"))?;
        Ok(db)
    }
}

/// How tokens are checked (`ecom gateway`, and the ownership rules of `ecom customers` and
/// `ecom orders`).
#[derive(clap::Args, Debug, Clone)]
pub struct TokenCheck {
    /// The auth service (the gateway routes to it; its JWKS is the default key set).
    #[arg(long, env = "AUTH_URL", default_value = "http://127.0.0.1:8081")]
    auth_url: String,
    /// The token keys (default: the auth service's `/.well-known/jwks.json` at `AUTH_URL`; an
    /// external provider's, such as a Cognito user pool's, works the same).
    #[arg(long, env = "JWKS_URL")]
    jwks_url: Option<String>,
    /// The tokens' issuer (`iss`).
    #[arg(
        long,
        env = "ECOM_TOKEN_ISSUER",
        default_value = "http://127.0.0.1:8080"
    )]
    issuer: String,
    /// The tokens' audience (`aud`).
    #[arg(long, env = "ECOM_TOKEN_AUDIENCE", default_value = "ecom")]
    audience: String,
}

impl TokenCheck {
    fn config(&self) -> service_common::auth::VerifierConfig {
        service_common::auth::VerifierConfig {
            jwks_url: self.jwks_url.clone().unwrap_or_else(|| {
                format!(
                    "{}/.well-known/jwks.json",
                    self.auth_url.trim_end_matches('/')
                )
            }),
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
        }
    }
}

/// How much of a request body a CRUD service reads, and for how long.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct Body {
    /// Bodies over this many bytes get 413.
    #[arg(long, env = "ECOM_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    max_body_bytes: usize,
    /// A body not received whole within this gets 408.
    #[arg(long, env = "ECOM_BODY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    body_timeout: Duration,
}

impl Body {
    fn limits(self) -> service_common::rest::BodyLimits {
        service_common::rest::BodyLimits {
            max_bytes: self.max_body_bytes,
            read_timeout: self.body_timeout,
        }
    }
}

/// Percent-encodes a URL component (user, password, database name).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(clap::Args)]
pub struct CatalogArgs {
    /// Listen address.
    #[arg(long, env = "ECOM_ADDR", default_value = "0.0.0.0:8082")]
    addr: SocketAddr,
    #[command(flatten)]
    db: Database,
    #[command(flatten)]
    body: Body,
}

pub fn catalog(args: CatalogArgs) -> anyhow::Result<()> {
    let _telemetry = service_common::telemetry::init("catalog").map_err(anyhow::Error::msg)?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let db = args.db.open(catalog::SCHEMA, &catalog::MIGRATIONS).await?;
        let config = catalog::Config {
            addr: args.addr,
            body: args.body.limits(),
        };
        serve(
            "catalog",
            args.addr,
            catalog::build(config, db, service_common::shutdown_signal()),
        )
        .await
    })
}

#[derive(clap::Args)]
pub struct CustomersArgs {
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

pub fn customers(args: CustomersArgs) -> anyhow::Result<()> {
    let _telemetry = service_common::telemetry::init("customers").map_err(anyhow::Error::msg)?;
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
        serve(
            "customers",
            args.addr,
            customers::build(config, db, service_common::shutdown_signal()),
        )
        .await
    })
}

#[derive(clap::Args)]
pub struct OrdersArgs {
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
    tokens: TokenCheck,
}

pub fn orders(args: OrdersArgs) -> anyhow::Result<()> {
    let _telemetry = service_common::telemetry::init("orders").map_err(anyhow::Error::msg)?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let db = args.db.open(orders::SCHEMA, &orders::MIGRATIONS).await?;
        let kafka = KafkaSettings {
            cluster: args.kafka.cluster()?,
            topic: args.topic.clone(),
            delivery_timeout: Duration::from_secs(5),
            max_in_flight: 100_000,
        };
        let log = KafkaLog::new(kafka).context("cannot create the Kafka producer")?;
        let config = orders::Config {
            addr: args.addr,
            body: args.body.limits(),
            upstream: orders::UpstreamConfig {
                catalog_url: args.catalog_url,
                customers_url: args.customers_url,
                timeout: args.upstream_timeout,
            },
            topic: args.topic,
            relay_poll: args.relay_poll,
            tokens: Some(args.tokens.config()),
        };
        serve(
            "orders",
            args.addr,
            orders::build(config, db, log, service_common::shutdown_signal()),
        )
        .await
    })
}

#[derive(clap::Args)]
pub struct AuthArgs {
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

pub fn auth(args: AuthArgs) -> anyhow::Result<()> {
    let _telemetry = service_common::telemetry::init("auth").map_err(anyhow::Error::msg)?;
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
        serve(
            "auth",
            args.addr,
            auth::build(config, db, service_common::shutdown_signal()),
        )
        .await
    })
}

/// How the gateway limits callers and treats the services (`ecom gateway`, `ecom up`).
#[derive(clap::Args, Debug, Clone)]
pub struct GatewayFlags {
    /// Changes to the default rate limits: comma-separated `WHO[.CLASS]=RATE`, WHO one of
    /// anonymous, person, client, *; CLASS one of auth, read, write, events, analytics;
    /// RATE like 100/s, 6000/min:200 (with a burst) or off. `off` alone turns limits off.
    #[arg(long, env = "RATE_LIMITS", default_value = "", value_parser = gateway::limits::RateLimits::parse)]
    rate_limits: gateway::limits::RateLimits,
    /// Redis shared by every gateway replica for the rate limits (in process without it).
    #[arg(long, env = "REDIS_URL")]
    redis_url: Option<String>,
    /// How long a rate-limit decision waits for Redis before it is made in process.
    #[arg(long, env = "ECOM_REDIS_TIMEOUT", default_value = "100ms", value_parser = parse_duration)]
    redis_timeout: Duration,
    /// How long a service may take to start answering.
    #[arg(long, env = "ECOM_UPSTREAM_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    upstream_timeout: Duration,
    /// Requests waiting on one service at once; more get 503 at once.
    #[arg(long, env = "ECOM_UPSTREAM_MAX_IN_FLIGHT", default_value_t = 512)]
    upstream_max_in_flight: usize,
    /// Consecutive failures of a service that open its circuit breaker.
    #[arg(long, env = "ECOM_BREAKER_FAILURES", default_value_t = 5)]
    breaker_failures: u32,
    /// How long an open breaker fails requests at once before it probes.
    #[arg(long, env = "ECOM_BREAKER_OPEN_FOR", default_value = "5s", value_parser = parse_duration)]
    breaker_open_for: Duration,
    /// Attempts of an idempotent request without a body (1: no retries).
    #[arg(long, env = "ECOM_UPSTREAM_ATTEMPTS", default_value_t = 2)]
    upstream_attempts: u32,
    /// Proxies in front of the gateway whose X-Forwarded-For entries name the client (1
    /// behind a load balancer).
    #[arg(long, env = "ECOM_TRUSTED_PROXIES", default_value_t = 0)]
    trusted_proxies: usize,
    /// Request bodies over this many bytes get 413.
    #[arg(long, env = "ECOM_MAX_BODY_BYTES", default_value_t = 4 << 20)]
    max_body_bytes: usize,
    /// A request body not received whole within this gets 408.
    #[arg(long, env = "ECOM_BODY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    body_timeout: Duration,
    /// A connection whose request headers do not arrive within this is closed.
    #[arg(long, env = "ECOM_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    header_timeout: Duration,
    /// Connections at once; more wait in the listen backlog.
    #[arg(long, env = "ECOM_MAX_CONNECTIONS", default_value_t = 4096)]
    max_connections: usize,
}

impl GatewayFlags {
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// The gateway's configuration on `addr` in front of `upstreams`.
    pub fn config(
        &self,
        addr: SocketAddr,
        upstreams: gateway::UpstreamUrls,
        verifier: service_common::auth::VerifierConfig,
    ) -> gateway::Config {
        gateway::Config {
            resilience: gateway::upstream::Resilience {
                timeout: self.upstream_timeout,
                max_in_flight: self.upstream_max_in_flight,
                failures_to_open: self.breaker_failures.max(1),
                open_for: self.breaker_open_for,
                attempts: self.upstream_attempts.max(1),
                ..gateway::upstream::Resilience::default()
            },
            rate_limits: self.rate_limits.clone(),
            redis: self
                .redis_url
                .clone()
                .filter(|url| !url.is_empty())
                .map(|url| gateway::limits::RedisConfig {
                    url,
                    timeout: self.redis_timeout,
                }),
            body: service_common::rest::BodyLimits {
                max_bytes: self.max_body_bytes,
                read_timeout: self.body_timeout,
            },
            server: service_common::Limits {
                header_read_timeout: self.header_timeout,
                max_connections: self.max_connections,
                ..service_common::Limits::default()
            },
            trusted_proxies: self.trusted_proxies,
            api: Some(api_description()),
            ..gateway::Config::new(addr, upstreams, verifier)
        }
    }
}

/// The description of every public API, as the gateway serves it.
pub fn api_description() -> utoipa::openapi::OpenApi {
    gateway::openapi::describe([
        gateway::status::openapi(),
        auth::openapi(),
        catalog::openapi(),
        customers::openapi(),
        orders::openapi(),
        ingest::openapi(),
        analytics_api::openapi(),
    ])
}

#[derive(clap::Args)]
pub struct GatewayArgs {
    /// Listen address.
    #[arg(long, env = "ECOM_ADDR", default_value = "0.0.0.0:8080")]
    addr: SocketAddr,
    #[arg(long, env = "CATALOG_URL", default_value = "http://127.0.0.1:8082")]
    catalog_url: String,
    #[arg(long, env = "CUSTOMERS_URL", default_value = "http://127.0.0.1:8083")]
    customers_url: String,
    #[arg(long, env = "ORDERS_URL", default_value = "http://127.0.0.1:8087")]
    orders_url: String,
    #[arg(long, env = "INGEST_URL", default_value = "http://127.0.0.1:8084")]
    ingest_url: String,
    #[arg(long, env = "ANALYTICS_URL", default_value = "http://127.0.0.1:8085")]
    analytics_url: String,
    /// The stream engine's operations port, for `GET /api/v1/status` (not shown without it).
    #[arg(long, env = "STREAM_ENGINE_URL")]
    stream_engine_url: Option<String>,
    #[command(flatten)]
    tokens: TokenCheck,
    #[command(flatten)]
    flags: GatewayFlags,
}

pub fn gateway(args: GatewayArgs) -> anyhow::Result<()> {
    let _telemetry = service_common::telemetry::init("gateway").map_err(anyhow::Error::msg)?;
    let upstreams = gateway::UpstreamUrls {
        auth: args.tokens.auth_url.clone(),
        catalog: args.catalog_url,
        customers: args.customers_url,
        orders: args.orders_url,
        ingest: args.ingest_url,
        analytics: args.analytics_url,
    };
    let mut config = args
        .flags
        .config(args.addr, upstreams, args.tokens.config());
    config.status.stream_engine = args.stream_engine_url;
    tokio::runtime::Runtime::new()?.block_on(async {
        serve(
            "gateway",
            args.addr,
            gateway::build(config, service_common::shutdown_signal()),
        )
        .await
    })
}

/// Waits for a service's `build` to bind, then serves until its shutdown.
async fn serve<S>(
    name: &str,
    addr: SocketAddr,
    built: impl Future<Output = std::io::Result<(SocketAddr, S)>>,
) -> anyhow::Result<()>
where
    S: Future<Output = std::io::Result<()>>,
{
    let (bound, server) = built
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(addr = %bound, "{name} listening");
    server.await?;
    Ok(())
}

/// The services whose schemas `ecom migrate` applies.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Auth,
    Catalog,
    Customers,
    Orders,
    All,
}

#[derive(clap::Args)]
pub struct MigrateArgs {
    /// Whose schema to migrate.
    #[arg(long, value_enum, default_value_t = Service::All)]
    service: Service,
    #[command(flatten)]
    db: Database,
}

/// Applies the migrations of one service's schema, or of all, and exits.
pub fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let _telemetry = service_common::telemetry::init("migrate").map_err(anyhow::Error::msg)?;
    let all: [(Service, &'static str, &Migrations); 4] = [
        (Service::Auth, auth::SCHEMA, &auth::MIGRATIONS),
        (Service::Catalog, catalog::SCHEMA, &catalog::MIGRATIONS),
        (
            Service::Customers,
            customers::SCHEMA,
            &customers::MIGRATIONS,
        ),
        (Service::Orders, orders::SCHEMA, &orders::MIGRATIONS),
    ];
    tokio::runtime::Runtime::new()?.block_on(async {
        for (service, schema, migrations) in all {
            if args.service == Service::All || args.service == service {
                let db = args.db.open(schema, migrations).await?;
                db.close().await;
                println!("{schema}: migrated");
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_variables_make_an_encoded_url() {
        let db = Database {
            database_url: None,
            db_host: Some("db.internal".into()),
            db_port: 5433,
            db_name: "ecom".into(),
            db_user: "app".into(),
            db_password: "p@ss:w/rd".into(),
            db_max_connections: 4,
        };
        assert_eq!(
            db.url().unwrap(),
            "postgres://app:p%40ss%3Aw%2Frd@db.internal:5433/ecom"
        );
        let none = Database {
            db_host: None,
            ..db
        };
        assert!(none.url().is_err());
    }
}
