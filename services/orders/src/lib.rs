//! Orders (`ecom orders`, port 8087): orders priced from the catalog, on PostgreSQL (schema
//! `orders`) or SQLite (`ecom up`), whose creation feeds the stream.
//!
//! | route | answers |
//! |---|---|
//! | `POST /api/v1/orders` | 201 + `Location` + `ETag`; 400 `validation_failed`; 422 `unknown_customer`, `unknown_product`, `mixed_currencies`, `idempotency_key_reused`; 503 `upstream_unavailable`; 504 `upstream_timeout` |
//! | `GET /api/v1/orders/{id}` | 200 + `ETag`; 404 `not_found` |
//! | `GET /api/v1/orders?customer_id=&status=&limit=&cursor=` | 200 `{"items", "next_cursor"}` in id order |
//! | `POST /api/v1/orders/{id}/status` `{"status"}` | 200 + `ETag`; 409 `invalid_transition`; 412 `precondition_failed` |
//! | `PATCH /api/v1/orders/{id}` | as `/status`: `status` is the only field that changes |
//! | `DELETE /api/v1/orders/{id}` | 204: the order is cancelled, not deleted; 409 once shipped |
//!
//! Ownership: a caller with a customer's token orders for themselves only (403), sees only
//! their own orders (another's is 404, a list holds only theirs) and may only cancel; an
//! administrator's token, or no token (another service), is not limited.
//!
//! Creating an order asks the customers service whether the buyer exists and the catalog for
//! each product's current price (each with a timeout), then stores the order, its lines and
//! one `PURCHASE` event per line in one transaction: the transactional outbox, which the
//! [`outbox::Relay`] appends to the event log (`ecom-raw-events`).

pub mod order;
pub mod outbox;
pub mod repo;
mod routes;
pub mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use event_log::EventLog;
use prometheus_client::registry::Registry;
use service_common::auth::Tokens;
use service_common::http_metrics::HttpMetrics;
use service_common::{Ops, ReadyCheck};
use service_db::{Db, Migrations};

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
    /// The topic the `PURCHASE` events go to.
    pub topic: String,
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
    pub topic: Arc<str>,
    pub relay: Arc<tokio::sync::Notify>,
    pub tokens: Tokens,
}

/// The service's routes and readiness over `db` (migrated), and the relay that moves its
/// outbox to `log` (run it with [`outbox::Relay::run`]): what [`build`] serves alone and
/// `ecom up` serves beside the other services.
pub fn part<L: EventLog>(
    db: Db,
    log: L,
    upstreams: Upstreams,
    topic: String,
    tokens: Tokens,
    registry: &mut Registry,
    http: Arc<HttpMetrics>,
) -> (Router, ReadyCheck, outbox::Relay<L>) {
    service_db::idempotency::spawn_purge(db.clone());
    let relay = outbox::Relay::new(db.clone(), log, outbox::RelayMetrics::register(registry));
    let check = db.ready_check();
    let orders = Orders {
        db,
        upstreams,
        topic: topic.into(),
        relay: relay.waker(),
        tokens,
    };
    (routes::router(orders, http), check, relay)
}

/// The service alone on `config.addr` over `db` (migrated) and `log`, with its relay, until
/// `shutdown` resolves: the bound address and the future of both.
pub async fn build<L: EventLog>(
    config: Config,
    db: Db,
    log: L,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let mut registry = Registry::default();
    let http = HttpMetrics::register(&mut registry);
    registry.register_collector(Box::new(service_db::metrics::PoolMetrics::new(vec![(
        "orders",
        db.clone(),
    )])));
    let upstreams = Upstreams::new(config.upstream.clone());
    let tokens = Tokens::new(config.tokens.clone());
    let (router, ready, relay) = part(
        db,
        log,
        upstreams,
        config.topic,
        tokens,
        &mut registry,
        http,
    );
    let router = router
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
    let relay = relay.run(config.relay_poll, async move {
        let _ = relay_stop.wait_for(|s| *s).await;
    });
    Ok((addr, async move {
        let (served, ()) = tokio::join!(server, relay);
        served
    }))
}
