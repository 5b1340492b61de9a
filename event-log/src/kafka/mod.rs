//! Kafka (feature `kafka`): the [`EventLog`](crate::EventLog) as an idempotent producer
//! ([`KafkaLog`]), the [`PartitionReader`](crate::PartitionReader) as a consumer group
//! ([`KafkaReader`]), and what every Kafka client of the platform shares: client settings,
//! topic creation, the replaceable producer and the one delivery loop ([`deliver`]). Every
//! client reaches the brokers as its [`Cluster`] says: plaintext (tests, compose.yaml), TLS, or
//! TLS with AWS IAM authentication (Amazon MSK, [`msk_iam`]).

mod append;
pub mod msk_iam;
mod reader;

pub use append::{KafkaLog, KafkaSettings};
pub use reader::{KafkaReader, KafkaReaderSettings};

use std::error::Error;
use std::ffi::{CStr, CString, c_char};
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use primitives::retry::Backoff;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, OAuthToken};
use rdkafka::error::KafkaError;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

/// How the brokers are reached (`KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_MECHANISM`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Security {
    /// No encryption, no authentication: loopback, compose.yaml's network.
    #[default]
    Plaintext,
    /// TLS, the brokers' certificates checked against the system's CAs.
    Tls,
    /// TLS, and SASL OAUTHBEARER with an AWS IAM token: Amazon MSK's IAM access control.
    MskIam,
}

impl Security {
    /// From Kafka's `security.protocol` (`plaintext`, `ssl`, `sasl_ssl`) and SASL mechanism
    /// (`AWS_MSK_IAM`, the only one supported), case-insensitive.
    pub fn parse(protocol: &str, mechanism: Option<&str>) -> Result<Security, SecurityError> {
        let mechanism = mechanism.map(str::trim).filter(|m| !m.is_empty());
        match (protocol.trim().to_ascii_lowercase().as_str(), mechanism) {
            ("plaintext", None) => Ok(Security::Plaintext),
            ("ssl", None) => Ok(Security::Tls),
            ("sasl_ssl", Some(m)) if m.eq_ignore_ascii_case("AWS_MSK_IAM") => Ok(Security::MskIam),
            ("sasl_ssl", Some(m)) => Err(SecurityError::UnsupportedMechanism(m.to_owned())),
            ("sasl_ssl", None) => Err(SecurityError::MissingMechanism),
            ("plaintext" | "ssl", Some(m)) => {
                Err(SecurityError::MechanismWithoutSasl(m.to_owned()))
            }
            (other, _) => Err(SecurityError::UnknownProtocol(other.to_owned())),
        }
    }
}

/// A security setting [`Security::parse`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecurityError {
    #[error("the SASL mechanism {0:?} is not supported (AWS_MSK_IAM is)")]
    UnsupportedMechanism(String),
    #[error("sasl_ssl needs a SASL mechanism (AWS_MSK_IAM)")]
    MissingMechanism,
    #[error("the SASL mechanism {0:?} needs the security protocol sasl_ssl")]
    MechanismWithoutSasl(String),
    #[error("the security protocol {0:?} is not one of plaintext, ssl, sasl_ssl")]
    UnknownProtocol(String),
}

/// The Kafka cluster every client of a process talks to: where, how, and the replication
/// factor of the topics it creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// `host:port,...`
    pub bootstrap_servers: String,
    pub security: Security,
    /// Replicas of each topic the platform creates: 1 on a one-broker development cluster,
    /// 3 on MSK (whose `min.insync.replicas` of 2 refuses writes to a topic with fewer).
    pub replication_factor: i32,
}

impl Cluster {
    /// A plaintext cluster whose topics have one replica (tests, `ecom up`'s own broker).
    pub fn plaintext(bootstrap_servers: impl Into<String>) -> Cluster {
        Cluster {
            bootstrap_servers: bootstrap_servers.into(),
            security: Security::Plaintext,
            replication_factor: 1,
        }
    }

    /// The settings every client of the platform starts from.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            // Fail fast on a dead address, and come back quickly once the broker is back.
            .set("socket.connection.setup.timeout.ms", "5000")
            .set("reconnect.backoff.max.ms", "1000");
        match self.security {
            Security::Plaintext => {}
            Security::Tls => {
                config.set("security.protocol", "ssl");
            }
            Security::MskIam => {
                config
                    .set("security.protocol", "sasl_ssl")
                    .set("sasl.mechanisms", "OAUTHBEARER");
            }
        }
        config
    }

    /// The client context that answers librdkafka's token refreshes.
    pub fn context(&self) -> KafkaContext {
        KafkaContext {
            security: self.security,
        }
    }
}

