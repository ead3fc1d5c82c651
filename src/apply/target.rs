//! A target Glue catalog's operations, in lakelog's model.
//!
//! Each method is one API call (batch methods take one chunk within Glue's limits). Batch calls
//! report per-item failures as [`ItemError`]s rather than failing the whole call, as Glue does.
//! `CatalogId` is always sent explicitly. Every call, reads through [`GlueTarget::reader`]
//! included, goes through the target's [`RetryPolicy`] (its `apply.max_attempts` and its adaptive
//! concurrency); a returned retryable error has used all of them.

use aws_sdk_glue::types::BatchUpdatePartitionRequestEntry;

use crate::aws::glue_convert::{database_input, partition_input, table_input, ConvertError};
use crate::backend::retry::RetryPolicy;
use crate::backend::{AwsError, ErrorClass};
use crate::catalog::reader::{values_list, CatalogReader};
use crate::model::{Database, Partition, Table};

/// Glue's limit for BatchCreatePartition and BatchUpdatePartition.
pub const PARTITION_WRITE_CHUNK: usize = 100;
/// Glue's limit for BatchDeletePartition.
pub const PARTITION_DELETE_CHUNK: usize = 25;
/// Glue's limit for BatchGetPartition (reads live in the reader).
pub use crate::catalog::reader::PARTITION_GET_CHUNK;

/// One failed item of a batch call.
#[derive(Debug, Clone)]
pub struct ItemError {
    pub values: Vec<String>,
    pub error: AwsError,
}

/// Write access to one target catalog.
#[derive(Debug, Clone)]
pub struct GlueTarget {
    glue: aws_sdk_glue::Client,
    catalog_id: String,
    skip_archive: bool,
    reader: CatalogReader,
    retry: RetryPolicy,
}

fn invalid(operation: &'static str, e: ConvertError) -> AwsError {
    AwsError {
        service: "glue",
        operation,
        class: ErrorClass::Permanent,
        code: Some("lakelog.InvalidObject".into()),
        message: e.to_string(),
    }
}

impl GlueTarget {
    pub fn new(glue: aws_sdk_glue::Client, catalog_id: &str, skip_archive: bool) -> GlueTarget {
        GlueTarget {
            reader: CatalogReader::new(glue.clone(), catalog_id, 1),
            glue,
            catalog_id: catalog_id.to_string(),
            skip_archive,
            retry: RetryPolicy::default(),
        }
    }

    /// The same target with another retry policy, for its writes and its reader.
    pub fn with_retry(self, retry: RetryPolicy) -> GlueTarget {
        GlueTarget { reader: self.reader.with_retry(retry.clone()), retry, ..self }
    }

    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    pub fn catalog_id(&self) -> &str {
        &self.catalog_id
    }

    /// A reader over the same catalog (for scans and comparisons).
    pub fn reader(&self) -> &CatalogReader {
        &self.reader
    }

    pub async fn get_database(&self, name: &str) -> Result<Option<Database>, AwsError> {
        self.reader.database(name).await
    }

    pub async fn create_database(&self, db: &Database) -> Result<(), AwsError> {
        let input = database_input(db).map_err(|e| invalid("CreateDatabase", e))?;
        let req = self.glue.create_database().catalog_id(&self.catalog_id).database_input(input);
        self.retry.send("glue", "CreateDatabase", || req.clone().send()).await?;
        Ok(())
    }

    pub async fn update_database(&self, db: &Database) -> Result<(), AwsError> {
        let input = database_input(db).map_err(|e| invalid("UpdateDatabase", e))?;
        let req = self.glue.update_database().catalog_id(&self.catalog_id).name(&db.name).database_input(input);
        self.retry.send("glue", "UpdateDatabase", || req.clone().send()).await?;
        Ok(())
    }

    pub async fn delete_database(&self, name: &str) -> Result<(), AwsError> {
        let req = self.glue.delete_database().catalog_id(&self.catalog_id).name(name);
        self.retry.send("glue", "DeleteDatabase", || req.clone().send()).await?;
        Ok(())
    }

    pub async fn get_table(&self, database: &str, name: &str) -> Result<Option<Table>, AwsError> {
        self.reader.table(database, name).await
    }

    pub async fn create_table(&self, table: &Table) -> Result<(), AwsError> {
        let input = table_input(table).map_err(|e| invalid("CreateTable", e))?;
        let req = self
            .glue
            .create_table()
            .catalog_id(&self.catalog_id)
            .database_name(&table.database_name)
            .table_input(input);
        self.retry.send("glue", "CreateTable", || req.clone().send()).await?;
        Ok(())
    }

