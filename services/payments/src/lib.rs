//! Payments (`ecom payments`, port 8089): charges and refunds of the orders through a payment
//! provider, on PostgreSQL (schema `payments`) or SQLite (`ecom up`), as the payments step of
//! the order saga ([`handler`]).
//!
//! | route | answers |
//! |---|---|
//! | `GET /api/v1/payments?order_id=&customer_id=` | 200 `{"items"}`, at most 100, newest first; 400 `invalid_parameter` |
//! | `GET /api/v1/payments/{id}` | 200; 404 `not_found` |
//!
//! A payment is `{"id", "order_id", "customer_id", "amount": {"amount", "currency"},
//! "status": "SUCCEEDED" | "FAILED" | "REFUNDED", "reason", "payment_method", "created_at",
//! "updated_at"}`. Ownership: a customer's token sees only their own payments (another's is
//! 404, a list holds only theirs); an administrator's token, or no token (another service),
//! sees any.
//!
//! **An order is charged at most once**, even when `PaymentRequested` is delivered twice or
//! the process dies between the provider's answer and the commit: the provider call carries
//! the order id as its idempotency key, and the provider answers the same charge again.
//!
//! The provider is a trait ([`provider::Provider`]); the one shipped is the
//! [`sandbox::Sandbox`] (`ECOM_PAYMENT_PROVIDER=sandbox`, the default and the only value),
//! a card processor's test mode with Stripe's test payment methods, whose latency and rate of
//! transient errors are settable (`ECOM_PAYMENT_SANDBOX_LATENCY_MS`,
//! `ECOM_PAYMENT_SANDBOX_ERROR_RATE`). Its ledger is a database of its own (a second SQLite
//! file, or the schema [`sandbox::SANDBOX_SCHEMA`]), as an external processor's would be.

pub mod handler;
pub mod payment;
pub mod provider;
pub mod repo;
mod routes;
pub mod sandbox;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use event_log::{EventLog, PartitionReader, ReadError};
use messaging::consumer::Positions;
use messaging::{
    Consumer, ConsumerConfig, ConsumerMetrics, Relay, RelayFamilies, RelayMetrics, Topics,
};
use prometheus_client::registry::Registry;
use service_common::auth::Tokens;
use service_common::http_metrics::HttpMetrics;
use service_common::{Ops, ReadyCheck};
use service_db::{Db, Migrations};
use tokio::sync::Notify;

pub use handler::{PaymentHandler, ProviderMetrics};
pub use provider::{Provider, ProviderName};
pub use routes::openapi;
pub use sandbox::{Sandbox, SandboxSettings};

/// The schema of the service's tables on PostgreSQL.
pub const SCHEMA: &str = "payments";

/// The service's migrations, in order.
pub static MIGRATIONS: Migrations = Migrations(&[
    (
        1,
        "payments and cancelled orders",
        include_str!("../migrations/0001_payments.sql"),
    ),
    (2, "outbox", messaging::outbox::TABLE),
    (3, "inbox and positions", messaging::inbox::TABLES),
]);

/// The `source` of the service's messages.
pub const SOURCE: &str = "/ecom/payments";
/// The service's consumer group on `order.events`.
pub const CONSUMER: &str = "payments";
/// The collection's path.
pub const PAYMENTS: &str = "/api/v1/payments";
/// Messages per transaction of the consumer. Handling a message waits for the provider (its
/// latency, and retries up to [`Settings::retry_budget`]) inside the transaction, so a batch
/// holds SQLite's write lock (only this service's database: its routes only read) for the sum
/// of its calls, and a batch rolled back redoes every call in it (the provider answers the
/// same for the same key). PostgreSQL ends a transaction idle for 60 s, and the longest wait
/// between two statements is one message's retry budget (10 s). A commit per message was
/// measured too slow (a sync per message: 142 orders/s in `ecom up`, BENCHMARKS.md); 32
/// keeps a batch short at the sandbox's latency.
pub const MAX_BATCH: usize = 32;
/// How often the relay looks for replies it was not woken for (left by a crash).
pub const RELAY_POLL: Duration = Duration::from_secs(1);

/// How the payments step behaves.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long one provider call is retried on transient failures before the message is
    /// left for the consumer to handle again later. The message's transaction stays open
    /// meanwhile: keep it well under PostgreSQL's idle-in-transaction timeout (60 s).
    pub retry_budget: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            retry_budget: Duration::from_secs(10),
        }
    }
}

/// Settings of the payments service.
#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    /// How much of a body is read, for how long.
    pub body: service_common::rest::BodyLimits,
    /// How callers' tokens are checked for the ownership rules (`None`: every caller is
    /// trusted).
    pub tokens: Option<service_common::auth::VerifierConfig>,
    pub settings: Settings,
    /// The sandbox provider's behaviour.
    pub sandbox: SandboxSettings,
}

