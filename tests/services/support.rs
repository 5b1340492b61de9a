//! The services from their `build` functions on loopback, on SQLite or on a fresh PostgreSQL
//! database, with their outboxes relaying to an embedded event log (the stream's input topic
//! and the order flow's topics) and the saga's participants consuming it.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use event_log::embedded::{EmbeddedLog, LogConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use service_db::{Db, DbConfig, Migrations};
use testkit::prometheus::value;
use tokio::sync::oneshot;

pub const TOPIC: &str = "ecom-raw-events";
pub const ISSUER: &str = "http://ecom.test";
pub const AUDIENCE: &str = "ecom";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each test body once per database.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::support::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::support::Backend::Postgres).await
                }
            )*
        }
    };
}

/// The databases of one test: SQLite files in a temporary directory, or three schemas of a
/// fresh PostgreSQL database (as in production).
pub struct Databases {
    pub dir: tempfile::TempDir,
    postgres_url: Option<String>,
}

impl Databases {
    pub fn new(backend: Backend) -> Databases {
        let dir = tempfile::tempdir().expect("temp dir");
        let postgres_url =
            (backend == Backend::Postgres).then(|| testkit::Postgres::shared().database());
        Databases { dir, postgres_url }
    }

    pub async fn open(&self, schema: &'static str, migrations: &Migrations) -> Db {
        let url = match &self.postgres_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}",
                self.dir.path().join(format!("{schema}.db")).display()
            ),
        };
        let db = Db::connect(&DbConfig::new(url, schema))
            .await
            .expect("connect");
        db.migrate(migrations).await.expect("migrate");
        db
    }
}

/// A running service: its base URL, and how to stop it.
pub struct Service {
    pub base: String,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
}

impl Service {
    fn spawn<F>(addr: SocketAddr, server: F) -> (oneshot::Sender<()>, Service)
    where
        F: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
    {
        let (stop, _) = oneshot::channel();
        let done = tokio::spawn(async move {
            let _ = server.await;
        });
        (
            stop,
            Service {
                base: format!("http://{addr}"),
                stop: None,
                done: Some(done),
            },
        )
    }

    /// Stops the service and waits until it no longer listens.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), done).await;
        }
    }
}

fn stopper() -> (
    oneshot::Sender<()>,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (tx, rx) = oneshot::channel::<()>();
    (tx, async move {
        let _ = rx.await;
    })
}

/// The services' body limits in these tests: a stalled body is given up after a second.
pub fn body_limits() -> service_common::rest::BodyLimits {
    service_common::rest::BodyLimits {
        read_timeout: Duration::from_secs(1),
        ..Default::default()
    }
}

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The order flow's topics.
#[derive(Clone)]
pub struct FlowLogs {
    pub orders: EmbeddedLog,
    pub inventory: EmbeddedLog,
    pub payments: EmbeddedLog,
    pub catalog: EmbeddedLog,
    pub dead_letters: EmbeddedLog,
}

impl FlowLogs {
    pub fn open(dir: &Path) -> FlowLogs {
        use messaging::contract::{
            CATALOG_EVENTS, DEAD_LETTERS, INVENTORY_EVENTS, ORDER_EVENTS, PAYMENT_EVENTS,
        };
        let open = |name: &str, partitions| {
            EmbeddedLog::open(
                &dir.join("flow").join(name),
                LogConfig {
                    partitions,
                    ..LogConfig::default()
                },
            )
            .expect("a flow topic opens")
        };
        FlowLogs {
            orders: open(ORDER_EVENTS, 2),
            inventory: open(INVENTORY_EVENTS, 2),
            payments: open(PAYMENT_EVENTS, 2),
            catalog: open(CATALOG_EVENTS, 2),
            dead_letters: open(DEAD_LETTERS, 1),
        }
    }

