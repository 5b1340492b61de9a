//! The [`ResultStore`] on DynamoDB.
//!
//! - Results: table `DYNAMODB_TABLE`, partition key `product_id` (S), sort key `window_start`
//!   (S, RFC 3339), and `window_end`, `unique_user_count`, `event_count`, `approximate`.
//! - Checkpoints: table `DYNAMODB_CHECKPOINT_TABLE`, key `stream_partition` (S) =
//!   `group/topic/partition`, holding the checkpoint as JSON and its `next_offset` (N).
//!
//! A slower or zombie instance must never replace newer data. How results are written depends
//! on whether a window can have more than one result ([`ResultWrites::for_engine`]):
//! - [`ResultWrites::Batched`]: every result is final and a function of the partition's log
//!   alone (no allowed lateness, no idle timeout), so every instance that writes a key writes
//!   the same value, and overwriting is harmless. BatchWriteItem, 25 items a request, several
//!   requests in flight; unprocessed items are retried with backoff.
//! - [`ResultWrites::Conditional`]: re-fires (allowed lateness) or processing-time watermarks
//!   (idle timeout) can give a key several values. A result only replaces one with at most as
//!   many events (`event_count` only grows over the re-fires of a window, and is equal for a
//!   replayed emission). BatchWriteItem cannot carry conditions, so these are conditional
//!   PutItems, many in flight.
//!
//! A checkpoint only replaces one with at most the same next offset, always (conditional
//! PutItem). Throttling and transient errors are retried with backoff.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, PutRequest,
    ScalarAttributeType, TableStatus, WriteRequest,
};
use futures_util::StreamExt;

use super::metrics::Metrics;
use super::sink::{ResultStore, Retry, SinkError, Written, with_retries};
use crate::core::time::format_rfc3339_ms;
use crate::core::{Checkpoint, EngineConfig, WindowResult};

/// How results are written; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultWrites {
    Batched,
    Conditional,
}

impl ResultWrites {
    /// Batched exactly when the engine emits each window once, with a value that depends only
    /// on the input log.
    pub fn for_engine(config: &EngineConfig) -> Self {
        if config.allowed_lateness.is_zero() && config.idle_timeout.is_none() {
            ResultWrites::Batched
        } else {
            ResultWrites::Conditional
        }
    }
}

/// BatchWriteItem's limit.
const BATCH_ITEMS: usize = 25;

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
}

pub struct DynamoStore {
    client: Client,
    settings: DynamoSettings,
    writes: ResultWrites,
    metrics: Metrics,
}

const SINK: &str = "dynamodb";

