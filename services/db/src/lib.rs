//! The database of the CRUD services (catalog, customers, orders).
//!
//! One code path for both databases: [`Db`] is a sqlx `Any` pool on PostgreSQL (the separate
//! services; each service's tables live in its own schema, selected by `search_path`) or on
//! SQLite (`ecom up`; a file per service). The SQL is written once, in the subset both speak:
//! `$N` parameters, `TEXT` and `BIGINT` columns, `ON CONFLICT`, `RETURNING`. Times are stored
//! as `BIGINT` microseconds since the Unix epoch (UTC), money as `BIGINT` minor units beside a
//! `TEXT` currency.
//!
//! Invariants:
//! - a service writes only its own schema (PostgreSQL) or file (SQLite);
//! - every write transaction starts with [`Db::begin_write`], which on SQLite takes the write
//!   lock first (`BEGIN IMMEDIATE`), so two writers queue on the busy timeout instead of one
//!   failing when it upgrades a read;
//! - migrations are embedded in the binary and run at start ([`Db::migrate`]), forward only.

pub mod idempotency;
pub mod metrics;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Any, AnyPool, Executor, Transaction};

/// What can go wrong with the database, as a service needs to tell it apart.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database cannot be reached, or did not answer in time: worth a retry later (503).
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A unique constraint refused the write (a duplicate SKU or email).
    #[error("a unique constraint refused the write: {0}")]
    Duplicate(String),
    /// Anything else: a bug, or a schema that does not match the code.
    #[error("database error: {0}")]
    Other(String),
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                DbError::Duplicate(db.message().to_owned())
            }
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => DbError::Unavailable(e.to_string()),
            sqlx::Error::Database(db) if db.code().is_some_and(|c| is_outage(&c)) => {
                DbError::Unavailable(e.to_string())
            }
            _ => DbError::Other(e.to_string()),
        }
    }
}

/// Whether a database error code says the database cannot serve now (worth a 503 and a retry)
/// rather than that the statement is wrong.
fn is_outage(code: &str) -> bool {
    if code.len() < 5 {
        // SQLite: an extended result code, whose low byte is the primary one: BUSY (5),
        // LOCKED (6), IOERR (10), FULL (13), CANTOPEN (14).
        return code
            .parse::<i32>()
            .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 10 | 13 | 14));
    }
    // PostgreSQL SQLSTATE classes: 08 connection, 40 serialization and deadlock, 53
    // insufficient resources, 57 operator intervention (shutdown, statement timeout), and a
    // read-only transaction (a primary demoted by a failover).
    ["08", "40", "53", "57"]
        .iter()
        .any(|class| code.starts_with(class))
        || code == "25006"
}

impl From<sqlx::migrate::MigrateError> for DbError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        match e {
            sqlx::migrate::MigrateError::Execute(e) => e.into(),
            e => DbError::Other(e.to_string()),
        }
    }
}

impl From<DbError> for service_common::ApiError {
    fn from(e: DbError) -> Self {
        use axum::http::StatusCode;
        match e {
            DbError::Unavailable(reason) => {
                tracing::warn!(%reason, "database unavailable");
                service_common::ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "the database did not answer; retry later",
                )
                .retry_after(1)
            }
            DbError::Duplicate(reason) => {
                service_common::ApiError::new(StatusCode::CONFLICT, "conflict", reason)
            }
            DbError::Other(reason) => {
                tracing::error!(%reason, "database error");
                service_common::ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the request failed inside the service",
                )
            }
        }
    }
}

pub type Result<T, E = DbError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    #[test]
    fn outages_are_told_from_wrong_statements() {
        for code in [
            "5", "261", "517", "773", "6", "262", "10", "3338", "13", "14",
        ] {
            assert!(super::is_outage(code), "SQLite {code}");
        }
        for code in [
            "08006", "40001", "40P01", "53300", "57014", "57P01", "25006",
        ] {
            assert!(super::is_outage(code), "PostgreSQL {code}");
        }
        for code in ["19", "2067", "1", "23505", "22021", "42P01", "25001"] {
            assert!(!super::is_outage(code), "{code}");
        }
    }
}

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// How to reach a service's database.
#[derive(Debug, Clone)]
pub struct DbConfig {
    /// `postgres://user:password@host:port/db` or `sqlite://path` (created if missing).
    pub url: String,
    /// The service's schema on PostgreSQL (ignored on SQLite, where the file is the service's).
    pub schema: &'static str,
    /// Connections in the pool.
    pub max_connections: u32,
    /// How long a request waits for a connection before the database counts as unavailable.
    pub acquire_timeout: Duration,
    /// How long one statement (or a wait for a lock) may take on PostgreSQL; SQLite waits
    /// for its write lock up to 5 s.
    pub statement_timeout: Duration,
}

