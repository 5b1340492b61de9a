//! The subcommands: each parses its flags and calls into a library.

/// `println!` that never panics: a line for a terminal that may be gone (`ecom up | tee` after
/// Ctrl-C, a closed pipe) is dropped, and the process goes on with its orderly stop.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `eprintln!` that never panics (see [`outln!`]).
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod analytics;
pub mod auth;
pub mod catalog;
pub mod customers;
pub mod gateway;
pub mod generate;
pub mod health;
pub mod import;
pub mod ingest;
pub mod inventory;
pub mod migrate;
pub mod order_flow;
pub mod orders;
pub mod payments;
pub mod stream_engine;
pub mod up;
pub mod window;

use std::fs::File;
use std::future::Future;
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ::stream_engine::{Counting, EngineConfig};
use anyhow::Context;
use service_db::{Db, DbConfig, Migrations};

/// The engine's settings, shared by `ecom stream-engine` and `ecom up`.
#[derive(clap::Args, Debug, Clone)]
pub struct EngineArgs {
    /// Watermark = largest event time seen in the partition minus this.
    #[arg(long, env = "ECOM_OUT_OF_ORDERNESS", default_value = "10s", value_parser = parse_duration)]
    pub out_of_orderness: Duration,
    /// Keep fired windows this long and re-fire them on late events.
    #[arg(long, env = "ECOM_ALLOWED_LATENESS", default_value = "0s", value_parser = parse_duration)]
    pub allowed_lateness: Duration,
    /// After this long without events, a partition's watermark advances with the clock.
    #[arg(long, env = "ECOM_IDLE_TIMEOUT", value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// Count unique users with HyperLogLog++ (about 0.8 % error, at most 16 KiB per window).
    #[arg(long, env = "ECOM_APPROX", value_parser = clap::builder::BoolishValueParser::new())]
    pub approx: bool,
}

impl EngineArgs {
    pub fn config(&self) -> EngineConfig {
        EngineConfig {
            out_of_orderness: self.out_of_orderness,
            allowed_lateness: self.allowed_lateness,
            idle_timeout: self.idle_timeout,
            counting: if self.approx {
                Counting::Approximate
            } else {
                Counting::Exact
            },
        }
    }
}

/// The Kafka brokers (`ecom ingest`, `ecom stream-engine`, `ecom analytics`, `ecom orders`).
#[derive(clap::Args, Debug, Clone)]
pub struct Brokers {
    /// Kafka bootstrap servers (`host:port,...`).
    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap_servers: String,
    /// `plaintext`, `ssl` (TLS), or `sasl_ssl` (TLS and SASL: Amazon MSK with IAM).
    #[arg(long, env = "KAFKA_SECURITY_PROTOCOL", default_value = "plaintext")]
    pub security_protocol: String,
    /// With `sasl_ssl`: `AWS_MSK_IAM` (tokens signed with the AWS SDK's default credentials).
    #[arg(long, env = "KAFKA_SASL_MECHANISM")]
    pub sasl_mechanism: Option<String>,
    /// Replicas of the topics this process creates (3 on MSK, whose brokers refuse writes to
    /// a topic with fewer replicas than `min.insync.replicas`).
    #[arg(long, env = "KAFKA_REPLICATION_FACTOR", default_value_t = 1,
          value_parser = clap::value_parser!(i32).range(1..))]
    pub replication_factor: i32,
}

impl Brokers {
    /// The cluster every Kafka client of the process uses; a bad security setting is refused
    /// here, at start.
    pub fn cluster(&self) -> anyhow::Result<event_log::kafka::Cluster> {
        let security = event_log::kafka::Security::parse(
            &self.security_protocol,
            self.sasl_mechanism.as_deref(),
        )
        .map_err(|e| anyhow::anyhow!("KAFKA_SECURITY_PROTOCOL/KAFKA_SASL_MECHANISM: {e}"))?;
        Ok(event_log::kafka::Cluster {
            bootstrap_servers: self.bootstrap_servers.clone(),
            security,
            replication_factor: self.replication_factor,
        })
    }
}

/// The DynamoDB tables of the results and checkpoints (`ecom stream-engine`, `ecom analytics`).
#[derive(clap::Args, Debug, Clone)]
pub struct DynamoTables {
    /// DynamoDB table of the window results.
    #[arg(long, env = "DYNAMODB_TABLE", default_value = "ecom-analytics")]
    pub table: String,
    /// DynamoDB table of the checkpoints (default: the results table's name + `-checkpoints`).
    #[arg(long, env = "DYNAMODB_CHECKPOINT_TABLE")]
    pub checkpoint_table: Option<String>,
}

impl DynamoTables {
    /// (results table, checkpoint table).
    pub fn names(self) -> (String, String) {
        let checkpoints = self
            .checkpoint_table
            .unwrap_or_else(|| format!("{}-checkpoints", self.table));
        (self.table, checkpoints)
    }
}

/// The name of the engine's checkpoint stream: its consumer group and input topic.
pub fn stream_id(group_id: &str, input_topic: &str) -> String {
    format!("{group_id}/{input_topic}")
}

/// A duration flag such as `10s`, `1m30s` or `250ms`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 10s, 1m, 500ms)"))
}

