//! The manifest: the one object that says what the archive holds — the snapshots (each the
//! latest record per key as of its `as_of` time) and the raw segments not yet folded into the
//! newest snapshot (the tail) — and the earliest time a restore is exact for.
//!
//! Every update is one conditional write of the whole manifest (put-if-match on the version last
//! read), so a reader sees the old manifest or the new one, never a mix, and two writers (the
//! archive group appending segments, a compaction folding them) never lose each other's edit: a
//! lost race reloads and re-applies the edit. Objects a manifest names are written before it and
//! never changed afterwards.
//!
//! The segments folded into a snapshot are listed in an immutable object beside it
//! (`snapshots/<id>/folded.json`): the manifest stays small however long the retention, and a
//! restore to a time before the newest snapshot finds the raw segments it needs there.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::segment::SegmentIndex;
use super::ArchiveError;
use crate::backend::state::{PutOutcome, StateStore};
use crate::model::ObjectKey;
use crate::state::{load_json, save_json, DocError};
use crate::stream::seqno::SeqNo;

/// The manifest format this release writes; older ones keep reading.
pub const FORMAT: u32 = 1;
/// Conditional-write races tolerated in a row before an update gives up.
const MAX_RACES: u32 = 50;

/// A raw segment as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentEntry {
    /// Its key in the state store.
    pub key: String,
    pub shard: String,
    pub first_sequence: SeqNo,
    pub last_sequence: SeqNo,
    pub count: u64,
    pub min_captured_at: i64,
    pub max_captured_at: i64,
    /// Stored (compressed) size.
    pub bytes: u64,
}

impl SegmentEntry {
    pub fn new(key: &str, index: &SegmentIndex, bytes: u64) -> SegmentEntry {
        SegmentEntry {
            key: key.to_string(),
            shard: index.shard.clone(),
            first_sequence: index.first_sequence.clone(),
            last_sequence: index.last_sequence.clone(),
            count: index.count,
            min_captured_at: index.min_captured_at,
            max_captured_at: index.max_captured_at,
            bytes,
        }
    }
}

/// One part of a snapshot: a run of keys in sort order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartEntry {
    pub key: String,
    pub count: u64,
    pub bytes: u64,
    /// Its first and last keys, so one object's record is found by reading one part.
    pub min_key: ObjectKey,
    pub max_key: ObjectKey,
}

/// A snapshot: the latest record per key of every segment folded into it and into the
/// snapshots before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotEntry {
    /// Increasing, zero-padded (`00000001`): a rerun of a killed compaction reuses its names.
    pub id: String,
    /// The newest capture time among its records: restores to this time or later may start here.
    pub as_of: i64,
    /// Its parts, in key order.
    pub parts: Vec<PartEntry>,
    /// The immutable list of the segments folded into it since the snapshot before it.
    pub folded: String,
    /// Live keys and tombstones it holds.
    pub keys: u64,
    pub tombstones: u64,
    pub created_at: i64,
}

/// The manifest document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// Raw segments not folded into the newest snapshot, in the order they were added.
    pub tail: Vec<SegmentEntry>,
    /// Snapshots, oldest first.
    pub snapshots: Vec<SnapshotEntry>,
    /// Whether the raw segments from the very first one on are all still kept (nothing has been
    /// removed by retention), so a restore may start from an empty catalog.
    pub from_genesis: bool,
    /// Per shard, the last sequence number folded into a snapshot: a segment ending at or before
    /// it is already in a snapshot and is never listed again (a restarted writer may report it).
    #[serde(default)]
    pub folded: BTreeMap<String, SeqNo>,
    /// The capture time of the first record ever archived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_captured_at: Option<i64>,
    pub updated_at: i64,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            format: FORMAT,
            tail: Vec::new(),
            snapshots: Vec::new(),
            from_genesis: true,
            folded: BTreeMap::new(),
            first_captured_at: None,
            updated_at: 0,
        }
    }
}

impl Manifest {
    /// The earliest time a restore is exact for: from the first archived record while nothing has
    /// been removed, else the `as_of` of the oldest snapshot kept. `None` when nothing is archived.
    pub fn earliest_restorable(&self) -> Option<i64> {
        if self.from_genesis {
            self.first_captured_at
        } else {
            self.snapshots.first().map(|s| s.as_of)
        }
    }

    /// The newest capture time archived.
    pub fn latest_captured_at(&self) -> Option<i64> {
        let tail = self.tail.iter().map(|s| s.max_captured_at).max();
        let snap = self.snapshots.last().map(|s| s.as_of);
        tail.max(snap)
    }

    /// Bytes of raw segments in the tail: what a restore to now reads besides the newest snapshot.
    pub fn tail_bytes(&self) -> u64 {
        self.tail.iter().map(|s| s.bytes).sum()
    }

    /// Keys of the segments in the tail.
    pub fn tail_keys(&self) -> BTreeSet<&str> {
        self.tail.iter().map(|s| s.key.as_str()).collect()
    }

    /// Adds a raw segment (idempotent: a segment already listed, or already folded, is not added
    /// again — a restarted writer may report the same segment twice).
    pub fn add_segment(&mut self, entry: SegmentEntry) {
        let folded = self.folded.get(&entry.shard).is_some_and(|f| entry.last_sequence <= *f);
        if folded || self.tail.iter().any(|s| s.key == entry.key) {
            return;
        }
        self.first_captured_at =
            Some(self.first_captured_at.map_or(entry.min_captured_at, |f| f.min(entry.min_captured_at)));
        self.tail.push(entry);
    }
}

/// Where the manifest is, and reading and updating it.
#[derive(Debug, Clone)]
pub struct ManifestStore {
    key: String,
}

impl ManifestStore {
    /// The manifest of the archive under `root` (e.g. `archive/<stream>/`).
    pub fn new(root: &str) -> ManifestStore {
        ManifestStore { key: format!("{root}manifest.json") }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// The manifest and its version; the default (empty) one when there is none yet.
    pub async fn load(&self, store: &dyn StateStore) -> Result<(Manifest, Option<String>), ArchiveError> {
        match load_json::<Manifest>(store, &self.key).await {
            Ok(Some((m, v))) if m.format <= FORMAT => Ok((m, Some(v))),
            Ok(Some((m, _))) => Err(ArchiveError::NewerManifest { found: m.format }),
            Ok(None) => Ok((Manifest::default(), None)),
            Err(e) => Err(doc_error(e)),
        }
    }

    /// Applies `edit` to the latest manifest and writes it conditionally, re-reading and
    /// re-applying on a lost race. `edit` returns false when there is nothing to write.
    pub async fn update(
        &self,
        store: &dyn StateStore,
        now_ms: i64,
        mut edit: impl FnMut(&mut Manifest) -> Result<bool, ArchiveError>,
    ) -> Result<Manifest, ArchiveError> {
        for _ in 0..MAX_RACES {
            let (mut manifest, version) = self.load(store).await?;
            if !edit(&mut manifest)? {
                return Ok(manifest);
            }
            manifest.updated_at = now_ms;
            match save_json(store, &self.key, &manifest, version.as_deref()).await.map_err(doc_error)? {
                PutOutcome::Written(_) => return Ok(manifest),
                PutOutcome::Conflict => continue,
            }
        }
        Err(ArchiveError::Contended { key: self.key.clone(), races: MAX_RACES })
    }
}

pub(crate) fn doc_error(e: DocError) -> ArchiveError {
    match e {
        DocError::Aws(source) => ArchiveError::Store { source },
        DocError::Corrupt { location, key, reason } => {
            ArchiveError::Corrupt { what: format!("{location}{key}"), reason }
        }
    }
}
