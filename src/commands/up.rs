//! `ecom up`: the platform in one process on embedded defaults: the gateway on the one public
//! address, in front of ingest, the analytics API and the auth, catalog, customers, orders,
//! inventory and payments services (each on a loopback port of its own), the stream engine and
//! the order saga, over the embedded event log and SQLite (the window store and a database file
//! per service) in one data directory, with a demo traffic generator.
//!
//! The same code paths as the separate services (`gateway::part`, `ingest::part`,
//! `stream_runtime::start`, `analytics_api::part`, `catalog::part`, ...): the gateway reaches
//! the services over HTTP and enforces the same tokens, roles and rate limits (except that the
//! analytics API is open to callers on this machine, for the dashboard); orders reaches the
//! catalog and customers over HTTP; only the log and the databases are embedded. A restart on
//! the same data directory resumes from the stored checkpoints; a `kill -9` loses no
//! acknowledged event (the log syncs before ingest answers 202).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use analytics_api::Feed;
use anyhow::Context;
use event_log::embedded::{DirLock, EmbeddedLog, LockError, LogConfig};
use prometheus_client::registry::Registry;
use result_store::sqlite::SqliteStore;
use result_store::{CheckpointStore, ResultQuery, Writes};
use service_common::http_metrics::HttpMetrics;
use service_common::{Ops, all_ready};
use stream_engine::core::time::format_rfc3339_ms;
use stream_runtime::embedded::EmbeddedResultLog;
use stream_runtime::metrics::Metrics;
use stream_runtime::{EngineParts, RuntimeError};

use gateway::access::Upstream;
use messaging::contract::{
    CATALOG_EVENTS, DEAD_LETTERS, INVENTORY_EVENTS, ORDER_EVENTS, PAYMENT_EVENTS,
};

use super::EngineArgs;

mod demo;
mod flow;
mod log_metrics;

pub const INPUT_TOPIC: &str = "ecom-raw-events";
pub const RESULTS_TOPIC: &str = "ecom-analytics-results";
pub const LATE_TOPIC: &str = "ecom-late-events";
pub const DEAD_LETTER_TOPIC: &str = "ecom-dead-letters";
pub const GROUP: &str = "ecom-stream-engine";

#[derive(clap::Args)]
pub struct Args {
    /// Listen address of every route.
    #[arg(long, env = "ECOM_ADDR", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Where the event log and the store live.
    #[arg(long, env = "ECOM_DATA_DIR", default_value = "./ecom-data")]
    data_dir: PathBuf,
    /// Partitions of the event log, 1 to 1024 (fixed once the data directory exists).
    #[arg(long, env = "KAFKA_INPUT_PARTITIONS", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    partitions: u32,
    #[command(flatten)]
    engine: EngineArgs,
    /// No demo traffic: only what is POSTed to /api/v1/events.
    #[arg(long)]
    no_demo: bool,
    /// Demo events per second.
    #[arg(long, default_value_t = 200)]
    demo_rate: u32,
    /// Products shown per closed minute in the terminal.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Whether callers on this machine read the analytics API without a token (the
    /// dashboard's view); `false` asks them for one, as the deployed gateway does.
    #[arg(long, env = "ECOM_LOCAL_ANALYTICS", default_value_t = true, action = clap::ArgAction::Set)]
    local_analytics: bool,
    #[command(flatten)]
    gateway: super::gateway::GatewayFlags,
    /// The import folder's batches and retries (its gateway is this process's).
    #[command(flatten)]
    importer: ImportFlags,
    /// Embedded log segments are deleted (once the engine no longer needs them) past this
    /// many bytes per partition.
    #[arg(long, default_value_t = 1 << 30)]
    retention_bytes: u64,
    #[command(flatten)]
    saga: super::order_flow::SagaFlags,
    #[command(flatten)]
    stock: super::order_flow::StockFlags,
    #[command(flatten)]
    payment: super::order_flow::PaymentFlags,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // The terminal shows the closed minutes; only problems are logged (RUST_LOG for more).
    let _telemetry = service_common::telemetry::init_at("ecom", "warn")?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(up(args))
}

