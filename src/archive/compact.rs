//! Compaction: folds raw segments into a new snapshot — the latest record per key — so a restore
//! reads one snapshot and a bounded tail instead of the whole history.
//!
//! - What is folded: per shard, the oldest tail segments whose records are all older than
//!   `head` (the newest stay raw: a restore to a recent time is exact, and a history of recent
//!   changes is complete).
//! - How: an external merge ([`super::merge`]) of the newest snapshot's parts and those segments,
//!   in bounded memory, written as new parts in key order.
//! - Tombstones (deletes) stay in snapshots for `tombstone_retention`, and longer while a record
//!   older than them is still raw in the tail: a late record older than the delete (another
//!   shard's lagging segment, folded later) then cannot resurrect the object. Records not yet
//!   archived at all are covered while the slowest shard lags less than `tombstone_retention`.
//! - When: when the tail is large (`tail_bytes`, or a share of the snapshot's size), not on a
//!   clock: that bounds what a restore reads.
//! - Retention: snapshots and raw segments are removed once a newer snapshot older than
//!   `retention` can serve every restorable time; the earliest restorable time moves with it.
//!
//! Crash safety: parts and the folded list are written under names fixed by the snapshot id
//! before the manifest names them, and the manifest changes in one conditional write. A compaction
//! killed at any point leaves the manifest as it was (a rerun rewrites the same names), or
//! finished; objects are deleted only once no manifest names them, by a sweep that every
//! compaction also starts with, so deletes a killed one did not get to are done by the next.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::info;

use super::manifest::{Manifest, ManifestStore, PartEntry, SegmentEntry, SnapshotEntry};
use super::merge::{MergeError, Merger};
use super::segment::{self, Entry, Reader, SegmentIndex, LEVEL};
use super::writer::root;
use super::ArchiveError;
use crate::backend::state::{each_key, SharedStore, StateStore};
use crate::model::Op;

/// How compaction behaves.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// Segments with records newer than this (ms before now) stay raw.
    pub head_ms: i64,
    /// How long a delete is kept in snapshots.
    pub tombstone_retention_ms: i64,
    /// How far back a restore must stay possible.
    pub retention_ms: i64,
    /// Compact when the tail holds at least this many bytes ...
    pub tail_bytes: u64,
    /// ... or this share of the newest snapshot's size (whichever is larger).
    pub tail_ratio: f64,
    /// Memory for the merge.
    pub merge_budget: usize,
    /// Records per snapshot part.
    pub part_records: usize,
    /// Scratch space for the merge (the system's temporary directory when `None`).
    pub work_dir: Option<PathBuf>,
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions {
            head_ms: 3_600_000,
            tombstone_retention_ms: 7 * 86_400_000,
            retention_ms: 30 * 86_400_000,
            tail_bytes: 64 << 20,
            tail_ratio: 0.1,
            merge_budget: 64 << 20,
            part_records: 200_000,
            work_dir: None,
        }
    }
}

impl CompactOptions {
    /// The options `pipeline.yaml`'s `archive` section sets.
    pub fn from_config(c: &crate::config::ArchiveConfig) -> CompactOptions {
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        CompactOptions {
            head_ms: ms(c.head()),
            tombstone_retention_ms: ms(c.tombstone_retention()),
            retention_ms: ms(c.retention()),
            tail_bytes: c.compact_tail_mib << 20,
            tail_ratio: c.compact_tail_ratio,
            merge_budget: (c.merge_memory_mib as usize) << 20,
            part_records: CompactOptions::default().part_records,
            work_dir: c.work_dir.as_ref().map(PathBuf::from),
        }
    }
}

