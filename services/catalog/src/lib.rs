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
//!
//! Stock ([`stock`]): the inventory is the one source of truth for it. Stock set on a product
//! (created, patched with `stock_quantity`, upserted with a new one: the CSV import) is sent as
//! `ProductStockSet` to `catalog.events` through the catalog's outbox, in the transaction of
//! the write, and sets the inventory's `on_hand`. The catalog is the consumer [`CONSUMER`] of
//! `inventory.events`: each `StockChanged` sets the product's `stock_quantity` to the
//! inventory's `available` (at most a second behind in `ecom up`), without a new version.
//!
//! | topic | direction | types |
//! |---|---|---|
//! | `catalog.events` | sent | `ProductStockSet` (subject: the product) |
//! | `inventory.events` | read | `StockChanged` (the others are skipped) |
//! | `saga.dead-letters` | sent | a `StockChanged` that cannot be read |

pub mod product;
pub mod repo;
mod routes;
pub mod stock;

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
use service_common::http_metrics::HttpMetrics;
use service_common::{Ops, ReadyCheck};
use service_db::{Db, Migrations};
use tokio::sync::Notify;

pub use routes::openapi;
pub use stock::StockReadings;

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
    (3, "outbox", messaging::outbox::TABLE),
    (4, "inbox and positions", messaging::inbox::TABLES),
    (
        5,
        "the version of the stock reading",
        // The inventory's row version of the `StockChanged` last read into `stock_quantity`
        // (0: none yet), so that an earlier change read late does not undo a later one.
        "ALTER TABLE products ADD COLUMN stock_version BIGINT NOT NULL DEFAULT 0",
    ),
]);

/// The collection's path.
pub const PRODUCTS: &str = "/api/v1/products";
/// The `source` of the envelopes the catalog sends.
pub const SOURCE: &str = "/ecom/catalog";
/// The catalog's consumer group on `inventory.events`, and its rows in the inbox and positions.
pub const CONSUMER: &str = "catalog";
/// How often the relay looks for unsent messages it was not woken for.
pub const RELAY_POLL: Duration = Duration::from_millis(500);

/// Settings of the catalog service.
#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    /// How much of a body is read, for how long.
    pub body: service_common::rest::BodyLimits,
}

/// The catalog's pieces over one database: what [`build`] runs alone and `ecom up` runs beside
/// the other services. The caller runs the relay ([`Relay::run`]) and starts the consumer
/// ([`consume`]) with `handler`.
pub struct Part<L> {
    pub router: Router,
    pub ready: ReadyCheck,
    /// Moves the outbox (`ProductStockSet`, dead letters) to its topics.
    pub relay: Relay<L>,
    pub handler: Arc<StockReadings>,
}

/// The routes, readiness, relay and handler over `db` (migrated; old idempotency keys and
/// inbox entries are purged hourly). `topics` should hold `catalog.events` and
/// `saga.dead-letters`.
pub fn part<L: EventLog>(
    db: Db,
    topics: Topics<L>,
    relay_metrics: RelayMetrics,
    http: Arc<HttpMetrics>,
) -> Part<L> {
    service_db::idempotency::spawn_purge(db.clone());
    messaging::spawn_inbox_purge(db.clone());
    let relay = Relay::new(db.clone(), topics, relay_metrics);
    let ready = db.ready_check();
    let catalog = routes::Catalog {
        db,
        relay: relay.waker(),
    };
    Part {
        router: routes::router(catalog, http),
        ready,
        relay,
        handler: Arc::new(StockReadings),
    }
}

/// Starts the catalog's consumer of `inventory.events` on `db`: `open` makes the reader from
/// the listener given (the embedded log's `reader(CONSUMER, listener)`, or a Kafka consumer of
/// group [`CONSUMER`]); `wake` is the relay's waker (a reading that cannot be read goes to the
/// dead letters through the outbox).
pub fn consume<R: PartitionReader + 'static>(
    handler: Arc<StockReadings>,
    db: Db,
    wake: Arc<Notify>,
    metrics: ConsumerMetrics,
    open: impl FnOnce(Arc<Positions>) -> Result<R, ReadError>,
) -> Result<Consumer, ReadError> {
    Consumer::start(
        ConsumerConfig::new(CONSUMER, messaging::contract::INVENTORY_EVENTS),
        db,
        handler,
        wake,
        metrics,
        open,
    )
}

/// The catalog alone on `config.addr` over `db` (migrated), with its relay to `topics` and its
/// consumer of the reader `open` makes, until `shutdown` resolves: the bound address and the
/// future of all three. On shutdown the server and the consumer stop (the batch in hand
/// commits), then the relay sends what they committed and stops.
pub async fn build<L: EventLog, R: PartitionReader + 'static>(
    config: Config,
    db: Db,
    topics: Topics<L>,
    open: impl FnOnce(Arc<Positions>) -> Result<R, ReadError>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let mut registry = Registry::default();
    let http = HttpMetrics::register(&mut registry);
    registry.register_collector(Box::new(service_db::metrics::PoolMetrics::new(vec![(
        "catalog",
        db.clone(),
    )])));
    let metrics = ConsumerMetrics::register(&mut registry);
    let relay_metrics = RelayFamilies::register(&mut registry).for_service("catalog");
    let part = part(db.clone(), topics, relay_metrics, http);
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
    let (addr, server) = service_common::serve(
        config.addr,
        router,
        Ops::new(registry, part.ready),
        async move {
            let _ = server_stop.wait_for(|s| *s).await;
        },
    )
    .await?;
    let consumer = consume(part.handler, db, part.relay.waker(), metrics, open)
        .map_err(|e| std::io::Error::other(format!("the catalog's consumer: {e}")))?;
    let (relay_stop, relay_stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = part.relay.run(RELAY_POLL, async move {
        let _ = relay_stopped.await;
    });
    let mut consumer_stop = stopped;
    let stopping = async move {
        let _ = consumer_stop.wait_for(|s| *s).await;
        consumer.stop().await;
        let _ = relay_stop.send(());
    };
    Ok((addr, async move {
        let (served, (), ()) = tokio::join!(server, relay, stopping);
        served
    }))
}