/// The data directory is held by another process (`<data-dir>/LOCK`).
#[derive(Debug, thiserror::Error)]
#[error("{} is in use by {holder}; stop it or choose another --data-dir", dir.display())]
pub struct DataDirInUse {
    dir: PathBuf,
    /// `ecom up (pid N)`, as the holder wrote it.
    holder: String,
}

/// The steps of `ecom up`, in order. Until the data directory is locked, nothing is made or
/// opened there, so a refused start (a bad flag, a busy address, a directory in use) leaves
/// no trace; until the engine starts, every failure returns before anything runs.
async fn up(args: Args) -> anyhow::Result<()> {
    let engine_config = args.engine.config();
    engine_config.validate()?;
    let sandbox = args.payment.sandbox()?;
    refuse_a_file(&args.data_dir)?;
    let listeners = Listeners::bind(args.addr).await?;
    let _lock = lock_data_dir(&args.data_dir)?;
    // Absolute from here on, so that every path printed can be used from anywhere.
    let args = Args {
        data_dir: std::path::absolute(&args.data_dir).context("the data directory's path")?,
        ..args
    };

    // Storage: the log's topics, the window store, a database per CRUD service, identities.
    let storage = Storage::open(&args, &engine_config).await?;
    let crud = Crud::open(&args.data_dir).await?;
    let identity = bootstrap_identity(&crud.auth, &args.data_dir).await?;
    let keys = auth::Keys::open(crud.auth.clone(), TOKEN_TTL).await?;
    let wiring = Wiring::new(&args, &listeners);
    let importer = wiring.importer(&identity)?;
    let mut registry = Registry::default();
    let http = HttpMetrics::register(&mut registry);
    registry.register_collector(Box::new(log_metrics::LogMetrics {
        topics: storage.topics(),
    }));
    registry.register_collector(Box::new(service_db::metrics::PoolMetrics::new(vec![
        ("auth", crud.auth.clone()),
        ("catalog", crud.catalog.clone()),
        ("customers", crud.customers.clone()),
        ("orders", crud.orders.clone()),
        ("inventory", crud.inventory.clone()),
        ("payments", crud.payments.clone()),
        ("payment_sandbox", crud.payment_sandbox.clone()),
    ])));
    let gateway = gateway::part(&wiring.gateway, &mut registry, http.clone())?;

    // The engine, then the services over it; from here on, things run, and a failure stops
    // them in order before it is returned.
    let (engine, tail, feed) = start_engine(&storage, &engine_config, &mut registry).await?;
    let services = match Services::build(
        &args,
        &storage,
        &crud,
        keys,
        &engine,
        feed,
        &wiring,
        sandbox,
        &mut registry,
        http,
    ) {
        Ok(services) => services,
        Err(e) => {
            let _ = engine.stop().await;
            return Err(e);
        }
    };
    let servers = Servers::start(listeners, services.parts, gateway, &wiring, registry);
    print_banner(&args, &wiring.base, &identity);
    let background = Background::start(&args, &wiring, &storage, importer);

    let outcome: Result<(), RuntimeError> = tokio::select! {
        () = service_common::shutdown_signal() => {
            errln!("\nstopping: storing and checkpointing what was processed");
            Ok(())
        }
        () = engine.stopped() => Ok(()),
    };

    // The stop, from the edges in: no new work, then the services, the order flow (its
    // consumers, then its relays), the engine (which stores and checkpoints what it
    // processed), the stores.
    background.abort();
    servers.stop().await;
    services.flow.stop().await;
    let stopped = engine.stop().await;
    drop(tail);
    errln!("{}", storage.summary().await);
    storage.store.close().await;
    crud.close().await;
    outcome?;
    stopped?;
    Ok(())
}

/// Where each part reaches the others, known once every listener is bound.
struct Wiring {
    /// The public address's URL (also the tokens' issuer).
    base: String,
    upstreams: gateway::UpstreamUrls,
    /// Everything that checks tokens reads this process's own key set.
    verifier: service_common::auth::VerifierConfig,
    gateway: gateway::Config,
}