    /// The topic named `name`.
    pub fn topic(&self, name: &str) -> EmbeddedLog {
        use messaging::contract::{CATALOG_EVENTS, DEAD_LETTERS, INVENTORY_EVENTS, ORDER_EVENTS};
        match name {
            CATALOG_EVENTS => self.catalog.clone(),
            ORDER_EVENTS => self.orders.clone(),
            INVENTORY_EVENTS => self.inventory.clone(),
            DEAD_LETTERS => self.dead_letters.clone(),
            _ => self.payments.clone(),
        }
    }

    /// A relay's topics: `writes` and the dead letters.
    pub fn topics(&self, writes: &[&str]) -> messaging::Topics<EmbeddedLog> {
        let mut topics = messaging::Topics::default()
            .with(messaging::contract::DEAD_LETTERS, self.dead_letters.clone());
        for name in writes {
            topics = topics.with(name, self.topic(name));
        }
        topics
    }
}

/// How long a saga step waits in these tests (short, so that the timeout tests are quick).
pub const STEP_TIMEOUT: Duration = Duration::from_secs(3);

/// Catalog, customers, orders, inventory and payments, each on its own port, wired as in
/// production.
pub struct Platform {
    pub auth: Service,
    pub auth_db: Db,
    pub catalog: Service,
    pub customers: Service,
    pub orders: Service,
    pub inventory: Service,
    pub payments: Service,
    pub log: EmbeddedLog,
    pub flow: FlowLogs,
    pub payments_db: Db,
    pub sandbox_db: Db,
    pub http: reqwest::Client,
    /// The catalog's database, for tests that write beside the API.
    pub catalog_db: Db,
    /// Kept for the SQLite files' directory.
    _dbs: Databases,
}

impl Platform {
    pub async fn start(backend: Backend) -> Platform {
        Platform::start_with_catalog(backend, None).await
    }

    /// As [`Platform::start`], with orders asking `catalog_url` for prices instead of the
    /// catalog started here.
    pub async fn start_with_catalog(backend: Backend, catalog_url: Option<String>) -> Platform {
        let dbs = Databases::new(backend);
        let catalog_db = dbs.open(catalog::SCHEMA, &catalog::MIGRATIONS).await;
        let catalog_repo = catalog_db.clone();
        let customers_db = dbs.open(customers::SCHEMA, &customers::MIGRATIONS).await;
        let orders_db = dbs.open(orders::SCHEMA, &orders::MIGRATIONS).await;
        let auth_db = dbs.open(auth::SCHEMA, &auth::MIGRATIONS).await;
        let inventory_db = dbs.open(inventory::SCHEMA, &inventory::MIGRATIONS).await;
        let payments_db = dbs.open(payments::SCHEMA, &payments::MIGRATIONS).await;
        let sandbox_db = dbs
            .open(
                payments::sandbox::SANDBOX_SCHEMA,
                &payments::sandbox::SANDBOX_MIGRATIONS,
            )
            .await;
        let log = open_log(dbs.dir.path());
        let flow = FlowLogs::open(dbs.dir.path());

        // Auth first (the others check tokens against its keys), with the customers service's
        // address reserved for it.
        // (Bound now and kept: a port only reserved could be taken before the service binds.)
        let customers_listener = tokio::net::TcpListener::bind(any_port())
            .await
            .expect("a port for customers");
        let customers_addr = customers_listener.local_addr().unwrap();
        let (stop, shutdown) = stopper();
        let config = auth::Config {
            addr: any_port(),
            body: body_limits(),
            tokens: auth::TokenConfig {
                issuer: ISSUER.to_owned(),
                audience: AUDIENCE.to_owned(),
                ttl: Duration::from_secs(600),
            },
            customers_url: format!("http://{customers_addr}"),
        };
        let (addr, server) = auth::build(config, auth_db.clone(), shutdown)
            .await
            .expect("auth binds");
        let (_, mut auth) = Service::spawn(addr, server);
        auth.stop = Some(stop);
        let tokens = Some(service_common::auth::VerifierConfig {
            jwks_url: format!("{}/.well-known/jwks.json", auth.base),
            issuer: ISSUER.to_owned(),
            audience: AUDIENCE.to_owned(),
        });

        let (stop, shutdown) = stopper();
        let readers = flow.clone();
        let (addr, server) = catalog::build(
            catalog::Config {
                addr: any_port(),
                body: body_limits(),
            },
            catalog_db,
            flow.topics(&[messaging::contract::CATALOG_EVENTS]),
            move |listener| Ok(readers.inventory.reader(catalog::CONSUMER, listener)),
            shutdown,
        )
        .await
        .expect("catalog binds");
        let (_, mut catalog) = Service::spawn(addr, server);
        catalog.stop = Some(stop);

        let (stop, shutdown) = stopper();
        let (addr, server) = customers::build_on(
            customers_listener,
            customers::Config {
                addr: customers_addr,
                body: body_limits(),
                tokens: tokens.clone(),
            },
            customers_db,
            shutdown,
        )
        .expect("customers serves");
        let (_, mut customers) = Service::spawn(addr, server);
        customers.stop = Some(stop);

        let (stop, shutdown) = stopper();
        let config = orders::Config {
            addr: any_port(),
            body: body_limits(),
            upstream: orders::UpstreamConfig {
                catalog_url: catalog_url.unwrap_or_else(|| catalog.base.clone()),
                customers_url: customers.base.clone(),
                timeout: Duration::from_secs(2),
            },
            saga: orders::SagaConfig {
                purchases_topic: TOPIC.to_owned(),
                step_timeout: STEP_TIMEOUT,
            },
            relay_poll: Duration::from_millis(100),
            tokens: tokens.clone(),
        };
        let topics = flow
            .topics(&[messaging::contract::ORDER_EVENTS])
            .with(TOPIC, log.clone());
        let readers = flow.clone();
        let (addr, server) = orders::build(
            config,
            orders_db,
            topics,
            move |topic, listener| Ok(readers.topic(topic).reader(orders::CONSUMER, listener)),
            shutdown,
        )
        .await
        .expect("orders binds");
        let (_, mut orders) = Service::spawn(addr, server);
        orders.stop = Some(stop);

        let inventory = Platform::start_inventory(&flow, &inventory_db, tokens.clone()).await;
        let payments =
            Platform::start_payments(&flow, &payments_db, &sandbox_db, tokens.clone()).await;

        Platform {
            auth,
            auth_db,
            catalog,
            customers,
            orders,
            inventory,
            payments,
            log,
            flow,
            payments_db,
            sandbox_db,
            http: reqwest::Client::new(),
            catalog_db: catalog_repo,
            _dbs: dbs,
        }
    }