impl DynamoStore {
    pub fn new(
        client: Client,
        settings: DynamoSettings,
        writes: ResultWrites,
        metrics: Metrics,
    ) -> Self {
        DynamoStore {
            client,
            settings,
            writes,
            metrics,
        }
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

    /// Creates the results and checkpoint tables when missing (on demand capacity) and waits
    /// until they are active.
    pub async fn ensure_tables(&self) -> Result<(), SinkError> {
        let s = &self.settings;
        self.ensure_table(
            &s.table,
            &[
                ("product_id", KeyType::Hash),
                ("window_start", KeyType::Range),
            ],
        )
        .await?;
        self.ensure_table(&s.checkpoint_table, &[("stream_partition", KeyType::Hash)])
            .await
    }

    /// Checks that both tables exist (when the engine is not to create them).
    pub async fn check_tables(&self) -> Result<(), SinkError> {
        for table in [&self.settings.table, &self.settings.checkpoint_table] {
            match self.client.describe_table().table_name(table).send().await {
                Ok(_) => {}
                Err(e) if e.code() == Some("ResourceNotFoundException") => {
                    return Err(SinkError {
                        sink: SINK,
                        message: format!(
                            "table {table} does not exist (create it, or let the engine create it by unsetting ECOM_NO_CREATE)"
                        ),
                    });
                }
                Err(e) => {
                    return Err(SinkError {
                        sink: SINK,
                        message: format!("cannot describe table {table}: {}", DisplayErr(&e)),
                    });
                }
            }
        }
        Ok(())
    }

    async fn ensure_table(&self, table: &str, keys: &[(&str, KeyType)]) -> Result<(), SinkError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| SinkError {
            sink: SINK,
            message: format!("{what} table {table}: {e}"),
        };
        let exists = match self.client.describe_table().table_name(table).send().await {
            Ok(_) => true,
            Err(e) if e.code() == Some("ResourceNotFoundException") => false,
            Err(e) => return Err(fail("cannot describe", &DisplayErr(&e))),
        };
        if !exists {
            let mut create = self
                .client
                .create_table()
                .table_name(table)
                .billing_mode(BillingMode::PayPerRequest);
            for (name, key_type) in keys {
                create = create
                    .attribute_definitions(
                        AttributeDefinition::builder()
                            .attribute_name(*name)
                            .attribute_type(ScalarAttributeType::S)
                            .build()
                            .map_err(|e| fail("cannot define", &e))?,
                    )
                    .key_schema(
                        KeySchemaElement::builder()
                            .attribute_name(*name)
                            .key_type(key_type.clone())
                            .build()
                            .map_err(|e| fail("cannot define", &e))?,
                    );
            }
            match create.send().await {
                Ok(_) => tracing::info!(table, "created DynamoDB table"),
                // Another instance created it first.
                Err(e) if e.code() == Some("ResourceInUseException") => {}
                Err(e) => return Err(fail("cannot create", &DisplayErr(&e))),
            }
        }
        for _ in 0..120 {
            let described = self
                .client
                .describe_table()
                .table_name(table)
                .send()
                .await
                .map_err(|e| fail("cannot describe", &DisplayErr(&e)))?;
            let status = described.table().and_then(|t| t.table_status());
            if status == Some(&TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(fail("timed out waiting for", &"ACTIVE status"))
    }

    async fn put_result(&self, result: &WindowResult) -> Result<Written, SinkError> {
        let events = AttributeValue::N(result.events.to_string());
        self.conditional_put(
            &self.settings.table,
            &result_item(result),
            "product_id",
            "event_count",
            events,
        )
        .await
    }

    /// BatchWriteItem of up to 25 results, retrying unprocessed items and transient errors.
    async fn write_batch(&self, results: &[&WindowResult]) -> Result<(), SinkError> {
        let table = &self.settings.table;
        let mut pending = results
            .iter()
            .map(|r| {
                let item: HashMap<String, AttributeValue> = result_item(r)
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect();
                PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map(|put| WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SinkError {
                sink: SINK,
                message: format!("cannot build a write request: {e}"),
            })?;
        let started = std::time::Instant::now();
        let mut backoff = Duration::from_millis(20);
        loop {
            let sent = with_retries(
                self.settings.retry_for,
                |e| self.classify(e),
                || {
                    self.client
                        .batch_write_item()
                        .request_items(table, pending.clone())
                        .send()
                },
            )
            .await
            .map_err(|e| SinkError {
                sink: SINK,
                message: format!("BatchWriteItem on {table}: {}", DisplayErr(&e)),
            })?;
            pending = sent
                .unprocessed_items()
                .and_then(|u| u.get(table.as_str()))
                .cloned()
                .unwrap_or_default();
            if pending.is_empty() {
                return Ok(());
            }
            // Unprocessed items are how DynamoDB throttles part of a batch.
            self.metrics.sink_error(SINK, "unprocessed");
            if started.elapsed() + backoff > self.settings.retry_for {
                return Err(SinkError {
                    sink: SINK,
                    message: format!(
                        "{} items still unprocessed after {:?}",
                        pending.len(),
                        self.settings.retry_for
                    ),
                });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// PutItem unless the stored item's `field` is greater than `value`; retried while the
    /// failure is transient.
    async fn conditional_put(
        &self,
        table: &str,
        item: &[(&str, AttributeValue)],
        key: &str,
        field: &str,
        value: AttributeValue,
    ) -> Result<Written, SinkError> {
        let attempt = || {
            let mut put = self
                .client
                .put_item()
                .table_name(table)
                .condition_expression("attribute_not_exists(#k) OR #f <= :v")
                .expression_attribute_names("#k", key)
                .expression_attribute_names("#f", field)
                .expression_attribute_values(":v", value.clone());
            for (name, v) in item {
                put = put.item(*name, v.clone());
            }
            put.send()
        };
        let outcome = with_retries(
            self.settings.retry_for,
            |e| self.classify(e),
            || async {
                match attempt().await {
                    Ok(_) => Ok(Written::Stored),
                    Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                        Ok(Written::Superseded)
                    }
                    Err(e) => Err(e),
                }
            },
        )
        .await;
        outcome.map_err(|e| SinkError {
            sink: SINK,
            message: format!("PutItem on {table}: {}", DisplayErr(&e)),
        })
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
        self.metrics.sink_error(SINK, kind);
        tracing::warn!(kind, error = %DisplayErr(e), "DynamoDB request failed");
        retry
    }

    fn checkpoint_key(&self, partition: u32) -> AttributeValue {
        AttributeValue::S(format!("{}/{partition}", self.settings.stream))
    }
}

impl ResultStore for DynamoStore {
    async fn put_results(&self, results: &[WindowResult]) -> Result<usize, SinkError> {
        // One write per key: a re-fire in the same commit supersedes the first emission.
        let mut latest: Vec<&WindowResult> = results.iter().collect();
        latest.sort_by(|a, b| {
            (&a.product_id, a.window_start_ms, a.events).cmp(&(
                &b.product_id,
                b.window_start_ms,
                b.events,
            ))
        });
        latest.dedup_by(|later, earlier| {
            // `dedup_by` keeps the first of a run; make it the one with the most events.
            let same = later.product_id == earlier.product_id
                && later.window_start_ms == earlier.window_start_ms;
            if same {
                std::mem::swap(later, earlier);
            }
            same
        });
        let concurrency = self.settings.concurrency.max(1);
        if self.writes == ResultWrites::Batched {
            let batches: Vec<_> = latest
                .chunks(BATCH_ITEMS)
                .map(|batch| self.write_batch(batch))
                .collect();
            let mut batches = futures_util::stream::iter(batches).buffer_unordered(concurrency);
            while let Some(written) = batches.next().await {
                written?;
            }
            return Ok(0);
        }
        let writes: Vec<_> = latest.into_iter().map(|r| self.put_result(r)).collect();
        let mut writes = futures_util::stream::iter(writes).buffer_unordered(concurrency);
        let mut superseded = 0;
        while let Some(written) = writes.next().await {
            if written? == Written::Superseded {
                superseded += 1;
            }
        }
        Ok(superseded)
    }

    async fn load_checkpoint(&self, partition: u32) -> Result<Option<Checkpoint>, SinkError> {
        let table = &self.settings.checkpoint_table;
        let got = with_retries(
            self.settings.retry_for,
            |e| self.classify(e),
            || {
                self.client
                    .get_item()
                    .table_name(table)
                    .key("stream_partition", self.checkpoint_key(partition))
                    .consistent_read(true)
                    .send()
            },
        )
        .await
        .map_err(|e| SinkError {
            sink: SINK,
            message: format!("GetItem on {table}: {}", DisplayErr(&e)),
        })?;
        let Some(item) = got.item() else {
            return Ok(None);
        };
        let text = match item.get("checkpoint") {
            Some(AttributeValue::S(text)) => text,
            _ => {
                return Err(SinkError {
                    sink: SINK,
                    message: format!(
                        "the checkpoint item of partition {partition} in {table} has no `checkpoint` string"
                    ),
                });
            }
        };
        serde_json::from_str(text).map(Some).map_err(|e| SinkError {
            sink: SINK,
            message: format!(
                "the checkpoint of partition {partition} in {table} is not valid: {e}"
            ),
        })
    }

    async fn save_checkpoint(
        &self,
        partition: u32,
        checkpoint: &Checkpoint,
    ) -> Result<Written, SinkError> {
        let next_offset = checkpoint.highest_offset.map_or(0, |h| h + 1);
        let json = serde_json::to_string(checkpoint).map_err(|e| SinkError {
            sink: SINK,
            message: format!("cannot encode a checkpoint: {e}"),
        })?;
        let mut item = vec![
            ("stream_partition", self.checkpoint_key(partition)),
            ("checkpoint", AttributeValue::S(json)),
            ("next_offset", AttributeValue::N(next_offset.to_string())),
            (
                "resume_offset",
                AttributeValue::N(checkpoint.resume_offset.to_string()),
            ),
        ];
        if let Some(watermark) = checkpoint.watermark_ms {
            item.push(("watermark", AttributeValue::S(format_rfc3339_ms(watermark))));
        }
        self.conditional_put(
            &self.settings.checkpoint_table,
            &item,
            "stream_partition",
            "next_offset",
            AttributeValue::N(next_offset.to_string()),
        )
        .await
    }
}

/// The item of a window result.
fn result_item(result: &WindowResult) -> Vec<(&'static str, AttributeValue)> {
    vec![
        (
            "product_id",
            AttributeValue::S(result.product_id.to_string()),
        ),
        (
            "window_start",
            AttributeValue::S(format_rfc3339_ms(result.window_start_ms)),
        ),
        (
            "window_end",
            AttributeValue::S(format_rfc3339_ms(result.window_end_ms())),
        ),
        (
            "unique_user_count",
            AttributeValue::N(result.unique_users.to_string()),
        ),
        ("event_count", AttributeValue::N(result.events.to_string())),
        ("approximate", AttributeValue::Bool(result.approximate)),
    ]
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