impl DbConfig {
    pub fn new(url: impl Into<String>, schema: &'static str) -> Self {
        DbConfig {
            url: url.into(),
            schema,
            max_connections: 16,
            acquire_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_secs(5),
        }
    }
}

/// A service's connection pool.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

impl Db {
    /// Connects (creating the PostgreSQL schema or the SQLite file if missing). Does not
    /// migrate: call [`Db::migrate`].
    pub async fn connect(config: &DbConfig) -> Result<Db> {
        install_default_drivers();
        let schema = config.schema;
        assert!(
            !schema.is_empty() && schema.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "schema names are lower-case identifiers"
        );
        let backend =
            if config.url.starts_with("postgres:") || config.url.starts_with("postgresql:") {
                Backend::Postgres
            } else if config.url.starts_with("sqlite:") {
                Backend::Sqlite
            } else {
                return Err(DbError::Other(format!(
                    "the database URL must start with postgres:// or sqlite:// (got {:?})",
                    config.url.split(':').next().unwrap_or("")
                )));
            };
        let mut url = config.url.clone();
        if backend == Backend::Sqlite && !url.contains("mode=") {
            url.push_str(if url.contains('?') {
                "&mode=rwc"
            } else {
                "?mode=rwc"
            });
        }
        let ms = config.statement_timeout.as_millis();
        let options = AnyPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    match backend {
                        Backend::Postgres => {
                            // A statement or lock that takes this long fails (503) rather
                            // than holding the request; an abandoned transaction is ended.
                            conn.execute(
                                format!(
                                    "SET search_path TO {schema}; SET statement_timeout = '{ms}ms'; \
                                     SET lock_timeout = '{ms}ms'; \
                                     SET idle_in_transaction_session_timeout = '60s'"
                                )
                                .as_str(),
                            )
                            .await?;
                        }
                        Backend::Sqlite => {
                            // WAL lets readers run beside the one writer; FULL syncs every
                            // commit, so an acknowledged write survives a power cut.
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
                            )
                            .await?;
                        }
                    }
                    Ok(())
                })
            });
        if backend == Backend::Postgres {
            // The schema must exist before a connection can use it.
            let pool = AnyPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(config.acquire_timeout)
                .connect(&url)
                .await?;
            pool.execute(format!("CREATE SCHEMA IF NOT EXISTS {schema}").as_str())
                .await?;
            pool.close().await;
        }
        let pool = options.connect(&url).await?;
        Ok(Db { pool, backend })
    }

    /// Applies the service's migrations that have not been applied yet.
    pub async fn migrate(&self, migrations: &Migrations) -> Result<()> {
        migrations.migrator().await?.run(&self.pool).await?;
        Ok(())
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A transaction that will write: on SQLite it holds the write lock from its first
    /// statement (`BEGIN IMMEDIATE`), waiting up to the busy timeout for another writer.
    pub async fn begin_write(&self) -> Result<Transaction<'static, Any>> {
        Ok(match self.backend {
            Backend::Postgres => self.pool.begin().await?,
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
        })
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// A service's readiness: the database answers.
    pub fn ready_check(&self) -> service_common::ReadyCheck {
        let db = self.clone();
        std::sync::Arc::new(move || {
            let db = db.clone();
            Box::pin(async move { db.ping().await.map_err(|e| e.to_string()) })
        })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A service's migrations, embedded in the binary: `(version, description, sql)`, applied in
/// order, each in its own transaction, recorded in the schema's `_sqlx_migrations`.
#[derive(Debug)]
pub struct Migrations(pub &'static [(i64, &'static str, &'static str)]);

impl Migrations {
    async fn migrator(&self) -> Result<Migrator> {
        Ok(Migrator::new(self).await?)
    }
}

impl<'s> sqlx::migrate::MigrationSource<'s> for &'s Migrations {
    #[allow(clippy::type_complexity)]
    fn resolve(
        self,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = std::result::Result<Vec<Migration>, sqlx::error::BoxDynError>,
                > + Send
                + 's,
        >,
    > {
        let migrations = self
            .0
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    (*description).into(),
                    MigrationType::Simple,
                    (*sql).into(),
                    false,
                )
            })
            .collect();
        Box::pin(std::future::ready(Ok(migrations)))
    }
}

/// A new resource id: a UUIDv7 as 32 lower-case hex digits. Ids of one process grow with
/// time, which keeps the primary-key index appending.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// Whether `id` has the shape [`new_id`] gives (so that a malformed id is a 404 without a query).
pub fn is_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Microseconds since the Unix epoch as RFC 3339 UTC (`2026-11-29T18:26:40.123456Z`).
pub fn rfc3339(us: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_micros(us.max(0) as u64);
    humantime::format_rfc3339_micros(time).to_string()
}
