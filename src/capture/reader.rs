//! Paginated reads of a Glue catalog into lakelog's model.
//!
//! Every list call follows `NextToken` to the end (the SDK paginators). Partitions are read in
//! `segments` parallel segments (GetPartitions `Segment`), and de-duplicated by their values: a
//! service that ignores segments (the local emulator does) then costs reads, never correctness.

use std::collections::HashSet;

use aws_sdk_glue::types::Segment;
use tokio::sync::mpsc;

use super::CaptureError;
use crate::aws::glue_convert::{database_from_sdk, partition_from_sdk, table_from_sdk};
use crate::aws::{AwsError, ErrorClass};
use crate::model::{Database, Partition, Table};

/// Reads one catalog.
#[derive(Debug, Clone)]
pub struct CatalogReader {
    glue: aws_sdk_glue::Client,
    catalog_id: String,
    segments: i32,
}

/// Partitions read per channel message.
pub type PartitionPage = Vec<Partition>;

impl CatalogReader {
    pub fn new(glue: aws_sdk_glue::Client, catalog_id: &str, segments: i32) -> CatalogReader {
        CatalogReader { glue, catalog_id: catalog_id.to_string(), segments: segments.clamp(1, 10) }
    }

    pub fn catalog_id(&self) -> &str {
        &self.catalog_id
    }

