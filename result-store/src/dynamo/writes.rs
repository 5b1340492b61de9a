//! The writes: results batched (unconditional) or one conditional PutItem each, and the
//! checkpoint store (a conditional save, and its load, one GetItem), each request retried
//! while its failure is transient.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use futures_util::StreamExt;
use primitives::retry::{Backoff, with_retries};
use stream_engine::{Checkpoint, WindowResult};

use super::codec::{checkpoint_from_item, checkpoint_item, result_item};
use super::{DisplayErr, DynamoStore, store_error};
use crate::{
    CheckpointStore, ResultStore, StoreError, Writes, Written, latest_per_key, next_offset,
};

/// BatchWriteItem's limit.
const BATCH_ITEMS: usize = 25;

impl DynamoStore {
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
        checkpoint_from_item(item, partition, table).map(Some)
    }

    async fn save_checkpoint(
        &self,
        partition: u32,
        checkpoint: &Checkpoint,
    ) -> Result<Written, StoreError> {
        let item = checkpoint_item(self.checkpoint_key(partition), checkpoint)?;
        self.conditional_put(
            &self.settings.checkpoint_table,
            &item,
            "stream_partition",
            "next_offset",
            AttributeValue::N(next_offset(checkpoint).to_string()),
        )
        .await
    }
}
