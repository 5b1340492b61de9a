//! Customers (`ecom customers`, port 8083): customer records on PostgreSQL (schema
//! `customers`) or SQLite (`ecom up`), through one [`service_db::Db`].
//!
//! | route | answers |
//! |---|---|
//! | `POST /api/v1/customers` | 201 + `Location` + `ETag`; 400 `validation_failed`; 409 `email_taken`; 422 `idempotency_key_reused` |
//! | `GET /api/v1/customers/{id}` | 200 + `ETag`; 404 `not_found` |
//! | `GET /api/v1/customers?email=&limit=&cursor=` | 200 `{"items", "next_cursor"}` in id order; 400 `invalid_parameter` |
//! | `PATCH /api/v1/customers/{id}` | 200 + `ETag` (JSON merge patch); 412 `precondition_failed` when `If-Match` is stale |
//! | `DELETE /api/v1/customers/{id}` | 204; 404; 412 |
//!
//! Emails are unique in any case (`Ann@Example.com` and `ann@example.com` are one address).
//!
//! Ownership: a caller with a customer's token sees and changes only that customer's record
//! (another's is 404, a list holds only theirs) and creates none (registration does, through
//! the auth service); an administrator's token, or no token (another service), is not limited.
//!
//! Every creating POST takes an `Idempotency-Key`: the same key and body answer the same,
//! once. A database that does not answer is 503 `database_unavailable`, never a 500.

pub mod customer;
pub mod repo;
mod routes;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use prometheus_client::registry::Registry;
use service_common::auth::Tokens;
use service_common::http_metrics::HttpMetrics;
use service_common::{Ops, ReadyCheck};
use service_db::{Db, Migrations};

pub use routes::openapi;

/// The schema of the service's tables on PostgreSQL.
pub const SCHEMA: &str = "customers";

/// The service's migrations, in order.
pub static MIGRATIONS: Migrations = Migrations(&[
    (
        1,
        "customers",
        include_str!("../migrations/0001_customers.sql"),
    ),
    (2, "idempotency keys", service_db::idempotency::TABLE),
]);

/// The collection's path.
pub const CUSTOMERS: &str = "/api/v1/customers";

/// Settings of the customers service.
#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    /// How much of a body is read, for how long.
    pub body: service_common::rest::BodyLimits,
    /// How callers' tokens are checked for the ownership rules (`None`: every caller is
    /// trusted).
    pub tokens: Option<service_common::auth::VerifierConfig>,
}

/// The service's routes and readiness over `db` (migrated): what [`build`] serves alone and
/// `ecom up` serves beside the other services.
pub fn part(db: Db, tokens: Tokens, http: Arc<HttpMetrics>) -> (Router, ReadyCheck) {
    service_db::idempotency::spawn_purge(db.clone());
    let ready = db.ready_check();
    (routes::router(routes::Shared { db, tokens }, http), ready)
}

/// The customers alone on `config.addr` over `db` (migrated), until `shutdown` resolves: the
/// bound address and the server's future.
pub async fn build(
    config: Config,
    db: Db,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    build_on(listener, config, db, shutdown)
}

/// [`build`] on a listener already bound (`config.addr` unused): for when another service
/// must know the address first, as the auth service does (registration creates customers).
pub fn build_on(
    listener: tokio::net::TcpListener,
    config: Config,
    db: Db,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let mut registry = Registry::default();
    let http = HttpMetrics::register(&mut registry);
    registry.register_collector(Box::new(service_db::metrics::PoolMetrics::new(vec![(
        "customers",
        db.clone(),
    )])));
    let (router, ready) = part(db, Tokens::new(config.tokens.clone()), http);
    let router = router
        .layer(axum::Extension(config.body))
        .merge(service_common::docs::router(openapi()));
    service_common::serve_listener(
        listener,
        router,
        Ops::new(registry, ready),
        service_common::Limits::default(),
        shutdown,
    )
}