/// What one compaction did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompactReport {
    /// The new snapshot's id, if one was written.
    pub snapshot: Option<String>,
    pub segments_folded: u64,
    pub records_in: u64,
    pub keys: u64,
    pub tombstones: u64,
    pub tombstones_expired: u64,
    pub parts: u64,
    pub bytes: u64,
    /// Snapshots and raw segments removed by retention.
    pub snapshots_removed: u64,
    pub segments_removed: u64,
    pub earliest_restorable: Option<i64>,
    /// Raw segment bytes not folded into a snapshot afterwards.
    pub tail_bytes: u64,
}

fn snapshot_prefix(root: &str, id: &str) -> String {
    format!("{root}snapshots/{id}/")
}

fn part_key(prefix: &str, n: usize) -> String {
    format!("{prefix}part-{n:05}.seg")
}

/// Whether the tail is large enough to compact now.
pub fn due(manifest: &super::manifest::Manifest, opts: &CompactOptions) -> bool {
    let snapshot_bytes: u64 = manifest.snapshots.last().map_or(0, |s| s.parts.iter().map(|p| p.bytes).sum());
    let threshold = opts.tail_bytes.max((snapshot_bytes as f64 * opts.tail_ratio) as u64);
    manifest.tail_bytes() >= threshold
}

/// The tail segments to fold: per shard, the oldest run whose records are all older than `cut`.
fn choose(tail: &[SegmentEntry], cut: i64) -> Vec<SegmentEntry> {
    let mut by_shard: std::collections::BTreeMap<&str, Vec<&SegmentEntry>> = Default::default();
    for s in tail {
        by_shard.entry(&s.shard).or_default().push(s);
    }
    let mut out = Vec::new();
    for (_, mut segs) in by_shard {
        segs.sort_by(|a, b| a.first_sequence.cmp(&b.first_sequence));
        out.extend(segs.into_iter().take_while(|s| s.max_captured_at <= cut).cloned());
    }
    out
}

pub(crate) async fn fetch(store: &dyn StateStore, key: &str) -> Result<Vec<u8>, ArchiveError> {
    match store.get(key).await? {
        Some(s) => Ok(s.bytes),
        None => {
            Err(ArchiveError::Corrupt { what: key.to_string(), reason: "listed in the manifest but missing".into() })
        }
    }
}

/// Downloads a snapshot's parts into `dir` as sorted merge inputs, one file each.
pub async fn download_parts(
    store: &dyn StateStore,
    snapshot: &SnapshotEntry,
    dir: &std::path::Path,
) -> Result<Vec<PathBuf>, ArchiveError> {
    download_some(store, snapshot, dir, |_| true).await
}

/// Downloads the parts `wanted` accepts.
pub async fn download_some(
    store: &dyn StateStore,
    snapshot: &SnapshotEntry,
    dir: &std::path::Path,
    wanted: impl Fn(&PartEntry) -> bool,
) -> Result<Vec<PathBuf>, ArchiveError> {
    let mut paths = Vec::new();
    for (i, part) in snapshot.parts.iter().enumerate().filter(|(_, p)| wanted(p)) {
        let bytes = fetch(store, &part.key).await?;
        let path = dir.join(format!("base-{i:06}.seg"));
        std::fs::write(&path, bytes)
            .map_err(|source| MergeError::Scratch { dir: dir.display().to_string(), source })?;
        paths.push(path);
    }
    Ok(paths)
}

/// Pushes every entry of raw segments into `merger`, those `take` accepts.
pub async fn push_segments(
    store: &dyn StateStore,
    segments: &[SegmentEntry],
    merger: &mut Merger,
    mut take: impl FnMut(&Entry) -> bool,
) -> Result<u64, ArchiveError> {
    let mut pushed = 0;
    for s in segments {
        let bytes = fetch(store, &s.key).await?;
        let mut reader = Reader::new(&bytes).map_err(|source| ArchiveError::Segment { key: s.key.clone(), source })?;
        let mut before = 0;
        while let Some(entry) = reader.next() {
            let entry = entry.map_err(|source| ArchiveError::Segment { key: s.key.clone(), source })?;
            let size = (reader.bytes_read() - before) as usize;
            before = reader.bytes_read();
            if take(&entry) {
                merger.push(entry, size)?;
                pushed += 1;
            }
        }
    }
    Ok(pushed)
}

