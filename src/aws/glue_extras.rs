//! [`GlueExtras`]: the Glue reads behind [`CatalogExtras`] (GetCatalogs, GetPartitionIndexes,
//! GetColumnStatisticsForTable, GetUserDefinedFunctions), every page, one attempt per request
//! (see `backend::extras` for why), always with the catalog id.

use async_trait::async_trait;

use crate::backend::extras::CatalogExtras;
use crate::backend::AwsError;

/// GetColumnStatisticsForTable takes at most 100 column names.
const STATISTICS_COLUMNS: usize = 100;

/// One catalog's extras through an SDK client.
#[derive(Debug, Clone)]
pub struct GlueExtras {
    glue: aws_sdk_glue::Client,
    catalog_id: String,
}

impl GlueExtras {
    pub fn new(glue: aws_sdk_glue::Client, catalog_id: &str) -> GlueExtras {
        GlueExtras { glue, catalog_id: catalog_id.to_string() }
    }
}

fn failed<E>(
    operation: &'static str,
) -> impl FnOnce(aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>) -> AwsError
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    move |e| AwsError::from_sdk("glue", operation, e)
}

#[async_trait]
impl CatalogExtras for GlueExtras {
    async fn catalogs(&self) -> Result<Vec<String>, AwsError> {
        let (mut out, mut token) = (Vec::new(), None);
        loop {
            let page = self
                .glue
                .get_catalogs()
                .parent_catalog_id(&self.catalog_id)
                .recursive(true)
                .set_next_token(token)
                .send()
                .await
                .map_err(failed("GetCatalogs"))?;
            out.extend(page.catalog_list().iter().map(|c| c.catalog_id().unwrap_or(c.name()).to_string()));
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    async fn partition_indexes(&self, database: &str, table: &str) -> Result<Vec<String>, AwsError> {
        let (mut out, mut token) = (Vec::new(), None);
        loop {
            let page = self
                .glue
                .get_partition_indexes()
                .catalog_id(&self.catalog_id)
                .database_name(database)
                .table_name(table)
                .set_next_token(token)
                .send()
                .await
                .map_err(failed("GetPartitionIndexes"))?;
            out.extend(page.partition_index_descriptor_list().iter().map(|i| i.index_name().to_string()));
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    async fn column_statistics(
        &self,
        database: &str,
        table: &str,
        columns: &[String],
    ) -> Result<Vec<String>, AwsError> {
        let mut out = Vec::new();
        for chunk in columns.chunks(STATISTICS_COLUMNS) {
            let answer = self
                .glue
                .get_column_statistics_for_table()
                .catalog_id(&self.catalog_id)
                .database_name(database)
                .table_name(table)
                .set_column_names(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(failed("GetColumnStatisticsForTable"))?;
            out.extend(answer.column_statistics_list().iter().map(|s| s.column_name().to_string()));
        }
        Ok(out)
    }

    async fn functions(&self, database: &str) -> Result<Vec<String>, AwsError> {
        let (mut out, mut token) = (Vec::new(), None);
        loop {
            let page = self
                .glue
                .get_user_defined_functions()
                .catalog_id(&self.catalog_id)
                .database_name(database)
                .pattern("*")
                .set_next_token(token)
                .send()
                .await
                .map_err(failed("GetUserDefinedFunctions"))?;
            out.extend(page.user_defined_functions().iter().filter_map(|f| f.function_name().map(str::to_string)));
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                return Ok(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_glue::operation::get_catalogs::GetCatalogsOutput;
    use aws_sdk_glue::operation::get_column_statistics_for_table::GetColumnStatisticsForTableOutput;
    use aws_sdk_glue::operation::get_partition_indexes::GetPartitionIndexesOutput;
    use aws_sdk_glue::operation::get_user_defined_functions::GetUserDefinedFunctionsOutput;
    use aws_sdk_glue::types::{
        Catalog, ColumnStatistics, ColumnStatisticsData, ColumnStatisticsType, KeySchemaElement,
        PartitionIndexDescriptor, PartitionIndexStatus, UserDefinedFunction,
    };
    use aws_sdk_glue::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    use super::*;

    /// Mocked (moto implements none of GetCatalogs, GetColumnStatisticsForTable and
    /// GetUserDefinedFunctions, and answers GetPartitionIndexes with an empty list), with the
    /// response shapes of the Glue API reference; pages are followed.
    #[tokio::test]
    async fn mocked_glue_extras_read_every_page_with_the_catalog_id() {
        let catalogs_1 = mock!(Client::get_catalogs)
            .match_requests(|r| r.parent_catalog_id() == Some("111111111111") && r.next_token().is_none())
            .then_output(|| {
                GetCatalogsOutput::builder()
                    .catalog_list(
                        Catalog::builder()
                            .name("s3tablescatalog")
                            .catalog_id("111111111111:s3tablescatalog")
                            .build()
                            .expect("catalog"),
                    )
                    .next_token("p2")
                    .build()
                    .expect("output")
            });
        let catalogs_2 =
            mock!(Client::get_catalogs).match_requests(|r| r.next_token() == Some("p2")).then_output(|| {
                GetCatalogsOutput::builder()
                    .catalog_list(Catalog::builder().name("fed").build().expect("catalog"))
                    .build()
                    .expect("output")
            });
        let indexes = mock!(Client::get_partition_indexes)
            .match_requests(|r| r.catalog_id() == Some("111111111111") && r.table_name() == Some("t"))
            .then_output(|| {
                GetPartitionIndexesOutput::builder()
                    .partition_index_descriptor_list(
                        PartitionIndexDescriptor::builder()
                            .index_name("by_dt")
                            .keys(KeySchemaElement::builder().name("dt").r#type("string").build().expect("key"))
                            .index_status(PartitionIndexStatus::Active)
                            .build()
                            .expect("index"),
                    )
                    .build()
            });
        let statistics = mock!(Client::get_column_statistics_for_table)
            .match_requests(|r| r.column_names().len() == 2)
            .then_output(|| {
                let data = ColumnStatisticsData::builder().r#type(ColumnStatisticsType::Long).build().expect("data");
                GetColumnStatisticsForTableOutput::builder()
                    .column_statistics_list(
                        ColumnStatistics::builder()
                            .column_name("id")
                            .column_type("bigint")
                            .analyzed_time(aws_smithy_types::DateTime::from_secs(1))
                            .statistics_data(data)
                            .build()
                            .expect("statistics"),
                    )
                    .build()
            });
        let functions = mock!(Client::get_user_defined_functions)
            .match_requests(|r| r.database_name() == Some("db") && r.catalog_id() == Some("111111111111"))
            .then_output(|| {
                GetUserDefinedFunctionsOutput::builder()
                    .user_defined_functions(UserDefinedFunction::builder().function_name("to_eur").build())
                    .build()
            });
        let glue = mock_client!(
            aws_sdk_glue,
            RuleMode::MatchAny,
            &[&catalogs_1, &catalogs_2, &indexes, &statistics, &functions]
        );
        let extras = GlueExtras::new(glue, "111111111111");
        assert_eq!(extras.catalogs().await.expect("catalogs"), ["111111111111:s3tablescatalog", "fed"]);
        assert_eq!(extras.partition_indexes("db", "t").await.expect("indexes"), ["by_dt"]);
        let columns = ["id".to_string(), "name".to_string()];
        assert_eq!(extras.column_statistics("db", "t", &columns).await.expect("statistics"), ["id"]);
        assert_eq!(extras.functions("db").await.expect("functions"), ["to_eur"]);
    }
}