impl Wiring {
    fn new(args: &Args, listeners: &Listeners) -> Wiring {
        let base = listeners.base_url();
        let upstreams = listeners.upstreams();
        let verifier = service_common::auth::VerifierConfig {
            jwks_url: format!("{}/.well-known/jwks.json", upstreams.auth),
            issuer: base.clone(),
            audience: "ecom".to_owned(),
        };
        let mut gateway = gateway::Config {
            local_analytics: args.local_analytics,
            ..args
                .gateway
                .config(args.addr, upstreams.clone(), verifier.clone())
        };
        gateway.status.stream_engine = Some(listeners.engine_url());
        Wiring {
            base,
            upstreams,
            verifier,
            gateway,
        }
    }

    /// The import folder's client: through the gateway as the machine client `importer`, as
    /// the Lambda goes.
    fn importer(&self, identity: &Identity) -> anyhow::Result<product_import::api::ProductApi> {
        Ok(product_import::api::ProductApi::new(
            product_import::api::ApiConfig {
                base_url: self.base.clone(),
                client_id: "importer".to_owned(),
                client_secret: identity.importer_secret.clone(),
                request_timeout: Duration::from_secs(30),
                retry_budget: Duration::from_secs(120),
                trace: service_common::telemetry::inject,
            },
        )?)
    }
}

/// Starts the engine on the input topic, and the tail of the results topic that feeds the
/// analytics API's live stream.
async fn start_engine(
    storage: &Storage,
    config: &stream_engine::EngineConfig,
    registry: &mut Registry,
) -> anyhow::Result<(
    stream_runtime::RunningEngine,
    analytics_api::feed::Tail,
    Feed,
)> {
    let engine = stream_runtime::start(
        EngineParts {
            engine: config.clone(),
            commit_interval: Duration::from_millis(200),
            store: storage.store.clone(),
            log: Arc::new(storage.outputs.clone()),
            metrics: Metrics::register(registry),
        },
        {
            let events = storage.events.clone();
            move |listener| Ok(events.reader(GROUP, listener))
        },
    )?;
    let feed = Feed::default();
    let results = storage.outputs.results.clone();
    let tail = analytics_api::feed::tail(
        move |listener| Ok(results.reader("analytics-tail", listener)),
        feed.clone(),
    );
    match tail {
        Ok(tail) => Ok((engine, tail, feed)),
        Err(e) => {
            let _ = engine.stop().await;
            Err(e.into())
        }
    }
}

/// The services' routes and readiness, in the order of [`Listeners::internal`], and the
/// order flow running beside them.
struct Services {
    parts: Vec<(axum::Router, service_common::ReadyCheck)>,
    flow: flow::Flow,
}