/// `-` is standard output, anything else a file created (or truncated).
pub fn create_output(path: &Path) -> anyhow::Result<Box<dyn Write>> {
    Ok(if path == Path::new("-") {
        Box::new(BufWriter::with_capacity(1 << 16, io::stdout().lock()))
    } else {
        let file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        Box::new(BufWriter::with_capacity(1 << 16, file))
    })
}

/// The database of a CRUD service: `DATABASE_URL`, or the seed's `DB_HOST`/`DB_PORT`/
/// `DB_NAME`/`DB_USER`/`DB_PASSWORD`.
#[derive(clap::Args, Debug, Clone)]
pub struct Database {
    /// `postgres://user:password@host:port/database` (or `sqlite://FILE`).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// When DATABASE_URL is not set: the PostgreSQL host...
    #[arg(long, env = "DB_HOST")]
    db_host: Option<String>,
    #[arg(long, env = "DB_PORT", default_value_t = 5432)]
    db_port: u16,
    #[arg(long, env = "DB_NAME", default_value = "ecom")]
    db_name: String,
    #[arg(long, env = "DB_USER", default_value = "ecom")]
    db_user: String,
    #[arg(long, env = "DB_PASSWORD", hide_env_values = true, default_value = "")]
    db_password: String,
    /// Connections in the service's pool.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 16)]
    db_max_connections: u32,
}

impl Database {
    fn url(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.database_url {
            return Ok(url.clone());
        }
        let host = self.db_host.as_deref().context(
            "no database: set DATABASE_URL (postgres://user:password@host:port/database) or DB_HOST",
        )?;
        let credentials = if self.db_password.is_empty() {
            encode(&self.db_user)
        } else {
            format!("{}:{}", encode(&self.db_user), encode(&self.db_password))
        };
        Ok(format!(
            "postgres://{credentials}@{host}:{}/{}",
            self.db_port,
            encode(&self.db_name)
        ))
    }

    /// Connects to the service's schema and applies its migrations.
    pub async fn open(&self, schema: &'static str, migrations: &Migrations) -> anyhow::Result<Db> {
        let config = DbConfig {
            max_connections: self.db_max_connections.max(1),
            ..DbConfig::new(self.url()?, schema)
        };
        let db = Db::connect(&config)
            .await
            .with_context(|| format!("cannot connect to the database for {schema}"))?;
        db.migrate(migrations)
            .await
            .with_context(|| format!("cannot migrate the {schema} schema"))?;
        Ok(db)
    }
}

/// How tokens are checked (`ecom gateway`, and the ownership rules of `ecom customers` and
/// `ecom orders`).
#[derive(clap::Args, Debug, Clone)]
pub struct TokenCheck {
    /// The auth service (the gateway routes to it; its JWKS is the default key set).
    #[arg(long, env = "AUTH_URL", default_value = "http://127.0.0.1:8081")]
    pub auth_url: String,
    /// The token keys (default: the auth service's `/.well-known/jwks.json` at `AUTH_URL`; an
    /// external provider's, such as a Cognito user pool's, works the same).
    #[arg(long, env = "JWKS_URL")]
    jwks_url: Option<String>,
    /// The tokens' issuer (`iss`).
    #[arg(
        long,
        env = "ECOM_TOKEN_ISSUER",
        default_value = "http://127.0.0.1:8080"
    )]
    issuer: String,
    /// The tokens' audience (`aud`).
    #[arg(long, env = "ECOM_TOKEN_AUDIENCE", default_value = "ecom")]
    audience: String,
}

impl TokenCheck {
    pub fn config(&self) -> service_common::auth::VerifierConfig {
        service_common::auth::VerifierConfig {
            jwks_url: self.jwks_url.clone().unwrap_or_else(|| {
                format!(
                    "{}/.well-known/jwks.json",
                    self.auth_url.trim_end_matches('/')
                )
            }),
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
        }
    }
}

/// How much of a request body a CRUD service reads, and for how long.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct Body {
    /// Bodies over this many bytes get 413.
    #[arg(long, env = "ECOM_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    max_body_bytes: usize,
    /// A body not received whole within this gets 408.
    #[arg(long, env = "ECOM_BODY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    body_timeout: Duration,
}

impl Body {
    pub fn limits(self) -> service_common::rest::BodyLimits {
        service_common::rest::BodyLimits {
            max_bytes: self.max_body_bytes,
            read_timeout: self.body_timeout,
        }
    }
}

/// Percent-encodes a URL component (user, password, database name).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Waits for a service's `build` to bind, then serves until its shutdown.
pub async fn serve<S>(
    name: &str,
    addr: SocketAddr,
    built: impl Future<Output = std::io::Result<(SocketAddr, S)>>,
) -> anyhow::Result<()>
where
    S: Future<Output = std::io::Result<()>>,
{
    let (bound, server) = built
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(addr = %bound, "{name} listening");
    server.await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_variables_make_an_encoded_url() {
        let db = Database {
            database_url: None,
            db_host: Some("db.internal".into()),
            db_port: 5433,
            db_name: "ecom".into(),
            db_user: "app".into(),
            db_password: "p@ss:w/rd".into(),
            db_max_connections: 4,
        };
        assert_eq!(
            db.url().unwrap(),
            "postgres://app:p%40ss%3Aw%2Frd@db.internal:5433/ecom"
        );
        let none = Database {
            db_host: None,
            ..db
        };
        assert!(none.url().is_err());
    }
}