impl From<MergeError> for ArchiveError {
    fn from(e: MergeError) -> ArchiveError {
        ArchiveError::Merge(e)
    }
}

/// Runs `merger` on a blocking thread. `gather` turns its output into items (a batch of
/// entries, an encoded part): it is called with each entry kept and, at the end, with `None`;
/// each item it returns is sent as soon as it is complete.
pub fn merge_in_background<T: Send + 'static>(
    merger: Merger,
    keep: impl FnMut(&Entry) -> bool + Send + 'static,
    mut gather: impl FnMut(Option<Entry>) -> Result<Option<T>, ArchiveError> + Send + 'static,
) -> (mpsc::Receiver<T>, tokio::task::JoinHandle<Result<super::merge::MergeStats, ArchiveError>>) {
    let (tx, rx) = mpsc::channel::<T>(2);
    let handle = tokio::task::spawn_blocking(move || {
        let send = |item: Option<T>| match item {
            Some(item) => tx.blocking_send(item).map_err(|_| ArchiveError::Stopped),
            None => Ok(()),
        };
        let stats = merger.finish::<ArchiveError>(keep, |e| send(gather(Some(e))?))?;
        send(gather(None)?)?;
        Ok(stats)
    });
    (rx, handle)
}

/// Gathers entries into batches of `size` (the last one shorter).
pub fn batches(size: usize) -> impl FnMut(Option<Entry>) -> Result<Option<Vec<Entry>>, ArchiveError> {
    let mut pending = Vec::new();
    move |entry| match entry {
        Some(e) => {
            pending.push(e);
            Ok((pending.len() >= size).then(|| std::mem::take(&mut pending)))
        }
        None => Ok((!pending.is_empty()).then(|| std::mem::take(&mut pending))),
    }
}

/// An encoded snapshot part and its index.
type Part = (Vec<u8>, SegmentIndex);

/// Gathers entries into snapshot parts of `size` entries, encoded as they arrive: a part is
/// held compressed, never as its records.
fn parts(prefix: String, size: u64) -> impl FnMut(Option<Entry>) -> Result<Option<Part>, ArchiveError> {
    let mut builder: Option<segment::Builder> = None;
    let mut done = 0usize;
    move |entry| {
        let n = done;
        let encoding = |source| ArchiveError::Segment { key: part_key(&prefix, n), source };
        let Some(e) = entry else {
            return builder.take().map(|b| b.finish().map_err(encoding)).transpose();
        };
        let b = match &mut builder {
            Some(b) => b,
            None => builder.insert(segment::Builder::new("", true, LEVEL).map_err(encoding)?),
        };
        b.push(&e).map_err(encoding)?;
        if b.count() >= size {
            done += 1;
            return builder.take().map(|b| b.finish().map_err(encoding)).transpose();
        }
        Ok(None)
    }
}

/// What a sweep deleted.
#[derive(Debug, Clone, Copy, Default)]
struct Swept {
    snapshots: u64,
    segments: u64,
}

