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

    async fn partition_values_page(
        &self,
        database: &str,
        table: &str,
        token: Option<&str>,
    ) -> Result<Page<Vec<String>>, AwsError> {
        let out = self
            .glue
            .get_partitions()
            .catalog_id(&self.catalog_id)
            .database_name(database)
            .table_name(table)
            .exclude_column_schema(true)
            .set_next_token(token.map(str::to_string))
            .send()
            .await
            .map_err(sdk_error("GetPartitions"))?;
        Ok(Page { items: out.partitions().iter().map(|p| p.values().to_vec()).collect(), next_token: out.next_token })
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

/// The requests each method sends and how answers are read, against canned responses in the API
/// reference's shapes (the local emulator ignores NextToken, MaxResults and segments). Every rule
/// matches only the exact request it answers: a request that should not be made matches no rule,
/// and the mock interceptor panics.
#[cfg(test)]
mod tests {
    use aws_sdk_glue::operation::batch_create_partition::BatchCreatePartitionOutput;
    use aws_sdk_glue::operation::batch_get_partition::BatchGetPartitionOutput;
    use aws_sdk_glue::operation::get_databases::GetDatabasesOutput;
    use aws_sdk_glue::operation::get_partitions::GetPartitionsOutput;
    use aws_sdk_glue::operation::get_table::GetTableError;
    use aws_sdk_glue::operation::get_tables::{GetTablesError, GetTablesOutput};
    use aws_sdk_glue::types::error::{EntityNotFoundException, InvalidInputException};
    use aws_sdk_glue::types::PartitionError;
    use aws_sdk_glue::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    const CATALOG: &str = "123456789012";

    fn db(name: &str) -> aws_sdk_glue::types::Database {
        aws_sdk_glue::types::Database::builder().name(name).build().expect("db")
    }

    fn table(name: &str) -> aws_sdk_glue::types::Table {
        aws_sdk_glue::types::Table::builder().name(name).build().expect("table")
    }

    /// A partition as Glue returns it: values, no names (filled in from the request).
    fn partition(dt: &str) -> aws_sdk_glue::types::Partition {
        aws_sdk_glue::types::Partition::builder().values(dt).parameters("source-dt", dt).build()
    }

    /// A modeled error as the deserializer builds it from a real error response: with its code.
    fn meta(code: &str) -> ErrorMetadata {
        ErrorMetadata::builder().code(code).message("denied by test").build()
    }

    #[tokio::test]
    async fn a_databases_page_names_the_catalog_and_the_token_and_returns_the_next() {
        let page = mock!(Client::get_databases)
            .match_requests(|r| r.catalog_id() == Some(CATALOG) && r.next_token() == Some("p2"))
            .then_output(|| {
                GetDatabasesOutput::builder().database_list(db("a")).next_token("p3").build().expect("out")
            });
        let glue = mock_client!(aws_sdk_glue, RuleMode::MatchAny, &[&page]);
        let got = GlueCatalog::new(glue, CATALOG).databases_page(Some("p2")).await.expect("page");
        assert_eq!(got.items.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["a"]);
        assert_eq!(got.next_token.as_deref(), Some("p3"));
    }

    #[tokio::test]
    async fn a_tables_page_names_the_database_in_every_table() {
        let page = mock!(Client::get_tables)
            .match_requests(|r| {
                r.catalog_id() == Some(CATALOG) && r.database_name() == Some("sales") && r.next_token().is_none()
            })
            .then_output(|| GetTablesOutput::builder().table_list(table("t1")).table_list(table("t2")).build());
        let glue = mock_client!(aws_sdk_glue, RuleMode::MatchAny, &[&page]);
        let got = GlueCatalog::new(glue, CATALOG).tables_page("sales", None).await.expect("page");
        assert_eq!(got.items.len(), 2);
        assert!(got.items.iter().all(|t| t.database_name == "sales"), "{:?}", got.items);
        assert_eq!(got.next_token, None);
    }

    #[tokio::test]
    async fn a_segment_is_sent_when_given_and_only_then() {
        let segmented = mock!(Client::get_partitions)
            .match_requests(|r| {
                r.catalog_id() == Some(CATALOG)
                    && r.database_name() == Some("sales")
                    && r.table_name() == Some("orders")
                    && r.segment().is_some_and(|s| s.segment_number == 1 && s.total_segments == 3)
                    && r.next_token() == Some("s1-p2")
            })
            .then_output(|| GetPartitionsOutput::builder().partitions(partition("2026-01-02")).build());
        let whole = mock!(Client::get_partitions)
            .match_requests(|r| r.segment().is_none() && r.next_token().is_none())
            .then_output(|| GetPartitionsOutput::builder().partitions(partition("2026-01-01")).next_token("2").build());
        let glue = mock_client!(aws_sdk_glue, RuleMode::MatchAny, &[&segmented, &whole]);
        let c = GlueCatalog::new(glue, CATALOG);
        let seg = Some(Segment { number: 1, total: 3 });
        let got = c.partitions_page("sales", "orders", seg, Some("s1-p2")).await.expect("segment page");
        let p = &got.items[0];
        assert_eq!(
            (p.database_name.as_str(), p.table_name.as_str(), p.values.as_slice()),
            ("sales", "orders", &["2026-01-02".to_string()][..])
        );
        assert_eq!(p.parameters.get("source-dt").map(String::as_str), Some("2026-01-02"));
        let got = c.partitions_page("sales", "orders", None, None).await.expect("whole page");
        assert_eq!(got.next_token.as_deref(), Some("2"));
        assert_eq!((segmented.num_calls(), whole.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn batch_get_returns_unprocessed_keys_to_ask_again() {
        let rule = mock!(Client::batch_get_partition)
            .match_requests(|r| r.catalog_id() == Some(CATALOG) && r.partitions_to_get().len() == 2)
            .then_output(|| {
                BatchGetPartitionOutput::builder()
                    .partitions(partition("a"))
                    .unprocessed_keys(PartitionValueList::builder().values("b").build().expect("key"))
                    .build()
            });
        let glue = mock_client!(aws_sdk_glue, RuleMode::MatchAny, &[&rule]);
        let keys = vec![vec!["a".to_string()], vec!["b".to_string()]];
        let got = GlueCatalog::new(glue, CATALOG).get_partitions("sales", "orders", &keys).await.expect("get");
        assert_eq!(got.found.len(), 1);
        assert_eq!(got.unprocessed, vec![vec!["b".to_string()]]);
    }

    #[tokio::test]
    async fn batch_item_errors_come_back_per_item_and_classified() {
        let rule = mock!(Client::batch_create_partition).then_output(|| {
            let detail = ErrorDetail::builder().error_code("AlreadyExistsException").error_message("exists").build();
            BatchCreatePartitionOutput::builder()
                .errors(PartitionError::builder().partition_values("a").error_detail(detail).build())
                .build()
        });
        let glue = mock_client!(aws_sdk_glue, RuleMode::MatchAny, &[&rule]);
        let parts: Vec<Partition> = ["a", "b"]
            .iter()
            .map(|v| Partition {
                database_name: "s".into(),
                table_name: "o".into(),
                values: vec![v.to_string()],
                ..Default::default()
            })
            .collect();
        let errors = GlueCatalog::new(glue, CATALOG).create_partitions("s", "o", &parts).await.expect("call");
        assert_eq!(errors.len(), 1);
        assert_eq!(
            (errors[0].values.as_slice(), errors[0].error.class),
            (&["a".to_string()][..], ErrorClass::AlreadyExists)
        );
    }

    #[tokio::test]
    async fn a_missing_table_is_none_and_other_errors_keep_their_class_and_code() {
        let missing = mock!(Client::get_table).then_error(|| {
            GetTableError::EntityNotFoundException(
                EntityNotFoundException::builder().message("no table").meta(meta("EntityNotFoundException")).build(),
            )
        });
        let denied = mock!(Client::get_tables).then_error(|| {
            GetTablesError::InvalidInputException(
                InvalidInputException::builder().message("denied by test").meta(meta("InvalidInputException")).build(),
            )
        });
        let glue = mock_client!(aws_sdk_glue, RuleMode::MatchAny, &[&missing, &denied]);
        let c = GlueCatalog::new(glue, CATALOG);
        assert_eq!(c.get_table("sales", "gone").await.expect("not found is an answer"), None);
        let e = c.tables_page("sales", None).await.expect_err("denied");
        assert_eq!(
            (e.operation, e.class, e.code.as_deref()),
            ("GetTables", ErrorClass::Permanent, Some("InvalidInputException"))
        );
        assert_eq!((missing.num_calls(), denied.num_calls()), (1, 1), "one attempt each: no retries inside");
    }
}
