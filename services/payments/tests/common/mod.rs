//! The payments service as it ships ([`payments::build`]) on SQLite files in a tempdir (its
//! database and the sandbox's ledger apart) and embedded topics, with a key server for
//! customers' tokens; and what the tests read back: rows, the ledger, the replies.

#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use event_log::embedded::{EmbeddedLog, LogConfig};
use event_log::{EventLog, Record};
use messaging::contract::{self, Amount};
use messaging::{Envelope, Message, Topics};
use payments::sandbox::{SANDBOX_MIGRATIONS, SANDBOX_SCHEMA, SandboxSettings};
use payments::{Config, MIGRATIONS, SCHEMA, Settings};
use ring::signature::{Ed25519KeyPair, KeyPair};
use service_common::auth::VerifierConfig;
use service_db::{Db, DbConfig};
use sqlx::Row;
use tempfile::TempDir;

pub const ISSUER: &str = "http://auth.test";
pub const AUDIENCE: &str = "ecom";
pub const CUSTOMER: &str = "c-ada";
pub const PRICE: i64 = 1299;

pub async fn open(path: &Path, schema: &'static str, migrations: &service_db::Migrations) -> Db {
    let db = Db::connect(&DbConfig::new(
        format!("sqlite://{}", path.display()),
        schema,
    ))
    .await
    .expect("open the database");
    db.migrate(migrations).await.expect("migrate");
    db
}

pub async fn payments_db(dir: &Path) -> Db {
    open(&dir.join("payments.db"), SCHEMA, &MIGRATIONS).await
}

/// The sandbox's ledger: a file of its own, as an external processor's.
pub async fn sandbox_db(dir: &Path) -> Db {
    open(
        &dir.join("payment_sandbox.db"),
        SANDBOX_SCHEMA,
        &SANDBOX_MIGRATIONS,
    )
    .await
}

pub fn topic(dir: &Path, name: &str) -> EmbeddedLog {
    EmbeddedLog::open(
        &dir.join(name),
        LogConfig {
            partitions: 2,
            ..LogConfig::default()
        },
    )
    .expect("open the topic")
}

/// A `PaymentRequested` of `order` from the orders service.
pub fn requested(order: &str, payment_method: &str) -> Envelope {
    requested_by(order, CUSTOMER, payment_method)
}

pub fn requested_by(order: &str, customer: &str, payment_method: &str) -> Envelope {
    Envelope::traced(
        "/ecom/orders",
        order,
        &Message::PaymentRequested(contract::PaymentRequested {
            customer_id: customer.into(),
            amount: Amount {
                amount: PRICE,
                currency: "EUR".into(),
            },
            payment_method: payment_method.into(),
        }),
        None,
    )
}

/// An `OrderCancelled` of `order`.
pub fn cancelled(order: &str, reason: &str) -> Envelope {
    Envelope::traced(
        "/ecom/orders",
        order,
        &Message::OrderCancelled(contract::OrderCancelled {
            reason: reason.into(),
        }),
        None,
    )
}

pub fn record(envelope: &Envelope) -> Record {
    Record::new(envelope.subject.clone(), envelope.to_json())
}

/// A payment row, with the provider's ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRow {
    pub id: String,
    pub order_id: String,
    pub status: String,
    pub reason: Option<String>,
    pub charge_id: Option<String>,
    pub refund_id: Option<String>,
}

pub async fn payment_rows(db: &Db) -> Vec<PaymentRow> {
    sqlx::query(
        "SELECT id, order_id, status, reason, charge_id, refund_id FROM payments ORDER BY id",
    )
    .fetch_all(db.pool())
    .await
    .expect("read the payments")
    .iter()
    .map(|r| PaymentRow {
        id: r.get("id"),
        order_id: r.get("order_id"),
        status: r.get("status"),
        reason: r.get("reason"),
        charge_id: r.get("charge_id"),
        refund_id: r.get("refund_id"),
    })
    .collect()
}

pub async fn payment_of(db: &Db, order: &str) -> Option<PaymentRow> {
    payment_rows(db)
        .await
        .into_iter()
        .find(|p| p.order_id == order)
}

/// A charge in the sandbox's ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerCharge {
    pub idempotency_key: String,
    pub id: String,
    pub outcome: String,
    pub code: Option<String>,
}

pub async fn ledger_charges(sandbox: &Db) -> Vec<LedgerCharge> {
    sqlx::query(
        "SELECT idempotency_key, id, outcome, code FROM sandbox_charges ORDER BY idempotency_key",
    )
    .fetch_all(sandbox.pool())
    .await
    .expect("read the ledger")
    .iter()
    .map(|r| LedgerCharge {
        idempotency_key: r.get("idempotency_key"),
        id: r.get("id"),
        outcome: r.get("outcome"),
        code: r.get("code"),
    })
    .collect()
}

/// `(idempotency_key, id, charge_id)` of each refund in the ledger.
pub async fn ledger_refunds(sandbox: &Db) -> Vec<(String, String, String)> {
    sqlx::query("SELECT idempotency_key, id, charge_id FROM sandbox_refunds ORDER BY id")
        .fetch_all(sandbox.pool())
        .await
        .expect("read the ledger")
        .iter()
        .map(|r| (r.get("idempotency_key"), r.get("id"), r.get("charge_id")))
        .collect()
}

/// Every envelope of a topic, from the beginning.
pub async fn read_all(log: &EmbeddedLog) -> Vec<Envelope> {
    let log = log.clone();
    tokio::task::spawn_blocking(move || {
        testkit::log::payloads(&log)
            .iter()
            .map(|payload| Envelope::parse(payload).expect("an envelope"))
            .collect()
    })
    .await
    .expect("read the topic")
}

