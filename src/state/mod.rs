//! What lakelog keeps in its state store ([`crate::backend::state::StateStore`]): per-shard
//! checkpoints, dead letters, and the CloudTrail cursors. Each is a typed view over the store;
//! none of them knows the store is S3.
//!
//! - [`checkpoint`]: per consumer group and shard, the last sequence number whose effect is durable.
//! - [`deadletter`]: records and events that could not be applied, with their reason.
//! - [`cursor`]: how far CloudTrail (trail files, LookupEvents) has been read.
//!
//! Must never: overwrite another writer's checkpoint or cursor (every update is conditional), or
//! move a checkpoint before the effect it covers is durable.

pub mod checkpoint;
pub mod cursor;
pub mod deadletter;
pub mod lock;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backend::state::{put_if, PutOutcome, StateStore};
use crate::backend::AwsError;

/// A JSON document in the store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("{location}{key} is unreadable ({reason}); inspect or delete it")]
    Corrupt { location: String, key: String, reason: String },
}

/// Reads a JSON document and its version; `None` when it does not exist.
pub async fn load_json<T: DeserializeOwned>(
    store: &dyn StateStore,
    key: &str,
) -> Result<Option<(T, String)>, DocError> {
    let Some(stored) = store.get(key).await? else { return Ok(None) };
    match serde_json::from_slice(&stored.bytes) {
        Ok(doc) => Ok(Some((doc, stored.version))),
        Err(e) => Err(DocError::Corrupt { location: store.location(), key: key.to_string(), reason: e.to_string() }),
    }
}

/// Writes a JSON document if it is still at `version` (`None`: if it does not exist yet).
pub async fn save_json<T: Serialize>(
    store: &dyn StateStore,
    key: &str,
    doc: &T,
    version: Option<&str>,
) -> Result<PutOutcome, DocError> {
    let body = serde_json::to_vec_pretty(doc).map_err(|e| DocError::Corrupt {
        location: store.location(),
        key: key.to_string(),
        reason: e.to_string(),
    })?;
    Ok(put_if(store, key, body, version).await?)
}