impl Services {
    #[allow(clippy::too_many_arguments)]
    fn build(
        args: &Args,
        storage: &Storage,
        crud: &Crud,
        keys: auth::Keys,
        engine: &stream_runtime::RunningEngine,
        feed: Feed,
        wiring: &Wiring,
        sandbox: payments::sandbox::SandboxSettings,
        registry: &mut Registry,
        http: Arc<HttpMetrics>,
    ) -> anyhow::Result<Services> {
        let watermarks = engine.watermarks();
        let ingest = ingest::part(
            storage.events.clone(),
            ingest::BodyLimits {
                max_bytes: args.gateway.max_body_bytes(),
                ..ingest::BodyLimits::default()
            },
            Some(ingest::Lateness {
                partitions: args.partitions,
                allowed_lateness_ms: args.engine.allowed_lateness.as_millis() as i64,
                watermark: Arc::new(move |partition| watermarks.get(partition)),
            }),
            registry,
            http.clone(),
        );
        let analytics =
            analytics_api::part(storage.store.clone(), feed, 256, registry, http.clone());
        let tokens = auth::TokenConfig {
            issuer: wiring.base.clone(),
            audience: "ecom".to_owned(),
            ttl: TOKEN_TTL,
        };
        let auth = auth::part(
            crud.auth.clone(),
            keys,
            tokens,
            wiring.upstreams.customers.clone(),
            registry,
            http.clone(),
        );
        let token_check = service_common::auth::Tokens::new(Some(wiring.verifier.clone()));
        let customers = customers::part(crud.customers.clone(), token_check.clone(), http.clone());

        // The order flow: orders orchestrates, inventory and payments take part, each with its
        // outbox relayed to the topics it writes and its consumers of the topics it reads.
        let topics = &storage.flow;
        let consumer_metrics = messaging::ConsumerMetrics::register(registry);
        let relay_metrics = messaging::RelayFamilies::register(registry);
        let mut flow = flow::Flow::new();
        let orders_upstreams = orders::Upstreams::new(orders::UpstreamConfig {
            catalog_url: wiring.upstreams.catalog.clone(),
            customers_url: wiring.upstreams.customers.clone(),
            timeout: Duration::from_secs(2),
        });
        let orders = orders::part(
            crud.orders.clone(),
            messaging::Topics::default()
                .with(INPUT_TOPIC, storage.events.clone())
                .with(ORDER_EVENTS, topics.orders.clone())
                .with(DEAD_LETTERS, topics.dead_letters.clone()),
            relay_metrics.for_service("orders"),
            orders_upstreams,
            orders::SagaConfig {
                purchases_topic: INPUT_TOPIC.to_owned(),
                step_timeout: args.saga.saga_step_timeout,
            },
            token_check.clone(),
            http.clone(),
        );
        for (topic, log) in [
            (INVENTORY_EVENTS, &topics.inventory),
            (PAYMENT_EVENTS, &topics.payments),
        ] {
            let log = log.clone();
            flow.consumer(orders::consume(
                orders.saga.clone(),
                crud.orders.clone(),
                topic,
                consumer_metrics.clone(),
                move |listener| Ok(log.reader(orders::CONSUMER, listener)),
            )?);
        }
        flow.sweep(orders.saga.clone());
        flow.relay(orders.relay);

        let inventory = inventory::part(
            crud.inventory.clone(),
            messaging::Topics::default()
                .with(INVENTORY_EVENTS, topics.inventory.clone())
                .with(DEAD_LETTERS, topics.dead_letters.clone()),
            relay_metrics.for_service("inventory"),
            token_check.clone(),
            args.stock.settings(),
            http.clone(),
        );
        let log = topics.orders.clone();
        flow.consumer(inventory::consume(
            inventory.handler.clone(),
            crud.inventory.clone(),
            inventory.relay.waker(),
            consumer_metrics.clone(),
            move |listener| Ok(log.reader(inventory::CONSUMER, listener)),
        )?);
        let log = topics.catalog.clone();
        flow.consumer(inventory::consume_catalog(
            inventory.handler.clone(),
            crud.inventory.clone(),
            inventory.relay.waker(),
            consumer_metrics.clone(),
            move |listener| Ok(log.reader(inventory::CONSUMER, listener)),
        )?);
        flow.relay(inventory.relay);

        // The catalog: the stock it is given goes to the inventory, whose available stock it
        // shows.
        let catalog = catalog::part(
            crud.catalog.clone(),
            messaging::Topics::default()
                .with(CATALOG_EVENTS, topics.catalog.clone())
                .with(DEAD_LETTERS, topics.dead_letters.clone()),
            relay_metrics.for_service("catalog"),
            http.clone(),
        );
        let log = topics.inventory.clone();
        flow.consumer(catalog::consume(
            catalog.handler,
            crud.catalog.clone(),
            catalog.relay.waker(),
            consumer_metrics.clone(),
            move |listener| Ok(log.reader(catalog::CONSUMER, listener)),
        )?);
        flow.relay(catalog.relay);

        let provider = Arc::new(payments::sandbox::Sandbox::new(
            crud.payment_sandbox.clone(),
            sandbox,
        ));
        let payments = payments::part(
            crud.payments.clone(),
            messaging::Topics::default()
                .with(PAYMENT_EVENTS, topics.payments.clone())
                .with(DEAD_LETTERS, topics.dead_letters.clone()),
            relay_metrics.for_service("payments"),
            token_check,
            payments::Settings::default(),
            provider,
            registry,
            http,
        );
        let log = topics.orders.clone();
        flow.consumer(payments::consume(
            payments.handler,
            crud.payments.clone(),
            payments.relay.waker(),
            consumer_metrics,
            move |listener| Ok(log.reader(payments::CONSUMER, listener)),
        )?);
        flow.relay(payments.relay);

        Ok(Services {
            // The order of Upstream::ALL, then the engine's: it has no routes, and its
            // listener serves its readiness and the metrics, for the gateway's status as a
            // separate engine's operations port would.
            parts: vec![
                auth,
                (catalog.router, catalog.ready),
                customers,
                (orders.router, orders.ready),
                ingest,
                analytics,
                (inventory.router, inventory.ready),
                (payments.router, payments.ready),
                (axum::Router::new(), engine.ready_check()),
            ],
            flow,
        })
    }
}

