//! The state at a time: the catalog as lakelog had captured it by `at`, rebuilt from the newest
//! snapshot at or before `at` and the raw segments after it, records captured after `at` left
//! out. Streamed in key order (one database, then each table with its partitions, contiguous),
//! in bounded memory, so a restore or an export of millions of objects holds a batch at a time.

use std::path::Path;

use tokio::sync::mpsc;

use super::compact::{batches, download_some, merge_in_background, push_segments};
use super::manifest::{Manifest, ManifestStore, PartEntry, SegmentEntry, SnapshotEntry};
use super::merge::{MergeStats, Merger};
use super::segment::Entry;
use super::writer::root;
use super::ArchiveError;
use crate::backend::state::StateStore;
use crate::model::{ObjectKey, Op};

/// What a restore to `at` reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Sources {
    pub at: i64,
    /// The snapshot it starts from (`None`: from an empty catalog).
    pub base: Option<SnapshotEntry>,
    /// Raw segments after the base that hold records up to `at`.
    pub segments: Vec<SegmentEntry>,
    /// The newest capture time the archive holds (a time after it restores this state).
    pub latest: Option<i64>,
}

/// Finds what a restore to `at` must read, or says why `at` cannot be restored.
pub async fn sources(store: &dyn StateStore, manifest: &Manifest, at: i64) -> Result<Sources, ArchiveError> {
    let Some(earliest) = manifest.earliest_restorable() else {
        return Err(ArchiveError::Empty);
    };
    if at < earliest {
        return Err(ArchiveError::NotRestorable { at, earliest });
    }
    let base_index = manifest.snapshots.iter().rposition(|s| s.as_of <= at);
    let later = match base_index {
        Some(i) => &manifest.snapshots[i + 1..],
        None => &manifest.snapshots[..],
    };
    let mut segments = Vec::new();
    for snap in later {
        let Some(stored) = store.get(&snap.folded).await? else {
            return Err(ArchiveError::Corrupt { what: snap.folded.clone(), reason: "missing".into() });
        };
        let folded: Vec<SegmentEntry> = serde_json::from_slice(&stored.bytes)
            .map_err(|e| ArchiveError::Corrupt { what: snap.folded.clone(), reason: e.to_string() })?;
        segments.extend(folded);
    }
    segments.extend(manifest.tail.iter().cloned());
    segments.retain(|s| s.min_captured_at <= at);
    Ok(Sources {
        at,
        base: base_index.map(|i| manifest.snapshots[i].clone()),
        segments,
        latest: manifest.latest_captured_at(),
    })
}

/// Loads the manifest of `stream` and finds the sources for `at`.
pub async fn sources_of(store: &dyn StateStore, stream: &str, at: i64) -> Result<Sources, ArchiveError> {
    let (manifest, _) = ManifestStore::new(&root(stream)).load(store).await?;
    sources(store, &manifest, at).await
}

/// Streams the live objects at `sources.at` whose keys `select` accepts, in key order, in
/// batches of `batch`. `select` must accept a database's key whenever it accepts any object in
/// it: a snapshot part holding one unselected database only is skipped unread. The handle reports the merge's counts (or its failure) at the end.
pub async fn state_at(
    store: &dyn StateStore,
    sources: &Sources,
    select: impl Fn(&ObjectKey) -> bool + Send + Clone + 'static,
    budget: usize,
    work_dir: Option<&Path>,
    batch: usize,
) -> Result<(mpsc::Receiver<Vec<Entry>>, tokio::task::JoinHandle<Result<MergeStats, ArchiveError>>), ArchiveError> {
    let mut merger = Merger::new(budget, work_dir)?;
    if let Some(base) = &sources.base {
        // A part whose keys all lie in one database that is not selected is not read at all.
        let wanted = |part: &PartEntry| {
            let db = part.min_key.database();
            part.max_key.database() != db
                || select(&ObjectKey::Database {
                    catalog: part.min_key.catalog().to_string(),
                    database: db.to_string(),
                })
        };
        for path in download_some(store, base, merger.scratch(), wanted).await? {
            merger.add_sorted(path);
        }
    }
    let at = sources.at;
    let take = select.clone();
    push_segments(store, &sources.segments, &mut merger, |e| e.record.captured_at <= at && take(&e.record.key)).await?;
    let keep = move |e: &Entry| e.record.op == Op::Upsert && select(&e.record.key);
    Ok(merge_in_background(merger, keep, batches(batch.max(1))))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::archive::compact::{compact, CompactOptions};
    use crate::archive::writer::SegmentWriter;
    use crate::backend::memory::state::MemoryStore;
    use crate::backend::state::SharedStore;
    use crate::model::{CatalogObject, Cause, CauseKind, ChangeRecord, Origin, Table};
    use crate::stream::seqno::SeqNo;

    /// With parts of two tables each, most parts hold one database only: selecting one database
    /// skips the others' parts and still finds every object of the selected one.
    #[tokio::test]
    async fn a_selected_database_is_complete_when_other_databases_parts_are_skipped() {
        let store: SharedStore = Arc::new(MemoryStore::new());
        let writer = SegmentWriter::new(store.clone(), "s");
        let origin = Origin { catalog_id: "1".into(), ..Default::default() };
        let cause = Cause { kind: CauseKind::Snapshot, event_id: None };
        let mut entries = Vec::new();
        for (i, (db, t)) in ["a", "b", "c"].iter().flat_map(|d| (0..5).map(move |t| (*d, t))).enumerate() {
            let table = Table { database_name: db.to_string(), name: format!("t{t}"), ..Default::default() };
            let record = ChangeRecord::upsert(CatalogObject::Table(table), &origin, cause.clone(), 10 + i as i64);
            entries.push(Entry { sequence: SeqNo::parse(&(100 + i).to_string()).unwrap(), record });
        }
        writer.write("shard-0", &entries, 100).await.unwrap();
        let opts = CompactOptions { head_ms: 0, part_records: 2, ..CompactOptions::default() };
        compact(&store, "s", 1_000, &opts, true).await.unwrap();
        let src = sources_of(&*store, "s", 1_000).await.unwrap();
        assert!(src.base.as_ref().is_some_and(|b| b.parts.len() >= 7) && src.segments.is_empty());
        let (mut rx, done) =
            state_at(&*store, &src, |k: &ObjectKey| k.database() == "b", 1 << 20, None, 100).await.unwrap();
        let mut got = Vec::new();
        while let Some(batch) = rx.recv().await {
            got.extend(batch.into_iter().map(|e| e.record.key.table().unwrap_or_default().to_string()));
        }
        done.await.unwrap().unwrap();
        assert_eq!(got, ["t0", "t1", "t2", "t3", "t4"]);
    }
}
