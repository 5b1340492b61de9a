//! Orders (`ecom orders`, port 8087): orders priced from the catalog, on PostgreSQL (schema
//! `orders`) or SQLite (`ecom up`), each carried through the order saga, which this service
//! orchestrates.
//!
//! | route | answers |
//! |---|---|
//! | `POST /api/v1/orders` | 201 `PENDING` + `Location` + `ETag` (with `Prefer: wait=N`, N ≤ 10, once the saga has settled or N s have passed); 400 `validation_failed`; 422 `unknown_customer`, `unknown_product`, `mixed_currencies`, `idempotency_key_reused`; 503 `upstream_unavailable`; 504 `upstream_timeout` |
//! | `GET /api/v1/orders/{id}` | 200 + `ETag` (with `cancel_reason` and `timeline`); 404 `not_found` |
//! | `GET /api/v1/orders?customer_id=&status=&limit=&cursor=` | 200 `{"items", "next_cursor"}` in id order |
//! | `POST /api/v1/orders/{id}/status` `{"status"}` | 200 + `ETag`; 409 `invalid_transition`, `saga_in_progress`; 412 `precondition_failed` |
//! | `PATCH /api/v1/orders/{id}` | as `/status`: `status` is the only field that changes |
//! | `DELETE /api/v1/orders/{id}` | 204: the order is cancelled (and compensated), not deleted; 409 once shipped |
//!
//! Ownership: a caller with a customer's token orders for themselves only (403), sees only
//! their own orders (another's is 404, a list holds only theirs) and may only cancel; an
//! administrator's token, or no token (another service), is not limited.
//!
//! Creating an order asks the customers service whether the buyer exists and the catalog for
//! each product's current price (each with a timeout), then stores the order `PENDING`, its
//! lines and `OrderCreated` in one transaction (the transactional outbox). The saga
//! ([`saga`], [`flow`]) then advances on the participants' replies: `StockReserved` →
//! `PaymentRequested`; `PaymentSucceeded` → `CONFIRMED`, `OrderConfirmed` and one `PURCHASE`
//! event per line for the stream (`ecom-raw-events`); a rejection, a decline, a step's timeout
//! or a cancellation → `CANCELLED` and `OrderCancelled`, which the participants compensate.

pub mod flow;
pub mod order;
pub mod outbox;
pub mod repo;
mod routes;
pub mod saga;
pub mod upstream;

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

pub use flow::{CONSUMER, REPLY_TOPICS, SOURCE, Saga, SagaConfig};
pub use routes::openapi;
pub use upstream::{UpstreamConfig, Upstreams};

/// The schema of the service's tables on PostgreSQL.
pub const SCHEMA: &str = "orders";

/// The service's migrations, in order.
pub static MIGRATIONS: Migrations = Migrations(&[
    (
        1,
        "orders, lines and outbox",
        include_str!("../migrations/0001_orders.sql"),
    ),
    (2, "idempotency keys", service_db::idempotency::TABLE),
    (
        3,
        "the trace of each outbox row",
        // The W3C traceparent of the request that staged the row, carried by its record.
        "ALTER TABLE outbox ADD COLUMN traceparent TEXT",
    ),
    (4, "the saga", include_str!("../migrations/0004_saga.sql")),
    (5, "inbox and positions", messaging::inbox::TABLES),
]);

/// The collection's path.
pub const ORDERS: &str = "/api/v1/orders";

/// Settings of the orders service.
#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    /// How much of a body is read, for how long.
    pub body: service_common::rest::BodyLimits,
    pub upstream: UpstreamConfig,
    pub saga: SagaConfig,
    /// How often the relay looks for unsent events it was not woken for (another replica's,
    /// or those left by a crash).
    pub relay_poll: Duration,
    /// How callers' tokens are checked for the ownership rules (`None`: every caller is
    /// trusted).
    pub tokens: Option<service_common::auth::VerifierConfig>,
}

/// What the handlers share (cheap to clone: handles and shared strings).
#[derive(Clone)]
pub(crate) struct Orders {
    pub db: Db,
    pub upstreams: Upstreams,
    pub saga: Arc<Saga>,
    pub tokens: Tokens,
}