impl fmt::Display for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.bootstrap_servers)
    }
}

/// The settings every client of the platform starts from (a plaintext cluster).
pub fn client_config(bootstrap_servers: &str) -> ClientConfig {
    Cluster::plaintext(bootstrap_servers).client_config()
}

/// The context of the platform's producers and admin clients (the consumer's own context
/// delegates to [`KafkaContext::token`]): with MSK IAM, it signs a new token whenever
/// librdkafka asks, at 80 % of the last one's lifetime.
#[derive(Debug, Clone, Copy, Default)]
pub struct KafkaContext {
    security: Security,
}

impl KafkaContext {
    /// A token for SASL OAUTHBEARER.
    pub fn token(&self) -> Result<OAuthToken, Box<dyn Error>> {
        match self.security {
            Security::MskIam => {
                let token = msk_iam::token_from_environment()?;
                Ok(OAuthToken {
                    token: token.token,
                    // MSK takes the principal from the signature; the name is informative.
                    principal_name: String::new(),
                    lifetime_ms: token.expires_at_ms,
                })
            }
            Security::Plaintext | Security::Tls => {
                Err("an OAUTHBEARER token was asked for without MSK IAM authentication".into())
            }
        }
    }
}

impl ClientContext for KafkaContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(&self, _: Option<&str>) -> Result<OAuthToken, Box<dyn Error>> {
        self.token()
    }
}

/// The producers of the platform.
pub type KafkaProducer = FutureProducer<KafkaContext>;

/// A topic the platform needs.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
}

/// A topic could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TopicError(String);

/// Creates the topics that do not exist yet (with the cluster's replication factor); existing
/// ones are left as they are.
pub async fn ensure_topics(
    cluster: &Cluster,
    topics: &[TopicSpec],
    timeout: Duration,
) -> Result<(), TopicError> {
    let admin: AdminClient<KafkaContext> = cluster
        .client_config()
        .create_with_context(cluster.context())
        .map_err(|e| TopicError(format!("cannot create a Kafka admin client: {e}")))?;
    first_token(admin.inner(), cluster).map_err(TopicError)?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            NewTopic::new(
                &t.name,
                t.partitions,
                TopicReplication::Fixed(cluster.replication_factor),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(timeout));
    let results = admin
        .create_topics(new.iter(), &options)
        .await
        .map_err(|e| TopicError(format!("cannot create topics on {cluster}: {e}")))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(TopicError(format!("cannot create topic {topic}: {code}")));
            }
        }
    }
    Ok(())
}

/// With MSK IAM, gives a client its first token at once (without, does nothing). rdkafka's
/// admin client polls only its own result queue, never the main queue where librdkafka asks
/// for token refreshes, so it would wait for a token forever (it lives for one call, far
/// shorter than a token); a consumer that asks for metadata before its first poll would wait
/// too (later polls refresh its token).
fn first_token<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    cluster: &Cluster,
) -> Result<(), String> {
    if cluster.security != Security::MskIam {
        return Ok(());
    }
    let no_token = |e: &dyn fmt::Display| format!("no MSK IAM token: {e}");
    let token = cluster.context().token().map_err(|e| no_token(&e))?;
    let value = CString::new(token.token).map_err(|e| no_token(&e))?;
    let principal = CString::new(token.principal_name).map_err(|e| no_token(&e))?;
    let mut error = [0 as c_char; 512];
    // SAFETY: the client pointer is live for `client`'s lifetime; the strings and the error
    // buffer outlive the call, which copies what it keeps; no extensions are passed.
    let code = unsafe {
        rdkafka::bindings::rd_kafka_oauthbearer_set_token(
            client.native_ptr(),
            value.as_ptr(),
            token.lifetime_ms,
            principal.as_ptr(),
            std::ptr::null_mut(),
            0,
            error.as_mut_ptr(),
            error.len(),
        )
    };
    if code != rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        // SAFETY: librdkafka writes a NUL-terminated message into the buffer on failure.
        let message = unsafe { CStr::from_ptr(error.as_ptr()) };
        return Err(no_token(&message.to_string_lossy()));
    }
    Ok(())
}

