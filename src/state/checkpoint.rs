//! Durable checkpoints: per consumer group (a target, or the archive) and per shard, the last
//! sequence number whose effect is durable.
//!
//! Guarantees of [`CheckpointStore`]:
//! - `save` is atomic and conditional: it succeeds only if nobody else wrote the checkpoint since
//!   this store last read or wrote it (the state store's compare-and-set; S3 `If-Match` /
//!   `If-None-Match: *`). A lost race is a
//!   [`CheckpointError::Conflict`], never a silent overwrite — two workers cannot both advance
//!   the same shard.
//! - Callers save only after the records up to `sequence` are applied (or dead-lettered).

use std::collections::HashMap;
#[cfg(test)]
use std::sync::Arc;
use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{load_json, save_json, DocError};
use crate::backend::state::{PutOutcome, SharedStore};
use crate::backend::AwsError;
use crate::metrics as m;
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

/// Checkpoints as JSON documents in the state store: `checkpoints/<stream>/<group>/<shard>.json`.
pub struct StoredCheckpoints {
    store: SharedStore,
    stream: String,
    /// ETag of each checkpoint as we last saw it; `None` = known not to exist.
    etags: Mutex<HashMap<(String, String), Option<String>>>,
}

impl StoredCheckpoints {
    pub fn new(store: SharedStore, stream: &str) -> StoredCheckpoints {
        StoredCheckpoints { store, stream: stream.to_string(), etags: Mutex::default() }
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

impl StoredCheckpoints {
    fn error(group: &str, shard: &str, e: DocError) -> CheckpointError {
        let (group, shard) = (group.to_string(), shard.to_string());
        match e {
            DocError::Aws(source) => CheckpointError::Aws { group, shard, source },
            DocError::Corrupt { reason, .. } => CheckpointError::Corrupt { group, shard, reason },
        }
    }
}

#[async_trait]
impl CheckpointStore for StoredCheckpoints {
    async fn load(&self, group: &str, shard: &str) -> Result<Option<Checkpoint>, CheckpointError> {
        match load_json::<Checkpoint>(&*self.store, &self.key(group, shard)).await {
            Ok(Some((cp, version))) => {
                self.remember(group, shard, Some(version));
                Ok(Some(cp))
            }
            Ok(None) => {
                self.remember(group, shard, None);
                Ok(None)
            }
            Err(e) => Err(Self::error(group, shard, e)),
        }
    }

    async fn save(&self, group: &str, shard: &str, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let known = match self.known(group, shard) {
            Some(k) => k,
            None => {
                self.load(group, shard).await?;
                self.known(group, shard).flatten()
            }
        };
        match save_json(&*self.store, &self.key(group, shard), checkpoint, known.as_deref()).await {
            Ok(PutOutcome::Written(version)) => {
                self.remember(group, shard, Some(version));
                m::checkpoint_written(group);
                Ok(())
            }
            Ok(PutOutcome::Conflict) => Err(CheckpointError::Conflict { group: group.into(), shard: shard.into() }),
            Err(e) => Err(Self::error(group, shard, e)),
        }
    }
}

/// Checkpoints in the lease rows of one worker (`state.coordination.mode: leases`): a save is a
/// conditional write on the lease's counter, so it lands only while this worker holds the lease
/// ([`CheckpointError::Conflict`] otherwise); a load reads the row as this worker took it.
pub struct LeasedCheckpoints {
    worker: std::sync::Arc<crate::lease::worker::Worker>,
}

impl LeasedCheckpoints {
    pub fn new(worker: std::sync::Arc<crate::lease::worker::Worker>) -> LeasedCheckpoints {
        LeasedCheckpoints { worker }
    }
}

/// A lease row's checkpoint as lakelog's (`None`: at the trim horizon).
pub fn of_lease(lease: &crate::backend::lease::Lease) -> Option<Checkpoint> {
    SeqNo::parse(&lease.checkpoint).map(|sequence| Checkpoint {
        sequence,
        updated_at: lease.checkpoint_at.unwrap_or(0),
        records: lease.records,
        newest_captured_at: lease.newest_captured_at,
    })
}

#[async_trait]
impl CheckpointStore for LeasedCheckpoints {
    async fn load(&self, group: &str, shard: &str) -> Result<Option<Checkpoint>, CheckpointError> {
        match self.worker.lease(shard) {
            Some(lease) => Ok(of_lease(&lease)),
            None => Err(CheckpointError::Conflict { group: group.into(), shard: shard.into() }),
        }
    }

    async fn save(&self, group: &str, shard: &str, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let written = self
            .worker
            .checkpoint(
                shard,
                checkpoint.sequence.as_str(),
                checkpoint.records,
                checkpoint.newest_captured_at,
                checkpoint.updated_at,
            )
            .await
            .map_err(|source| CheckpointError::Aws { group: group.into(), shard: shard.into(), source })?;
        match written {
            crate::backend::lease::Swap::Done => {
                m::checkpoint_written(group);
                Ok(())
            }
            crate::backend::lease::Swap::Lost => {
                Err(CheckpointError::Conflict { group: group.into(), shard: shard.into() })
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::memory::state::MemoryStore;
    use crate::backend::state::StateStore;
    use crate::backend::ErrorClass;

    fn at(seq: &str) -> Checkpoint {
        next_checkpoint(None, SeqNo::parse(seq).expect("seq"), 1, None)
    }

    #[tokio::test]
    async fn two_workers_cannot_both_advance_a_shard() {
        let store: SharedStore = Arc::new(MemoryStore::new());
        let (a, b) = (StoredCheckpoints::new(store.clone(), "s"), StoredCheckpoints::new(store.clone(), "s"));
        assert_eq!(a.load("dr", "shard-0").await.unwrap(), None);
        assert_eq!(b.load("dr", "shard-0").await.unwrap(), None);
        a.save("dr", "shard-0", &at("10")).await.expect("first writer");
        let lost = b.save("dr", "shard-0", &at("20")).await;
        assert!(matches!(lost, Err(CheckpointError::Conflict { .. })), "{lost:?}");
        a.save("dr", "shard-0", &at("30")).await.expect("the owner keeps saving");
        assert_eq!(b.load("dr", "shard-0").await.unwrap().map(|c| c.sequence), SeqNo::parse("30"));
    }

    #[tokio::test]
    async fn an_unreadable_checkpoint_names_itself_and_a_failed_read_is_not_a_missing_one() {
        let memory = Arc::new(MemoryStore::new());
        memory.put("checkpoints/s/dr/shard-0.json", b"{".to_vec()).await.unwrap();
        let store = StoredCheckpoints::new(memory.clone(), "s");
        let err = store.load("dr", "shard-0").await.unwrap_err();
        assert!(matches!(err, CheckpointError::Corrupt { .. }) && err.to_string().contains("dr/shard-0"), "{err}");
        memory.fail_next("get", ErrorClass::Retryable);
        assert!(matches!(store.load("dr", "shard-1").await, Err(CheckpointError::Aws { .. })));
    }
}
