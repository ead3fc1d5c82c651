//! What a catalog holds beside the databases, tables and partitions lakelog replicates, read so
//! that `lakelog diff` lists it instead of skipping it silently: the catalogs under the
//! account's default one (GetCatalogs: S3 Tables and other multi-level catalogs), partition
//! indexes, column statistics and user-defined functions. lakelog replicates none of these.
//!
//! Read-only. Each call is one attempt: a catalog that does not implement a read (an emulator)
//! makes that kind "not checked", which the report says, rather than a failed diff.

use std::fmt;

use async_trait::async_trait;

use super::AwsError;

/// The reads of what lakelog does not replicate, in one catalog.
#[async_trait]
pub trait CatalogExtras: Send + Sync + fmt::Debug {
    /// Ids of the catalogs below the default one (`s3tablescatalog`, federated catalogs, ...), every page.
    async fn catalogs(&self) -> Result<Vec<String>, AwsError>;
    /// Names of a table's partition indexes.
    async fn partition_indexes(&self, database: &str, table: &str) -> Result<Vec<String>, AwsError>;
    /// Which of `columns` have statistics (GetColumnStatisticsForTable takes at most 100 at once).
    async fn column_statistics(&self, database: &str, table: &str, columns: &[String])
        -> Result<Vec<String>, AwsError>;
    /// Names of a database's user-defined functions, every page.
    async fn functions(&self, database: &str) -> Result<Vec<String>, AwsError>;
}
