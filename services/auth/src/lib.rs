//! Identity (`ecom auth`, port 8081): people and machine clients on PostgreSQL (schema `auth`)
//! or SQLite (`ecom up`), and the tokens they get.
//!
//! | route | answers |
//! |---|---|
//! | `POST /api/v1/auth/register {email, password, name}` | 201: a customer account and its customer record (the token's `sub` is the customer id); 400 for a weak password or a bad field; 409 `email_taken` |
//! | `POST /api/v1/auth/token` (form or JSON) | `{"access_token", "token_type": "Bearer", "expires_in"}` for `grant_type=password` (`username` = email, or `admin`) or `client_credentials` (`client_id`/`client_secret`, or HTTP Basic); 400 `invalid_grant`, 401 `invalid_client`, 429 `too_many_attempts` |
//! | `GET /.well-known/jwks.json` | the public keys that verify tokens, each with its `kid` |
//!
//! Tokens are JWTs signed with Ed25519 (`alg: EdDSA`) carrying `iss`, `aud`, `sub`, `exp`,
//! `iat`, `jti`, `roles` (people) or `scope` (machines); any service verifies them with
//! [`service_common::auth::Verifier`] from the JWKS alone. Failed logins are counted per
//! account and per client address, slowed, and refused for a while past a threshold.

pub mod keys;
pub mod passwords;
mod routes;
mod throttle;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use prometheus_client::registry::Registry;
use service_common::http_metrics::HttpMetrics;
use service_common::{Ops, ReadyCheck};
use service_db::{Db, DbError, Migrations, now_us};

pub use keys::Keys;
pub use routes::openapi;

/// The schema of the service's tables on PostgreSQL.
pub const SCHEMA: &str = "auth";

/// The service's migrations, in order.
pub static MIGRATIONS: Migrations = Migrations(&[(
    1,
    "users, clients and signing keys",
    include_str!("../migrations/0001_identity.sql"),
)]);

/// What tokens say and how long they last.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// `iss`: such as `http://127.0.0.1:8080` (the public entry).
    pub issuer: String,
    /// `aud`: such as `ecom`.
    pub audience: String,
    pub ttl: Duration,
}

/// Settings of the auth service.
#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub body: service_common::rest::BodyLimits,
    pub tokens: TokenConfig,
    /// The customers service's base URL: registration creates the customer record there.
    pub customers_url: String,
}

/// What the handlers share.
pub(crate) struct Identity {
    pub db: Db,
    pub keys: Keys,
    pub tokens: TokenConfig,
    pub customers_url: String,
    pub http: reqwest::Client,
    pub throttle: throttle::Throttle,
}

/// The service's routes and readiness over `db` (migrated) and `keys`: what [`build`] serves
/// alone and `ecom up` serves beside the other services.
pub fn part(
    db: Db,
    keys: Keys,
    tokens: TokenConfig,
    customers_url: String,
    registry: &mut Registry,
    http: Arc<HttpMetrics>,
) -> (Router, ReadyCheck) {
    let ready = db.ready_check();
    // Another replica may rotate: read the keys again every minute.
    let reloading = keys.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            if let Err(e) = reloading.reload().await {
                tracing::warn!(error = %e, "signing keys not reloaded");
            }
        }
    });
    let identity = Arc::new(Identity {
        db,
        keys,
        tokens,
        customers_url: customers_url.trim_end_matches('/').to_owned(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default(),
        throttle: throttle::Throttle::register(registry),
    });
    (routes::router(identity, http), ready)
}

/// The service alone on `config.addr`, until `shutdown` resolves.
pub async fn build(
    config: Config,
    db: Db,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let keys = Keys::open(db.clone(), config.tokens.ttl)
        .await
        .map_err(std::io::Error::other)?;
    let mut registry = Registry::default();
    let http = HttpMetrics::register(&mut registry);
    registry.register_collector(Box::new(service_db::metrics::PoolMetrics::new(vec![(
        "auth",
        db.clone(),
    )])));
    let (router, ready) = part(
        db,
        keys,
        config.tokens,
        config.customers_url,
        &mut registry,
        http,
    );
    let router = router
        .layer(axum::Extension(config.body))
        .merge(service_common::docs::router(openapi()));
    service_common::serve(config.addr, router, Ops::new(registry, ready), shutdown).await
}

/// Creates or updates the administrator (`admin`) with `password`.
pub async fn ensure_admin(db: &Db, password: &str) -> Result<(), DbError> {
    let hash = passwords::hash(password.to_owned())
        .await
        .map_err(|e| DbError::Other(e.to_string()))?;
    let id = service_db::new_id();
    sqlx::query(
        "INSERT INTO users (id, username, name, password_hash, role, subject, created_at) \
         VALUES ($1, 'admin', 'Administrator', $2, 'admin', $1, $3) \
         ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash",
    )
    .bind(&id)
    .bind(hash)
    .bind(now_us())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Creates or updates a machine client with `secret` and `scopes` (space-separated).
pub async fn ensure_client(db: &Db, id: &str, secret: &str, scopes: &str) -> Result<(), DbError> {
    let hash = passwords::hash(secret.to_owned())
        .await
        .map_err(|e| DbError::Other(e.to_string()))?;
    sqlx::query(
        "INSERT INTO clients (id, secret_hash, scopes, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO UPDATE SET secret_hash = excluded.secret_hash, scopes = excluded.scopes",
    )
    .bind(id)
    .bind(hash)
    .bind(scopes)
    .bind(now_us())
    .execute(db.pool())
    .await?;
    Ok(())
}