    /// The inventory service on `db`, consuming `order.events`.
    pub async fn start_inventory(
        flow: &FlowLogs,
        db: &Db,
        tokens: Option<service_common::auth::VerifierConfig>,
    ) -> Service {
        let (stop, shutdown) = stopper();
        let readers = flow.clone();
        let (addr, server) = inventory::build(
            inventory::Config {
                addr: any_port(),
                body: body_limits(),
                tokens,
                settings: inventory::Settings::default(),
            },
            db.clone(),
            flow.topics(&[messaging::contract::INVENTORY_EVENTS]),
            move |topic, listener| Ok(readers.topic(topic).reader(inventory::CONSUMER, listener)),
            shutdown,
        )
        .await
        .expect("inventory binds");
        let (_, mut service) = Service::spawn(addr, server);
        service.stop = Some(stop);
        service
    }

    /// The payments service on `db` with the sandbox on `sandbox`, consuming `order.events`.
    pub async fn start_payments(
        flow: &FlowLogs,
        db: &Db,
        sandbox: &Db,
        tokens: Option<service_common::auth::VerifierConfig>,
    ) -> Service {
        let (stop, shutdown) = stopper();
        let orders_log = flow.orders.clone();
        let (addr, server) = payments::build(
            payments::Config {
                addr: any_port(),
                body: body_limits(),
                tokens,
                settings: payments::Settings::default(),
                sandbox: payments::sandbox::SandboxSettings::new(Duration::ZERO, 0.0)
                    .expect("valid settings"),
            },
            db.clone(),
            sandbox.clone(),
            flow.topics(&[messaging::contract::PAYMENT_EVENTS]),
            move |listener| Ok(orders_log.reader(payments::CONSUMER, listener)),
            shutdown,
        )
        .await
        .expect("payments binds");
        let (_, mut service) = Service::spawn(addr, server);
        service.stop = Some(stop);
        service
    }

