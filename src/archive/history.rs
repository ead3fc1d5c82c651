//! One object's recorded history: every change the archive holds for it, oldest first — when
//! (capture time and stream position), what (create, update with the fields that changed, old →
//! new, or delete), and why (the cause: an event with its id, CloudTrail, reconciliation, the
//! initial snapshot). A change older than the restorable window, known only from a snapshot, is
//! shown as expired, never hidden.

use futures::StreamExt;
use serde::Serialize;

use super::compact::fetch;
use super::manifest::{Manifest, ManifestStore, SegmentEntry};
use super::segment::{sort_key, Entry, Reader};
use super::writer::root;
use super::ArchiveError;
use crate::backend::state::StateStore;
use crate::model::fields::{self, FieldChange};
use crate::model::{Cause, ObjectKey, Op};

/// What one change did to the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum What {
    Created,
    Updated,
    /// Captured again with the same content (a reconciliation pass, a replayed event).
    Unchanged,
    Deleted,
    /// Known only from a snapshot: its state at that time, its changes compacted away.
    Expired,
}

/// One recorded change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub captured_at: i64,
    pub sequence: String,
    pub what: What,
    pub cause: Cause,
    /// The fields that changed (updates), old → new.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
}

/// Raw segments history fetches ahead of the one it scans (each at most `archive.segment_mib`).
const FETCH_AHEAD: usize = 4;

/// The history of one object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct History {
    pub key: ObjectKey,
    pub changes: Vec<Change>,
    /// Changes before this time are compacted: only the state at it is known.
    pub earliest_restorable: Option<i64>,
    /// Raw segments read.
    pub segments_read: u64,
}

/// The raw segments the archive still holds, oldest snapshot's interval first: those folded
/// into a snapshot after the oldest kept one (the oldest kept one's own were removed by retention
/// unless nothing ever was), then the tail.
pub async fn retained_segments(store: &dyn StateStore, manifest: &Manifest) -> Result<Vec<SegmentEntry>, ArchiveError> {
    let skip = usize::from(!manifest.from_genesis);
    let mut out = Vec::new();
    for snap in manifest.snapshots.iter().skip(skip) {
        let bytes = fetch(store, &snap.folded).await?;
        let folded: Vec<SegmentEntry> = serde_json::from_slice(&bytes)
            .map_err(|e| ArchiveError::Corrupt { what: snap.folded.clone(), reason: e.to_string() })?;
        out.extend(folded);
    }
    out.extend(manifest.tail.iter().cloned());
    Ok(out)
}

/// The record of `key` in the oldest kept snapshot, if it holds one.
async fn in_oldest_snapshot(
    store: &dyn StateStore,
    manifest: &Manifest,
    key: &ObjectKey,
) -> Result<Option<Entry>, ArchiveError> {
    let Some(snap) = manifest.snapshots.first().filter(|_| !manifest.from_genesis) else { return Ok(None) };
    let wanted = sort_key(key);
    for part in &snap.parts {
        if sort_key(&part.min_key) > wanted || sort_key(&part.max_key) < wanted {
            continue;
        }
        let bytes = fetch(store, &part.key).await?;
        for e in Reader::new(&bytes).map_err(|source| ArchiveError::Segment { key: part.key.clone(), source })? {
            let e = e.map_err(|source| ArchiveError::Segment { key: part.key.clone(), source })?;
            if e.record.key == *key {
                return Ok(Some(e));
            }
        }
    }
    Ok(None)
}