/// Deletes what no reader of `manifest` can need: every snapshot older than its oldest (parts,
/// the raw segments folded into it, then its folded list — last, so a sweep cut short finds the
/// segments again), and, once the oldest is the earliest restorable point, the raw segments folded
/// into it. Idempotent: a compaction killed between its manifest write and its deletes leaves them
/// to the next one, which starts with a sweep.
async fn sweep(store: &dyn StateStore, root: &str, manifest: &Manifest) -> Result<Swept, ArchiveError> {
    let mut swept = Swept::default();
    let Some(oldest) = manifest.snapshots.first() else { return Ok(swept) };
    let prefix = format!("{root}snapshots/");
    let mut older: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    each_key(store, &prefix, |keys| {
        for key in keys {
            let id = key[prefix.len()..].split('/').next().unwrap_or_default().to_string();
            // Ids are zero-padded and increasing: older sorts first.
            if id.as_str() < oldest.id.as_str() {
                older.entry(id).or_default().push(key);
            }
        }
    })
    .await?;
    for (id, keys) in older {
        let folded = format!("{prefix}{id}/folded.json");
        for key in keys.iter().filter(|k| **k != folded) {
            store.delete(key).await?;
        }
        swept.segments += delete_folded(store, &folded, false).await?;
        store.delete(&folded).await?;
        swept.snapshots += 1;
    }
    if !manifest.from_genesis {
        swept.segments += delete_folded(store, &oldest.folded, true).await?;
    }
    Ok(swept)
}

/// Deletes the raw segments a snapshot's folded list names, in order; with `unless_done`, nothing
/// when the last of them is already gone (an earlier sweep finished them). How many it deleted.
async fn delete_folded(store: &dyn StateStore, folded: &str, unless_done: bool) -> Result<u64, ArchiveError> {
    let Some(stored) = store.get(folded).await? else { return Ok(0) };
    let segments: Vec<SegmentEntry> = serde_json::from_slice(&stored.bytes)
        .map_err(|e| ArchiveError::Corrupt { what: folded.to_string(), reason: e.to_string() })?;
    match segments.last() {
        None => return Ok(0),
        Some(last) if unless_done && !store.exists(&last.key).await? => return Ok(0),
        Some(_) => {}
    }
    for seg in &segments {
        store.delete(&seg.key).await?;
    }
    Ok(segments.len() as u64)
}

