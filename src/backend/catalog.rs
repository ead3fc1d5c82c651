//! One Glue Data Catalog, read and written in lakelog's model: the [`Catalog`] trait, used for the
//! source and for every target alike, and [`RetryingCatalog`], which puts any catalog behind a
//! [`RetryPolicy`].
//!
//! # Guarantees every implementation gives
//! - **One method, one API call**: a list method returns one page (its token continues it), a batch
//!   method takes one chunk within Glue's limits ([`PARTITION_WRITE_CHUNK`],
//!   [`PARTITION_DELETE_CHUNK`], [`PARTITION_GET_CHUNK`]). Paging, chunking and segment fan-out
//!   are the caller's (`crate::catalog::reader`, the applier).
//! - **One attempt, no retries inside**: a failure is returned classified ([`ErrorClass`]) as the
//!   service answered it; [`RetryingCatalog`] is where retries happen, so production and the
//!   in-memory fake go through the same policy.
//! - **Not found**: `get_database` / `get_table` answer `Ok(None)` for a missing object (a table in
//!   a missing database included). Every other call on a missing object, or under a missing
//!   parent (a table created in a missing database, partitions of a missing table, the tables of
//!   a missing database), fails with [`ErrorClass::NotFound`].
//! - **Creates do not overwrite**: creating an existing object fails with
//!   [`ErrorClass::AlreadyExists`] (the caller updates instead).
//! - **Updates are in place**: never delete-and-recreate (that would drop grants, history and
//!   partitions); a table update honours the implementation's SkipArchive setting.
//! - **Batch writes fail per item**: one rejected partition comes back as an [`ItemError`] beside
//!   the accepted ones; the whole call fails only when nothing of it was applied (a missing
//!   table, throttling of the call, a chunk over the limit).
//! - **The catalog id is always explicit**: every request names [`Catalog::catalog_id`], never the
//!   caller's default account.
//!
//! Must never: retry, sleep, or hold state between calls beyond what the service itself holds.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

use super::error::AwsError;
use super::retry::RetryPolicy;
use crate::model::{Database, Partition, Table};

#[cfg(doc)]
use super::error::ErrorClass;

/// Glue's limit for BatchCreatePartition and BatchUpdatePartition.
pub const PARTITION_WRITE_CHUNK: usize = 100;
/// Glue's limit for BatchDeletePartition.
pub const PARTITION_DELETE_CHUNK: usize = 25;
/// Glue's limit for BatchGetPartition.
pub const PARTITION_GET_CHUNK: usize = 1000;

/// One page of a list call.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Where the next page starts; `None` (or empty, or the same token again) at the end.
    pub next_token: Option<String>,
}

/// One of `total` disjoint slices of a table's partitions (GetPartitions `Segment`), read in
/// parallel. A service may ignore it and return everything in every segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub number: i32,
    pub total: i32,
}

/// What one BatchGetPartition call answered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchGet {
    /// The requested partitions that exist (missing ones are simply absent).
    pub found: Vec<Partition>,
    /// Keys the service did not get to (under load): ask again for these.
    pub unprocessed: Vec<Vec<String>>,
}

/// One failed item of a batch call.
#[derive(Debug, Clone)]
pub struct ItemError {
    pub values: Vec<String>,
    pub error: AwsError,
}

/// Read and write access to one Glue Data Catalog. See the module doc for what every
/// implementation guarantees.
#[async_trait]
pub trait Catalog: Send + Sync + Debug {
    /// The catalog every request names.
    fn catalog_id(&self) -> &str;

    async fn get_database(&self, name: &str) -> Result<Option<Database>, AwsError>;
    /// One GetDatabases page from `token` (`None`: the first).
    async fn databases_page(&self, token: Option<&str>) -> Result<Page<Database>, AwsError>;
    async fn create_database(&self, db: &Database) -> Result<(), AwsError>;
    async fn update_database(&self, db: &Database) -> Result<(), AwsError>;
    async fn delete_database(&self, name: &str) -> Result<(), AwsError>;

