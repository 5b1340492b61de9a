//! Inventory (`ecom inventory`, port 8088): the one source of truth for stock, on PostgreSQL
//! (schema `inventory`) or SQLite (`ecom up`), through one [`service_db::Db`].
//!
//! | route | answers |
//! |---|---|
//! | `GET /api/v1/inventory/{product_id}` | 200 `{"product_id", "on_hand", "reserved", "available", "version"}` + `ETag`; 404 `not_found` |
//! | `PUT /api/v1/inventory/{product_id}` `{"on_hand": n}` | 200 + `ETag`, 201 + `Location` when created; 400 `validation_failed`; 403 `forbidden`; 409 `below_reserved`; 412 `precondition_failed`; 428 `precondition_required` |
//! | `GET /api/v1/inventory?low=true` | 200 `{"items"}`: up to 1,000 rows in product id order (with `low=true` only those below the threshold); 400 `invalid_parameter` |
//!
//! `PUT` is for an administrator or another service (a customer's token is 403), and needs
//! `If-Match` once the stock exists; creating it needs none.
//!
//! In the order saga inventory is the consumer [`CONSUMER`] of `order.events` ([`handler`]):
//! it reserves an order's lines all or none (`StockReserved` or `StockRejected`), turns the
//! reservation into a sale on `OrderConfirmed`, and gives it back on `OrderCancelled`
//! (`StockReleased`). Its replies go to `inventory.events` through its outbox, as does
//! `StockLow` when available stock falls below [`Settings::low_stock_threshold`]
//! (`ECOM_LOW_STOCK_THRESHOLD`, default 5).
//!
//! The catalog's stock sync: inventory is also the consumer [`CONSUMER`] of `catalog.events`
//! ([`consume_catalog`]), where `ProductStockSet` (stock given to a product in the catalog)
//! sets the product's `on_hand`, creating its row if missing and never below what orders
//! hold. Every change of a stock row (a reservation, a sale, a release, a return, a `PUT`, a
//! `ProductStockSet`) sends `StockChanged` with the row after it, in the change's transaction:
//! the catalog shows its `available` as the product's `stock_quantity`.
//!
//! Invariants:
//! - per product, at every moment, `on_hand = available + reserved` and `available >= 0`
//!   (`available` is computed, and the table's checks refuse `reserved > on_hand`);
//! - every unit reserved belongs to exactly one `RESERVED` order's lines, every unit sold to
//!   one `SOLD` order's; so once the platform is quiet `reserved` is 0;
//! - each message has its effect once: exact duplicates stop at the consumer's inbox, and
//!   every order transition is a conditional update, so repeated or reordered messages (a
//!   cancellation before the creation) cannot reserve, sell or release twice.

pub mod handler;
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
use service_common::auth::Tokens;
use service_common::http_metrics::HttpMetrics;
use service_common::{Ops, ReadyCheck};
use service_db::{Db, Migrations};
use tokio::sync::Notify;

pub use handler::StockHandler;
pub use routes::{StockList, openapi};

/// The schema of the service's tables on PostgreSQL.
pub const SCHEMA: &str = "inventory";

/// The service's migrations, in order.
pub static MIGRATIONS: Migrations = Migrations(&[
    (
        1,
        "stock, orders and their lines",
        include_str!("../migrations/0001_stock.sql"),
    ),
    (2, "outbox", messaging::outbox::TABLE),
    (3, "inbox and positions", messaging::inbox::TABLES),
]);

/// The `source` of the envelopes inventory sends.
pub const SOURCE: &str = "/ecom/inventory";
/// Inventory's consumer group on `order.events` and on `catalog.events`, and its rows in the
/// inbox and positions (which are kept per topic).
pub const CONSUMER: &str = "inventory";
/// The collection's path.
pub const INVENTORY: &str = "/api/v1/inventory";
/// How often the relay looks for unsent replies it was not woken for.
pub const RELAY_POLL: Duration = Duration::from_millis(500);

/// What inventory decides by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `StockLow` fires when a product's available stock falls below this
    /// (`ECOM_LOW_STOCK_THRESHOLD`).
    pub low_stock_threshold: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            low_stock_threshold: stock::DEFAULT_LOW_STOCK_THRESHOLD,
        }
    }
}

/// Settings of the inventory service alone.
#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    /// How much of a body is read, for how long.
    pub body: service_common::rest::BodyLimits,
    /// How callers' tokens are checked (`None`: every caller is trusted).
    pub tokens: Option<service_common::auth::VerifierConfig>,
    pub settings: Settings,
}

/// Inventory's pieces over one database: what [`build`] runs alone and `ecom up` runs beside
/// the other services. The caller runs the relay ([`Relay::run`]) and starts the consumers
/// ([`consume`], [`consume_catalog`]) with `handler`.
pub struct Part<L> {
    pub router: Router,
    pub ready: ReadyCheck,
    /// Moves the outbox (replies, `StockLow`, `StockChanged`, dead letters) to its topics.
    pub relay: Relay<L>,
    pub handler: Arc<StockHandler>,
}

