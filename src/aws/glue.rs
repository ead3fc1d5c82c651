//! [`GlueCatalog`]: the AWS Glue Data Catalog behind [`Catalog`], one SDK request per method.
//!
//! Requests are built from lakelog's model with [`super::glue_convert`] and their answers read
//! back into it; failures are classified by [`AwsError::from_sdk`]. The SDK makes one attempt
//! (`crate::aws::client`), and so does every method here: retries belong to
//! [`crate::backend::catalog::RetryingCatalog`]. Requests are counted by the client's
//! [`super::counter::ApiCounter`], if it was built with one.
//!
//! Must never: retry, page, chunk, or leave the catalog id to the SDK's default account.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_glue::types::{BatchUpdatePartitionRequestEntry, ErrorDetail, PartitionValueList};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::glue_convert::{
    database_from_sdk, database_input, partition_from_sdk, partition_input, table_from_sdk, table_input, ConvertError,
};
use crate::backend::catalog::{BatchGet, Catalog, ItemError, Page, RetryingCatalog, Segment};
use crate::backend::retry::RetryPolicy;
use crate::backend::{AwsError, ErrorClass};
use crate::model::{Database, Partition, Table};

/// One Glue Data Catalog (`catalog_id`) through an SDK client.
#[derive(Debug, Clone)]
pub struct GlueCatalog {
    glue: aws_sdk_glue::Client,
    catalog_id: String,
    skip_archive: bool,
}

impl GlueCatalog {
    /// Table updates archive the old version (Glue's default) unless [`GlueCatalog::skip_archive`].
    pub fn new(glue: aws_sdk_glue::Client, catalog_id: &str) -> GlueCatalog {
        GlueCatalog { glue, catalog_id: catalog_id.to_string(), skip_archive: false }
    }

    /// Whether UpdateTable skips archiving the previous table version (a target's `skip_archive`).
    pub fn skip_archive(self, skip_archive: bool) -> GlueCatalog {
        GlueCatalog { skip_archive, ..self }
    }

    /// The catalog of `glue` behind the default retry policy, shared: for the source, tools and
    /// tests (a target's catalog gets its own policy from its applier).
    pub fn retrying(glue: aws_sdk_glue::Client, catalog_id: &str) -> Arc<dyn Catalog> {
        Arc::new(RetryingCatalog::new(Arc::new(GlueCatalog::new(glue, catalog_id)), RetryPolicy::default()))
    }
}

/// Classifies a failed request of `operation`.
fn sdk_error<E>(operation: &'static str) -> impl FnOnce(SdkError<E, Response>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    move |e| AwsError::from_sdk("glue", operation, e)
}

/// A model object Glue cannot take: permanent, and named.
fn invalid(operation: &'static str, e: ConvertError) -> AwsError {
    AwsError {
        service: "glue",
        operation,
        class: ErrorClass::Permanent,
        code: Some("lakelog.InvalidObject".into()),
        message: e.to_string(),
    }
}

fn none_if_not_found<T>(e: AwsError) -> Result<Option<T>, AwsError> {
    if e.class == ErrorClass::NotFound {
        Ok(None)
    } else {
        Err(e)
    }
}

/// One partition's values as the SDK takes them.
fn values_list(operation: &'static str, values: &[String]) -> Result<PartitionValueList, AwsError> {
    PartitionValueList::builder()
        .set_values(Some(values.to_vec()))
        .build()
        .map_err(|e| AwsError::invalid_response("glue", operation, &e.to_string()))
}

fn item_error(operation: &'static str, values: &[String], detail: Option<&ErrorDetail>) -> ItemError {
    ItemError {
        values: values.to_vec(),
        error: AwsError::batch_item(
            "glue",
            operation,
            detail.and_then(|d| d.error_code.as_deref()),
            detail.and_then(|d| d.error_message.as_deref()),
        ),
    }
}

#[async_trait]
impl Catalog for GlueCatalog {
    fn catalog_id(&self) -> &str {
        &self.catalog_id
    }