    async fn get_table(&self, database: &str, name: &str) -> Result<Option<Table>, AwsError>;
    /// One GetTables page of `database` from `token`.
    async fn tables_page(&self, database: &str, token: Option<&str>) -> Result<Page<Table>, AwsError>;
    async fn create_table(&self, table: &Table) -> Result<(), AwsError>;
    async fn update_table(&self, table: &Table) -> Result<(), AwsError>;
    async fn delete_table(&self, database: &str, name: &str) -> Result<(), AwsError>;

    /// One GetPartitions page of a table (of one `segment`, or all of it) from `token`.
    async fn partitions_page(
        &self,
        database: &str,
        table: &str,
        segment: Option<Segment>,
        token: Option<&str>,
    ) -> Result<Page<Partition>, AwsError>;
    /// One GetPartitions page of a table's partition values only, without their columns
    /// (`ExcludeColumnSchema`): what finding the partitions a target has beyond a state needs.
    /// By default the values of a [`Catalog::partitions_page`].
    async fn partition_values_page(
        &self,
        database: &str,
        table: &str,
        token: Option<&str>,
    ) -> Result<Page<Vec<String>>, AwsError> {
        let page = self.partitions_page(database, table, None, token).await?;
        Ok(Page { items: page.items.into_iter().map(|p| p.values).collect(), next_token: page.next_token })
    }
    /// One BatchGetPartition call (at most [`PARTITION_GET_CHUNK`] keys).
    async fn get_partitions(&self, database: &str, table: &str, values: &[Vec<String>]) -> Result<BatchGet, AwsError>;
    /// One BatchCreatePartition call (at most [`PARTITION_WRITE_CHUNK`]).
    async fn create_partitions(
        &self,
        database: &str,
        table: &str,
        parts: &[Partition],
    ) -> Result<Vec<ItemError>, AwsError>;
    /// One BatchUpdatePartition call (at most [`PARTITION_WRITE_CHUNK`]), each in place.
    async fn update_partitions(
        &self,
        database: &str,
        table: &str,
        parts: &[Partition],
    ) -> Result<Vec<ItemError>, AwsError>;
    /// One BatchDeletePartition call (at most [`PARTITION_DELETE_CHUNK`]); a missing partition is
    /// an item error of class NotFound.
    async fn delete_partitions(
        &self,
        database: &str,
        table: &str,
        values: &[Vec<String>],
    ) -> Result<Vec<ItemError>, AwsError>;
}

/// A catalog whose every call goes through a [`RetryPolicy`] (for a target: its
/// `apply.max_attempts` and adaptive concurrency). A returned retryable error has used all its
/// attempts. Item errors of batch calls are the caller's to retry: the call itself succeeded.
#[derive(Debug, Clone)]
pub struct RetryingCatalog {
    inner: Arc<dyn Catalog>,
    policy: RetryPolicy,
}

impl RetryingCatalog {
    pub fn new(inner: Arc<dyn Catalog>, policy: RetryPolicy) -> RetryingCatalog {
        RetryingCatalog { inner, policy }
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }
}

#[async_trait]
impl Catalog for RetryingCatalog {
    fn catalog_id(&self) -> &str {
        self.inner.catalog_id()
    }

    async fn get_database(&self, name: &str) -> Result<Option<Database>, AwsError> {
        self.policy.run(|| self.inner.get_database(name)).await
    }

    async fn databases_page(&self, token: Option<&str>) -> Result<Page<Database>, AwsError> {
        self.policy.run(|| self.inner.databases_page(token)).await
    }

    async fn create_database(&self, db: &Database) -> Result<(), AwsError> {
        self.policy.run(|| self.inner.create_database(db)).await
    }

    async fn update_database(&self, db: &Database) -> Result<(), AwsError> {
        self.policy.run(|| self.inner.update_database(db)).await
    }

