//! Paginated reads of a Glue catalog into lakelog's model.
//!
//! Every list call follows `NextToken` to the end (the SDK paginators). Partitions are read in
//! `segments` parallel segments (GetPartitions `Segment`), and de-duplicated by their values: a
//! service that ignores segments (the local emulator does) then costs reads, never correctness.
//! Every call, each page included, goes through the reader's [`RetryPolicy`].

use std::collections::HashSet;

use aws_sdk_glue::types::{PartitionValueList, Segment};
use tokio::sync::mpsc;

use super::ReadError;
use crate::aws::glue_convert::{database_from_sdk, partition_from_sdk, table_from_sdk};
use crate::backend::retry::RetryPolicy;
use crate::backend::{AwsError, ErrorClass};
use crate::model::{Database, Partition, Table};

/// Reads one catalog.
#[derive(Debug, Clone)]
pub struct CatalogReader {
    glue: aws_sdk_glue::Client,
    catalog_id: String,
    segments: i32,
    retry: RetryPolicy,
}

/// Glue's limit for BatchGetPartition.
pub const PARTITION_GET_CHUNK: usize = 1000;

/// Partitions read per channel message.
pub type PartitionPage = Vec<Partition>;

impl CatalogReader {
    pub fn new(glue: aws_sdk_glue::Client, catalog_id: &str, segments: i32) -> CatalogReader {
        CatalogReader {
            glue,
            catalog_id: catalog_id.to_string(),
            segments: segments.clamp(1, 10),
            retry: RetryPolicy::default(),
        }
    }

    /// The same reader with another retry policy (a target's: its attempts and concurrency).
    pub fn with_retry(self, retry: RetryPolicy) -> CatalogReader {
        CatalogReader { retry, ..self }
    }

    pub fn catalog_id(&self) -> &str {
        &self.catalog_id
    }

    /// Every database in the catalog.
    pub async fn databases(&self) -> Result<Vec<Database>, ReadError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let req = self.glue.get_databases().catalog_id(&self.catalog_id).set_next_token(token.clone());
            let page = self
                .retry
                .send("glue", "GetDatabases", || req.clone().send())
                .await
                .map_err(|e| ReadError::new("databases", e))?;
            out.extend(page.database_list.iter().map(database_from_sdk));
            token = next_page(token, page.next_token);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// One database, or `None` when it does not exist.
    pub async fn database(&self, name: &str) -> Result<Option<Database>, AwsError> {
        let req = self.glue.get_database().catalog_id(&self.catalog_id).name(name);
        match self.retry.send("glue", "GetDatabase", || req.clone().send()).await {
            Ok(out) => Ok(out.database.as_ref().map(database_from_sdk)),
            Err(e) => none_if_not_found(e),
        }
    }

    /// Every table of a database.
    pub async fn tables(&self, database: &str) -> Result<Vec<Table>, ReadError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let req = self
                .glue
                .get_tables()
                .catalog_id(&self.catalog_id)
                .database_name(database)
                .set_next_token(token.clone());
            let page = self
                .retry
                .send("glue", "GetTables", || req.clone().send())
                .await
                .map_err(|e| ReadError::new(format!("tables of {database}"), e))?;
            out.extend(page.table_list().iter().map(|t| table_from_sdk(t, database)));
            token = next_page(token, page.next_token);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// One table, or `None` when it does not exist.
    pub async fn table(&self, database: &str, name: &str) -> Result<Option<Table>, AwsError> {
        let req = self.glue.get_table().catalog_id(&self.catalog_id).database_name(database).name(name);
        match self.retry.send("glue", "GetTable", || req.clone().send()).await {
            Ok(out) => Ok(out.table.as_ref().map(|t| table_from_sdk(t, database))),
            Err(e) => none_if_not_found(e),
        }
    }

