//! `ecom gateway`: the public entry, routing every `/api/v1` path to its service, with the
//! tokens, roles, rate limits and resilience of `gateway`; its flags are `ecom up`'s too.

use std::net::SocketAddr;
use std::time::Duration;

use super::{TokenCheck, parse_duration};

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
        inventory::openapi(),
        payments::openapi(),
        ingest::openapi(),
        analytics_api::openapi(),
    ])
}

#[derive(clap::Args)]
pub struct Args {
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
    #[arg(long, env = "INVENTORY_URL", default_value = "http://127.0.0.1:8088")]
    inventory_url: String,
    #[arg(long, env = "PAYMENTS_URL", default_value = "http://127.0.0.1:8089")]
    payments_url: String,
    /// The stream engine's operations port, for `GET /api/v1/status` (not shown without it).
    #[arg(long, env = "STREAM_ENGINE_URL")]
    stream_engine_url: Option<String>,
    #[command(flatten)]
    tokens: TokenCheck,
    #[command(flatten)]
    flags: GatewayFlags,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let _telemetry = service_common::telemetry::init("gateway")?;
    let upstreams = gateway::UpstreamUrls {
        auth: args.tokens.auth_url.clone(),
        catalog: args.catalog_url,
        customers: args.customers_url,
        orders: args.orders_url,
        ingest: args.ingest_url,
        analytics: args.analytics_url,
        inventory: args.inventory_url,
        payments: args.payments_url,
    };
    let mut config = args
        .flags
        .config(args.addr, upstreams, args.tokens.config());
    config.status.stream_engine = args.stream_engine_url;
    tokio::runtime::Runtime::new()?.block_on(async {
        super::serve(
            "gateway",
            args.addr,
            gateway::build(config, service_common::shutdown_signal()),
        )
        .await
    })
}
