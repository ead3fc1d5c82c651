//! Durable checkpoints: per consumer group (a target, or the archive) and per shard, the last
//! sequence number whose effect is durable.
//!
//! Guarantees of [`CheckpointStore`]:
//! - `save` is atomic and conditional: it succeeds only if nobody else wrote the checkpoint since
//!   this store last read or wrote it (S3 `If-Match` / `If-None-Match: *`). A lost race is a
//!   [`CheckpointError::Conflict`], never a silent overwrite — two workers cannot both advance
//!   the same shard.
//! - Callers save only after the records up to `sequence` are applied (or dead-lettered).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::backend::AwsError;
use crate::metrics as m;
use crate::state::{PutOutcome, StateBucket};
use crate::stream::seqno::SeqNo;

/// The durable position of one consumer group in one shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub sequence: SeqNo,
    /// When it was written (epoch ms).
    pub updated_at: i64,
    /// Change records applied through this shard by this group, all runs together.
    pub records: u64,
    /// When the newest change applied so far was captured (epoch ms), for `lakelog status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_captured_at: Option<i64>,
}

#[derive(Debug, Error)]
pub enum CheckpointError {
    #[error("checkpoint {group}/{shard} was changed by another worker; this worker must stop consuming that shard")]
    Conflict { group: String, shard: String },
    #[error("checkpoint {group}/{shard}: {source}")]
    Aws { group: String, shard: String, source: AwsError },
    #[error("checkpoint {group}/{shard} is unreadable ({reason}); inspect or delete the object to restart that shard from the trim horizon")]
    Corrupt { group: String, shard: String, reason: String },
}

/// Where checkpoints live.
#[async_trait]
pub trait CheckpointStore: Send + Sync {
    /// The checkpoint, or `None` when the group has never checkpointed this shard.
    async fn load(&self, group: &str, shard: &str) -> Result<Option<Checkpoint>, CheckpointError>;
    /// Writes the checkpoint if nobody else wrote it since our last load/save.
    async fn save(&self, group: &str, shard: &str, checkpoint: &Checkpoint) -> Result<(), CheckpointError>;
}

/// Checkpoints as JSON objects in S3: `<prefix>checkpoints/<stream>/<group>/<shard>.json`.
pub struct S3CheckpointStore {
    state: StateBucket,
    stream: String,
    /// ETag of each checkpoint as we last saw it; `None` = known not to exist.
    etags: Mutex<HashMap<(String, String), Option<String>>>,
}

impl S3CheckpointStore {
    pub fn new(state: StateBucket, stream: &str) -> S3CheckpointStore {
        S3CheckpointStore { state, stream: stream.to_string(), etags: Mutex::default() }
    }

    /// Relative to the state prefix.
    fn key(&self, group: &str, shard: &str) -> String {
        format!("checkpoints/{}/{group}/{shard}.json", self.stream)
    }

    fn remember(&self, group: &str, shard: &str, etag: Option<String>) {
        if let Ok(mut e) = self.etags.lock() {
            e.insert((group.to_string(), shard.to_string()), etag);
        }
    }

    fn known(&self, group: &str, shard: &str) -> Option<Option<String>> {
        self.etags.lock().ok().and_then(|e| e.get(&(group.to_string(), shard.to_string())).cloned())
    }
}

#[async_trait]
impl CheckpointStore for S3CheckpointStore {
    async fn load(&self, group: &str, shard: &str) -> Result<Option<Checkpoint>, CheckpointError> {
        let aws = |source| CheckpointError::Aws { group: group.into(), shard: shard.into(), source };
        let Some((body, etag)) = self.state.get_bytes(&self.key(group, shard)).await.map_err(aws)? else {
            self.remember(group, shard, None);
            return Ok(None);
        };
        let cp: Checkpoint = serde_json::from_slice(&body).map_err(|e| CheckpointError::Corrupt {
            group: group.into(),
            shard: shard.into(),
            reason: e.to_string(),
        })?;
        self.remember(group, shard, etag);
        Ok(Some(cp))
    }

    async fn save(&self, group: &str, shard: &str, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let body = serde_json::to_vec_pretty(checkpoint).map_err(|e| CheckpointError::Corrupt {
            group: group.into(),
            shard: shard.into(),
            reason: e.to_string(),
        })?;
        let known = match self.known(group, shard) {
            Some(k) => k,
            None => {
                self.load(group, shard).await?;
                self.known(group, shard).flatten()
            }
        };
        match self.state.put_if(&self.key(group, shard), body, known.as_deref()).await {
            Ok(PutOutcome::Written(etag)) => {
                self.remember(group, shard, etag);
                m::checkpoint_written(group);
                Ok(())
            }
            Ok(PutOutcome::Conflict) => Err(CheckpointError::Conflict { group: group.into(), shard: shard.into() }),
            Err(source) => Err(CheckpointError::Aws { group: group.into(), shard: shard.into(), source }),
        }
    }
}

/// All checkpoints of one group, for status and tests.
pub async fn load_group(
    store: &dyn CheckpointStore,
    group: &str,
    shards: &[String],
) -> Result<Vec<(String, Option<Checkpoint>)>, CheckpointError> {
    let mut out = Vec::new();
    for s in shards {
        out.push((s.clone(), store.load(group, s).await?));
    }
    Ok(out)
}

/// Helper for writers: the body of a new checkpoint after `applied` records, the newest of
/// which was captured at `newest_captured_at`.
pub fn next_checkpoint(
    previous: Option<&Checkpoint>,
    sequence: SeqNo,
    applied: u64,
    newest_captured_at: Option<i64>,
) -> Checkpoint {
    let before = previous.and_then(|p| p.newest_captured_at);
    Checkpoint {
        sequence,
        updated_at: crate::model::now_millis(),
        records: previous.map_or(0, |p| p.records) + applied,
        newest_captured_at: newest_captured_at.max(before),
    }
}
