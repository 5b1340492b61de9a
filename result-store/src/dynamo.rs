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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, CreateGlobalSecondaryIndexAction,
    GlobalSecondaryIndex, GlobalSecondaryIndexUpdate, IndexStatus, KeySchemaElement, KeyType,
    KeysAndAttributes, Projection, ProjectionType, PutRequest, ScalarAttributeType, TableStatus,
    WriteRequest,
};
use futures_util::StreamExt;
use primitives::retry::{Backoff, Retry, with_retries};
use stream_engine::core::time::{format_rfc3339_ms, parse_rfc3339_ms};
use stream_engine::{Checkpoint, WindowResult};

use crate::{
    CheckpointStore, RangeCursor, RangePage, ResultQuery, ResultStore, StoreError, Writes, Written,
    ceil_minute, fired_window, latest_per_key, next_offset, rank,
};

/// The secondary index of the results table for the top of a window: partition key
/// `window_start`, sort key `rank`.
pub const BY_WINDOW: &str = "by_window";
/// The secondary index of the results table for time ranges: partition key `day`
/// (`YYYY-MM-DD` of the window start), sort key `window_product` (`<window_start>|<product_id>`).
pub const BY_DAY: &str = "by_day";

/// A global secondary index of the results table (all attributes projected).
struct Index {
    name: &'static str,
    hash: &'static str,
    range: &'static str,
}

const INDEXES: &[Index] = &[
    Index {
        name: BY_WINDOW,
        hash: "window_start",
        range: "rank",
    },
    Index {
        name: BY_DAY,
        hash: "day",
        range: "window_product",
    },
];

/// The most days one page of a time range looks through (one Query each, at least).
pub const MAX_DAYS_PER_PAGE: i64 = 31;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

fn index_names(
    described: &aws_sdk_dynamodb::operation::describe_table::DescribeTableOutput,
) -> Vec<&str> {
    described
        .table()
        .map(|t| t.global_secondary_indexes())
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i.index_name())
        .collect()
}