    /// Every database in the catalog.
    pub async fn databases(&self) -> Result<Vec<Database>, CaptureError> {
        let mut pages = self.glue.get_databases().catalog_id(&self.catalog_id).into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| CaptureError::aws("databases", AwsError::from_sdk("glue", "GetDatabases", e)))?;
            out.extend(page.database_list.iter().map(database_from_sdk));
        }
        Ok(out)
    }

    /// One database, or `None` when it does not exist.
    pub async fn database(&self, name: &str) -> Result<Option<Database>, AwsError> {
        match self.glue.get_database().catalog_id(&self.catalog_id).name(name).send().await {
            Ok(out) => Ok(out.database.as_ref().map(database_from_sdk)),
            Err(e) => none_if_not_found(AwsError::from_sdk("glue", "GetDatabase", e)),
        }
    }

    /// Every table of a database.
    pub async fn tables(&self, database: &str) -> Result<Vec<Table>, CaptureError> {
        let mut pages = self
            .glue
            .get_tables()
            .catalog_id(&self.catalog_id)
            .database_name(database)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                CaptureError::aws(format!("tables of {database}"), AwsError::from_sdk("glue", "GetTables", e))
            })?;
            out.extend(page.table_list().iter().map(|t| table_from_sdk(t, database)));
        }
        Ok(out)
    }

    /// One table, or `None` when it does not exist.
    pub async fn table(&self, database: &str, name: &str) -> Result<Option<Table>, AwsError> {
        match self.glue.get_table().catalog_id(&self.catalog_id).database_name(database).name(name).send().await {
            Ok(out) => Ok(out.table.as_ref().map(|t| table_from_sdk(t, database))),
            Err(e) => none_if_not_found(AwsError::from_sdk("glue", "GetTable", e)),
        }
    }

    /// Streams every partition of a table to `out`, a page at a time; returns how many were sent.
    /// Segments are read concurrently; duplicates across segments are dropped.
    pub async fn partitions(
        &self,
        database: &str,
        table: &str,
        out: &mpsc::Sender<PartitionPage>,
    ) -> Result<usize, CaptureError> {
        let (tx, mut rx) = mpsc::channel::<Result<PartitionPage, CaptureError>>(4);
        for segment in 0..self.segments {
            let (glue, tx) = (self.glue.clone(), tx.clone());
            let (catalog, db, tb, total) = (self.catalog_id.clone(), database.to_string(), table.to_string(), self.segments);
            tokio::spawn(async move {
                let mut req = glue.get_partitions().catalog_id(catalog).database_name(&db).table_name(&tb);
                if total > 1 {
                    match Segment::builder().segment_number(segment).total_segments(total).build() {
                        Ok(s) => req = req.segment(s),
                        Err(e) => {
                            let err = AwsError::invalid_response("glue", "GetPartitions", &e.to_string());
                            let _ = tx.send(Err(CaptureError::aws(format!("partitions of {db}.{tb}"), err))).await;
                            return;
                        }
                    }
                }
                let mut pages = req.into_paginator().send();
                while let Some(page) = pages.next().await {
                    let item = match page {
                        Ok(p) => Ok(p.partitions().iter().map(|p| partition_from_sdk(p, &db, &tb)).collect()),
                        Err(e) => Err(CaptureError::aws(
                            format!("partitions of {db}.{tb}"),
                            AwsError::from_sdk("glue", "GetPartitions", e),
                        )),
                    };
                    let failed = item.is_err();
                    if tx.send(item).await.is_err() || failed {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let mut seen: HashSet<Vec<String>> = HashSet::new();
        let mut sent = 0;
        while let Some(page) = rx.recv().await {
            let page: PartitionPage = page?.into_iter().filter(|p| seen.insert(p.values.clone())).collect();
            if page.is_empty() {
                continue;
            }
            sent += page.len();
            out.send(page).await.map_err(|_| CaptureError::Closed)?;
        }
        Ok(sent)
    }

    /// All partitions of a table, collected (for tests and small tables).
    pub async fn all_partitions(&self, database: &str, table: &str) -> Result<Vec<Partition>, CaptureError> {
        let (tx, mut rx) = mpsc::channel(16);
        let reader = self.clone();
        let (db, tb) = (database.to_string(), table.to_string());
        let task = tokio::spawn(async move { reader.partitions(&db, &tb, &tx).await });
        let mut all = Vec::new();
        while let Some(page) = rx.recv().await {
            all.extend(page);
        }
        match task.await {
            Ok(r) => r.map(|_| all),
            Err(_) => Err(CaptureError::Closed),
        }
    }
}

fn none_if_not_found<T>(e: AwsError) -> Result<Option<T>, AwsError> {
    if e.class == ErrorClass::NotFound {
        Ok(None)
    } else {
        Err(e)
    }
}

/// The local emulator ignores NextToken/MaxResults and GetPartitions segments, so paging and
/// segment handling are proven here against canned responses in the API reference's shapes.
#[cfg(test)]
mod tests {
    use aws_sdk_glue::operation::get_databases::GetDatabasesOutput;
    use aws_sdk_glue::operation::get_partitions::GetPartitionsOutput;
    use aws_sdk_glue::operation::get_tables::{GetTablesError, GetTablesOutput};
    use aws_sdk_glue::types::error::InvalidInputException;
    use aws_sdk_glue::types::{Database, Partition, Table};
    use aws_sdk_glue::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    use super::*;

    fn db(name: &str) -> Database {
        Database::builder().name(name).build().expect("db")
    }

    fn table(name: &str) -> Table {
        Table::builder().name(name).build().expect("table")
    }

    fn partition(v: &str) -> Partition {
        Partition::builder().values(v).database_name("d").table_name("t").build()
    }

    #[tokio::test]
    async fn databases_and_tables_follow_next_token_to_the_end() {
        let dbs = mock!(Client::get_databases).then_compute_output(|req| match req.next_token() {
            None => GetDatabasesOutput::builder().database_list(db("a")).database_list(db("b")).next_token("p2").build().expect("out"),
            Some(_) => GetDatabasesOutput::builder().database_list(db("c")).build().expect("out"),
        });
        let tables = mock!(Client::get_tables).then_compute_output(|req| match req.next_token() {
            None => GetTablesOutput::builder().table_list(table("t1")).next_token("2").build(),
            Some("2") => GetTablesOutput::builder().table_list(table("t2")).table_list(table("t3")).next_token("3").build(),
            Some(_) => GetTablesOutput::builder().table_list(table("t4")).build(),
        });
        let glue = mock_client!(aws_sdk_glue, RuleMode::MatchAny, &[&dbs, &tables]);
        let reader = CatalogReader::new(glue, "123456789012", 1);
        let names: Vec<_> = reader.databases().await.expect("dbs").into_iter().map(|d| d.name).collect();
        assert_eq!(names, vec!["a", "b", "c"]);
        let names: Vec<_> = reader.tables("a").await.expect("tables").into_iter().map(|t| t.name).collect();
        assert_eq!(names, vec!["t1", "t2", "t3", "t4"]);
        assert_eq!(dbs.num_calls(), 2);
        assert_eq!(tables.num_calls(), 3);
    }

    #[tokio::test]
    async fn partitions_are_read_per_segment_paged_and_deduplicated() {
        let rule = mock!(Client::get_partitions).then_compute_output(|req| {
            let seg = req.segment().map(|s| s.segment_number).unwrap_or(-1);
            let out = GetPartitionsOutput::builder();
            match (seg, req.next_token()) {
                (0, None) => out.partitions(partition("1")).partitions(partition("2")).next_token("more").build(),
                (0, Some(_)) => out.partitions(partition("3")).build(),
                // "4" comes back in two segments: a service glitch must not duplicate it.
                (1, _) => out.partitions(partition("4")).partitions(partition("5")).build(),
                (2, _) => out.partitions(partition("4")).partitions(partition("6")).build(),
                _ => out.build(),
            }
        });
        let glue = mock_client!(aws_sdk_glue, RuleMode::MatchAny, &[&rule]);
        let reader = CatalogReader::new(glue, "123456789012", 3);
        let mut values: Vec<String> = reader.all_partitions("d", "t").await.expect("partitions").into_iter().map(|p| p.values.join(",")).collect();
        values.sort();
        assert_eq!(values, vec!["1", "2", "3", "4", "5", "6"]);
        assert_eq!(rule.num_calls(), 4, "3 segments, one of them with 2 pages");
    }

    #[tokio::test]
    async fn an_error_page_names_the_database() {
        let rule = mock!(Client::get_tables)
            .then_error(|| {
            // As the deserializer builds it from a real error response: with its code.
            let meta = aws_smithy_types::error::ErrorMetadata::builder().code("InvalidInputException").message("no").build();
            GetTablesError::InvalidInputException(InvalidInputException::builder().message("no").meta(meta).build())
        });
        let glue = mock_client!(aws_sdk_glue, RuleMode::MatchAny, &[&rule]);
        let err = CatalogReader::new(glue, "123456789012", 1).tables("secret_db").await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("secret_db") && text.contains("InvalidInputException"), "{text}");
        assert!(matches!(err, CaptureError::Aws { source: AwsError { class: ErrorClass::Permanent, .. }, .. }));
    }
}
