//! One object's recorded history: every change the archive holds for it, oldest first — when
//! (capture time and stream position), what (create, update with the fields that changed, old →
//! new, or delete), and why (the cause: an event with its id, CloudTrail, reconciliation, the
//! initial snapshot). A change older than the restorable window, known only from a snapshot, is
//! shown as expired, never hidden.
//!
//! With it, the history of each Lake Formation object on it ([`related`]): a database's or
//! table's grants and LF-tags, an LF-tag's grants, and for the data lake settings every
//! catalog-level object (`lakelog history --catalog`).

use std::collections::BTreeMap;

use futures::StreamExt;
use serde::Serialize;

use super::compact::fetch;
use super::manifest::{Manifest, ManifestStore, SegmentEntry};
use super::segment::{sort_key, Entry, Reader};
use super::writer::root;
use super::ArchiveError;
use crate::backend::state::StateStore;
use crate::model::fields::{self, FieldChange};
use crate::model::lakeformation::{LfKey, LfResource};
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

/// The history of one Lake Formation object shown with another's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Related {
    pub key: ObjectKey,
    /// The key in words (`<catalog>: permission of <principal> on table db.t`).
    pub object: String,
    pub changes: Vec<Change>,
}

/// Whether `other` is a Lake Formation object shown with the history of `key`:
/// - of a database: the grants on it and on all its tables (`ALL_TABLES`), the LF-tags on it;
/// - of a table: the grants on it and its columns, the LF-tags on it and its columns, its data
///   cells filters and opt-ins;
/// - of an LF-tag: the grants on it and on LF-tag policies that name it;
/// - of the data lake settings: every other catalog-level object (LF-tags, expressions,
///   registered locations, grants on the catalog, a location or a tag).
pub fn related(key: &ObjectKey, other: &ObjectKey) -> bool {
    let Some(lf) = other.lake_formation() else { return false };
    if other == key || other.catalog() != key.catalog() {
        return false;
    }
    match key {
        ObjectKey::Database { database, .. } => lf.database() == database && lf.table().is_none(),
        ObjectKey::Table { database, table, .. } => lf.database() == database && lf.table() == Some(table),
        ObjectKey::LakeFormation { lf: LfKey::LfTag { key: tag }, .. } => match lf {
            LfKey::Permission { resource: LfResource::LfTag { key, .. }, .. } => key == tag,
            LfKey::Permission { resource: LfResource::LfTagPolicy { expression, .. }, .. } => {
                expression.iter().any(|p| &p.key == tag)
            }
            _ => false,
        },
        ObjectKey::LakeFormation { lf: LfKey::DataLakeSettings, .. } => lf.database().is_empty(),
        ObjectKey::Partition { .. } | ObjectKey::LakeFormation { .. } => false,
    }
}

/// The sort-key prefix of every object [`related`] to `key`: Lake Formation objects sort right
/// after the names of the database or table they are on (catalog-level ones: of the database
/// `""`), behind `0x00 0x02` (see [`sort_key`]). `None`: nothing is related.
fn related_prefix(key: &ObjectKey) -> Option<Vec<u8>> {
    let catalog = key.catalog().to_string();
    let on = match key {
        ObjectKey::Database { .. } | ObjectKey::Table { .. } => key.clone(),
        ObjectKey::LakeFormation { lf: LfKey::LfTag { .. } | LfKey::DataLakeSettings, .. } => {
            ObjectKey::Database { catalog, database: String::new() }
        }
        ObjectKey::Partition { .. } | ObjectKey::LakeFormation { .. } => return None,
    };
    let mut prefix = sort_key(&on);
    prefix.extend_from_slice(&[0, 2]);
    Some(prefix)
}

/// Raw segments history fetches ahead of the one it scans (each at most `archive.segment_mib`).
const FETCH_AHEAD: usize = 4;

/// The history of one object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct History {
    pub key: ObjectKey,
    pub changes: Vec<Change>,
    /// The Lake Formation objects on it ([`related`]) that changed in the window, by key.
    pub lake_formation: Vec<Related>,
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