    async fn get_database(&self, name: &str) -> Result<Option<Database>, AwsError> {
        let req = self.glue.get_database().catalog_id(&self.catalog_id).name(name);
        match req.send().await.map_err(sdk_error("GetDatabase")) {
            Ok(out) => Ok(out.database.as_ref().map(database_from_sdk)),
            Err(e) => none_if_not_found(e),
        }
    }

    async fn databases_page(&self, token: Option<&str>) -> Result<Page<Database>, AwsError> {
        let req = self.glue.get_databases().catalog_id(&self.catalog_id).set_next_token(token.map(str::to_string));
        let out = req.send().await.map_err(sdk_error("GetDatabases"))?;
        Ok(Page { items: out.database_list.iter().map(database_from_sdk).collect(), next_token: out.next_token })
    }

    async fn create_database(&self, db: &Database) -> Result<(), AwsError> {
        let input = database_input(db).map_err(|e| invalid("CreateDatabase", e))?;
        let req = self.glue.create_database().catalog_id(&self.catalog_id).database_input(input);
        req.send().await.map_err(sdk_error("CreateDatabase"))?;
        Ok(())
    }

    async fn update_database(&self, db: &Database) -> Result<(), AwsError> {
        let input = database_input(db).map_err(|e| invalid("UpdateDatabase", e))?;
        let req = self.glue.update_database().catalog_id(&self.catalog_id).name(&db.name).database_input(input);
        req.send().await.map_err(sdk_error("UpdateDatabase"))?;
        Ok(())
    }

    async fn delete_database(&self, name: &str) -> Result<(), AwsError> {
        let req = self.glue.delete_database().catalog_id(&self.catalog_id).name(name);
        req.send().await.map_err(sdk_error("DeleteDatabase"))?;
        Ok(())
    }

    async fn get_table(&self, database: &str, name: &str) -> Result<Option<Table>, AwsError> {
        let req = self.glue.get_table().catalog_id(&self.catalog_id).database_name(database).name(name);
        match req.send().await.map_err(sdk_error("GetTable")) {
            Ok(out) => Ok(out.table.as_ref().map(|t| table_from_sdk(t, database))),
            Err(e) => none_if_not_found(e),
        }
    }

    async fn tables_page(&self, database: &str, token: Option<&str>) -> Result<Page<Table>, AwsError> {
        let req = self
            .glue
            .get_tables()
            .catalog_id(&self.catalog_id)
            .database_name(database)
            .set_next_token(token.map(str::to_string));
        let out = req.send().await.map_err(sdk_error("GetTables"))?;
        Ok(Page {
            items: out.table_list().iter().map(|t| table_from_sdk(t, database)).collect(),
            next_token: out.next_token,
        })
    }

    async fn create_table(&self, table: &Table) -> Result<(), AwsError> {
        let input = table_input(table).map_err(|e| invalid("CreateTable", e))?;
        let req = self
            .glue
            .create_table()
            .catalog_id(&self.catalog_id)
            .database_name(&table.database_name)
            .table_input(input);
        req.send().await.map_err(sdk_error("CreateTable"))?;
        Ok(())
    }

    async fn update_table(&self, table: &Table) -> Result<(), AwsError> {
        let input = table_input(table).map_err(|e| invalid("UpdateTable", e))?;
        let req = self
            .glue
            .update_table()
            .catalog_id(&self.catalog_id)
            .database_name(&table.database_name)
            .table_input(input)
            .skip_archive(self.skip_archive);
        req.send().await.map_err(sdk_error("UpdateTable"))?;
        Ok(())
    }

    async fn delete_table(&self, database: &str, name: &str) -> Result<(), AwsError> {
        let req = self.glue.delete_table().catalog_id(&self.catalog_id).database_name(database).name(name);
        req.send().await.map_err(sdk_error("DeleteTable"))?;
        Ok(())
    }