/// Every listener served: each service on its own, the gateway on the public one.
struct Servers {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Servers {
    fn start(
        listeners: Listeners,
        parts: Vec<(axum::Router, service_common::ReadyCheck)>,
        (gateway_routes, gateway_ready): (axum::Router, service_common::ReadyCheck),
        wiring: &Wiring,
        registry: Registry,
    ) -> Servers {
        let names = [
            "auth",
            "catalog",
            "customers",
            "orders",
            "ingest",
            "analytics",
            "inventory",
            "payments",
        ];
        let mut checks: Vec<(&str, service_common::ReadyCheck)> = vec![("gateway", gateway_ready)];
        checks.push(("stream-engine", parts[parts.len() - 1].1.clone()));
        checks.extend(names.iter().zip(&parts).map(|(n, (_, r))| (*n, r.clone())));
        // One registry for the process: every listener's /metrics shows all of it, each with
        // its own part's readiness.
        let ops = Ops::new(registry, all_ready(checks));
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let stopped = move || {
            let mut stopping = stopping.clone();
            async move {
                let _ = stopping.changed().await;
            }
        };
        let mut tasks = Vec::new();
        for ((routes, ready), listener) in parts.into_iter().zip(listeners.internal) {
            let server = service_common::serve_listener(
                listener,
                routes,
                ops.with_ready(ready),
                service_common::Limits::default(),
                stopped(),
            );
            tasks.extend(server.map(|(_, server)| tokio::spawn(server)));
        }
        let server = service_common::serve_listener(
            listeners.public,
            gateway_routes,
            ops,
            wiring.gateway.server,
            stopped(),
        );
        tasks.extend(server.map(|(_, server)| tokio::spawn(server)));
        Servers { stop, tasks }
    }

    /// Stops taking connections and waits for the requests in flight.
    async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// What runs beside the services: the demo traffic, the terminal's closed minutes, the
/// import folder.
struct Background {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Background {
    fn start(
        args: &Args,
        wiring: &Wiring,
        storage: &Storage,
        importer: product_import::api::ProductApi,
    ) -> Background {
        let mut tasks = Vec::new();
        // The demo posts to ingest directly: it is the platform's own traffic, not a caller's.
        if !args.no_demo {
            tasks.push(tokio::spawn(demo::run(
                format!("{}{}", wiring.upstreams.ingest, ingest::ROUTE),
                args.demo_rate,
            )));
        }
        tasks.push(tokio::spawn(print_closed_minutes(
            storage.store.clone(),
            args.top,
        )));
        tasks.push(tokio::spawn(super::import::watch_folder(
            args.data_dir.join("import"),
            importer,
            product_import::Options {
                batch_rows: usize::from(args.importer.batch_rows),
                ..product_import::Options::default()
            },
        )));
        Background { tasks }
    }