/// An idempotent producer that is replaced by a new one (a new producer id) when it can no
/// longer deliver: after a fatal error, or when the broker fenced or forgot its id.
pub struct ReplaceableProducer {
    config: ClientConfig,
    context: KafkaContext,
    slot: RwLock<Arc<KafkaProducer>>,
}

impl ReplaceableProducer {
    /// A producer of `config` (from [`Cluster::client_config`]) with the cluster's context.
    pub fn new(config: ClientConfig, context: KafkaContext) -> Result<Self, KafkaError> {
        let slot = RwLock::new(Arc::new(config.create_with_context(context)?));
        Ok(ReplaceableProducer {
            config,
            context,
            slot,
        })
    }

    /// The current producer, replaced first if it failed fatally.
    pub fn get(&self) -> Arc<KafkaProducer> {
        let current = self.slot.read().unwrap_or_else(|e| e.into_inner()).clone();
        match current.client().fatal_error() {
            Some((code, reason)) => {
                tracing::error!(%code, %reason, "Kafka producer failed fatally");
                self.replace(&current)
            }
            None => current,
        }
    }

    /// Puts a new producer in place of `broken`, unless another caller already did.
    pub fn replace(&self, broken: &Arc<KafkaProducer>) -> Arc<KafkaProducer> {
        let mut slot = self.slot.write().unwrap_or_else(|e| e.into_inner());
        if !Arc::ptr_eq(&slot, broken) {
            return slot.clone();
        }
        match self.config.create_with_context(self.context) {
            Ok(fresh) => {
                tracing::warn!("replaced the Kafka producer");
                *slot = Arc::new(fresh);
            }
            Err(e) => tracing::error!(error = %e, "cannot create a Kafka producer"),
        }
        slot.clone()
    }
}

/// Errors after which an idempotent producer's id is no good: the broker lost or fenced its
/// sequence state (tansu fences a producer whose epoch was bumped after a timeout). Only a
/// new producer (a new id) gets through.
pub fn needs_new_producer(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
                | RDKafkaErrorCode::UnknownProducerId
                | RDKafkaErrorCode::OutOfOrderSequenceNumber
                | RDKafkaErrorCode::InvalidProducerIdMapping
        )
    )
}

/// A message to deliver.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    pub topic: &'a str,
    pub key: &'a [u8],
    pub payload: &'a [u8],
    pub headers: Vec<(&'static str, String)>,
}

/// Why messages were not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{failed} messages not delivered: {reason}")]
pub struct DeliveryError {
    pub failed: usize,
    pub kind: DeliveryErrorKind,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryErrorKind {
    /// The producer's local queue is full.
    QueueFull,
    /// The broker did not acknowledge (timeout, unreachable, refused).
    Unavailable,
}

impl DeliveryErrorKind {
    pub fn code(self) -> &'static str {
        match self {
            DeliveryErrorKind::QueueFull => "queue_full",
            DeliveryErrorKind::Unavailable => "unavailable",
        }
    }
}

/// How long [`deliver`] goes on after failures.
#[derive(Debug, Clone, Copy)]
pub enum Retries {
    /// One attempt per message: the caller answers its own client (ingest's 503).
    None,
    /// Failed messages are sent again with [`Backoff`] until this budget passes without any
    /// delivery succeeding.
    For(Duration),
}