    async fn delete_database(&self, name: &str) -> Result<(), AwsError> {
        self.policy.run(|| self.inner.delete_database(name)).await
    }

    async fn get_table(&self, database: &str, name: &str) -> Result<Option<Table>, AwsError> {
        self.policy.run(|| self.inner.get_table(database, name)).await
    }

    async fn tables_page(&self, database: &str, token: Option<&str>) -> Result<Page<Table>, AwsError> {
        self.policy.run(|| self.inner.tables_page(database, token)).await
    }

    async fn create_table(&self, table: &Table) -> Result<(), AwsError> {
        self.policy.run(|| self.inner.create_table(table)).await
    }

    async fn update_table(&self, table: &Table) -> Result<(), AwsError> {
        self.policy.run(|| self.inner.update_table(table)).await
    }

    async fn delete_table(&self, database: &str, name: &str) -> Result<(), AwsError> {
        self.policy.run(|| self.inner.delete_table(database, name)).await
    }

    async fn partitions_page(
        &self,
        database: &str,
        table: &str,
        segment: Option<Segment>,
        token: Option<&str>,
    ) -> Result<Page<Partition>, AwsError> {
        self.policy.run(|| self.inner.partitions_page(database, table, segment, token)).await
    }

    async fn partition_values_page(
        &self,
        database: &str,
        table: &str,
        token: Option<&str>,
    ) -> Result<Page<Vec<String>>, AwsError> {
        self.policy.run(|| self.inner.partition_values_page(database, table, token)).await
    }

    async fn get_partitions(&self, database: &str, table: &str, values: &[Vec<String>]) -> Result<BatchGet, AwsError> {
        self.policy.run(|| self.inner.get_partitions(database, table, values)).await
    }

    async fn create_partitions(
        &self,
        database: &str,
        table: &str,
        parts: &[Partition],
    ) -> Result<Vec<ItemError>, AwsError> {
        self.policy.run(|| self.inner.create_partitions(database, table, parts)).await
    }

    async fn update_partitions(
        &self,
        database: &str,
        table: &str,
        parts: &[Partition],
    ) -> Result<Vec<ItemError>, AwsError> {
        self.policy.run(|| self.inner.update_partitions(database, table, parts)).await
    }

    async fn delete_partitions(
        &self,
        database: &str,
        table: &str,
        values: &[Vec<String>],
    ) -> Result<Vec<ItemError>, AwsError> {
        self.policy.run(|| self.inner.delete_partitions(database, table, values)).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::backend::memory::catalog::MemoryCatalog;
    use crate::backend::ErrorClass;

    fn retrying(c: &Arc<MemoryCatalog>, attempts: u32) -> RetryingCatalog {
        let policy = RetryPolicy::new(attempts).with_backoff(Duration::from_millis(1), Duration::from_millis(2));
        RetryingCatalog::new(c.clone(), policy)
    }

    #[tokio::test]
    async fn retryable_failures_are_attempted_again_and_permanent_ones_are_not() {
        let c = Arc::new(MemoryCatalog::new("1"));
        c.throttle_next("GetDatabase", 2);
        assert_eq!(retrying(&c, 3).get_database("d").await.expect("third attempt answers"), None);
        assert_eq!(c.calls_of("GetDatabase"), 3);

        c.fail_next("CreateDatabase", 1, ErrorClass::Permanent);
        let db = Database { name: "d".into(), ..Default::default() };
        let e = retrying(&c, 3).create_database(&db).await.expect_err("permanent");
        assert_eq!((e.class, c.calls_of("CreateDatabase")), (ErrorClass::Permanent, 1));

        c.throttle_always("GetTables");
        let e = retrying(&c, 4).tables_page("d", None).await.expect_err("gives up");
        assert_eq!((e.class, c.calls_of("GetTables")), (ErrorClass::Throttled, 4));
    }
}