/// Compacts the archive of `stream` if its tail is due (or always when `force`).
pub async fn compact(
    store: &SharedStore,
    stream: &str,
    now_ms: i64,
    opts: &CompactOptions,
    force: bool,
) -> Result<CompactReport, ArchiveError> {
    let root = root(stream);
    let manifests = ManifestStore::new(&root);
    let (manifest, _) = manifests.load(&**store).await?;
    // What a compaction killed after its manifest write left to delete.
    let swept = sweep(&**store, &root, &manifest).await?;
    let mut report = CompactReport {
        earliest_restorable: manifest.earliest_restorable(),
        tail_bytes: manifest.tail_bytes(),
        snapshots_removed: swept.snapshots,
        segments_removed: swept.segments,
        ..Default::default()
    };
    if !force && !due(&manifest, opts) {
        return Ok(report);
    }
    let chosen = choose(&manifest.tail, now_ms - opts.head_ms);
    if chosen.is_empty() {
        return Ok(report);
    }
    let base = manifest.snapshots.last().cloned();
    let number = base.as_ref().and_then(|b| b.id.parse::<u64>().ok()).unwrap_or(0) + 1;
    let id = format!("{number:08}");
    let prefix = snapshot_prefix(&root, &id);

    let mut merger = Merger::new(opts.merge_budget, opts.work_dir.as_deref())?.keeping_deletes();
    if let Some(b) = &base {
        for path in download_parts(&**store, b, merger.scratch()).await? {
            merger.add_sorted(path);
        }
    }
    push_segments(&**store, &chosen, &mut merger, |_| true).await?;
    // A tombstone older than a record still raw in the tail is kept, expired or not: that record
    // (another shard's, captured before the delete) may be a child the delete must still mask.
    let folding: std::collections::BTreeSet<&str> = chosen.iter().map(|s| s.key.as_str()).collect();
    let oldest_raw =
        manifest.tail.iter().filter(|s| !folding.contains(s.key.as_str())).map(|s| s.min_captured_at).min();
    let expire_before = (now_ms - opts.tombstone_retention_ms).min(oldest_raw.unwrap_or(i64::MAX));
    let (tombstones, expired) = (
        std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
        std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
    );
    let (t, x) = (tombstones.clone(), expired.clone());
    let keep = move |e: &Entry| {
        if e.record.op != Op::Delete {
            return true;
        }
        if e.record.captured_at < expire_before {
            x.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            false
        } else {
            t.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            true
        }
    };
    let (mut rx, merging) = merge_in_background(merger, keep, parts(prefix.clone(), opts.part_records.max(1) as u64));
    let mut parts = Vec::new();
    let mut as_of = base.as_ref().map_or(i64::MIN, |b| b.as_of);
    while let Some((bytes, index)) = rx.recv().await {
        let key = part_key(&prefix, parts.len());
        as_of = as_of.max(index.max_captured_at);
        let len = bytes.len() as u64;
        store.put(&key, bytes).await?;
        parts.push(PartEntry { key, count: index.count, bytes: len, min_key: index.min_key, max_key: index.max_key });
    }
    let stats = merging.await.map_err(|e| ArchiveError::Worker(e.to_string()))??;
    as_of = as_of.max(chosen.iter().map(|s| s.max_captured_at).max().unwrap_or(i64::MIN));
    let folded_key = format!("{prefix}folded.json");
    let folded_body = serde_json::to_vec(&chosen)
        .map_err(|e| ArchiveError::Corrupt { what: folded_key.clone(), reason: e.to_string() })?;
    store.put(&folded_key, folded_body).await?;
    let keys = parts.iter().map(|p| p.count).sum::<u64>();
    let tombstones = tombstones.load(std::sync::atomic::Ordering::Relaxed);
    let snapshot = SnapshotEntry {
        id: id.clone(),
        as_of,
        parts: parts.clone(),
        folded: folded_key,
        keys: keys - tombstones,
        tombstones,
        created_at: now_ms,
    };

    // One conditional write: the snapshot in, its segments out of the tail, and retention.
    let cut = now_ms - opts.retention_ms;
    let base_id = base.as_ref().map(|b| b.id.clone());
    let updated = manifests
        .update(&**store, now_ms, |m| {
            if m.snapshots.last().map(|s| s.id.clone()) != base_id {
                return Err(ArchiveError::Raced { what: "another compaction wrote a snapshot first".into() });
            }
            let folded: std::collections::BTreeSet<&str> = chosen.iter().map(|s| s.key.as_str()).collect();
            m.tail.retain(|s| !folded.contains(s.key.as_str()));
            for s in &chosen {
                let f = m.folded.entry(s.shard.clone()).or_insert_with(|| s.last_sequence.clone());
                if s.last_sequence > *f {
                    *f = s.last_sequence.clone();
                }
            }
            m.snapshots.push(snapshot.clone());
            // The newest snapshot at or before the cut serves every time from it on; older ones,
            // and the segments folded into it (needed only for times before it), can go.
            if let Some(keep_from) = m.snapshots.iter().rposition(|s| s.as_of <= cut) {
                m.snapshots.drain(..keep_from);
                m.from_genesis = false;
            }
            Ok(true)
        })
        .await?;
    report.snapshot = Some(id);
    report.segments_folded = chosen.len() as u64;
    report.records_in = stats.records_in;
    report.keys = snapshot.keys;
    report.tombstones = tombstones;
    report.tombstones_expired = expired.load(std::sync::atomic::Ordering::Relaxed);
    report.parts = parts.len() as u64;
    report.bytes = parts.iter().map(|p| p.bytes).sum();
    report.earliest_restorable = updated.earliest_restorable();
    report.tail_bytes = updated.tail_bytes();

    // Only now, with no manifest naming them, are removed objects deleted.
    let swept = sweep(&**store, &root, &updated).await?;
    report.snapshots_removed += swept.snapshots;
    report.segments_removed += swept.segments;
    info!(snapshot = ?report.snapshot, folded = report.segments_folded, keys = report.keys, "archive compacted");
    Ok(report)
}