    fn abort(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// How long the identity service's tokens last.
const TOKEN_TTL: Duration = Duration::from_secs(15 * 60);

/// A data directory that names a file is refused before anything else is tried.
fn refuse_a_file(data_dir: &Path) -> anyhow::Result<()> {
    match std::fs::metadata(data_dir) {
        Ok(meta) if !meta.is_dir() => {
            anyhow::bail!("{} is a file, not a directory", data_dir.display())
        }
        _ => Ok(()),
    }
}

/// Makes the data directory if missing and takes its lock, held until the process ends.
fn lock_data_dir(data_dir: &Path) -> anyhow::Result<DirLock> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    DirLock::acquire(data_dir, "ecom up").map_err(|e| match e {
        LockError::Held { dir, holder } => DataDirInUse {
            dir,
            holder: holder.unwrap_or_else(|| "another process".to_owned()),
        }
        .into(),
        other => anyhow::Error::new(other),
    })
}

/// Every address of the process, bound before anything else starts: the public one (the
/// gateway) and a loopback port per service and for the engine's operations routes.
struct Listeners {
    public: tokio::net::TcpListener,
    /// In the order of [`Upstream::ALL`], then the engine's.
    internal: Vec<tokio::net::TcpListener>,
}

impl Listeners {
    async fn bind(addr: SocketAddr) -> anyhow::Result<Listeners> {
        let public = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
                "; is another ecom up running? choose --addr"
            } else {
                ""
            };
            anyhow::anyhow!("cannot listen on {addr}: {e}{hint}")
        })?;
        let mut internal = Vec::new();
        for _ in 0..=Upstream::ALL.len() {
            internal.push(
                tokio::net::TcpListener::bind(("127.0.0.1", 0))
                    .await
                    .context("cannot listen on a loopback port")?,
            );
        }
        Ok(Listeners { public, internal })
    }

    fn url(listener: &tokio::net::TcpListener) -> String {
        listener
            .local_addr()
            .map(|a| format!("http://{a}"))
            .unwrap_or_default()
    }

    fn base_url(&self) -> String {
        Self::url(&self.public)
    }

    fn engine_url(&self) -> String {
        self.internal.last().map(Self::url).unwrap_or_default()
    }

    fn upstreams(&self) -> gateway::UpstreamUrls {
        let url = |upstream: Upstream| {
            Upstream::ALL
                .iter()
                .position(|u| *u == upstream)
                .and_then(|at| self.internal.get(at))
                .map(Self::url)
                .unwrap_or_default()
        };
        gateway::UpstreamUrls {
            auth: url(Upstream::Auth),
            catalog: url(Upstream::Catalog),
            customers: url(Upstream::Customers),
            orders: url(Upstream::Orders),
            ingest: url(Upstream::Ingest),
            analytics: url(Upstream::Analytics),
            inventory: url(Upstream::Inventory),
            payments: url(Upstream::Payments),
        }
    }
}

/// The event log's topics and the window store in the data directory.
struct Storage {
    events: EmbeddedLog,
    outputs: EmbeddedResultLog,
    flow: flow::FlowTopics,
    store: Arc<SqliteStore>,
    store_path: PathBuf,
}

impl Storage {
    async fn open(args: &Args, engine: &stream_engine::EngineConfig) -> anyhow::Result<Storage> {
        let input_config = LogConfig {
            retention_bytes: Some(args.retention_bytes),
            ..LogConfig::default()
        };
        let output_config = LogConfig {
            keep_until_committed: false,
            ..input_config.clone()
        };
        let open = |topic: &str, partitions: u32, config: &LogConfig| {
            let dir = args.data_dir.join("log").join(topic);
            EmbeddedLog::open(
                &dir,
                LogConfig {
                    partitions,
                    ..config.clone()
                },
            )
            .with_context(|| format!("cannot open the event log in {}", dir.display()))
        };
        let events = open(INPUT_TOPIC, args.partitions, &input_config)?;
        let outputs = EmbeddedResultLog {
            results: open(RESULTS_TOPIC, args.partitions, &output_config)?,
            late: open(LATE_TOPIC, 1, &output_config)?,
            dead_letters: open(DEAD_LETTER_TOPIC, 1, &output_config)?,
        };
        let flow = flow::FlowTopics::open(
            &args.data_dir.join("log"),
            args.partitions,
            &input_config,
            &output_config,
        )?;
        let store_path = args.data_dir.join("store.db");
        let store = Arc::new(
            SqliteStore::open(
                &store_path,
                &super::stream_id(GROUP, INPUT_TOPIC),
                Writes::for_engine(engine),
            )
            .await?,
        );
        Ok(Storage {
            events,
            outputs,
            flow,
            store,
            store_path,
        })
    }