/// What [`part`] makes: the routes, the readiness, the relay of the replies (run it with
/// [`Relay::run`]) and the handler of the consumer (start it with [`consume`]).
pub struct Part<L, P> {
    pub router: Router,
    pub ready: ReadyCheck,
    pub relay: Relay<L>,
    pub handler: Arc<PaymentHandler<P>>,
}

/// The service over `db` (migrated) and `provider`: what [`build`] serves alone and `ecom up`
/// serves beside the other services. `topics` must hold `payment.events` (the replies) and
/// `saga.dead-letters`. Old inbox entries are purged hourly.
#[allow(clippy::too_many_arguments)]
pub fn part<L: EventLog, P: Provider>(
    db: Db,
    topics: Topics<L>,
    relay_metrics: RelayMetrics,
    tokens: Tokens,
    settings: Settings,
    provider: Arc<P>,
    registry: &mut Registry,
    http: Arc<HttpMetrics>,
) -> Part<L, P> {
    messaging::spawn_inbox_purge(db.clone());
    let relay = Relay::new(db.clone(), topics, relay_metrics);
    let handler = Arc::new(PaymentHandler::new(
        provider,
        settings,
        ProviderMetrics::register(registry),
    ));
    let ready = db.ready_check();
    let router = routes::router(routes::Api { db, tokens }, http);
    Part {
        router,
        ready,
        relay,
        handler,
    }
}

/// Starts the consumer `payments` of `order.events` with `handler`; `wake` is the relay's
/// waker, `open` makes the reader from the listener given (the embedded log's
/// `reader(CONSUMER, listener)`, or a Kafka consumer of group [`CONSUMER`]).
pub fn consume<P: Provider, R: PartitionReader + 'static>(
    handler: Arc<PaymentHandler<P>>,
    db: Db,
    wake: Arc<Notify>,
    metrics: ConsumerMetrics,
    open: impl FnOnce(Arc<Positions>) -> Result<R, ReadError>,
) -> Result<Consumer, ReadError> {
    let config = ConsumerConfig {
        max_batch: MAX_BATCH,
        ..ConsumerConfig::new(CONSUMER, messaging::contract::ORDER_EVENTS)
    };
    Consumer::start(config, db, handler, wake, metrics, open)
}

/// The service alone on `config.addr` with the sandbox provider over `sandbox_db` (migrated
/// with [`sandbox::SANDBOX_MIGRATIONS`]), over `db` (migrated), its replies to `topics` and
/// its consumer reading from `open`, until `shutdown` resolves: the bound address and the
/// future of the server and the relay. On shutdown the consumer stops first (after the batch
/// in hand commits), then the relay sends what is committed.
pub async fn build<L: EventLog, R: PartitionReader + 'static>(
    config: Config,
    db: Db,
    sandbox_db: Db,
    topics: Topics<L>,
    open: impl FnOnce(Arc<Positions>) -> Result<R, ReadError>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let mut registry = Registry::default();
    let http = HttpMetrics::register(&mut registry);
    registry.register_collector(Box::new(service_db::metrics::PoolMetrics::new(vec![
        ("payments", db.clone()),
        ("payment_sandbox", sandbox_db.clone()),
    ])));
    let provider_ready = sandbox_db.ready_check();
    let provider = Arc::new(Sandbox::new(sandbox_db, config.sandbox));
    let part = part(
        db.clone(),
        topics,
        RelayFamilies::register(&mut registry).for_service("payments"),
        Tokens::new(config.tokens.clone()),
        config.settings.clone(),
        provider,
        &mut registry,
        http,
    );
    let consumer_metrics = ConsumerMetrics::register(&mut registry);
    let consumer = consume(part.handler, db, part.relay.waker(), consumer_metrics, open)
        .map_err(|e| std::io::Error::other(format!("cannot start the consumer: {}", e.0)))?;
    let ready =
        service_common::all_ready(vec![("database", part.ready), ("provider", provider_ready)]);
    let router = part
        .router
        .layer(axum::Extension(config.body))
        .merge(service_common::docs::router(openapi()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let mut server_stop = stopped.clone();
    let (addr, server) =
        service_common::serve(config.addr, router, Ops::new(registry, ready), async move {
            let _ = server_stop.wait_for(|s| *s).await;
        })
        .await?;
    let mut relay_stop = stopped;
    let relay = part.relay.run(RELAY_POLL, async move {
        let _ = relay_stop.wait_for(|s| *s).await;
        consumer.stop().await;
    });
    Ok((addr, async move {
        let (served, ()) = tokio::join!(server, relay);
        served
    }))
}
