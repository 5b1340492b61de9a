//! The product catalog (`ecom catalog`, port 8082): products on PostgreSQL (schema `catalog`)
//! or SQLite (`ecom up`), through one [`service_db::Db`].
//!
//! | route | answers |
//! |---|---|
//! | `POST /api/v1/products` | 201 + `Location` + `ETag`; 400 `validation_failed`; 409 `sku_taken`; 422 `idempotency_key_reused` |
//! | `GET /api/v1/products/{id}` | 200 + `ETag`; 404 `not_found` |
//! | `GET /api/v1/products?category=&q=&limit=&cursor=` | 200 `{"items", "next_cursor"}` in id order; 400 `invalid_parameter` |
//! | `PATCH /api/v1/products/{id}` | 200 + `ETag` (JSON merge patch); 412 `precondition_failed` when `If-Match` is stale |
//! | `DELETE /api/v1/products/{id}` | 204; 404; 412 |
//! | `POST /api/v1/products/batch` | 200, one result per item (`created`, `updated`, `unchanged`, `rejected`) |
//!
//! Every creating POST takes an `Idempotency-Key`: the same key and body answer the same,
//! once. A database that does not answer is 503 `database_unavailable`, never a 500.

pub mod product;
pub mod repo;
mod routes;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use prometheus_client::registry::Registry;
use service_common::http_metrics::HttpMetrics;
use service_common::{Ops, ReadyCheck};
use service_db::{Db, Migrations};

pub use routes::openapi;

/// The schema of the catalog's tables on PostgreSQL.
pub const SCHEMA: &str = "catalog";

/// The catalog's migrations, in order.
pub static MIGRATIONS: Migrations = Migrations(&[
    (
        1,
        "products",
        include_str!("../migrations/0001_products.sql"),
    ),
    (2, "idempotency keys", service_db::idempotency::TABLE),
]);

/// The collection's path.
pub const PRODUCTS: &str = "/api/v1/products";

/// Settings of the catalog service.
#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    /// How much of a body is read, for how long.
    pub body: service_common::rest::BodyLimits,
}

/// The catalog's routes and readiness over `db` (migrated; old idempotency keys are purged
/// hourly): what [`build`] serves alone and `ecom up` serves beside the other services.
pub fn part(db: Db, http: Arc<HttpMetrics>) -> (Router, ReadyCheck) {
    service_db::idempotency::spawn_purge(db.clone());
    let ready = db.ready_check();
    (routes::router(db, http), ready)
}

/// The catalog alone on `config.addr` over `db` (migrated), until `shutdown` resolves: the
/// bound address and the server's future.
pub async fn build(
    config: Config,
    db: Db,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let mut registry = Registry::default();
    let http = HttpMetrics::register(&mut registry);
    registry.register_collector(Box::new(service_db::metrics::PoolMetrics::new(vec![(
        "catalog",
        db.clone(),
    )])));
    let (router, ready) = part(db, http);
    let router = router
        .layer(axum::Extension(config.body))
        .merge(service_common::docs::router(openapi()));
    service_common::serve(config.addr, router, Ops::new(registry, ready), shutdown).await
}