/// Told the kind of every failed request (`timeout`, `unavailable`, `throttled`,
/// `unprocessed`, `permanent`), for metrics.
pub type ErrorCounter = Arc<dyn Fn(&'static str) + Send + Sync>;

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

    /// Creates the results and checkpoint tables when missing (on demand capacity) and waits
    /// until they are active.
    pub async fn ensure_tables(&self) -> Result<(), StoreError> {
        let s = &self.settings;
        self.ensure_table(
            &s.table,
            &[
                ("product_id", KeyType::Hash),
                ("window_start", KeyType::Range),
            ],
            INDEXES,
        )
        .await?;
        self.ensure_table(
            &s.checkpoint_table,
            &[("stream_partition", KeyType::Hash)],
            &[],
        )
        .await
    }

    /// Checks that both tables exist, the results table with its indexes (when the engine is
    /// not to create them).
    pub async fn check_tables(&self) -> Result<(), StoreError> {
        for table in [&self.settings.table, &self.settings.checkpoint_table] {
            match self.client.describe_table().table_name(table).send().await {
                Ok(described) => {
                    if table != &self.settings.table {
                        continue;
                    }
                    let present = index_names(&described);
                    if let Some(missing) = INDEXES.iter().find(|i| !present.contains(&i.name)) {
                        return Err(store_error(format!(
                            "table {table} has no {} index (partition key {}, sort key {}; or let the engine add it by unsetting ECOM_NO_CREATE)",
                            missing.name, missing.hash, missing.range
                        )));
                    }
                }
                Err(e) if e.code() == Some("ResourceNotFoundException") => {
                    return Err(store_error(format!(
                        "table {table} does not exist (create it, or let the engine create it by unsetting ECOM_NO_CREATE)"
                    )));
                }
                Err(e) => {
                    return Err(store_error(format!(
                        "cannot describe table {table}: {}",
                        DisplayErr(&e)
                    )));
                }
            }
        }
        Ok(())
    }

    async fn ensure_table(
        &self,
        table: &str,
        keys: &[(&str, KeyType)],
        indexes: &[Index],
    ) -> Result<(), StoreError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            store_error(format!("{what} table {table}: {e}"))
        };
        let described = match self.client.describe_table().table_name(table).send().await {
            Ok(d) => Some(d),
            Err(e) if e.code() == Some("ResourceNotFoundException") => None,
            Err(e) => return Err(fail("cannot describe", &DisplayErr(&e))),
        };
        let string_attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| fail("cannot define", &e))
        };
        let key = |name: &str, key_type: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(key_type)
                .build()
                .map_err(|e| fail("cannot define", &e))
        };
        let projection = || {
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build()
        };
        if let Some(described) = &described {
            let present = index_names(described);
            // A table from before an index: add it (one index per UpdateTable, as DynamoDB
            // requires, each waited for).
            for index in indexes.iter().filter(|i| !present.contains(&i.name)) {
                let create = CreateGlobalSecondaryIndexAction::builder()
                    .index_name(index.name)
                    .key_schema(key(index.hash, KeyType::Hash)?)
                    .key_schema(key(index.range, KeyType::Range)?)
                    .projection(projection())
                    .build()
                    .map_err(|e| fail("cannot define", &e))?;
                self.client
                    .update_table()
                    .table_name(table)
                    .attribute_definitions(string_attribute(index.hash)?)
                    .attribute_definitions(string_attribute(index.range)?)
                    .global_secondary_index_updates(
                        GlobalSecondaryIndexUpdate::builder().create(create).build(),
                    )
                    .send()
                    .await
                    .map_err(|e| fail("cannot add an index to", &DisplayErr(&e)))?;
                tracing::info!(table, index = index.name, "added DynamoDB index");
                self.wait_active(table).await?;
            }
        }
        if described.is_none() {
            let mut create = self
                .client
                .create_table()
                .table_name(table)
                .billing_mode(BillingMode::PayPerRequest);
            let mut defined: Vec<&str> = Vec::new();
            for index in indexes {
                for name in [index.hash, index.range] {
                    if !defined.contains(&name) && !keys.iter().any(|(k, _)| *k == name) {
                        defined.push(name);
                        create = create.attribute_definitions(string_attribute(name)?);
                    }
                }
                create = create.global_secondary_indexes(
                    GlobalSecondaryIndex::builder()
                        .index_name(index.name)
                        .key_schema(key(index.hash, KeyType::Hash)?)
                        .key_schema(key(index.range, KeyType::Range)?)
                        .projection(projection())
                        .build()
                        .map_err(|e| fail("cannot define", &e))?,
                );
            }
            for (name, key_type) in keys {
                create = create
                    .attribute_definitions(string_attribute(name)?)
                    .key_schema(key(name, key_type.clone())?);
            }
            match create.send().await {
                Ok(_) => tracing::info!(table, "created DynamoDB table"),
                // Another instance created it first.
                Err(e) if e.code() == Some("ResourceInUseException") => {}
                Err(e) => return Err(fail("cannot create", &DisplayErr(&e))),
            }
        }
        self.wait_active(table).await
    }

    /// Waits until the table and its indexes are active.
    async fn wait_active(&self, table: &str) -> Result<(), StoreError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            store_error(format!("{what} table {table}: {e}"))
        };
        for _ in 0..120 {
            let described = self
                .client
                .describe_table()
                .table_name(table)
                .send()
                .await
                .map_err(|e| fail("cannot describe", &DisplayErr(&e)))?;
            let status = described.table().and_then(|t| t.table_status());
            let indexes_active = described
                .table()
                .map(|t| t.global_secondary_indexes())
                .unwrap_or_default()
                .iter()
                .all(|i| i.index_status().is_none_or(|s| *s == IndexStatus::Active));
            if status == Some(&TableStatus::Active) && indexes_active {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(fail("timed out waiting for", &"ACTIVE status"))
    }

    async fn put_result(&self, result: &WindowResult) -> Result<Written, StoreError> {
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
    async fn write_batch(&self, results: &[&WindowResult]) -> Result<(), StoreError> {
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
            .map_err(|e| store_error(format!("cannot build a write request: {e}")))?;
        let mut backoff = Backoff::new(self.settings.retry_for);
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
            .map_err(|e| store_error(format!("BatchWriteItem on {table}: {}", DisplayErr(&e))))?;
            pending = sent
                .unprocessed_items()
                .and_then(|u| u.get(table.as_str()))
                .cloned()
                .unwrap_or_default();
            if pending.is_empty() {
                return Ok(());
            }
            // Unprocessed items are how DynamoDB throttles part of a batch.
            (self.errors)("unprocessed");
            if !backoff.wait().await {
                return Err(store_error(format!(
                    "{} items still unprocessed after {:?}",
                    pending.len(),
                    self.settings.retry_for
                )));
            }
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
    ) -> Result<Written, StoreError> {
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
        outcome.map_err(|e| store_error(format!("PutItem on {table}: {}", DisplayErr(&e))))
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

impl ResultStore for DynamoStore {
    async fn put_results(&self, results: &[WindowResult]) -> Result<usize, StoreError> {
        // One write per key: a re-fire in the same commit supersedes the first emission.
        let latest = latest_per_key(results);
        let concurrency = self.settings.concurrency.max(1);
        if self.writes == Writes::Unconditional {
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
}

impl CheckpointStore for DynamoStore {
    async fn load_checkpoint(&self, partition: u32) -> Result<Option<Checkpoint>, StoreError> {
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
        .map_err(|e| store_error(format!("GetItem on {table}: {}", DisplayErr(&e))))?;
        let Some(item) = got.item() else {
            return Ok(None);
        };
        let text = match item.get("checkpoint") {
            Some(AttributeValue::S(text)) => text,
            _ => {
                return Err(store_error(format!(
                    "the checkpoint item of partition {partition} in {table} has no `checkpoint` string"
                )));
            }
        };
        serde_json::from_str(text).map(Some).map_err(|e| {
            store_error(format!(
                "the checkpoint of partition {partition} in {table} is not valid: {e}"
            ))
        })
    }

    async fn save_checkpoint(
        &self,
        partition: u32,
        checkpoint: &Checkpoint,
    ) -> Result<Written, StoreError> {
        let next_offset = next_offset(checkpoint);
        let json = serde_json::to_string(checkpoint)
            .map_err(|e| store_error(format!("cannot encode a checkpoint: {e}")))?;
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
            item.push(("watermark_ms", AttributeValue::N(watermark.to_string())));
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
        ("rank", AttributeValue::S(rank(result))),
        ("day", AttributeValue::S(day(result.window_start_ms))),
        ("window_product", AttributeValue::S(window_product(result))),
    ]
}

/// `YYYY-MM-DD` of a time.
fn day(ms: i64) -> String {
    format_rfc3339_ms(ms.div_euclid(DAY_MS) * DAY_MS)[..10].to_owned()
}

/// The `by_day` sort key: the window's start, then the product.
fn window_product(result: &WindowResult) -> String {
    format!(
        "{}|{}",
        format_rfc3339_ms(result.window_start_ms),
        result.product_id
    )
}

/// A window result from its item.
fn from_item(item: &HashMap<String, AttributeValue>) -> Result<WindowResult, StoreError> {
    let bad = |field: &str| store_error(format!("a result item has no valid `{field}`"));
    let s = |field: &str| match item.get(field) {
        Some(AttributeValue::S(v)) => Ok(v.as_str()),
        _ => Err(bad(field)),
    };
    let n = |field: &str| match item.get(field) {
        Some(AttributeValue::N(v)) => v.parse::<u64>().map_err(|_| bad(field)),
        _ => Err(bad(field)),
    };
    Ok(WindowResult {
        product_id: s("product_id")?.into(),
        window_start_ms: parse_rfc3339_ms(s("window_start")?).map_err(|_| bad("window_start"))?,
        unique_users: n("unique_user_count")?,
        events: n("event_count")?,
        approximate: matches!(item.get("approximate"), Some(AttributeValue::Bool(true))),
    })
}

impl DynamoStore {
    fn query_error(&self, e: &impl std::error::Error) -> StoreError {
        store_error(format!(
            "Query on {}: {}",
            self.settings.table,
            DisplayErr(e)
        ))
    }

    /// Runs a Query page after page (each retried while the failure is transient) until it
    /// is exhausted or `limit` results are in.
    async fn query_results(
        &self,
        query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
        mut start_key: Option<HashMap<String, AttributeValue>>,
        limit: usize,
    ) -> Result<Vec<WindowResult>, StoreError> {
        let mut results = Vec::new();
        loop {
            let page = query
                .clone()
                .limit((limit - results.len()).min(1000) as i32)
                .set_exclusive_start_key(start_key.take());
            let page = with_retries(
                self.settings.retry_for,
                |e| self.classify(e),
                || page.clone().send(),
            )
            .await
            .map_err(|e| self.query_error(&e))?;
            for item in page.items() {
                results.push(from_item(item)?);
            }
            match page.last_evaluated_key() {
                Some(key) if results.len() < limit => start_key = Some(key.clone()),
                _ => return Ok(results),
            }
        }
    }
}

impl ResultQuery for DynamoStore {
    async fn product_windows(
        &self,
        product_id: &str,
        before_ms: Option<i64>,
        limit: usize,
    ) -> Result<Vec<WindowResult>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.settings.table)
            .scan_index_forward(false)
            .expression_attribute_values(":p", AttributeValue::S(product_id.to_owned()));
        let query = match before_ms {
            Some(before) => query
                .key_condition_expression("product_id = :p AND window_start < :b")
                .expression_attribute_values(
                    ":b",
                    AttributeValue::S(format_rfc3339_ms(ceil_minute(before))),
                ),
            None => query.key_condition_expression("product_id = :p"),
        };
        self.query_results(query, None, limit).await
    }

    async fn top(
        &self,
        window_start_ms: i64,
        limit: usize,
    ) -> Result<Vec<WindowResult>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.settings.table)
            .index_name(BY_WINDOW)
            .key_condition_expression("window_start = :w")
            .expression_attribute_values(
                ":w",
                AttributeValue::S(format_rfc3339_ms(window_start_ms)),
            );
        self.query_results(query, None, limit).await
    }

    async fn windows(
        &self,
        from_ms: i64,
        to_ms: i64,
        after: Option<RangeCursor>,
        limit: usize,
    ) -> Result<RangePage, StoreError> {
        // One Query of the `by_day` index per day, from the cursor on: `window_product`
        // between the range's first window and `to` rounded up to a whole minute (a bare time
        // sorts before every result of the window starting then, which the range excludes;
        // window starts are whole minutes, written without fractions).
        let first = ceil_minute(from_ms);
        let (start, mut start_key) = match &after {
            Some(c) if c.window_start_ms >= first => {
                let key = (!c.product_id.is_empty()).then(|| {
                    let window_start = format_rfc3339_ms(c.window_start_ms);
                    HashMap::from([
                        ("day".to_owned(), AttributeValue::S(day(c.window_start_ms))),
                        (
                            "window_product".to_owned(),
                            AttributeValue::S(format!("{window_start}|{}", c.product_id)),
                        ),
                        (
                            "product_id".to_owned(),
                            AttributeValue::S(c.product_id.clone()),
                        ),
                        ("window_start".to_owned(), AttributeValue::S(window_start)),
                    ])
                });
                (c.window_start_ms, key)
            }
            _ => (first, None),
        };
        let low = AttributeValue::S(format_rfc3339_ms(start));
        let high = AttributeValue::S(format_rfc3339_ms(ceil_minute(to_ms)));
        let mut results: Vec<WindowResult> = Vec::new();
        let mut day_start = start.div_euclid(DAY_MS) * DAY_MS;
        let mut days = 0;
        while day_start < to_ms && days < MAX_DAYS_PER_PAGE {
            let query = self
                .client
                .query()
                .table_name(&self.settings.table)
                .index_name(BY_DAY)
                .key_condition_expression("#d = :d AND window_product BETWEEN :lo AND :hi")
                .expression_attribute_names("#d", "day")
                .expression_attribute_values(":d", AttributeValue::S(day(day_start)))
                .expression_attribute_values(":lo", low.clone())
                .expression_attribute_values(":hi", high.clone());
            let want = limit - results.len();
            let page = self.query_results(query, start_key.take(), want).await?;
            let full = page.len() == want;
            results.extend(page);
            if full {
                let next = results.last().map(|last| RangeCursor {
                    window_start_ms: last.window_start_ms,
                    product_id: last.product_id.to_string(),
                });
                return Ok(RangePage { results, next });
            }
            day_start += DAY_MS;
            days += 1;
        }
        let next = (day_start < to_ms).then(|| RangeCursor {
            window_start_ms: day_start.max(start),
            product_id: String::new(),
        });
        Ok(RangePage { results, next })
    }

    async fn latest_fired(&self) -> Result<Option<i64>, StoreError> {
        // BatchGetItem takes 100 keys at most, and may leave some unprocessed (throttling):
        // those are asked again, so that no partition's watermark is left out of the minimum.
        let table = &self.settings.checkpoint_table;
        let all: Vec<u32> = (0..self.settings.partitions).collect();
        let mut earliest: Option<i64> = None;
        for chunk in all.chunks(100) {
            let mut keys: Vec<HashMap<String, AttributeValue>> = chunk
                .iter()
                .map(|&p| HashMap::from([("stream_partition".to_owned(), self.checkpoint_key(p))]))
                .collect();
            let mut backoff = Backoff::new(self.settings.retry_for);
            while !keys.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut keys)))
                    .projection_expression("watermark_ms")
                    .consistent_read(true)
                    .build()
                    .map_err(|e| store_error(format!("cannot build a read: {e}")))?;
                let got = with_retries(
                    self.settings.retry_for,
                    |e| self.classify(e),
                    || {
                        self.client
                            .batch_get_item()
                            .request_items(table, request.clone())
                            .send()
                    },
                )
                .await
                .map_err(|e| store_error(format!("BatchGetItem on {table}: {}", DisplayErr(&e))))?;
                let watermarks = got
                    .responses()
                    .and_then(|r| r.get(table.as_str()))
                    .into_iter()
                    .flatten()
                    .filter_map(|item| match item.get("watermark_ms") {
                        Some(AttributeValue::N(n)) => n.parse::<i64>().ok(),
                        _ => None,
                    });
                for watermark in watermarks {
                    earliest = Some(earliest.map_or(watermark, |e| e.min(watermark)));
                }
                keys = got
                    .unprocessed_keys()
                    .and_then(|u| u.get(table.as_str()))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
                if !keys.is_empty() {
                    (self.errors)("unprocessed");
                    if !backoff.wait().await {
                        return Err(store_error(format!(
                            "{} checkpoints still unread after {:?}",
                            keys.len(),
                            self.settings.retry_for
                        )));
                    }
                }
            }
        }
        Ok(earliest.map(fired_window))
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.client
            .describe_table()
            .table_name(&self.settings.table)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                store_error(format!(
                    "cannot describe {}: {}",
                    self.settings.table,
                    DisplayErr(&e)
                ))
            })
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
