//! `ecom up`: the platform in one process on embedded defaults: the gateway on the one public
//! address, in front of ingest, the analytics API and the auth, catalog, customers and orders
//! services (each on a loopback port of its own), the stream engine, over the embedded event
//! log and SQLite (the window store and a database file per CRUD service) in one data
//! directory, with a demo traffic generator.
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
use event_log::embedded::{EmbeddedLog, LogConfig};
use prometheus_client::registry::Registry;
use result_store::sqlite::SqliteStore;
use result_store::{ResultQuery, Writes};
use service_common::http_metrics::HttpMetrics;
use service_common::{Ops, all_ready};
use stream_engine::core::time::format_rfc3339_ms;
use stream_runtime::embedded::EmbeddedResultLog;
use stream_runtime::metrics::Metrics;
use stream_runtime::{EngineParts, RuntimeError};

use gateway::access::Upstream;

use super::EngineArgs;

mod demo;
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
    /// Partitions of the event log (fixed once the data directory exists).
    #[arg(long, env = "KAFKA_INPUT_PARTITIONS", default_value_t = 4)]
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
    gateway: super::crud::GatewayFlags,
    /// The import folder's batches and retries (its gateway is this process's).
    #[command(flatten)]
    importer: ImportFlags,
    /// Embedded log segments are deleted (once the engine no longer needs them) past this
    /// many bytes per partition.
    #[arg(long, default_value_t = 1 << 30)]
    retention_bytes: u64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // The terminal shows the closed minutes; only problems are logged (RUST_LOG for more).
    let _telemetry =
        service_common::telemetry::init_at("ecom", "warn").map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(up(args))
}

fn open_log(
    data_dir: &Path,
    topic: &str,
    partitions: u32,
    config: &LogConfig,
) -> anyhow::Result<EmbeddedLog> {
    let dir = data_dir.join("log").join(topic);
    EmbeddedLog::open(
        &dir,
        LogConfig {
            partitions,
            ..config.clone()
        },
    )
    .with_context(|| format!("cannot open the event log in {}", dir.display()))
}