/// Waits up to 60 s (a shared, slow machine) for `probe` to give something.
pub async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A key server that signs tokens as the auth service does (EdDSA, a JWKS).
pub struct Keys {
    pkcs8: Vec<u8>,
    pub jwks_url: String,
}

impl Keys {
    pub async fn start() -> Keys {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .expect("a key")
            .as_ref()
            .to_vec();
        let public = Ed25519KeyPair::from_pkcs8(&pkcs8)
            .expect("the key")
            .public_key()
            .as_ref()
            .to_vec();
        let jwks = serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA",
            "use": "sig", "kid": "test", "x": URL_SAFE_NO_PAD.encode(public)}]});
        let app = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                let jwks = jwks.clone();
                async move { axum::Json(jwks) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Keys {
            pkcs8,
            jwks_url: format!("http://{addr}/.well-known/jwks.json"),
        }
    }

    pub fn config(&self) -> VerifierConfig {
        VerifierConfig {
            jwks_url: self.jwks_url.clone(),
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
        }
    }

    /// A token of `sub` with `roles`.
    pub fn token(&self, sub: &str, roles: &[&str]) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("time")
            .as_secs();
        let claims = serde_json::json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub,
            "exp": now + 3600, "iat": now, "jti": service_db::new_id(), "roles": roles});
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some("test".into());
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_ed_der(&self.pkcs8),
        )
        .expect("sign")
    }
}

/// How a [`Service`] starts.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub sandbox: SandboxSettings,
    pub settings: Settings,
}

/// The service from [`payments::build`], its stores and its topics.
pub struct Service {
    pub db: Db,
    pub sandbox_db: Db,
    pub orders: EmbeddedLog,
    pub replies: EmbeddedLog,
    pub letters: EmbeddedLog,
    pub base: String,
    pub keys: Keys,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Service {
    pub async fn start(dir: &Path, options: Options) -> Service {
        let db = payments_db(dir).await;
        let sandbox_db = sandbox_db(dir).await;
        let orders = topic(dir, contract::ORDER_EVENTS);
        let replies = topic(dir, contract::PAYMENT_EVENTS);
        let letters = topic(dir, contract::DEAD_LETTERS);
        let keys = Keys::start().await;
        let config = Config {
            addr: "127.0.0.1:0".parse().expect("an address"),
            body: Default::default(),
            tokens: Some(keys.config()),
            settings: options.settings,
            sandbox: options.sandbox,
        };
        let topics = Topics::default()
            .with(contract::PAYMENT_EVENTS, replies.clone())
            .with(contract::DEAD_LETTERS, letters.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let log = orders.clone();
        let (addr, served) = payments::build(
            config,
            db.clone(),
            sandbox_db.clone(),
            topics,
            move |listener| Ok(log.reader(payments::CONSUMER, listener)),
            async move {
                let _ = stopped.await;
            },
        )
        .await
        .expect("the service starts");
        Service {
            db,
            sandbox_db,
            orders,
            replies,
            letters,
            base: format!("http://{addr}"),
            keys,
            stop,
            served: tokio::spawn(served),
        }
    }

    /// Appends `envelopes` to `order.events`, in order.
    pub async fn deliver(&self, envelopes: &[&Envelope]) {
        self.orders
            .append(envelopes.iter().map(|e| record(e)).collect())
            .await
            .expect("append");
    }

    /// The replies sent so far.
    pub async fn replies(&self) -> Vec<Envelope> {
        read_all(&self.replies).await
    }

    /// Waits for `n` replies about `order`.
    pub async fn replies_about(&self, order: &str, n: usize) -> Vec<Envelope> {
        eventually(&format!("{n} replies about {order}"), async || {
            let about: Vec<Envelope> = self
                .replies()
                .await
                .into_iter()
                .filter(|e| e.subject == order)
                .collect();
            (about.len() >= n).then_some(about)
        })
        .await
    }

    /// Waits for the payment of `order` to be in `status`.
    pub async fn payment_in(&self, order: &str, status: &str) -> PaymentRow {
        eventually(&format!("the payment of {order} {status}"), async || {
            payment_of(&self.db, order)
                .await
                .filter(|p| p.status == status)
        })
        .await
    }

    /// Waits until the consumer has handled every record delivered so far (its stored
    /// positions reach the ends of the partitions).
    pub async fn caught_up(&self) {
        let ends: Vec<(u32, u64)> = (0..self.orders.partitions())
            .filter_map(|p| self.orders.bounds(p).map(|(_, end)| (p, end)))
            .collect();
        eventually("the consumer to catch up", async || {
            let stored = messaging::inbox::load_positions(
                &self.db,
                payments::CONSUMER,
                contract::ORDER_EVENTS,
            )
            .await
            .expect("positions");
            ends.iter()
                .all(|&(p, end)| end == 0 || stored.iter().any(|&(q, next)| q == p && next >= end))
                .then_some(())
        })
        .await;
    }

    /// Stops the service (the consumer, then the relay, then the server).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.served
            .await
            .expect("the service's task")
            .expect("the service stops cleanly");
    }
}

/// `f` with a `Service` on a fresh tempdir, stopped afterwards.
pub async fn with_service(options: Options, f: impl AsyncFnOnce(Service) -> Service) {
    let dir = TempDir::new().expect("a tempdir");
    let service = Service::start(dir.path(), options).await;
    f(service).await.stop().await;
}

/// The kind of each envelope.
pub fn kinds(envelopes: &[Envelope]) -> Vec<String> {
    envelopes.iter().map(|e| e.kind.clone()).collect()
}
