//! The state store: small objects lakelog keeps durably under one root — checkpoints, dead
//! letters, CloudTrail cursors, and the coming archive manifest and segments. In AWS, an S3
//! bucket and prefix (`crate::aws::s3::S3Store`); in tests, [`super::memory::state::MemoryStore`].
//!
//! Guarantees every implementation gives:
//! - Keys are `/`-separated paths relative to the store's root. A read sees the last completed
//!   write of that key (S3 has been strongly consistent since 2020); a write is atomic: a reader
//!   sees the whole old object or the whole new one, never a part.
//! - Every stored object has a version (the S3 ETag), which changes whenever its bytes do.
//!   Rewriting the same bytes may keep it (S3's ETag of a plain upload is their MD5), so an
//!   unchanged version means "these bytes", never "nobody wrote since".
//! - [`StateStore::put_if_absent`] and [`StateStore::put_if_match`] are compare-and-set: of two
//!   writers racing from the same version, exactly one gets [`PutOutcome::Written`] and the other
//!   [`PutOutcome::Conflict`]; a conflict never overwrites. A retried conditional write whose
//!   earlier attempt landed (its answer lost) is recognised, not reported as a conflict.
//! - [`StateStore::list`] returns keys in ascending byte order, a page at a time, so callers can
//!   stream a prefix with millions of keys in bounded memory.
//! - Transient failures are retried inside the implementation (with
//!   [`crate::backend::retry::RetryPolicy`]); an error returned has used its attempts or is
//!   permanent.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

use super::AwsError;

/// An object as read: its bytes and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub bytes: Vec<u8>,
    pub version: String,
}

/// Outcome of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// Written; the new version.
    Written(String),
    /// Someone else wrote the object since the version given (or it exists when none was expected).
    Conflict,
}

/// One page of a listing: keys in ascending order, and whether more follow the last of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    pub keys: Vec<String>,
    pub more: bool,
}

#[async_trait]
pub trait StateStore: Send + Sync + Debug {
    /// Where the store is, for messages: `s3://bucket/prefix`.
    fn location(&self) -> String;
    /// The object, or `None` when it does not exist.
    async fn get(&self, key: &str) -> Result<Option<Stored>, AwsError>;
    /// Writes unconditionally; returns the new version.
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<String, AwsError>;
    /// Writes only if no object has this key.
    async fn put_if_absent(&self, key: &str, bytes: Vec<u8>) -> Result<PutOutcome, AwsError>;
    /// Writes only if the object's version is still `version` (a deleted object's is not: that
    /// is a [`PutOutcome::Conflict`] too).
    async fn put_if_match(&self, key: &str, bytes: Vec<u8>, version: &str) -> Result<PutOutcome, AwsError>;
    /// Keys starting with `prefix`, after `after` (exclusive) when given; at most about 1,000.
    async fn list(&self, prefix: &str, after: Option<&str>) -> Result<ListPage, AwsError>;
    /// Whether the object exists (without reading it, where the store can).
    async fn exists(&self, key: &str) -> Result<bool, AwsError> {
        Ok(self.get(key).await?.is_some())
    }
    /// Removes the object; removing a missing object succeeds.
    async fn delete(&self, key: &str) -> Result<(), AwsError>;
}

/// A store shared by the components of a job.
pub type SharedStore = Arc<dyn StateStore>;

/// A conditional write: `None` expects no object, `Some(version)` expects that version.
pub async fn put_if(
    store: &dyn StateStore,
    key: &str,
    bytes: Vec<u8>,
    version: Option<&str>,
) -> Result<PutOutcome, AwsError> {
    match version {
        None => store.put_if_absent(key, bytes).await,
        Some(v) => store.put_if_match(key, bytes, v).await,
    }
}

/// Every key under `prefix`, in order, a page at a time into `each` (bounded memory).
pub async fn each_key(store: &dyn StateStore, prefix: &str, mut each: impl FnMut(Vec<String>)) -> Result<(), AwsError> {
    let mut after: Option<String> = None;
    loop {
        let page = store.list(prefix, after.as_deref()).await?;
        after = page.keys.last().cloned();
        let more = page.more && after.is_some();
        each(page.keys);
        if !more {
            return Ok(());
        }
    }
}