    /// Streams every partition of a table to `out`, a page at a time; returns how many were sent.
    /// Segments are read concurrently; duplicates across segments are dropped.
    pub async fn partitions(
        &self,
        database: &str,
        table: &str,
        out: &mpsc::Sender<PartitionPage>,
    ) -> Result<usize, ReadError> {
        // One page in the channel per segment reader: pages are up to 1,000 partitions each, and
        // memory must not grow with the table.
        let (tx, mut rx) = mpsc::channel::<Result<PartitionPage, ReadError>>(1);
        let mut tasks = tokio::task::JoinSet::new();
        for segment in 0..self.segments {
            let (glue, tx, retry) = (self.glue.clone(), tx.clone(), self.retry.clone());
            let (catalog, db, tb, total) =
                (self.catalog_id.clone(), database.to_string(), table.to_string(), self.segments);
            tasks.spawn(async move {
                let mut req = glue.get_partitions().catalog_id(catalog).database_name(&db).table_name(&tb);
                if total > 1 {
                    match Segment::builder().segment_number(segment).total_segments(total).build() {
                        Ok(s) => req = req.segment(s),
                        Err(e) => {
                            let err = AwsError::invalid_response("glue", "GetPartitions", &e.to_string());
                            let _ = tx.send(Err(ReadError::new(format!("partitions of {db}.{tb}"), err))).await;
                            return;
                        }
                    }
                }
                let mut token: Option<String> = None;
                loop {
                    let req = req.clone().set_next_token(token.clone());
                    let page = retry.send("glue", "GetPartitions", || req.clone().send()).await;
                    let (item, next) = match page {
                        Ok(p) => {
                            let next = next_page(token, p.next_token.clone());
                            (Ok(p.partitions().iter().map(|p| partition_from_sdk(p, &db, &tb)).collect()), next)
                        }
                        Err(e) => (Err(ReadError::new(format!("partitions of {db}.{tb}"), e)), None),
                    };
                    let failed = item.is_err();
                    if tx.send(item).await.is_err() || failed || next.is_none() {
                        return;
                    }
                    token = next;
                }
            });
        }
        drop(tx);
        // One paginated sequence has no duplicates; segments may overlap when a service ignores
        // them. The de-duplication set holds a 128-bit hash per partition, not its values, so a
        // table of 10M partitions costs about 200 MB only when it is read in segments.
        let mut seen: Option<HashSet<u128>> = (self.segments > 1).then(HashSet::new);
        let mut sent = 0;
        while let Some(page) = rx.recv().await {
            let page: PartitionPage = match seen.as_mut() {
                None => page?,
                Some(seen) => page?.into_iter().filter(|p| seen.insert(values_hash(&p.values))).collect(),
            };
            if page.is_empty() {
                continue;
            }
            sent += page.len();
            out.send(page).await.map_err(|_| ReadError::Closed)?;
        }
        // A segment task that died without reporting (a panic) must not pass as a complete read.
        while let Some(joined) = tasks.join_next().await {
            if joined.is_err() {
                return Err(ReadError::new(
                    format!("partitions of {database}.{table}"),
                    AwsError::invalid_response(
                        "glue",
                        "GetPartitions",
                        "a segment reader stopped abnormally; the read is incomplete",
                    ),
                ));
            }
        }
        Ok(sent)
    }

    /// Calls `each` with every page of a table's partitions as it arrives (a page at a time in
    /// memory, however large the table); returns how many partitions there were.
    pub async fn each_partition_page(
        &self,
        database: &str,
        table: &str,
        mut each: impl FnMut(PartitionPage),
    ) -> Result<usize, ReadError> {
        let (tx, mut rx) = mpsc::channel(1);
        let read = async move {
            let read = self.partitions(database, table, &tx).await;
            drop(tx);
            read
        };
        let consume = async {
            while let Some(page) = rx.recv().await {
                each(page);
            }
        };
        let (read, ()) = tokio::join!(read, consume);
        read
    }

