//! The stores on DynamoDB.
//!
//! - Results: table `DYNAMODB_TABLE`, partition key `product_id` (S), sort key `window_start`
//!   (S, RFC 3339), and `window_end`, `unique_user_count`, `event_count`, `approximate`, and
//!   `rank` ([`crate::rank`]), `day` and `window_product`. Two global secondary indexes (all
//!   attributes projected): `by_window` (partition key `window_start`, sort key `rank`) answers
//!   "the top K of a window" with one Query; `by_day` (partition key `day`, sort key
//!   `window_product`) answers a time range with one Query per day. Never a Scan.
//! - Checkpoints: table `DYNAMODB_CHECKPOINT_TABLE`, key `stream_partition` (S) =
//!   `group/topic/partition`, holding the checkpoint as JSON and its `next_offset` (N).
//!
//! A slower or zombie instance must never replace newer data. How results are written depends
//! on whether a window can have more than one result ([`Writes::for_engine`]):
//! - [`Writes::Unconditional`]: every result is final and a function of the partition's log
//!   alone (no allowed lateness, no idle timeout), so every instance that writes a key writes
//!   the same value, and overwriting is harmless. BatchWriteItem, 25 items a request, several
//!   requests in flight; unprocessed items are retried with backoff.
//! - [`Writes::Conditional`]: re-fires (allowed lateness) or processing-time watermarks
//!   (idle timeout) can give a key several values. A result only replaces one with at most as
//!   many events (`event_count` only grows over the re-fires of a window, and is equal for a
//!   replayed emission). BatchWriteItem cannot carry conditions, so these are conditional
//!   PutItems, many in flight.
//!
//! A checkpoint only replaces one with at most the same next offset, always (conditional
//! PutItem). Throttling and transient errors are retried with backoff.
//!
//! The store, its settings, and how a failed request is classified (retried or not, counted)
//! are here; the rest, one file per role:
//! - `tables`: the tables and their indexes, created or checked;
//! - `codec`: window results and checkpoints to and from DynamoDB items;
//! - `writes`: the result writes (batched or conditional) and the checkpoints;
//! - `queries`: the reads of the analytics API (a product's windows, the top of a window,
//!   time ranges, the latest fired window).

mod codec;
mod queries;
mod tables;
mod writes;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use primitives::retry::Retry;

use crate::{StoreError, Writes};

pub use queries::MAX_DAYS_PER_PAGE;
pub use tables::{BY_DAY, BY_WINDOW};

/// Told the kind of every failed request (`timeout`, `unavailable`, `throttled`,
/// `unprocessed`, `permanent`), for metrics.
pub type ErrorCounter = Arc<dyn Fn(&'static str) + Send + Sync>;

/// Where the store writes.
#[derive(Debug, Clone)]
pub struct DynamoSettings {
    pub table: String,
    pub checkpoint_table: String,
    /// Identifies the stream whose checkpoints these are: `group/topic`.
    pub stream: String,
    /// How long a failing write is retried before the engine gives up (and restarts).
    pub retry_for: Duration,
    /// Result writes in flight at once.
    pub concurrency: usize,
    /// Partitions of the input topic: whose checkpoints say which window fired last.
    pub partitions: u32,
}

pub struct DynamoStore {
    client: Client,
    settings: DynamoSettings,
    writes: Writes,
    errors: ErrorCounter,
}

const STORE: &str = "dynamodb";

fn store_error(message: String) -> StoreError {
    StoreError {
        store: STORE,
        message,
    }
}

impl DynamoStore {
    pub fn new(client: Client, settings: DynamoSettings, writes: Writes) -> Self {
        DynamoStore {
            client,
            settings,
            writes,
            errors: Arc::new(|_| {}),
        }
    }

    /// Counts failed requests by kind.
    pub fn with_error_counter(mut self, errors: ErrorCounter) -> Self {
        self.errors = errors;
        self
    }

    /// A client configured the AWS SDK's way: `AWS_REGION`, credentials from the default
    /// chain, and `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_DYNAMODB` for a local endpoint.
    /// Each attempt gets 10 s and each call (its retries included) 30 s, so that a stalled
    /// endpoint surfaces as an error to retry instead of hanging the pipeline.
    pub async fn client_from_env() -> Client {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .operation_attempt_timeout(Duration::from_secs(10))
            .operation_timeout(Duration::from_secs(30))
            .build();
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .timeout_config(timeouts)
            .load()
            .await;
        Client::new(&config)
    }

    /// Counts the error and says whether to retry it.
    fn classify<E, R>(&self, e: &SdkError<E, R>) -> Retry
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let (kind, retry) = match e {
            SdkError::TimeoutError(_) => ("timeout", Retry::Yes),
            SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
                ("unavailable", Retry::Yes)
            }
            _ => match e.code() {
                Some(
                    "ProvisionedThroughputExceededException"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "LimitExceededException",
                ) => ("throttled", Retry::Yes),
                Some("InternalServerError" | "ServiceUnavailable" | "InternalFailure") => {
                    ("unavailable", Retry::Yes)
                }
                _ => ("permanent", Retry::No),
            },
        };
        (self.errors)(kind);
        tracing::warn!(kind, error = %DisplayErr(e), "DynamoDB request failed");
        retry
    }

    fn checkpoint_key(&self, partition: u32) -> AttributeValue {
        AttributeValue::S(format!("{}/{partition}", self.settings.stream))
    }
}

/// An SDK error with its causes: the SDK's own `Display` says only "service error".
struct DisplayErr<'a, E>(&'a E);

impl<E: std::error::Error> std::fmt::Display for DisplayErr<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}