/// What [`part`] makes: the routes and readiness, the outbox's relay, and the saga (whose
/// replies [`consume`] feeds and whose timeouts [`Saga::run_timeouts`] sweeps).
pub struct Part<L> {
    pub router: Router,
    pub ready: ReadyCheck,
    pub relay: Relay<L>,
    pub saga: Arc<Saga>,
}

/// The service's parts over `db` (migrated), its relay to `topics` (`order.events`, the
/// `PURCHASE` events' topic and `saga.dead-letters`): what [`build`] serves alone and `ecom up`
/// serves beside the other services.
pub fn part<L: EventLog>(
    db: Db,
    topics: Topics<L>,
    relay_metrics: RelayMetrics,
    upstreams: Upstreams,
    saga: SagaConfig,
    tokens: Tokens,
    http: Arc<HttpMetrics>,
) -> Part<L> {
    service_db::idempotency::spawn_purge(db.clone());
    messaging::spawn_inbox_purge(db.clone());
    let relay = Relay::new(db.clone(), topics, relay_metrics);
    let saga = Arc::new(Saga::new(db.clone(), saga, relay.waker()));
    let ready = db.ready_check();
    let orders = Orders {
        db,
        upstreams,
        saga: saga.clone(),
        tokens,
    };
    Part {
        router: routes::router(orders, http),
        ready,
        relay,
        saga,
    }
}

/// Consumes one of the [`REPLY_TOPICS`] into the saga, from the reader `open` makes (the
/// embedded log's `reader(CONSUMER, listener)`, or a Kafka consumer of group `orders`).
pub fn consume<R: PartitionReader + 'static>(
    saga: Arc<Saga>,
    db: Db,
    topic: &'static str,
    metrics: ConsumerMetrics,
    open: impl FnOnce(Arc<Positions>) -> Result<R, ReadError>,
) -> Result<Consumer, ReadError> {
    let wake = saga.relay_waker();
    Consumer::start(
        ConsumerConfig::new(CONSUMER, topic),
        db,
        saga,
        wake,
        metrics,
        open,
    )
}

/// The service alone on `config.addr` over `db` (migrated), `topics` and a reader per reply
/// topic (`open(topic, listener)`), with its relay and timeout sweep, until `shutdown`
/// resolves: the bound address and the future of all of it.
pub async fn build<L, R>(
    config: Config,
    db: Db,
    topics: Topics<L>,
    open: impl Fn(&'static str, Arc<Positions>) -> Result<R, ReadError>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)>
where
    L: EventLog,
    R: PartitionReader + 'static,
{
    let mut registry = Registry::default();
    let http = HttpMetrics::register(&mut registry);
    registry.register_collector(Box::new(service_db::metrics::PoolMetrics::new(vec![(
        "orders",
        db.clone(),
    )])));
    let consumer_metrics = ConsumerMetrics::register(&mut registry);
    let upstreams = Upstreams::new(config.upstream.clone());
    let tokens = Tokens::new(config.tokens.clone());
    let part = part(
        db.clone(),
        topics,
        RelayFamilies::register(&mut registry).for_service("orders"),
        upstreams,
        config.saga,
        tokens,
        http,
    );
    let mut consumers = Vec::new();
    for topic in REPLY_TOPICS {
        let consumer = consume(
            part.saga.clone(),
            db.clone(),
            topic,
            consumer_metrics.clone(),
            |listener| open(topic, listener),
        )
        .map_err(|e| std::io::Error::other(format!("cannot consume {topic}: {e}")))?;
        consumers.push(consumer);
    }
    let router = part
        .router
        .layer(axum::Extension(config.body))
        .merge(service_common::docs::router(openapi()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let (addr, server) = service_common::serve(
        config.addr,
        router,
        Ops::new(registry, part.ready),
        until_stopped(),
    )
    .await?;
    // The relay stops after the consumers, so that what they commit on their way out is sent.
    let (consumers_stopped, relay_stop) = tokio::sync::oneshot::channel::<()>();
    let relay = part.relay.run(config.relay_poll, async {
        let _ = relay_stop.await;
    });
    let sweep = part.saga.clone().run_timeouts(until_stopped());
    let stop_consumers = async move {
        until_stopped().await;
        for consumer in consumers {
            consumer.stop().await;
        }
        let _ = consumers_stopped.send(());
    };
    Ok((addr, async move {
        let (served, (), (), ()) = tokio::join!(server, sweep, stop_consumers, relay);
        served
    }))
}
