//! The results and checkpoint tables: their keys and the results table's secondary indexes,
//! created when missing (an index added to a table from before it), or checked when the
//! engine is not to create them.

use std::time::Duration;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex,
    GlobalSecondaryIndexUpdate, IndexStatus, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TableStatus,
};

use super::{DisplayErr, DynamoStore, store_error};
use crate::StoreError;

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

impl DynamoStore {
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
}