    /// The existing partitions among `values`, by BatchGetPartition (1,000 keys a call): for
    /// re-reading a few partitions whole without reading the table.
    pub async fn partitions_by_values(
        &self,
        database: &str,
        table: &str,
        values: &[Vec<String>],
    ) -> Result<Vec<Partition>, ReadError> {
        let mut found = Vec::new();
        for chunk in values.chunks(PARTITION_GET_CHUNK) {
            let got = self.batch_partitions(database, table, chunk).await;
            found.extend(got.map_err(|e| ReadError::new(format!("partitions of {database}.{table}"), e))?);
        }
        Ok(found)
    }

    /// The existing partitions among `values` (one BatchGetPartition chunk of at most
    /// [`PARTITION_GET_CHUNK`], unprocessed keys re-requested until none are left).
    pub async fn batch_partitions(
        &self,
        database: &str,
        table: &str,
        values: &[Vec<String>],
    ) -> Result<Vec<Partition>, AwsError> {
        let mut pending: Vec<PartitionValueList> = values.iter().map(|v| values_list(v)).collect::<Result<_, _>>()?;
        let mut found = Vec::new();
        let mut rounds = 0;
        while !pending.is_empty() {
            rounds += 1;
            let req = self
                .glue
                .batch_get_partition()
                .catalog_id(&self.catalog_id)
                .database_name(database)
                .table_name(table)
                .set_partitions_to_get(Some(std::mem::take(&mut pending)));
            let out = self.retry.send("glue", "BatchGetPartition", || req.clone().send()).await?;
            found.extend(out.partitions().iter().map(|p| partition_from_sdk(p, database, table)));
            pending = out.unprocessed_keys.unwrap_or_default();
            if !pending.is_empty() {
                if rounds >= 10 {
                    return Err(AwsError {
                        service: "glue",
                        operation: "BatchGetPartition",
                        class: ErrorClass::Throttled,
                        code: None,
                        message: format!("{} keys still unprocessed after {rounds} rounds", pending.len()),
                    });
                }
                tokio::time::sleep(std::time::Duration::from_millis(100 * rounds)).await;
            }
        }
        Ok(found)
    }

    /// All partitions of a table, collected (for tests and small tables).
    pub async fn all_partitions(&self, database: &str, table: &str) -> Result<Vec<Partition>, ReadError> {
        let mut all = Vec::new();
        self.each_partition_page(database, table, |page| all.extend(page)).await?;
        Ok(all)
    }
}

/// A 128-bit hash of partition values, unambiguous across value boundaries.
pub fn values_hash(values: &[String]) -> u128 {
    crate::model::identity_hash(values.iter().map(String::as_str))
}

/// The token of the next page, or `None` at the end: no token, an empty one, or the same token
/// again (as the SDK paginators stop on a repeated token rather than loop forever).
fn next_page(current: Option<String>, next: Option<String>) -> Option<String> {
    next.filter(|n| !n.is_empty() && current.as_deref() != Some(n.as_str()))
}

