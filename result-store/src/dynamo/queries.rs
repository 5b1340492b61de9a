//! The reads of the analytics API: a product's latest windows (the table's key), the top of a
//! window (the `by_window` index), time ranges page by page with a cursor (the `by_day`
//! index, one Query per day), and the latest window every partition has fired (the
//! checkpoints' watermarks). Every Query page is retried while its failure is transient.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use primitives::retry::{Backoff, with_retries};
use stream_engine::WindowResult;
use stream_engine::core::time::format_rfc3339_ms;

use super::codec::{DAY_MS, day, range_start_key, result_from_item, watermark_of};
use super::tables::{BY_DAY, BY_WINDOW};
use super::{DisplayErr, DynamoStore, store_error};
use crate::{RangeCursor, RangePage, ResultQuery, StoreError, ceil_minute, fired_window};

/// The most days one page of a time range looks through (one Query each, at least).
pub const MAX_DAYS_PER_PAGE: i64 = 31;

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
                results.push(result_from_item(item)?);
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
                let key = (!c.product_id.is_empty()).then(|| range_start_key(c));
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
                    .filter_map(watermark_of);
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