/// The history of `key` in the archive of `stream`, changes captured in `[since, until]`.
pub async fn history(
    store: &dyn StateStore,
    stream: &str,
    key: &ObjectKey,
    since: Option<i64>,
    until: Option<i64>,
) -> Result<History, ArchiveError> {
    let (manifest, _) = ManifestStore::new(&root(stream)).load(store).await?;
    if manifest.earliest_restorable().is_none() {
        return Err(ArchiveError::Empty);
    }
    let mut segments = retained_segments(store, &manifest).await?;
    // A segment whose records are all after `until` cannot change what is shown.
    segments.retain(|s| until.is_none_or(|u| s.min_captured_at <= u));
    let mut found: Vec<(String, Entry)> = Vec::new();
    // Fetched a few at a time (S3 latency dominates), scanned in order as they arrive.
    let mut fetched = futures::stream::iter(segments.iter())
        .map(|s| async move { fetch(store, &s.key).await.map(|bytes| (s, bytes)) })
        .buffered(FETCH_AHEAD);
    while let Some(next) = fetched.next().await {
        let (s, bytes) = next?;
        for e in Reader::new(&bytes).map_err(|source| ArchiveError::Segment { key: s.key.clone(), source })? {
            let e = e.map_err(|source| ArchiveError::Segment { key: s.key.clone(), source })?;
            if e.record.key == *key {
                found.push((s.shard.clone(), e));
            }
        }
    }
    found.sort_by(|(sa, a), (sb, b)| {
        (a.record.captured_at, &a.sequence, sa).cmp(&(b.record.captured_at, &b.sequence, sb))
    });
    found.dedup_by(|(sa, a), (sb, b)| sa == sb && a.sequence == b.sequence);

    let mut changes = Vec::new();
    let mut state = None;
    if let Some(base) = in_oldest_snapshot(store, &manifest, key).await? {
        let raw_from = found.first().map(|(_, e)| e.record.captured_at);
        if raw_from.is_none_or(|from| base.record.captured_at < from) {
            state = base.record.state.as_ref().map(fields::json);
            changes.push(Change {
                captured_at: base.record.captured_at,
                sequence: base.sequence.as_str().to_string(),
                what: if base.record.op == Op::Delete { What::Deleted } else { What::Expired },
                cause: base.record.cause.clone(),
                fields: Vec::new(),
            });
        }
    }
    for (_, e) in found {
        let new = e.record.state.as_ref().map(fields::json);
        let (what, changed) = match (&state, &new) {
            (_, None) => (What::Deleted, Vec::new()),
            (None, Some(_)) => (What::Created, Vec::new()),
            (Some(old), Some(new)) => {
                let changed = fields::changes(old, new);
                (if changed.is_empty() { What::Unchanged } else { What::Updated }, changed)
            }
        };
        changes.push(Change {
            captured_at: e.record.captured_at,
            sequence: e.sequence.as_str().to_string(),
            what,
            cause: e.record.cause.clone(),
            fields: changed,
        });
        state = new;
    }
    changes.retain(|c| since.is_none_or(|s| c.captured_at >= s) && until.is_none_or(|u| c.captured_at <= u));
    Ok(History {
        key: key.clone(),
        changes,
        earliest_restorable: manifest.earliest_restorable(),
        segments_read: segments.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::archive::compact::{compact, CompactOptions};
    use crate::archive::writer::SegmentWriter;
    use crate::backend::memory::state::MemoryStore;
    use crate::backend::state::SharedStore;
    use crate::model::{CatalogObject, CauseKind, ChangeRecord, Database, Origin};
    use crate::stream::seqno::SeqNo;

    fn db(description: &str, at: i64, seq: u64, kind: CauseKind) -> Entry {
        let origin = Origin { catalog_id: "1".into(), ..Default::default() };
        let d = Database { name: "sales".into(), description: Some(description.into()), ..Default::default() };
        let cause = Cause { kind, event_id: Some(format!("ev-{seq}")) };
        Entry {
            sequence: SeqNo::parse(&seq.to_string()).unwrap(),
            record: ChangeRecord::upsert(CatalogObject::Database(d), &origin, cause, at),
        }
    }

    fn key() -> ObjectKey {
        ObjectKey::Database { catalog: "1".into(), database: "sales".into() }
    }

    #[tokio::test]
    async fn a_drop_shows_with_its_cause_and_updates_with_old_and_new_values() {
        let store: SharedStore = Arc::new(MemoryStore::new());
        let writer = SegmentWriter::new(store.clone(), "s");
        let origin = Origin { catalog_id: "1".into(), ..Default::default() };
        let drop = Entry {
            sequence: SeqNo::parse("4").unwrap(),
            record: ChangeRecord::delete(
                key(),
                &origin,
                Cause { kind: CauseKind::Cloudtrail, event_id: Some("ct-9".into()) },
                40,
            ),
        };
        writer
            .write("shard-0", &[db("v1", 10, 1, CauseKind::Snapshot), db("v1", 20, 2, CauseKind::Reconcile)], 20)
            .await
            .unwrap();
        writer.write("shard-0", &[db("v2", 30, 3, CauseKind::Event), drop], 40).await.unwrap();
        let h = history(&*store, "s", &key(), None, None).await.unwrap();
        let whats: Vec<What> = h.changes.iter().map(|c| c.what).collect();
        assert_eq!(whats, [What::Created, What::Unchanged, What::Updated, What::Deleted]);
        assert_eq!(h.changes[2].fields[0].path, "description");
        assert_eq!(
            (h.changes[2].fields[0].old.as_str(), h.changes[2].fields[0].new.as_str()),
            (Some("v1"), Some("v2"))
        );
        assert_eq!(
            (h.changes[3].cause.kind, h.changes[3].cause.event_id.as_deref()),
            (CauseKind::Cloudtrail, Some("ct-9"))
        );
        let since = history(&*store, "s", &key(), Some(25), Some(35)).await.unwrap();
        assert_eq!(since.changes.iter().map(|c| c.what).collect::<Vec<_>>(), [What::Updated]);
        assert_eq!((h.segments_read, since.segments_read), (2, 2));
        // A window that ends before the second segment begins does not read it.
        let until = history(&*store, "s", &key(), None, Some(25)).await.unwrap();
        assert_eq!(until.changes.iter().map(|c| c.what).collect::<Vec<_>>(), [What::Created, What::Unchanged]);
        assert_eq!(until.segments_read, 1);
    }

    #[tokio::test]
    async fn changes_past_the_restorable_window_show_as_expired() {
        let store: SharedStore = Arc::new(MemoryStore::new());
        let writer = SegmentWriter::new(store.clone(), "s");
        writer.write("shard-0", &[db("v1", 10, 1, CauseKind::Snapshot)], 10).await.unwrap();
        writer.write("shard-0", &[db("v2", 20, 2, CauseKind::Event)], 20).await.unwrap();
        let opts = CompactOptions { head_ms: 0, retention_ms: 1, ..CompactOptions::default() };
        compact(&store, "s", 100, &opts, true).await.unwrap();
        compact(&store, "s", 200, &opts, true).await.unwrap_or_default();
        writer.write("shard-0", &[db("v3", 300, 3, CauseKind::Event)], 300).await.unwrap();
        let opts = CompactOptions { head_ms: 0, retention_ms: 50, ..CompactOptions::default() };
        compact(&store, "s", 400, &opts, true).await.unwrap();
        let h = history(&*store, "s", &key(), None, None).await.unwrap();
        let whats: Vec<What> = h.changes.iter().map(|c| c.what).collect();
        assert_eq!(whats.first(), Some(&What::Expired), "{:?}", h.changes);
        assert!(h.earliest_restorable.is_some_and(|e| e >= 20), "{:?}", h.earliest_restorable);
    }
}
