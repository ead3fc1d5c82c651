//! Reading a whole catalog through [`Catalog`]: pages followed to the end, partitions in
//! parallel segments, BatchGetPartition in chunks with unprocessed keys asked again.
//!
//! Every list call follows its token to the end. Partitions are read in `segments` parallel
//! segments, and de-duplicated by their values: a service that ignores segments (the local
//! emulator does) then costs reads, never correctness. Retries are the catalog's own (a
//! [`crate::backend::catalog::RetryingCatalog`]): the reader makes each call once.
//!
//! Must never: hold a whole table's partitions in memory (except in [`CatalogReader::all_partitions`],
//! for small tables and tests), or loop on a token the service repeats.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::ReadError;
use crate::backend::catalog::{Catalog, Page, Segment, PARTITION_GET_CHUNK};
use crate::backend::{AwsError, ErrorClass};
use crate::model::{Database, Partition, Table};

/// Reads one catalog.
#[derive(Debug, Clone)]
pub struct CatalogReader {
    catalog: Arc<dyn Catalog>,
    segments: i32,
    /// The catalog's Lake Formation, when it is replicated too (`source.lakeformation`).
    lake_formation: Option<super::lakeformation::LfReader>,
}

/// Partitions read per channel message.
pub type PartitionPage = Vec<Partition>;

/// Rounds of BatchGetPartition for one chunk before unprocessed keys count as throttling.
const UNPROCESSED_ROUNDS: u64 = 10;

impl CatalogReader {
    /// Reads `catalog`, a table's partitions in `segments` parallel segments (1 to 10).
    pub fn new(catalog: Arc<dyn Catalog>, segments: i32) -> CatalogReader {
        CatalogReader { catalog, segments: segments.clamp(1, 10), lake_formation: None }
    }

    /// Scans read the catalog's Lake Formation too.
    pub fn with_lake_formation(self, lf: super::lakeformation::LfReader) -> CatalogReader {
        CatalogReader { lake_formation: Some(lf), ..self }
    }

    /// The catalog's Lake Formation (`None`: not replicated).
    pub fn lake_formation(&self) -> Option<&super::lakeformation::LfReader> {
        self.lake_formation.as_ref()
    }

    /// The catalog read (for one-off reads and writes through the same retries).
    pub fn catalog(&self) -> &Arc<dyn Catalog> {
        &self.catalog
    }

    pub fn catalog_id(&self) -> &str {
        self.catalog.catalog_id()
    }

    /// Every database in the catalog.
    pub async fn databases(&self) -> Result<Vec<Database>, ReadError> {
        collect_pages(|token| async move { self.catalog.databases_page(token.as_deref()).await })
            .await
            .map_err(|e| ReadError::new("databases", e))
    }

    /// One database, or `None` when it does not exist.
    pub async fn database(&self, name: &str) -> Result<Option<Database>, AwsError> {
        self.catalog.get_database(name).await
    }

    /// Every table of a database.
    pub async fn tables(&self, database: &str) -> Result<Vec<Table>, ReadError> {
        collect_pages(|token| async move { self.catalog.tables_page(database, token.as_deref()).await })
            .await
            .map_err(|e| ReadError::new(format!("tables of {database}"), e))
    }