/// The routes, readiness, relay and handler over `db` (migrated); old inbox entries are
/// purged hourly. `topics` should hold `inventory.events` and `saga.dead-letters`.
pub fn part<L: EventLog>(
    db: Db,
    topics: Topics<L>,
    relay_metrics: RelayMetrics,
    tokens: Tokens,
    settings: Settings,
    http: Arc<HttpMetrics>,
) -> Part<L> {
    messaging::spawn_inbox_purge(db.clone());
    let relay = Relay::new(db.clone(), topics, relay_metrics);
    let handler = Arc::new(StockHandler::new(&settings));
    let ready = db.ready_check();
    let inventory = routes::Inventory {
        db,
        tokens,
        threshold: settings.low_stock_threshold,
        relay: relay.waker(),
    };
    Part {
        router: routes::router(inventory, http),
        ready,
        relay,
        handler,
    }
}

/// Starts inventory's consumer of `order.events` on `db`: `open` makes the reader from the
/// listener given (the embedded log's `reader(CONSUMER, listener)`, or a Kafka consumer of
/// group [`CONSUMER`]); `wake` is the relay's waker.
pub fn consume<R: PartitionReader + 'static>(
    handler: Arc<StockHandler>,
    db: Db,
    wake: Arc<Notify>,
    metrics: ConsumerMetrics,
    open: impl FnOnce(Arc<Positions>) -> Result<R, ReadError>,
) -> Result<Consumer, ReadError> {
    Consumer::start(
        ConsumerConfig::new(CONSUMER, messaging::contract::ORDER_EVENTS),
        db,
        handler,
        wake,
        metrics,
        open,
    )
}

/// Starts inventory's consumer of `catalog.events` on `db` (the catalog's `ProductStockSet`),
/// as [`consume`] does that of `order.events`: the same consumer name, its own positions.
pub fn consume_catalog<R: PartitionReader + 'static>(
    handler: Arc<StockHandler>,
    db: Db,
    wake: Arc<Notify>,
    metrics: ConsumerMetrics,
    open: impl FnOnce(Arc<Positions>) -> Result<R, ReadError>,
) -> Result<Consumer, ReadError> {
    Consumer::start(
        ConsumerConfig::new(CONSUMER, messaging::contract::CATALOG_EVENTS),
        db,
        handler,
        wake,
        metrics,
        open,
    )
}

/// Inventory alone on `config.addr` over `db` (migrated), with its relay to `topics` and its
/// consumers of `order.events` and `catalog.events`, each from the reader `open(topic,
/// listener)` makes, until `shutdown` resolves: the bound address and the future of it all. On
/// shutdown the server and the consumers stop (the batches in hand commit), then the relay
/// sends what they committed and stops.
pub async fn build<L: EventLog, R: PartitionReader + 'static>(
    config: Config,
    db: Db,
    topics: Topics<L>,
    open: impl Fn(&'static str, Arc<Positions>) -> Result<R, ReadError>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let mut registry = Registry::default();
    let http = HttpMetrics::register(&mut registry);
    registry.register_collector(Box::new(service_db::metrics::PoolMetrics::new(vec![(
        "inventory",
        db.clone(),
    )])));
    let metrics = ConsumerMetrics::register(&mut registry);
    let tokens = Tokens::new(config.tokens.clone());
    let part = part(
        db.clone(),
        topics,
        RelayFamilies::register(&mut registry).for_service("inventory"),
        tokens,
        config.settings,
        http,
    );
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
    let orders = messaging::contract::ORDER_EVENTS;
    let catalog = messaging::contract::CATALOG_EVENTS;
    let consumers = [
        consume(
            part.handler.clone(),
            db.clone(),
            part.relay.waker(),
            metrics.clone(),
            |listener| open(orders, listener),
        )
        .map_err(|e| std::io::Error::other(format!("inventory's consumer of {orders}: {e}")))?,
        consume_catalog(part.handler, db, part.relay.waker(), metrics, |listener| {
            open(catalog, listener)
        })
        .map_err(|e| std::io::Error::other(format!("inventory's consumer of {catalog}: {e}")))?,
    ];
    let (relay_stop, relay_stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = part.relay.run(RELAY_POLL, async move {
        let _ = relay_stopped.await;
    });
    let mut consumer_stop = stopped;
    let stopping = async move {
        let _ = consumer_stop.wait_for(|s| *s).await;
        for consumer in consumers {
            consumer.stop().await;
        }
        let _ = relay_stop.send(());
    };
    Ok((addr, async move {
        let (served, (), ()) = tokio::join!(server, relay, stopping);
        served
    }))
}