/// The records of `key` and of the objects related to it in the oldest kept snapshot, the first
/// of each key (a re-created object's newest delete sits just before its record).
async fn in_oldest_snapshot(
    store: &dyn StateStore,
    manifest: &Manifest,
    key: &ObjectKey,
) -> Result<BTreeMap<ObjectKey, Entry>, ArchiveError> {
    let mut out = BTreeMap::new();
    let Some(snap) = manifest.snapshots.first().filter(|_| !manifest.from_genesis) else { return Ok(out) };
    let wanted = sort_key(key);
    let prefix = related_prefix(key);
    for part in &snap.parts {
        let (min, max) = (sort_key(&part.min_key), sort_key(&part.max_key));
        let holds_key = min <= wanted && wanted <= max;
        // Some key with the prefix lies in [min, max].
        let holds_related = prefix.as_ref().is_some_and(|p| max >= *p && (min <= *p || min.starts_with(p)));
        if !holds_key && !holds_related {
            continue;
        }
        let bytes = fetch(store, &part.key).await?;
        for e in Reader::new(&bytes).map_err(|source| ArchiveError::Segment { key: part.key.clone(), source })? {
            let e = e.map_err(|source| ArchiveError::Segment { key: part.key.clone(), source })?;
            if e.record.key == *key || related(key, &e.record.key) {
                out.entry(e.record.key.clone()).or_insert(e);
            }
        }
    }
    Ok(out)
}