    fn topics(&self) -> Vec<(&'static str, EmbeddedLog)> {
        let mut topics = vec![
            (INPUT_TOPIC, self.events.clone()),
            (RESULTS_TOPIC, self.outputs.results.clone()),
            (LATE_TOPIC, self.outputs.late.clone()),
            (DEAD_LETTER_TOPIC, self.outputs.dead_letters.clone()),
        ];
        topics.extend(self.flow.named());
        topics
    }

    /// The last line of a stop: what the log holds and how far the checkpoints reach.
    async fn summary(&self) -> String {
        let mut durable = 0;
        let mut partitions = Vec::new();
        for p in 0..self.events.partitions() {
            let end = self.events.bounds(p).map_or(0, |(_, end)| end);
            durable += end;
            let processed = match self.store.load_checkpoint(p).await {
                Ok(Some(c)) => c.highest_offset.map_or(0, |h| h + 1).to_string(),
                Ok(None) => "0".to_owned(),
                Err(_) => "?".to_owned(),
            };
            partitions.push(format!("{p}:{processed}/{end}"));
        }
        format!(
            "stopped: {durable} events durable; checkpoints at {} (partition:processed/end) in {}",
            partitions.join(" "),
            self.store_path.display()
        )
    }
}

fn print_banner(args: &Args, base: &str, identity: &Identity) {
    outln!("ecom is up: data in {}", args.data_dir.display());
    outln!("  dashboard  {base}/");
    outln!("  events     POST {base}/api/v1/events");
    outln!("  analytics  GET  {base}/api/v1/analytics/top");
    outln!("             GET  {base}/api/v1/analytics/products/{{product_id}}/windows");
    outln!("             GET  {base}/api/v1/analytics/windows?from=&to=");
    outln!("             GET  {base}/api/v1/analytics/stream   (Server-Sent Events)");
    outln!("  identity   POST {base}/api/v1/auth/register, POST {base}/api/v1/auth/token");
    outln!("             keys at {base}/.well-known/jwks.json");
    for line in &identity.lines {
        outln!("             {line}");
    }
    outln!("  catalog    {base}/api/v1/products   (POST, GET, PATCH, DELETE; /batch)");
    outln!(
        "  import     drop .csv files into {}   (reports in import/done/)",
        args.data_dir.join("import").display()
    );
    outln!("  customers  {base}/api/v1/customers");
    outln!(
        "  orders     {base}/api/v1/orders   (stock reserved, payment taken; each confirmed line feeds the windows)"
    );
    outln!(
        "  inventory  {base}/api/v1/inventory/{{product_id}}   (GET; PUT {{\"on_hand\": n}} as admin)"
    );
    outln!(
        "  payments   {base}/api/v1/payments?order_id=   (sandbox provider: pm_card_visa, pm_card_chargeDeclined, ...)"
    );
    outln!("  API docs   {base}/docs   ({base}/api/v1/openapi.json)");
    outln!("  health     {base}/healthz  {base}/readyz");
    outln!("  metrics    {base}/metrics");
    if args.no_demo {
        outln!("no demo traffic (--no-demo); send some with:");
        outln!(
            "  curl -H 'content-type: application/json' {base}/api/v1/events -d '{{\"user_id\":\"u1\",\"product_id\":\"42\",\"event_type\":\"VIEW_PRODUCT\",\"timestamp\":\"'$(date -u +%FT%TZ)'\"}}'"
        );
    } else {
        outln!(
            "demo traffic: {} events/s with live event times (--no-demo to turn off)",
            args.demo_rate
        );
    }
    outln!("each closed minute's top products follow (Ctrl-C stops)\n");
}

/// The services' databases: a SQLite file each, migrated (the payment sandbox's ledger in a
/// file of its own, as an outside processor's would be).
struct Crud {
    auth: service_db::Db,
    catalog: service_db::Db,
    customers: service_db::Db,
    orders: service_db::Db,
    inventory: service_db::Db,
    payments: service_db::Db,
    payment_sandbox: service_db::Db,
}

impl Crud {
    async fn open(data_dir: &Path) -> anyhow::Result<Crud> {
        let open = async |schema: &'static str, migrations: &service_db::Migrations| {
            let path = data_dir.join(format!("{schema}.db"));
            let config = service_db::DbConfig::new(format!("sqlite://{}", path.display()), schema);
            let db = service_db::Db::connect(&config)
                .await
                .with_context(|| format!("cannot open {}", path.display()))?;
            db.migrate(migrations)
                .await
                .with_context(|| format!("cannot migrate {}", path.display()))?;
            anyhow::Ok(db)
        };
        Ok(Crud {
            auth: open(auth::SCHEMA, &auth::MIGRATIONS).await?,
            catalog: open(catalog::SCHEMA, &catalog::MIGRATIONS).await?,
            customers: open(customers::SCHEMA, &customers::MIGRATIONS).await?,
            orders: open(orders::SCHEMA, &orders::MIGRATIONS).await?,
            inventory: open(inventory::SCHEMA, &inventory::MIGRATIONS).await?,
            payments: open(payments::SCHEMA, &payments::MIGRATIONS).await?,
            payment_sandbox: open(
                payments::sandbox::SANDBOX_SCHEMA,
                &payments::sandbox::SANDBOX_MIGRATIONS,
            )
            .await?,
        })
    }