    /// Updates in place (never delete-and-recreate), honouring the SkipArchive policy.
    pub async fn update_table(&self, table: &Table) -> Result<(), AwsError> {
        let input = table_input(table).map_err(|e| invalid("UpdateTable", e))?;
        let req = self
            .glue
            .update_table()
            .catalog_id(&self.catalog_id)
            .database_name(&table.database_name)
            .table_input(input)
            .skip_archive(self.skip_archive);
        self.retry.send("glue", "UpdateTable", || req.clone().send()).await?;
        Ok(())
    }

    pub async fn delete_table(&self, database: &str, name: &str) -> Result<(), AwsError> {
        let req = self.glue.delete_table().catalog_id(&self.catalog_id).database_name(database).name(name);
        self.retry.send("glue", "DeleteTable", || req.clone().send()).await?;
        Ok(())
    }

    /// The existing partitions among `values` (one BatchGetPartition chunk), read by the
    /// target's reader under the target's retry policy.
    pub async fn get_partitions(
        &self,
        database: &str,
        table: &str,
        values: &[Vec<String>],
    ) -> Result<Vec<Partition>, AwsError> {
        self.reader.batch_partitions(database, table, values).await
    }

    /// BatchCreatePartition for one chunk (≤ 100).
    pub async fn create_partitions(
        &self,
        database: &str,
        table: &str,
        parts: &[Partition],
    ) -> Result<Vec<ItemError>, AwsError> {
        let inputs = parts
            .iter()
            .map(|p| partition_input(p).map_err(|e| invalid("BatchCreatePartition", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let req = self
            .glue
            .batch_create_partition()
            .catalog_id(&self.catalog_id)
            .database_name(database)
            .table_name(table)
            .set_partition_input_list(Some(inputs));
        let out = self.retry.send("glue", "BatchCreatePartition", || req.clone().send()).await?;
        Ok(out
            .errors()
            .iter()
            .map(|e| ItemError {
                values: e.partition_values().to_vec(),
                error: item_error("BatchCreatePartition", e.error_detail.as_ref()),
            })
            .collect())
    }

    /// BatchUpdatePartition for one chunk (≤ 100).
    pub async fn update_partitions(
        &self,
        database: &str,
        table: &str,
        parts: &[Partition],
    ) -> Result<Vec<ItemError>, AwsError> {
        let entries = parts
            .iter()
            .map(|p| {
                let input = partition_input(p).map_err(|e| invalid("BatchUpdatePartition", e))?;
                BatchUpdatePartitionRequestEntry::builder()
                    .set_partition_value_list(Some(p.values.clone()))
                    .partition_input(input)
                    .build()
                    .map_err(|e| AwsError::invalid_response("glue", "BatchUpdatePartition", &e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let req = self
            .glue
            .batch_update_partition()
            .catalog_id(&self.catalog_id)
            .database_name(database)
            .table_name(table)
            .set_entries(Some(entries));
        let out = self.retry.send("glue", "BatchUpdatePartition", || req.clone().send()).await?;
        Ok(out
            .errors()
            .iter()
            .map(|e| ItemError {
                values: e.partition_value_list().to_vec(),
                error: item_error("BatchUpdatePartition", e.error_detail.as_ref()),
            })
            .collect())
    }

    /// BatchDeletePartition for one chunk (≤ 25).
    pub async fn delete_partitions(
        &self,
        database: &str,
        table: &str,
        values: &[Vec<String>],
    ) -> Result<Vec<ItemError>, AwsError> {
        let keys = values.iter().map(|v| values_list(v)).collect::<Result<Vec<_>, _>>()?;
        let req = self
            .glue
            .batch_delete_partition()
            .catalog_id(&self.catalog_id)
            .database_name(database)
            .table_name(table)
            .set_partitions_to_delete(Some(keys));
        let out = self.retry.send("glue", "BatchDeletePartition", || req.clone().send()).await?;
        Ok(out
            .errors()
            .iter()
            .map(|e| ItemError {
                values: e.partition_values().to_vec(),
                error: item_error("BatchDeletePartition", e.error_detail.as_ref()),
            })
            .collect())
    }
}

fn item_error(operation: &'static str, detail: Option<&aws_sdk_glue::types::ErrorDetail>) -> AwsError {
    AwsError::batch_item(
        "glue",
        operation,
        detail.and_then(|d| d.error_code.as_deref()),
        detail.and_then(|d| d.error_message.as_deref()),
    )
}