    async fn partitions_page(
        &self,
        database: &str,
        table: &str,
        segment: Option<Segment>,
        token: Option<&str>,
    ) -> Result<Page<Partition>, AwsError> {
        let mut req = self
            .glue
            .get_partitions()
            .catalog_id(&self.catalog_id)
            .database_name(database)
            .table_name(table)
            .set_next_token(token.map(str::to_string));
        if let Some(s) = segment {
            let segment = aws_sdk_glue::types::Segment::builder()
                .segment_number(s.number)
                .total_segments(s.total)
                .build()
                .map_err(|e| AwsError::invalid_response("glue", "GetPartitions", &e.to_string()))?;
            req = req.segment(segment);
        }
        let out = req.send().await.map_err(sdk_error("GetPartitions"))?;
        Ok(Page {
            items: out.partitions().iter().map(|p| partition_from_sdk(p, database, table)).collect(),
            next_token: out.next_token,
        })
    }

    async fn get_partitions(&self, database: &str, table: &str, values: &[Vec<String>]) -> Result<BatchGet, AwsError> {
        let keys = values.iter().map(|v| values_list("BatchGetPartition", v)).collect::<Result<Vec<_>, _>>()?;
        let req = self
            .glue
            .batch_get_partition()
            .catalog_id(&self.catalog_id)
            .database_name(database)
            .table_name(table)
            .set_partitions_to_get(Some(keys));
        let out = req.send().await.map_err(sdk_error("BatchGetPartition"))?;
        Ok(BatchGet {
            found: out.partitions().iter().map(|p| partition_from_sdk(p, database, table)).collect(),
            unprocessed: out.unprocessed_keys().iter().map(|k| k.values().to_vec()).collect(),
        })
    }

    async fn create_partitions(
        &self,
        database: &str,
        table: &str,
        parts: &[Partition],
    ) -> Result<Vec<ItemError>, AwsError> {
        const OP: &str = "BatchCreatePartition";
        let inputs = parts.iter().map(|p| partition_input(p).map_err(|e| invalid(OP, e))).collect::<Result<_, _>>()?;
        let req = self
            .glue
            .batch_create_partition()
            .catalog_id(&self.catalog_id)
            .database_name(database)
            .table_name(table)
            .set_partition_input_list(Some(inputs));
        let out = req.send().await.map_err(sdk_error(OP))?;
        Ok(out.errors().iter().map(|e| item_error(OP, e.partition_values(), e.error_detail.as_ref())).collect())
    }

    async fn update_partitions(
        &self,
        database: &str,
        table: &str,
        parts: &[Partition],
    ) -> Result<Vec<ItemError>, AwsError> {
        const OP: &str = "BatchUpdatePartition";
        let entries = parts
            .iter()
            .map(|p| {
                let input = partition_input(p).map_err(|e| invalid(OP, e))?;
                BatchUpdatePartitionRequestEntry::builder()
                    .set_partition_value_list(Some(p.values.clone()))
                    .partition_input(input)
                    .build()
                    .map_err(|e| AwsError::invalid_response("glue", OP, &e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let req = self
            .glue
            .batch_update_partition()
            .catalog_id(&self.catalog_id)
            .database_name(database)
            .table_name(table)
            .set_entries(Some(entries));
        let out = req.send().await.map_err(sdk_error(OP))?;
        Ok(out.errors().iter().map(|e| item_error(OP, e.partition_value_list(), e.error_detail.as_ref())).collect())
    }

    async fn delete_partitions(
        &self,
        database: &str,
        table: &str,
        values: &[Vec<String>],
    ) -> Result<Vec<ItemError>, AwsError> {
        const OP: &str = "BatchDeletePartition";
        let keys = values.iter().map(|v| values_list(OP, v)).collect::<Result<Vec<_>, _>>()?;
        let req = self
            .glue
            .batch_delete_partition()
            .catalog_id(&self.catalog_id)
            .database_name(database)
            .table_name(table)
            .set_partitions_to_delete(Some(keys));
        let out = req.send().await.map_err(sdk_error(OP))?;
        Ok(out.errors().iter().map(|e| item_error(OP, e.partition_values(), e.error_detail.as_ref())).collect())
    }
}