/// One partition's values as the SDK takes them.
pub(crate) fn values_list(values: &[String]) -> Result<PartitionValueList, AwsError> {
    PartitionValueList::builder()
        .set_values(Some(values.to_vec()))
        .build()
        .map_err(|e| AwsError::invalid_response("glue", "PartitionValueList", &e.to_string()))
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
/// Every rule matches only the exact request it answers (catalog, names, token, segment): a
/// request the reader should not make matches no rule, and the mock interceptor panics.
#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use aws_sdk_glue::operation::get_databases::GetDatabasesOutput;
    use aws_sdk_glue::operation::get_partitions::{GetPartitionsError, GetPartitionsInput, GetPartitionsOutput};
    use aws_sdk_glue::operation::get_tables::{GetTablesError, GetTablesOutput};
    use aws_sdk_glue::types::error::{InternalServiceException, InvalidInputException};
    use aws_sdk_glue::Client;
    use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    const CATALOG: &str = "123456789012";

    fn db(name: &str) -> aws_sdk_glue::types::Database {
        aws_sdk_glue::types::Database::builder().name(name).build().expect("db")
    }

    fn table(name: &str) -> aws_sdk_glue::types::Table {
        aws_sdk_glue::types::Table::builder().name(name).build().expect("table")
    }

    /// A partition as GetPartitions returns it: `dt`/`region` values, no names (the reader fills
    /// them in from the request).
    fn partition(dt: &str, region: &str) -> aws_sdk_glue::types::Partition {
        aws_sdk_glue::types::Partition::builder().values(dt).values(region).parameters("source-dt", dt).build()
    }

    /// Whether a GetPartitions request is for `sales.orders`, segment `n` of 3, page `token`.
    fn is_segment(req: &GetPartitionsInput, n: i32, token: Option<&str>) -> bool {
        req.catalog_id() == Some(CATALOG)
            && req.database_name() == Some("sales")
            && req.table_name() == Some("orders")
            && req.segment().is_some_and(|s| s.segment_number == n && s.total_segments == 3)
            && req.next_token() == token
    }

    fn names<T>(items: &[T], name: impl Fn(&T) -> &str) -> Vec<String> {
        items.iter().map(|i| name(i).to_string()).collect()
    }

    #[tokio::test]
    async fn databases_follow_next_token_to_the_end() {
        let page1 = mock!(Client::get_databases)
            .match_requests(|r| r.catalog_id() == Some(CATALOG) && r.next_token().is_none())
            .then_output(|| {
                GetDatabasesOutput::builder()
                    .database_list(db("a"))
                    .database_list(db("b"))
                    .next_token("p2")
                    .build()
                    .expect("out")
            });
        let page2 = mock!(Client::get_databases)
            .match_requests(|r| r.catalog_id() == Some(CATALOG) && r.next_token() == Some("p2"))
            .then_output(|| GetDatabasesOutput::builder().database_list(db("c")).build().expect("out"));
        let glue = mock_client!(aws_sdk_glue, RuleMode::MatchAny, &[&page1, &page2]);
        let dbs = CatalogReader::new(glue, CATALOG, 1).databases().await.expect("databases");
        assert_eq!(names(&dbs, |d| &d.name), vec!["a", "b", "c"]);
        assert_eq!((page1.num_calls(), page2.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn tables_follow_next_token_through_three_pages() {
        let for_sales = |r: &aws_sdk_glue::operation::get_tables::GetTablesInput, token: Option<&str>| {
            r.catalog_id() == Some(CATALOG) && r.database_name() == Some("sales") && r.next_token() == token
        };
        let page1 = mock!(Client::get_tables)
            .match_requests(move |r| for_sales(r, None))
            .then_output(|| GetTablesOutput::builder().table_list(table("t1")).next_token("page-2").build());
        let page2 = mock!(Client::get_tables).match_requests(move |r| for_sales(r, Some("page-2"))).then_output(|| {
            GetTablesOutput::builder().table_list(table("t2")).table_list(table("t3")).next_token("page-3").build()
        });
        let page3 = mock!(Client::get_tables)
            .match_requests(move |r| for_sales(r, Some("page-3")))
            .then_output(|| GetTablesOutput::builder().table_list(table("t4")).build());
        let glue = mock_client!(aws_sdk_glue, RuleMode::MatchAny, &[&page1, &page2, &page3]);
        let tables = CatalogReader::new(glue, CATALOG, 1).tables("sales").await.expect("tables");
        assert_eq!(names(&tables, |t| &t.name), vec!["t1", "t2", "t3", "t4"]);
        assert!(tables.iter().all(|t| t.database_name == "sales"), "{tables:?}");
        assert_eq!((page1.num_calls(), page2.num_calls(), page3.num_calls()), (1, 1, 1));
    }

    /// Three segments, segment 0 in two pages, and ("2026-01-03", "eu") returned by both
    /// segments 1 and 2 (a service glitch must not duplicate it).
    fn three_segments() -> Vec<Rule> {
        vec![
            mock!(Client::get_partitions).match_requests(|r| is_segment(r, 0, None)).then_output(|| {
                GetPartitionsOutput::builder()
                    .partitions(partition("2026-01-01", "eu"))
                    .partitions(partition("2026-01-01", "us"))
                    .next_token("s0-p2")
                    .build()
            }),
            mock!(Client::get_partitions)
                .match_requests(|r| is_segment(r, 0, Some("s0-p2")))
                .then_output(|| GetPartitionsOutput::builder().partitions(partition("2026-01-02", "eu")).build()),
            mock!(Client::get_partitions).match_requests(|r| is_segment(r, 1, None)).then_output(|| {
                GetPartitionsOutput::builder()
                    .partitions(partition("2026-01-02", "us"))
                    .partitions(partition("2026-01-03", "eu"))
                    .build()
            }),
            mock!(Client::get_partitions).match_requests(|r| is_segment(r, 2, None)).then_output(|| {
                GetPartitionsOutput::builder()
                    .partitions(partition("2026-01-03", "eu"))
                    .partitions(partition("2026-01-03", "us"))
                    .build()
            }),
        ]
    }

    fn expected_values() -> Vec<Vec<String>> {
        [
            ("2026-01-01", "eu"),
            ("2026-01-01", "us"),
            ("2026-01-02", "eu"),
            ("2026-01-02", "us"),
            ("2026-01-03", "eu"),
            ("2026-01-03", "us"),
        ]
        .iter()
        .map(|(d, r)| vec![d.to_string(), r.to_string()])
        .collect()
    }

    #[tokio::test]
    async fn partitions_are_read_per_segment_paged_and_deduplicated() {
        let rules = three_segments();
        let glue = mock_client!(aws_sdk_glue, RuleMode::MatchAny, &rules);
        let partitions =
            CatalogReader::new(glue, CATALOG, 3).all_partitions("sales", "orders").await.expect("partitions");
        assert_eq!(partitions.len(), 6, "{partitions:?}");
        let mut values: Vec<Vec<String>> = partitions.iter().map(|p| p.values.clone()).collect();
        values.sort();
        assert_eq!(values, expected_values());
        for p in &partitions {
            assert_eq!((p.database_name.as_str(), p.table_name.as_str()), ("sales", "orders"));
            assert_eq!(p.parameters.get("source-dt"), Some(&p.values[0]));
        }
        assert_eq!(rules.iter().map(Rule::num_calls).collect::<Vec<_>>(), vec![1, 1, 1, 1]);
    }

    #[tokio::test]
    async fn streamed_partitions_count_only_what_was_sent() {
        let rules = three_segments();
        let glue = mock_client!(aws_sdk_glue, RuleMode::MatchAny, &rules);
        let reader = CatalogReader::new(glue, CATALOG, 3);
        let (tx, mut rx) = mpsc::channel(16);
        let sent = reader.partitions("sales", "orders", &tx).await.expect("partitions");
        drop(tx);
        let mut pages = Vec::new();
        while let Some(page) = rx.recv().await {
            pages.push(page);
        }
        assert_eq!(sent, 6);
        assert!(pages.iter().all(|p| !p.is_empty()), "no empty pages: {pages:?}");
        let mut per_values: BTreeMap<Vec<String>, usize> = BTreeMap::new();
        for p in pages.iter().flatten() {
            *per_values.entry(p.values.clone()).or_default() += 1;
        }
        assert_eq!(per_values.keys().cloned().collect::<Vec<_>>(), expected_values());
        assert!(per_values.values().all(|&n| n == 1), "{per_values:?}");
    }

    #[tokio::test]
    async fn one_segment_sends_no_segment_and_still_pages() {
        let page1 = mock!(Client::get_partitions)
            .match_requests(|r| r.segment().is_none() && r.next_token().is_none())
            .then_output(|| {
                GetPartitionsOutput::builder().partitions(partition("2026-01-01", "eu")).next_token("2").build()
            });
        let page2 = mock!(Client::get_partitions)
            .match_requests(|r| r.segment().is_none() && r.next_token() == Some("2"))
            .then_output(|| GetPartitionsOutput::builder().partitions(partition("2026-01-02", "eu")).build());
        let glue = mock_client!(aws_sdk_glue, RuleMode::MatchAny, &[&page1, &page2]);
        let partitions =
            CatalogReader::new(glue, CATALOG, 1).all_partitions("sales", "orders").await.expect("partitions");
        assert_eq!(
            partitions.iter().map(|p| p.values[0].as_str()).collect::<Vec<_>>(),
            vec!["2026-01-01", "2026-01-02"]
        );
    }

    /// A modeled error as the deserializer builds it from a real error response: with its code.
    fn meta(code: &str) -> ErrorMetadata {
        ErrorMetadata::builder().code(code).message("denied by test").build()
    }

    #[tokio::test]
    async fn an_error_page_names_the_database() {
        let page1 = mock!(Client::get_tables)
            .match_requests(|r| r.next_token().is_none())
            .then_output(|| GetTablesOutput::builder().table_list(table("t1")).next_token("page-2").build());
        let page2 = mock!(Client::get_tables).match_requests(|r| r.next_token() == Some("page-2")).then_error(|| {
            GetTablesError::InvalidInputException(
                InvalidInputException::builder().message("denied by test").meta(meta("InvalidInputException")).build(),
            )
        });
        let glue = mock_client!(aws_sdk_glue, RuleMode::MatchAny, &[&page1, &page2]);
        let err = CatalogReader::new(glue, CATALOG, 1).tables("secret_db").await.expect_err("second page fails");
        let text = err.to_string();
        assert!(
            text.contains("tables of secret_db")
                && text.contains("InvalidInputException")
                && text.contains("denied by test"),
            "{text}"
        );
        match &err {
            ReadError::Aws { what, source } => {
                assert_eq!(what, "tables of secret_db");
                assert_eq!(
                    (source.operation, source.class, source.code.as_deref()),
                    ("GetTables", ErrorClass::Permanent, Some("InvalidInputException"))
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!((page1.num_calls(), page2.num_calls()), (1, 1), "a permanent error is not retried");
    }

    #[tokio::test]
    async fn an_access_denied_page_is_permanent_and_names_the_database() {
        // AccessDeniedException is not modeled for GetTables: it arrives as an unhandled error.
        let rule = mock!(Client::get_tables).then_error(|| GetTablesError::generic(meta("AccessDeniedException")));
        let glue = mock_client!(aws_sdk_glue, RuleMode::MatchAny, &[&rule]);
        let err = CatalogReader::new(glue, CATALOG, 1).tables("secret_db").await.expect_err("denied");
        match &err {
            ReadError::Aws { what, source } => {
                assert_eq!(what, "tables of secret_db");
                assert_eq!(
                    (source.class, source.code.as_deref()),
                    (ErrorClass::Permanent, Some("AccessDeniedException"))
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("secret_db"), "{err}");
    }

    #[tokio::test]
    async fn a_failing_segment_fails_the_whole_table() {
        let mut rules = three_segments();
        // Segment 1 fails instead of answering; the others answer normally.
        rules.remove(2);
        rules.push(mock!(Client::get_partitions).match_requests(|r| is_segment(r, 1, None)).then_error(|| {
            GetPartitionsError::InternalServiceException(
                InternalServiceException::builder().message("boom").meta(meta("InternalServiceException")).build(),
            )
        }));
        let glue = mock_client!(aws_sdk_glue, RuleMode::MatchAny, &rules);
        let err =
            CatalogReader::new(glue, CATALOG, 3).all_partitions("sales", "orders").await.expect_err("segment 1 fails");
        match &err {
            ReadError::Aws { what, source } => {
                assert_eq!(what, "partitions of sales.orders");
                assert_eq!((source.operation, source.class), ("GetPartitions", ErrorClass::Retryable));
            }
            other => panic!("{other:?}"),
        }
        assert!(rules[3].num_calls() >= 1);
    }
}