    /// One table, or `None` when it does not exist.
    pub async fn table(&self, database: &str, name: &str) -> Result<Option<Table>, AwsError> {
        self.catalog.get_table(database, name).await
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
        let total = self.segments;
        for number in 0..total {
            let (catalog, tx) = (self.catalog.clone(), tx.clone());
            let (db, tb) = (database.to_string(), table.to_string());
            tasks.spawn(async move {
                let segment = (total > 1).then_some(Segment { number, total });
                let mut token: Option<String> = None;
                loop {
                    let page = catalog.partitions_page(&db, &tb, segment, token.as_deref()).await;
                    let (item, next) = match page {
                        Ok(p) => {
                            let next = next_page(token, p.next_token);
                            (Ok(p.items), next)
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

    /// Calls `each` with every page of a table's partition values, read without their columns
    /// (`ExcludeColumnSchema`: a fraction of the bytes); returns how many there were. For finding
    /// the partitions a target has beyond a state, which needs nothing else of them.
    pub async fn each_partition_values_page(
        &self,
        database: &str,
        table: &str,
        mut each: impl FnMut(Vec<Vec<String>>),
    ) -> Result<usize, ReadError> {
        let (mut token, mut count) = (None::<String>, 0);
        loop {
            let page = self.catalog.partition_values_page(database, table, token.as_deref()).await;
            let page = page.map_err(|e| ReadError::new(format!("partitions of {database}.{table}"), e))?;
            count += page.items.len();
            let next = next_page(token, page.next_token);
            each(page.items);
            match next {
                Some(t) => token = Some(t),
                None => return Ok(count),
            }
        }
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

    /// The existing partitions among `values` (one chunk of at most [`PARTITION_GET_CHUNK`]),
    /// unprocessed keys asked again (after a short pause) until none are left.
    pub async fn batch_partitions(
        &self,
        database: &str,
        table: &str,
        values: &[Vec<String>],
    ) -> Result<Vec<Partition>, AwsError> {
        // The keys are copied only when some come back unprocessed.
        let mut pending = std::borrow::Cow::Borrowed(values);
        let mut found = Vec::new();
        let mut rounds = 0;
        while !pending.is_empty() {
            rounds += 1;
            let got = self.catalog.get_partitions(database, table, &pending).await?;
            found.extend(got.found);
            pending = std::borrow::Cow::Owned(got.unprocessed);
            if !pending.is_empty() {
                if rounds >= UNPROCESSED_ROUNDS {
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

/// Every item of a paged list, `page` called with each page's token until the last.
pub(super) async fn collect_pages<T, F, Fut>(page: F) -> Result<Vec<T>, AwsError>
where
    F: Fn(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, AwsError>>,
{
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let p = page(token.clone()).await?;
        out.extend(p.items);
        token = next_page(token, p.next_token);
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// Paging, segments and de-duplication on the in-memory catalog (the requests Glue gets for
/// them are pinned in `crate::aws::glue`'s tests).
#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::backend::memory::catalog::MemoryCatalog;
    use crate::model::CatalogObject;

    fn catalog(page_size: usize) -> Arc<MemoryCatalog> {
        let c = MemoryCatalog::new("123456789012").page_size(page_size);
        c.put(CatalogObject::Database(Database { name: "sales".into(), ..Default::default() }));
        c.put(CatalogObject::Table(Table {
            database_name: "sales".into(),
            name: "orders".into(),
            ..Default::default()
        }));
        Arc::new(c)
    }

    fn reader(c: &Arc<MemoryCatalog>, segments: i32) -> CatalogReader {
        CatalogReader::new(c.clone(), segments)
    }

    fn put_partitions(c: &MemoryCatalog, n: usize) -> Vec<Vec<String>> {
        let values: Vec<Vec<String>> = (0..n).map(|i| vec![format!("2026-01-{:02}", i + 1), "eu".into()]).collect();
        for v in &values {
            c.put(CatalogObject::Partition(Partition {
                database_name: "sales".into(),
                table_name: "orders".into(),
                values: v.clone(),
                ..Default::default()
            }));
        }
        values
    }

    #[tokio::test]
    async fn databases_and_tables_follow_the_token_to_the_end() {
        let c = catalog(2);
        for name in ["a", "b", "c", "d"] {
            c.put(CatalogObject::Database(Database { name: name.into(), ..Default::default() }));
            c.put(CatalogObject::Table(Table {
                database_name: "sales".into(),
                name: name.into(),
                ..Default::default()
            }));
        }
        let dbs = reader(&c, 1).databases().await.expect("databases");
        assert_eq!(dbs.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), vec!["a", "b", "c", "d", "sales"]);
        assert_eq!(c.calls_of("GetDatabases"), 3);
        let tables = reader(&c, 1).tables("sales").await.expect("tables");
        assert_eq!(tables.len(), 5);
        assert_eq!(c.calls_of("GetTables"), 3);
    }

    #[tokio::test]
    async fn partition_values_are_listed_page_by_page_to_the_end_and_a_missing_table_says_so() {
        let c = catalog(2);
        let mut expected = put_partitions(&c, 5);
        let mut pages = Vec::new();
        let n =
            reader(&c, 1).each_partition_values_page("sales", "orders", |page| pages.push(page)).await.expect("values");
        assert_eq!((n, pages.iter().map(Vec::len).collect::<Vec<_>>()), (5, vec![2, 2, 1]));
        let mut got: Vec<Vec<String>> = pages.into_iter().flatten().collect();
        got.sort();
        expected.sort();
        assert_eq!(got, expected);
        assert_eq!(c.calls_of("GetPartitions"), 3);
        let missing = reader(&c, 1).each_partition_values_page("sales", "nope", |_| {}).await;
        let not_found = matches!(&missing, Err(ReadError::Aws { source, .. }) if source.class == ErrorClass::NotFound);
        assert!(not_found, "a missing table is an error the caller can tell: {missing:?}");
    }

    #[tokio::test]
    async fn partitions_are_read_per_segment_and_paged() {
        let c = catalog(2);
        let mut expected = put_partitions(&c, 9);
        let mut got: Vec<Vec<String>> = reader(&c, 3)
            .all_partitions("sales", "orders")
            .await
            .expect("partitions")
            .into_iter()
            .map(|p| p.values)
            .collect();
        got.sort();
        expected.sort();
        assert_eq!(got, expected);
        // Three segments of 9 partitions in pages of 2: more than one page per segment overall.
        assert!(c.calls_of("GetPartitions") > 3, "{:?}", c.calls());
    }

    #[tokio::test]
    async fn segments_a_service_ignores_cost_reads_never_duplicates() {
        let c = Arc::new(MemoryCatalog::new("123456789012").page_size(4).ignoring_segments());
        c.put(CatalogObject::Table(Table {
            database_name: "sales".into(),
            name: "orders".into(),
            ..Default::default()
        }));
        let expected = put_partitions(&c, 6);
        let (tx, mut rx) = mpsc::channel(16);
        let sent = reader(&c, 3).partitions("sales", "orders", &tx).await.expect("partitions");
        drop(tx);
        let mut per_values: BTreeMap<Vec<String>, usize> = BTreeMap::new();
        while let Some(page) = rx.recv().await {
            assert!(!page.is_empty(), "no empty pages");
            for p in page {
                *per_values.entry(p.values).or_default() += 1;
            }
        }
        assert_eq!(sent, 6);
        assert_eq!(per_values.keys().cloned().collect::<Vec<_>>(), expected);
        assert!(per_values.values().all(|&n| n == 1), "{per_values:?}");
        assert_eq!(c.calls_of("GetPartitions"), 6, "every segment read everything, in two pages");
    }

    #[tokio::test]
    async fn an_error_names_what_was_being_read() {
        let c = catalog(2);
        c.fail_next("GetTables", 1, ErrorClass::Permanent);
        let err = reader(&c, 1).tables("sales").await.expect_err("denied");
        match &err {
            ReadError::Aws { what, source } => {
                assert_eq!(what, "tables of sales");
                assert_eq!((source.operation, source.class), ("GetTables", ErrorClass::Permanent));
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("tables of sales"), "{err}");
    }

    #[tokio::test]
    async fn a_failing_segment_fails_the_whole_table() {
        let c = catalog(2);
        put_partitions(&c, 9);
        c.fail_next("GetPartitions", 1, ErrorClass::Retryable);
        let err = reader(&c, 3).all_partitions("sales", "orders").await.expect_err("one segment fails");
        match &err {
            ReadError::Aws { what, source } => {
                assert_eq!(what, "partitions of sales.orders");
                assert_eq!((source.operation, source.class), ("GetPartitions", ErrorClass::Retryable));
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn partitions_by_values_reads_in_chunks_and_skips_missing_ones() {
        let c = catalog(2);
        let mut values = put_partitions(&c, 3);
        values.extend((0..PARTITION_GET_CHUNK).map(|i| vec![format!("missing-{i}"), "eu".into()]));
        let found = reader(&c, 1).partitions_by_values("sales", "orders", &values).await.expect("read");
        assert_eq!(found.len(), 3);
        assert_eq!(c.calls_of("BatchGetPartition"), 2, "{} keys in chunks of {PARTITION_GET_CHUNK}", values.len());
    }
}