    pub fn inventory_url(&self, product_id: &str) -> String {
        format!("{}/api/v1/inventory/{product_id}", self.inventory.base)
    }

    pub fn payments_url(&self) -> String {
        format!("{}/api/v1/payments", self.payments.base)
    }

    /// The product's stock: `{"on_hand", "reserved", "available", ...}`.
    pub async fn stock(&self, product_id: &str) -> Value {
        let a = self.get(&self.inventory_url(product_id)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        a.body
    }

    /// The order once its saga has settled (not `PENDING`), within `timeout`.
    pub async fn settled(&self, order_id: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let a = self.get(&format!("{}/{order_id}", self.orders_url())).await;
            assert_eq!(a.status, StatusCode::OK, "{}", a.body);
            if a.body["status"] != "PENDING" {
                return a.body;
            }
            assert!(
                Instant::now() < deadline,
                "order {order_id} still PENDING: {}",
                a.body
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the catalog; its address, for [`Platform::restart_catalog`].
    pub async fn stop_catalog(&mut self) -> SocketAddr {
        let addr = self
            .catalog
            .base
            .trim_start_matches("http://")
            .parse()
            .expect("the catalog's address");
        self.catalog.stop().await;
        addr
    }

    /// The catalog served again on `addr` (its address before [`Platform::stop_catalog`]), on
    /// the same database; it stops when the returned sender is dropped.
    pub async fn restart_catalog(&self, addr: SocketAddr) -> oneshot::Sender<()> {
        let (stop, stopped) = oneshot::channel::<()>();
        let readers = self.flow.clone();
        let (_, server) = catalog::build(
            catalog::Config {
                addr,
                body: body_limits(),
            },
            self.catalog_db.clone(),
            self.flow.topics(&[messaging::contract::CATALOG_EVENTS]),
            move |listener| Ok(readers.inventory.reader(catalog::CONSUMER, listener)),
            async {
                let _ = stopped.await;
            },
        )
        .await
        .expect("the catalog binds its old address again");
        tokio::spawn(server);
        stop
    }

    /// `method url` with an optional JSON body and headers: the status, headers and body
    /// (JSON, or `Value::Null` when empty). Asserts the answer is never a 5xx other than
    /// 503/504.
    pub async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = self.http.request(method.clone(), url);
        if let Some(body) = body {
            request = request.json(body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("the service answers");
        Answer::read(response, &format!("{method} {url}")).await
    }

    pub async fn post(&self, url: &str, body: &Value) -> Answer {
        self.call(Method::POST, url, Some(body), &[]).await
    }

    pub async fn get(&self, url: &str) -> Answer {
        self.call(Method::GET, url, None, &[]).await
    }

    pub fn products(&self) -> String {
        format!("{}/api/v1/products", self.catalog.base)
    }

    pub fn customers_url(&self) -> String {
        format!("{}/api/v1/customers", self.customers.base)
    }

    pub fn orders_url(&self) -> String {
        format!("{}/api/v1/orders", self.orders.base)
    }

    /// Creates a product: its id.
    pub async fn product(&self, sku: &str, amount: i64, currency: &str) -> String {
        let a = self
            .post(
                &self.products(),
                &json!({"sku": sku, "name": format!("Product {sku}"), "category": "test",
                        "price": {"amount": amount, "currency": currency}, "stock_quantity": 10}),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
        let id = a.body["id"].as_str().expect("an id").to_owned();
        // The catalog's stock becomes the inventory's on hand (the stock sync).
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let stock = self.get(&self.inventory_url(&id)).await;
            if stock.status == StatusCode::OK && stock.body["on_hand"] == 10 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no stock for {id}: {}",
                stock.body
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        id
    }

    /// Creates a customer: its id.
    pub async fn customer(&self, email: &str) -> String {
        let a = self
            .post(
                &self.customers_url(),
                &json!({"name": "Test Customer", "email": email}),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
        a.body["id"].as_str().expect("an id").to_owned()
    }

    /// Every item of a list, walking its pages.
    pub async fn walk(&self, url: &str, limit: usize) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        let join = if url.contains('?') { '&' } else { '?' };
        loop {
            let page_url = match &cursor {
                Some(c) => format!("{url}{join}limit={limit}&cursor={c}"),
                None => format!("{url}{join}limit={limit}"),
            };
            let a = self.get(&page_url).await;
            assert_eq!(a.status, StatusCode::OK, "{}", a.body);
            items.extend(a.body["items"].as_array().expect("items").iter().cloned());
            match a.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return items,
            }
        }
    }
}

pub fn open_log(dir: &Path) -> EmbeddedLog {
    EmbeddedLog::open(
        &dir.join("log"),
        LogConfig {
            partitions: 2,
            ..LogConfig::default()
        },
    )
    .expect("the embedded log opens")
}

/// Every record of the log, as (key, value).
pub fn log_records(log: &EmbeddedLog) -> Vec<(String, Value)> {
    testkit::log::records(log)
        .into_iter()
        .map(|(key, value)| {
            (
                String::from_utf8(key).expect("UTF-8"),
                serde_json::from_slice(&value).expect("JSON"),
            )
        })
        .collect()
}

/// An answer: status, headers, body.
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub async fn read(response: reqwest::Response, what: &str) -> Answer {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("a body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("{what}: not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        assert!(
            !status.is_server_error()
                || status == StatusCode::SERVICE_UNAVAILABLE
                || status == StatusCode::GATEWAY_TIMEOUT,
            "{what} answered {status}: {body}"
        );
        if !status.is_success() {
            assert!(
                body["error"]["code"].is_string(),
                "{what}: {status} without the standard body: {body}"
            );
        }
        Answer {
            status,
            headers,
            body,
        }
    }

    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// `ecom gateway` on a free port, killed when dropped.
pub struct GatewayProcess {
    child: Child,
    pub base: String,
}

impl GatewayProcess {
    /// In front of `p`'s services (ingest and analytics at `ingest`, `analytics` when given,
    /// else a closed port), with `env` on top.
    pub async fn start(p: &Platform, upstreams: &[(&str, &str)], env: &[(&str, &str)]) -> Self {
        let port = testkit::free_port();
        let closed = format!("http://127.0.0.1:{}", testkit::free_port());
        let mut command = Command::new(env!("CARGO_BIN_EXE_ecom"));
        command
            .args(["gateway", "--addr", &format!("127.0.0.1:{port}")])
            .env("AUTH_URL", &p.auth.base)
            .env("CATALOG_URL", &p.catalog.base)
            .env("CUSTOMERS_URL", &p.customers.base)
            .env("ORDERS_URL", &p.orders.base)
            .env("INGEST_URL", &closed)
            .env("ANALYTICS_URL", &closed)
            .env("ECOM_TOKEN_ISSUER", ISSUER)
            .env("ECOM_TOKEN_AUDIENCE", AUDIENCE)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null());
        for (name, value) in upstreams.iter().chain(env) {
            command.env(name, value);
        }
        let child = command.spawn().expect("ecom gateway starts");
        let gateway = GatewayProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::get(format!("{}/healthz", gateway.base))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "the gateway never listened");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        gateway
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let mut request = reqwest::Client::new().get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        Answer::read(request.send().await.unwrap(), path).await
    }

    /// Waits until the shared limits on Redis answer (the connection is made in the background).
    pub async fn wait_for_redis(&self, up: bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let wanted = if up { 1.0 } else { 0.0 };
        loop {
            if up {
                // A decision moves the gauge once the connection is back.
                let _ = self.get("/api/v1/products?limit=1", None).await;
            }
            if value(&self.metrics().await, "gateway_rate_limit_redis_up") == wanted {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the gateway's Redis never became {}",
                if up { "reachable" } else { "unreachable" }
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