async fn up(args: Args) -> anyhow::Result<()> {
    let engine_config = args.engine.config();
    engine_config.validate()?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let input_config = LogConfig {
        retention_bytes: Some(args.retention_bytes),
        ..LogConfig::default()
    };
    let output_config = LogConfig {
        keep_until_committed: false,
        ..input_config.clone()
    };
    let events = open_log(&args.data_dir, INPUT_TOPIC, args.partitions, &input_config)?;
    let outputs = EmbeddedResultLog {
        results: open_log(
            &args.data_dir,
            RESULTS_TOPIC,
            args.partitions,
            &output_config,
        )?,
        late: open_log(&args.data_dir, LATE_TOPIC, 1, &output_config)?,
        dead_letters: open_log(&args.data_dir, DEAD_LETTER_TOPIC, 1, &output_config)?,
    };
    let store_path = args.data_dir.join("store.db");
    let store = Arc::new(
        SqliteStore::open(
            &store_path,
            &super::stream_id(GROUP, INPUT_TOPIC),
            Writes::for_engine(&engine_config),
        )
        .await?,
    );

    let mut registry = Registry::default();
    let http = HttpMetrics::register(&mut registry);
    let (ingest_routes, ingest_ready) = ingest::part(
        events.clone(),
        ingest::BodyLimits {
            max_bytes: args.gateway.max_body_bytes(),
            ..ingest::BodyLimits::default()
        },
        &mut registry,
        http.clone(),
    );

    registry.register_collector(Box::new(log_metrics::LogMetrics {
        topics: vec![
            (INPUT_TOPIC, events.clone()),
            (RESULTS_TOPIC, outputs.results.clone()),
            (LATE_TOPIC, outputs.late.clone()),
            (DEAD_LETTER_TOPIC, outputs.dead_letters.clone()),
        ],
    }));
    let metrics = Metrics::register(&mut registry);
    let engine = stream_runtime::start(
        EngineParts {
            engine: engine_config,
            commit_interval: Duration::from_millis(200),
            store: store.clone(),
            log: Arc::new(outputs.clone()),
            metrics,
        },
        {
            let events = events.clone();
            move |listener| Ok(events.reader(GROUP, listener))
        },
    )?;

    let feed = Feed::default();
    let tail = {
        let results = outputs.results.clone();
        analytics_api::feed::tail(
            move |listener| Ok(results.reader("analytics-tail", listener)),
            feed.clone(),
        )?
    };
    let (analytics_routes, analytics_ready) =
        analytics_api::part(store.clone(), feed, 256, &mut registry, http.clone());

    // Every service on a loopback port of its own, the gateway in front on the public address:
    // the same code paths as separate processes. Bound first, so that each knows the others.
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let base = format!("http://{}", listener.local_addr()?);
    let mut internal = Vec::new();
    for _ in Upstream::ALL {
        internal.push(tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?);
    }
    // The engine has no routes; its listener serves its readiness and the metrics, for the
    // gateway's status as a separate engine's operations port would.
    let engine_listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let engine_url = format!("http://{}", engine_listener.local_addr()?);
    let url = |upstream: Upstream| {
        let at = Upstream::ALL
            .iter()
            .position(|u| *u == upstream)
            .unwrap_or(0);
        internal[at]
            .local_addr()
            .map(|a| format!("http://{a}"))
            .unwrap_or_default()
    };
    let upstreams = gateway::UpstreamUrls {
        auth: url(Upstream::Auth),
        catalog: url(Upstream::Catalog),
        customers: url(Upstream::Customers),
        orders: url(Upstream::Orders),
        ingest: url(Upstream::Ingest),
        analytics: url(Upstream::Analytics),
    };
    let crud = Crud::open(&args.data_dir).await?;
    registry.register_collector(Box::new(service_db::metrics::PoolMetrics::new(vec![
        ("auth", crud.auth.clone()),
        ("catalog", crud.catalog.clone()),
        ("customers", crud.customers.clone()),
        ("orders", crud.orders.clone()),
    ])));
    let identity = bootstrap_identity(&crud.auth, &args.data_dir).await?;
    let tokens = auth::TokenConfig {
        issuer: base.clone(),
        audience: "ecom".to_owned(),
        ttl: Duration::from_secs(15 * 60),
    };
    let keys = auth::Keys::open(crud.auth.clone(), tokens.ttl).await?;
    let (auth_routes, auth_ready) = auth::part(
        crud.auth.clone(),
        keys,
        tokens,
        upstreams.customers.clone(),
        &mut registry,
        http.clone(),
    );
    let (catalog_routes, catalog_ready) = catalog::part(crud.catalog.clone(), http.clone());
    // Everything that checks tokens reads this process's own key set.
    let verifier = service_common::auth::VerifierConfig {
        jwks_url: format!("{}/.well-known/jwks.json", upstreams.auth),
        issuer: base.clone(),
        audience: "ecom".to_owned(),
    };
    let token_check = service_common::auth::Tokens::new(Some(verifier.clone()));
    let (customers_routes, customers_ready) =
        customers::part(crud.customers.clone(), token_check.clone(), http.clone());
    let orders_upstreams = orders::Upstreams::new(orders::UpstreamConfig {
        catalog_url: upstreams.catalog.clone(),
        customers_url: upstreams.customers.clone(),
        timeout: Duration::from_secs(2),
    });
    let (orders_routes, orders_ready, relay) = orders::part(
        crud.orders.clone(),
        events.clone(),
        orders_upstreams,
        INPUT_TOPIC.to_owned(),
        token_check,
        &mut registry,
        http.clone(),
    );
    let (stop_relay, relay_stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = tokio::spawn(relay.run(Duration::from_secs(1), async {
        let _ = relay_stopped.await;
    }));

    let mut gateway_config = gateway::Config {
        local_analytics: args.local_analytics,
        ..args.gateway.config(args.addr, upstreams.clone(), verifier)
    };
    gateway_config.status.stream_engine = Some(engine_url);
    let (gateway_routes, gateway_ready) =
        gateway::part(&gateway_config, &mut registry, http).map_err(anyhow::Error::msg)?;
    let ready = all_ready(vec![
        ("gateway", gateway_ready),
        ("ingest", ingest_ready.clone()),
        ("stream-engine", engine.ready_check()),
        ("analytics", analytics_ready.clone()),
        ("auth", auth_ready.clone()),
        ("catalog", catalog_ready.clone()),
        ("customers", customers_ready.clone()),
        ("orders", orders_ready.clone()),
    ]);
    let (stop_servers, servers_stopping) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut stopping = servers_stopping.clone();
        async move {
            let _ = stopping.changed().await;
        }
    };
    let mut servers = Vec::new();
    // One registry for the process: every listener's /metrics shows all of it, each with its
    // own part's readiness.
    let ops = Ops::new(registry, ready);
    let parts = [
        (auth_routes, auth_ready),
        (catalog_routes, catalog_ready),
        (customers_routes, customers_ready),
        (orders_routes, orders_ready),
        (ingest_routes, ingest_ready),
        (analytics_routes, analytics_ready),
    ];
    let engine_part = (axum::Router::new(), engine.ready_check());
    for ((routes, ready), listener) in parts
        .into_iter()
        .chain([engine_part])
        .zip(internal.into_iter().chain([engine_listener]))
    {
        let (_, server) = service_common::serve_listener(
            listener,
            routes,
            ops.with_ready(ready),
            service_common::Limits::default(),
            stopped(),
        )?;
        servers.push(tokio::spawn(server));
    }
    let (addr, server) = service_common::serve_listener(
        listener,
        gateway_routes,
        ops,
        gateway_config.server,
        stopped(),
    )?;
    servers.push(tokio::spawn(server));

    debug_assert_eq!(base, format!("http://{addr}"));
    let import_dir = args.data_dir.join("import");
    println!("ecom is up: data in {}", args.data_dir.display());
    println!("  dashboard  {base}/");
    println!("  events     POST {base}/api/v1/events");
    println!("  analytics  GET  {base}/api/v1/analytics/top");
    println!("             GET  {base}/api/v1/analytics/products/{{product_id}}/windows");
    println!("             GET  {base}/api/v1/analytics/windows?from=&to=");
    println!("             GET  {base}/api/v1/analytics/stream   (Server-Sent Events)");
    println!("  identity   POST {base}/api/v1/auth/register, POST {base}/api/v1/auth/token");
    println!("             keys at {base}/.well-known/jwks.json");
    for line in &identity.lines {
        println!("             {line}");
    }
    println!("  catalog    {base}/api/v1/products   (POST, GET, PATCH, DELETE; /batch)");
    println!(
        "  import     drop .csv files into {}   (reports in import/done/)",
        import_dir.display()
    );
    println!("  customers  {base}/api/v1/customers");
    println!("  orders     {base}/api/v1/orders   (each PURCHASE line feeds the windows)");
    println!("  API docs   {base}/docs   ({base}/api/v1/openapi.json)");
    println!("  health     {base}/healthz  {base}/readyz");
    println!("  metrics    {base}/metrics");
    if args.no_demo {
        println!("no demo traffic (--no-demo); send some with:");
        println!(
            "  curl -H 'content-type: application/json' {base}/api/v1/events -d '{{\"user_id\":\"u1\",\"product_id\":\"42\",\"event_type\":\"VIEW_PRODUCT\",\"timestamp\":\"'$(date -u +%FT%TZ)'\"}}'"
        );
    } else {
        println!(
            "demo traffic: {} events/s with live event times (--no-demo to turn off)",
            args.demo_rate
        );
    }
    println!("each closed minute's top products follow (Ctrl-C stops)\n");

    // The demo posts to ingest directly: it is the platform's own traffic, not a caller's.
    let demo = (!args.no_demo).then(|| {
        tokio::spawn(demo::run(
            format!("{}{}", upstreams.ingest, ingest::ROUTE),
            args.demo_rate,
        ))
    });
    let printer = tokio::spawn(print_closed_minutes(store.clone(), args.top));
    // The import folder goes through the gateway as the machine client `importer`, as the
    // Lambda does.
    let importer = product_import::api::ProductApi::new(product_import::api::ApiConfig {
        base_url: base.clone(),
        client_id: "importer".to_owned(),
        client_secret: identity.importer_secret.clone(),
        request_timeout: Duration::from_secs(30),
        retry_budget: Duration::from_secs(120),
    })?;
    let import = tokio::spawn(super::import::watch_folder(
        import_dir,
        importer,
        product_import::Options {
            batch_rows: usize::from(args.importer.batch_rows),
            ..product_import::Options::default()
        },
    ));

    let outcome: Result<(), RuntimeError> = tokio::select! {
        () = service_common::shutdown_signal() => {
            eprintln!("\nstopping: storing and checkpointing what was processed");
            Ok(())
        }
        () = engine.stopped() => Ok(()),
    };
    if let Some(demo) = demo {
        demo.abort();
    }
    printer.abort();
    import.abort();
    let _ = stop_servers.send(true);
    for server in servers {
        let _ = server.await;
    }
    let _ = stop_relay.send(());
    let _ = relay.await;
    let stopped = engine.stop().await;
    drop(tail);
    store.close().await;
    crud.close().await;
    outcome?;
    stopped?;
    Ok(())
}

/// The CRUD services' databases: a SQLite file each, migrated.
struct Crud {
    auth: service_db::Db,
    catalog: service_db::Db,
    customers: service_db::Db,
    orders: service_db::Db,
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
        })
    }

    async fn close(&self) {
        self.auth.close().await;
        self.catalog.close().await;
        self.customers.close().await;
        self.orders.close().await;
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
        println!(
            "{}  top {}: {}",
            &format_rfc3339_ms(latest)[11..16],
            rows.len(),
            line.join("  ")
        );
    }
}