/// The changes of one key: its state in the oldest snapshot (`base`) when older than its raw
/// records, then each raw record (`found`, from any shard), compared with the one before.
fn changes_of(base: Option<Entry>, mut found: Vec<(String, Entry)>) -> Vec<Change> {
    found.sort_by(|(sa, a), (sb, b)| {
        (a.record.captured_at, &a.sequence, sa).cmp(&(b.record.captured_at, &b.sequence, sb))
    });
    found.dedup_by(|(sa, a), (sb, b)| sa == sb && a.sequence == b.sequence);
    let mut changes = Vec::new();
    let mut state = None;
    if let Some(base) = base {
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
    changes
}

/// The history of `key` and of the objects [`related`] to it in the archive of `stream`, changes
/// captured in `[since, until]`.
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
    let mut found: BTreeMap<ObjectKey, Vec<(String, Entry)>> = BTreeMap::new();
    // Fetched a few at a time (S3 latency dominates), scanned in order as they arrive.
    let mut fetched = futures::stream::iter(segments.iter())
        .map(|s| async move { fetch(store, &s.key).await.map(|bytes| (s, bytes)) })
        .buffered(FETCH_AHEAD);
    while let Some(next) = fetched.next().await {
        let (s, bytes) = next?;
        for e in Reader::new(&bytes).map_err(|source| ArchiveError::Segment { key: s.key.clone(), source })? {
            let e = e.map_err(|source| ArchiveError::Segment { key: s.key.clone(), source })?;
            if e.record.key == *key || related(key, &e.record.key) {
                found.entry(e.record.key.clone()).or_default().push((s.shard.clone(), e));
            }
        }
    }
    let mut base = in_oldest_snapshot(store, &manifest, key).await?;
    let in_window = |mut changes: Vec<Change>| {
        changes.retain(|c| since.is_none_or(|s| c.captured_at >= s) && until.is_none_or(|u| c.captured_at <= u));
        changes
    };
    let changes = in_window(changes_of(base.remove(key), found.remove(key).unwrap_or_default()));
    let mut keys: Vec<ObjectKey> = found.keys().chain(base.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    let mut lake_formation = Vec::new();
    for k in keys {
        let changes = in_window(changes_of(base.remove(&k), found.remove(&k).unwrap_or_default()));
        if !changes.is_empty() {
            lake_formation.push(Related { object: k.to_string(), key: k, changes });
        }
    }
    Ok(History {
        key: key.clone(),
        changes,
        lake_formation,
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
    use crate::model::lakeformation::{LfObject, LfTag, LfTagPair, Permission, ResourceTags};
    use crate::model::{CatalogObject, CauseKind, ChangeRecord, Database, Origin, Table};
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

    fn lf(object: LfObject, at: i64, seq: u64) -> Entry {
        let origin = Origin { catalog_id: "1".into(), ..Default::default() };
        let cause = Cause { kind: CauseKind::Snapshot, event_id: None };
        let state = CatalogObject::LakeFormation { lf: object };
        Entry {
            sequence: SeqNo::parse(&seq.to_string()).unwrap(),
            record: ChangeRecord::upsert(state, &origin, cause, at),
        }
    }

    fn grant(principal: &str, resource: LfResource) -> LfObject {
        LfObject::Permission(Permission::new(principal.into(), resource, vec!["SELECT".into()], vec![], None))
    }

    fn on(table: &str) -> LfResource {
        LfResource::Table { database: "sales".into(), table: table.into() }
    }

    /// A table, a grant on it, one on another table, its tags, a grant on its database, an
    /// LF-tag and grants on the tag and on the catalog; then the table's grant revoked.
    fn lake(at: i64) -> Vec<Entry> {
        let origin = Origin { catalog_id: "1".into(), ..Default::default() };
        let table = Table { database_name: "sales".into(), name: "orders".into(), ..Default::default() };
        let cause = Cause { kind: CauseKind::Snapshot, event_id: None };
        let tags = ResourceTags {
            database: "sales".into(),
            table: Some("orders".into()),
            tags: vec![LfTagPair::new("team", vec!["x".into()])],
            ..Default::default()
        };
        vec![
            Entry {
                sequence: SeqNo::parse("1").unwrap(),
                record: ChangeRecord::upsert(CatalogObject::Table(table), &origin, cause, at),
            },
            lf(grant("a", on("orders")), at + 1, 2),
            lf(grant("a", on("returns")), at + 2, 3),
            lf(LfObject::ResourceTags(tags), at + 3, 4),
            lf(grant("a", LfResource::Database { database: "sales".into() }), at + 4, 5),
            lf(LfObject::LfTag(LfTag { key: "team".into(), values: vec!["x".into()] }), at + 5, 6),
            lf(grant("a", LfResource::LfTag { key: "team".into(), values: vec!["x".into()] }), at + 6, 7),
            lf(grant("a", LfResource::Catalog), at + 7, 8),
        ]
    }

    fn table_key() -> ObjectKey {
        ObjectKey::Table { catalog: "1".into(), database: "sales".into(), table: "orders".into() }
    }

    fn lf_key(lf: LfKey) -> ObjectKey {
        ObjectKey::LakeFormation { catalog: "1".into(), lf }
    }

    fn objects(h: &History) -> Vec<&str> {
        h.lake_formation.iter().map(|r| r.object.as_str()).collect()
    }

    #[tokio::test]
    async fn a_table_shows_its_grants_and_tags_an_lf_tag_its_grants_the_settings_the_catalogs_objects() {
        let store: SharedStore = Arc::new(MemoryStore::new());
        let writer = SegmentWriter::new(store.clone(), "s");
        let origin = Origin { catalog_id: "1".into(), ..Default::default() };
        let entries = lake(10);
        let revoke = Entry {
            sequence: SeqNo::parse("9").unwrap(),
            record: ChangeRecord::delete(
                entries[1].record.key.clone(),
                &origin,
                Cause { kind: CauseKind::Cloudtrail, event_id: Some("ct-1".into()) },
                30,
            ),
        };
        writer.write("shard-0", &entries, 20).await.unwrap();
        writer.write("shard-0", &[revoke], 30).await.unwrap();

        let h = history(&*store, "s", &table_key(), None, None).await.unwrap();
        assert_eq!(h.changes.iter().map(|c| c.what).collect::<Vec<_>>(), [What::Created]);
        assert_eq!(objects(&h), ["1: permission of a on table sales.orders", "1: LF-tags on table sales.orders"]);
        let revoked: Vec<What> = h.lake_formation[0].changes.iter().map(|c| c.what).collect();
        assert_eq!(revoked, [What::Created, What::Deleted]);
        assert_eq!(h.lake_formation[0].changes[1].cause.event_id.as_deref(), Some("ct-1"));
        // The window applies to them too: only the revoke is after 25.
        let late = history(&*store, "s", &table_key(), Some(25), None).await.unwrap();
        assert_eq!((late.changes.len(), objects(&late)), (0, vec!["1: permission of a on table sales.orders"]));

        let db = ObjectKey::Database { catalog: "1".into(), database: "sales".into() };
        let h = history(&*store, "s", &db, None, None).await.unwrap();
        assert_eq!(objects(&h), ["1: permission of a on database sales"]);
        let tag = lf_key(LfKey::LfTag { key: "team".into() });
        let h = history(&*store, "s", &tag, None, None).await.unwrap();
        assert_eq!(h.changes.iter().map(|c| c.what).collect::<Vec<_>>(), [What::Created]);
        assert_eq!(objects(&h), ["1: permission of a on LF-tag team=x"]);
        let h = history(&*store, "s", &lf_key(LfKey::DataLakeSettings), None, None).await.unwrap();
        assert_eq!(h.changes, []);
        assert_eq!(
            objects(&h),
            ["1: permission of a on catalog", "1: permission of a on LF-tag team=x", "1: LF-tag team"]
        );
    }

    /// What is related to an object sorts under its prefix, so a snapshot part that cannot hold
    /// the prefix is skipped without missing any; another table's grants do not.
    #[test]
    fn related_objects_sort_under_the_prefix_of_what_they_are_on() {
        let db = ObjectKey::Database { catalog: "1".into(), database: "sales".into() };
        let settings = lf_key(LfKey::DataLakeSettings);
        let tag = lf_key(LfKey::LfTag { key: "team".into() });
        let mut keys: Vec<ObjectKey> = lake(0).into_iter().map(|e| e.record.key).collect();
        keys.push(lf_key(LfKey::ResourceTags { database: "sales".into(), table: None }));
        let mut related_pairs = 0;
        for on in [table_key(), db.clone(), settings, tag] {
            let prefix = related_prefix(&on).expect("a prefix");
            for k in keys.iter().filter(|k| related(&on, k)) {
                related_pairs += 1;
                assert!(sort_key(k).starts_with(&prefix), "{k} under {on}");
            }
        }
        assert_eq!(related_pairs, 8);
        let under = |on: &ObjectKey, k: &ObjectKey| sort_key(k).starts_with(&related_prefix(on).expect("a prefix"));
        let other_table = lf_key(LfKey::Permission { principal: "a".into(), resource: on("returns") });
        assert!(!under(&table_key(), &other_table) && !under(&db, &other_table) && !under(&db, &table_key()));
        assert_eq!(
            related_prefix(&ObjectKey::Partition {
                catalog: "1".into(),
                database: "sales".into(),
                table: "orders".into(),
                values: vec![]
            }),
            None
        );
    }

    #[tokio::test]
    async fn a_grant_known_only_from_the_oldest_snapshot_shows_as_expired_with_its_table() {
        let store: SharedStore = Arc::new(MemoryStore::new());
        let writer = SegmentWriter::new(store.clone(), "s");
        writer.write("shard-0", &lake(10), 20).await.unwrap();
        writer.write("shard-0", &[db("v2", 30, 20, CauseKind::Event)], 30).await.unwrap();
        let opts = CompactOptions { head_ms: 0, retention_ms: 1, ..CompactOptions::default() };
        compact(&store, "s", 100, &opts, true).await.unwrap();
        compact(&store, "s", 200, &opts, true).await.unwrap_or_default();
        writer.write("shard-0", &[db("v3", 300, 21, CauseKind::Event)], 300).await.unwrap();
        let opts = CompactOptions { head_ms: 0, retention_ms: 50, ..CompactOptions::default() };
        compact(&store, "s", 400, &opts, true).await.unwrap();
        let h = history(&*store, "s", &table_key(), None, None).await.unwrap();
        assert_eq!(h.changes.iter().map(|c| c.what).collect::<Vec<_>>(), [What::Expired], "{h:?}");
        assert_eq!(objects(&h), ["1: permission of a on table sales.orders", "1: LF-tags on table sales.orders"]);
        assert!(h.lake_formation.iter().all(|r| r.changes.iter().map(|c| c.what).eq([What::Expired])), "{h:?}");
    }
}