/// The delivery loop of every Kafka producer of the platform: hands every message to the
/// producer, waits for each acknowledgement (even after one was refused, so that none is left
/// unaccounted for), replaces a fenced producer, and retries the failures as `retries` says.
/// `on_failure` is told the kind of every failed attempt (for metrics).
pub async fn deliver(
    producer: &ReplaceableProducer,
    messages: &[Outgoing<'_>],
    retries: Retries,
    mut on_failure: impl FnMut(DeliveryErrorKind),
) -> Result<(), DeliveryError> {
    let mut todo: Vec<&Outgoing<'_>> = messages.iter().collect();
    let mut backoff = match retries {
        Retries::None => None,
        Retries::For(budget) => Some(Backoff::new(budget)),
    };
    loop {
        let attempted = todo.len();
        let current = producer.get();
        let mut deliveries = Vec::with_capacity(todo.len());
        let mut failed = Vec::new();
        let mut last_error = None;
        for message in todo {
            let mut headers = OwnedHeaders::new_with_capacity(message.headers.len());
            for (name, value) in &message.headers {
                headers = headers.insert(Header {
                    key: name,
                    value: Some(value.as_bytes()),
                });
            }
            let record = FutureRecord::to(message.topic)
                .key(message.key)
                .payload(message.payload)
                .headers(headers);
            match current.send_result(record) {
                Ok(delivery) => deliveries.push((message, delivery)),
                Err((e, _)) => {
                    failed.push(message);
                    last_error = Some(e);
                }
            }
        }
        let mut fenced = false;
        for (message, delivery) in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    fenced |= needs_new_producer(&e);
                    failed.push(message);
                    last_error = Some(e);
                }
                Err(_) => failed.push(message),
            }
        }
        if fenced {
            producer.replace(&current);
        }
        if failed.is_empty() {
            return Ok(());
        }
        let kind = match &last_error {
            Some(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) => {
                DeliveryErrorKind::QueueFull
            }
            _ => DeliveryErrorKind::Unavailable,
        };
        on_failure(kind);
        let error = || DeliveryError {
            failed: failed.len(),
            kind,
            reason: last_error
                .as_ref()
                .map_or_else(|| "the producer was dropped".to_owned(), |e| e.to_string()),
        };
        let Some(backoff) = backoff.as_mut() else {
            return Err(error());
        };
        if failed.len() < attempted {
            backoff.progressed();
        }
        tracing::warn!(
            messages = failed.len(),
            kind = kind.code(),
            "retrying deliveries"
        );
        if !backoff.wait().await {
            return Err(error());
        }
        todo = failed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_is_read_from_kafka_s_own_names() {
        assert_eq!(Security::parse("plaintext", None), Ok(Security::Plaintext));
        assert_eq!(Security::parse("SSL", Some("")), Ok(Security::Tls));
        assert_eq!(
            Security::parse("sasl_ssl", Some("aws_msk_iam")),
            Ok(Security::MskIam)
        );
        for (protocol, mechanism, refusal) in [
            ("sasl_ssl", None, "needs a SASL mechanism"),
            ("sasl_ssl", Some("SCRAM-SHA-512"), "is not supported"),
            (
                "plaintext",
                Some("AWS_MSK_IAM"),
                "needs the security protocol sasl_ssl",
            ),
            ("sasl_plaintext", Some("AWS_MSK_IAM"), "is not one of"),
        ] {
            let error = Security::parse(protocol, mechanism)
                .unwrap_err()
                .to_string();
            assert!(error.contains(refusal), "{protocol} {mechanism:?}: {error}");
        }
    }

    #[test]
    fn each_security_sets_librdkafka_s_protocol_and_mechanism() {
        let mut cluster = Cluster::plaintext("b-1:9098,b-2:9098");
        let config = cluster.client_config();
        assert_eq!(config.get("bootstrap.servers"), Some("b-1:9098,b-2:9098"));
        assert_eq!(config.get("security.protocol"), None);
        cluster.security = Security::Tls;
        assert_eq!(
            cluster.client_config().get("security.protocol"),
            Some("ssl")
        );
        assert_eq!(cluster.client_config().get("sasl.mechanisms"), None);
        cluster.security = Security::MskIam;
        let config = cluster.client_config();
        assert_eq!(config.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(config.get("sasl.mechanisms"), Some("OAUTHBEARER"));
        // Without MSK IAM no token is ever made up.
        assert!(Cluster::plaintext("x:1").context().token().is_err());
    }

    /// librdkafka is built with TLS and SASL OAUTHBEARER (the `ssl` feature): a client of each
    /// kind is created (creation checks the settings against what the build supports; no
    /// broker is contacted).
    #[test]
    fn the_build_supports_tls_and_oauthbearer() {
        for security in [Security::Tls, Security::MskIam] {
            let cluster = Cluster {
                security,
                ..Cluster::plaintext("127.0.0.1:1")
            };
            let producer: Result<KafkaProducer, _> = cluster
                .client_config()
                .create_with_context(cluster.context());
            assert!(producer.is_ok(), "{security:?}: {:?}", producer.err());
        }
    }
}
