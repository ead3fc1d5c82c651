//! One catalog's Lake Formation, read and written in lakelog's model (`model::lakeformation`):
//! the [`LakeFormation`] trait, used for the source and for every target alike.
//!
//! # Guarantees every implementation gives
//! - **One method, one API call**: a list method returns one page (its token continues it); a
//!   batch method takes at most [`GRANT_BATCH`] entries. Paging and chunking are the caller's.
//! - **One attempt, no retries inside**: a failure is returned classified ([`ErrorClass`]) as the
//!   service answered it; the caller's [`RetryPolicy`](super::retry::RetryPolicy) retries.
//! - **Normal forms**: what a read returns is normalized (`Permission::new`, sorted tag values),
//!   so equal states compare equal whatever order the service listed them in.
//! - **Not found**: a `get_*` of a missing object answers `Ok(None)`.
//! - **Not offered**: a list of a feature the endpoint does not offer at all (an older Region, an
//!   emulator) answers `Ok(None)`, never an empty page, so the caller can tell "none" from
//!   "cannot know".
//! - **Batch writes fail per entry**: one rejected grant comes back as an [`EntryError`] beside
//!   the accepted ones; the whole call fails only when nothing of it was applied.
//! - **The catalog id is always explicit**: every request names [`LakeFormation::catalog_id`].
//!
//! Must never: retry, sleep, or hold state between calls beyond what the service itself holds.

use std::fmt::Debug;

use async_trait::async_trait;

use super::catalog::Page;
use super::error::AwsError;
use crate::model::lakeformation::{
    DataCellsFilter, DataLakeSettings, DataLocation, LfResource, LfTag, LfTagExpression, LfTagPair, OptIn, Permission,
    ResourceTags,
};

#[cfg(doc)]
use super::error::ErrorClass;

/// Lake Formation's limit for BatchGrantPermissions and BatchRevokePermissions.
pub const GRANT_BATCH: usize = 20;

/// One failed entry of a batch call: its index in the request and why.
#[derive(Debug, Clone)]
pub struct EntryError {
    pub index: usize,
    pub error: AwsError,
}

/// Read and write access to one catalog's Lake Formation. See the module doc for what every
/// implementation guarantees.
#[async_trait]
pub trait LakeFormation: Send + Sync + Debug {
    /// The catalog every request names.
    fn catalog_id(&self) -> &str;

    /// One ListPermissions page: every explicit grant of the catalog, or (with `resource`) the
    /// grants on that resource.
    async fn permissions_page(
        &self,
        resource: Option<&LfResource>,
        token: Option<&str>,
    ) -> Result<Page<Permission>, AwsError>;
    /// One BatchGrantPermissions call (at most [`GRANT_BATCH`] entries).
    async fn grant(&self, entries: &[Permission]) -> Result<Vec<EntryError>, AwsError>;
    /// One BatchRevokePermissions call (at most [`GRANT_BATCH`] entries): each entry's
    /// permissions and grantable permissions are revoked.
    async fn revoke(&self, entries: &[Permission]) -> Result<Vec<EntryError>, AwsError>;

    async fn lf_tags_page(&self, token: Option<&str>) -> Result<Page<LfTag>, AwsError>;
    async fn get_lf_tag(&self, key: &str) -> Result<Option<LfTag>, AwsError>;
    async fn create_lf_tag(&self, tag: &LfTag) -> Result<(), AwsError>;
    async fn update_lf_tag(&self, key: &str, add: &[String], delete: &[String]) -> Result<(), AwsError>;
    async fn delete_lf_tag(&self, key: &str) -> Result<(), AwsError>;

    /// The tags on a database (`table` none) or a table and its columns; `Ok(None)`: no such
    /// resource.
    async fn resource_tags(&self, database: &str, table: Option<&str>) -> Result<Option<ResourceTags>, AwsError>;
    /// AddLFTagsToResource on the database or table, or (with `column`) one of its columns.
    async fn add_resource_tags(
        &self,
        database: &str,
        table: Option<&str>,
        column: Option<&str>,
        tags: &[LfTagPair],
    ) -> Result<(), AwsError>;
    /// RemoveLFTagsFromResource, as [`LakeFormation::add_resource_tags`].
    async fn remove_resource_tags(
        &self,
        database: &str,
        table: Option<&str>,
        column: Option<&str>,
        tags: &[LfTagPair],
    ) -> Result<(), AwsError>;

    async fn tag_expressions_page(&self, token: Option<&str>) -> Result<Option<Page<LfTagExpression>>, AwsError>;
    async fn get_tag_expression(&self, name: &str) -> Result<Option<LfTagExpression>, AwsError>;
    /// Creates the expression, or updates it when `exists`.
    async fn put_tag_expression(&self, expression: &LfTagExpression, exists: bool) -> Result<(), AwsError>;
    async fn delete_tag_expression(&self, name: &str) -> Result<(), AwsError>;

    async fn data_cells_filters_page(&self, token: Option<&str>) -> Result<Option<Page<DataCellsFilter>>, AwsError>;
    async fn get_data_cells_filter(
        &self,
        database: &str,
        table: &str,
        name: &str,
    ) -> Result<Option<DataCellsFilter>, AwsError>;
    /// Creates the filter, or (with `version`, the target's current one) updates it.
    async fn put_data_cells_filter(&self, filter: &DataCellsFilter, version: Option<&str>) -> Result<(), AwsError>;
    async fn delete_data_cells_filter(&self, database: &str, table: &str, name: &str) -> Result<(), AwsError>;

    async fn data_lake_settings(&self) -> Result<DataLakeSettings, AwsError>;
    async fn put_data_lake_settings(&self, settings: &DataLakeSettings) -> Result<(), AwsError>;

    async fn locations_page(&self, token: Option<&str>) -> Result<Page<DataLocation>, AwsError>;
    async fn describe_location(&self, arn: &str) -> Result<Option<DataLocation>, AwsError>;
    /// Registers the location, or updates it when `exists`.
    async fn put_location(&self, location: &DataLocation, exists: bool) -> Result<(), AwsError>;
    async fn deregister_location(&self, arn: &str) -> Result<(), AwsError>;

    /// One ListLakeFormationOptIns page (with `of`: the opt-ins of that principal on that resource).
    async fn opt_ins_page(
        &self,
        of: Option<(&str, &LfResource)>,
        token: Option<&str>,
    ) -> Result<Option<Page<OptIn>>, AwsError>;
    async fn create_opt_in(&self, opt_in: &OptIn) -> Result<(), AwsError>;
    async fn delete_opt_in(&self, opt_in: &OptIn) -> Result<(), AwsError>;
}