    async fn close(&self) {
        for db in [
            &self.auth,
            &self.catalog,
            &self.customers,
            &self.orders,
            &self.inventory,
            &self.payments,
            &self.payment_sandbox,
        ] {
            db.close().await;
        }
    }
}

/// The import folder's settings: those of `ecom import` but where the gateway is and who the
/// importer is, which `ecom up` knows.
#[derive(clap::Args)]
struct ImportFlags {
    /// Products per request of the import folder (at most 1,000).
    #[arg(long = "import-batch-rows", env = "IMPORT_BATCH_ROWS", default_value_t = 1000,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    batch_rows: u16,
}

/// What [`bootstrap_identity`] made.
struct Identity {
    /// To print: the secrets generated now.
    lines: Vec<String>,
    importer_secret: String,
}

/// The administrator `admin` and the machine client `importer` (`catalog:write`): their
/// password and secret from `ECOM_ADMIN_PASSWORD` and `ECOM_IMPORTER_SECRET`, or else generated
/// once, kept in the data directory (mode 600) and printed when made.
async fn bootstrap_identity(db: &service_db::Db, data_dir: &Path) -> anyhow::Result<Identity> {
    let mut lines = Vec::new();
    let mut importer_secret = String::new();
    for (what, variable, file) in [
        ("admin", "ECOM_ADMIN_PASSWORD", "admin-password"),
        ("importer", "ECOM_IMPORTER_SECRET", "importer-secret"),
    ] {
        let path = data_dir.join(file);
        let secret = match std::env::var(variable) {
            Ok(secret) if !secret.is_empty() => secret,
            _ => match std::fs::read_to_string(&path) {
                Ok(kept) => kept.trim().to_owned(),
                Err(_) => {
                    let made = auth::passwords::generate_secret();
                    write_private(&path, &made)?;
                    lines.push(format!(
                        "{what}: {made}   (generated once, kept in {}; {variable} overrides)",
                        path.display()
                    ));
                    made
                }
            },
        };
        match what {
            "admin" => auth::ensure_admin(db, &secret).await?,
            _ => {
                auth::ensure_client(db, "importer", &secret, "catalog:write").await?;
                importer_secret = secret;
            }
        }
    }
    Ok(Identity {
        lines,
        importer_secret,
    })
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(file, "{text}")?;
    file.sync_all()?;
    Ok(())
}

/// Prints each closed minute's top products once every partition has fired it.
async fn print_closed_minutes(store: Arc<SqliteStore>, top: usize) {
    let mut shown = store.latest_fired().await.ok().flatten();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Ok(Some(latest)) = store.latest_fired().await else {
            continue;
        };
        if shown.is_some_and(|s| s >= latest) {
            continue;
        }
        shown = Some(latest);
        let Ok(rows) = store.top(latest, top).await else {
            continue;
        };
        if rows.is_empty() {
            continue;
        }
        let line: Vec<String> = rows
            .iter()
            .map(|r| format!("{} {}u/{}e", r.product_id, r.unique_users, r.events))
            .collect();
        outln!(
            "{}  top {}: {}",
            &format_rfc3339_ms(latest)[11..16],
            rows.len(),
            line.join("  ")
        );
    }
}
