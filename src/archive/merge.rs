//! External merge by key: the latest record of each key among any number of records, in key
//! order ([`sort_key`]), in bounded memory. Compaction folds segments into a snapshot with it, and
//! restore builds the state at a time with it.
//!
//! Records are buffered up to a byte budget, then sorted, reduced to the latest per key and
//! spilled to a local scratch file (a segment, fast zstd); sorted inputs (a snapshot's parts,
//! downloaded) join as they are. [`Merger::finish`] merges every run and input with a heap,
//! holding one record per source.
//!
//! "Latest" is the greatest (capture time, sequence number): per key the stream is in capture
//! order (the publisher drops older reads), and after resharding a child's sequence numbers
//! follow its parent's.
//!
//! A merge that writes a snapshot ([`Merger::keeping_deletes`]) keeps, beside the record of a
//! database or table that was deleted and created again, its newest delete, just before it: a
//! child's record from another shard that arrives later, captured before that delete, is then
//! still left out when the snapshot is merged again (see [`Drops`]).
//!
//! Must never: hold more than the budget plus one record per run, or lose a record to a full
//! disk (an I/O error fails the merge; nothing is written from a failed merge).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::segment::{self, sort_key, Entry, Reader, SegmentError};
use crate::model::{ObjectKey, Op};
use crate::stream::seqno::SeqNo;

/// What a record of each kind costs in memory beyond its encoded bytes, roughly (strings and
/// vectors of the decoded form): the budget counts encoded bytes times this.
const DECODED_OVERHEAD: usize = 3;

#[derive(Debug, Error)]
pub enum MergeError {
    #[error("merge scratch space {dir}: {source}; set archive.work_dir to a disk with room")]
    Scratch { dir: String, source: std::io::Error },
    #[error("merge input {path}: {source}")]
    Input { path: String, source: SegmentError },
}

/// Counts of one merge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeStats {
    /// Records pushed and read from sorted inputs.
    pub records_in: u64,
    /// Keys written out (after `keep`).
    pub keys_out: u64,
    /// Keys whose latest record `keep` dropped (e.g. expired tombstones).
    pub dropped: u64,
    /// Tables and partitions left out because their database's or table's delete is newer.
    pub masked: u64,
    /// Scratch runs spilled.
    pub runs: u64,
}

/// Whether `a` is newer than `b` (same key).
pub fn newer(a: &Entry, b: &Entry) -> bool {
    (a.record.captured_at, &a.sequence) > (b.record.captured_at, &b.sequence)
}

/// The merge in progress.
pub struct Merger {
    dir: tempfile::TempDir,
    budget: usize,
    buffer: Vec<(Vec<u8>, Entry)>,
    buffered: usize,
    /// Sorted sources: spilled runs (`false`) and inputs added by the caller (`true`: their
    /// records are counted as they are read).
    inputs: Vec<(PathBuf, bool)>,
    stats: MergeStats,
    /// Whether the output keeps a re-created parent's newest delete beside its record.
    keep_deletes: bool,
    /// Sources merged at once ([`FAN_IN`]; smaller in tests, to exercise the rounds).
    fan_in: usize,
}

impl Merger {
    /// A merge holding at most about `budget` bytes of records, with scratch files under `dir`
    /// (the system's temporary directory when `None`).
    pub fn new(budget: usize, dir: Option<&Path>) -> Result<Merger, MergeError> {
        let scratch = match dir {
            Some(d) => tempfile::Builder::new().prefix("lakelog-merge-").tempdir_in(d),
            None => tempfile::Builder::new().prefix("lakelog-merge-").tempdir(),
        };
        let dir = scratch.map_err(|source| MergeError::Scratch {
            dir: dir.map_or_else(|| std::env::temp_dir().display().to_string(), |d| d.display().to_string()),
            source,
        })?;
        Ok(Merger {
            dir,
            budget: budget.max(1),
            buffer: Vec::new(),
            buffered: 0,
            inputs: Vec::new(),
            stats: MergeStats::default(),
            keep_deletes: false,
            fan_in: FAN_IN,
        })
    }

    /// Makes the output keep, just before the record of a database or table deleted and created
    /// again, its newest delete (offered to `keep` like any delete, so it expires as tombstones
    /// do). For snapshots: their merges must still see that delete to mask older children.
    pub fn keeping_deletes(mut self) -> Merger {
        self.keep_deletes = true;
        self
    }

    /// The scratch directory (for sorted inputs downloaded by the caller).
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    fn scratch_error(&self, source: std::io::Error) -> MergeError {
        MergeError::Scratch { dir: self.dir.path().display().to_string(), source }
    }

    /// Adds one record; `encoded_bytes` is its encoded size (what it was read as).
    pub fn push(&mut self, entry: Entry, encoded_bytes: usize) -> Result<(), MergeError> {
        self.stats.records_in += 1;
        self.buffered += encoded_bytes.max(64) * DECODED_OVERHEAD;
        self.buffer.push((sort_key(&entry.record.key), entry));
        if self.buffered >= self.budget {
            self.spill()?;
        }
        Ok(())
    }

    /// Adds a sorted input: a segment file whose entries are in key order, one per key.
    pub fn add_sorted(&mut self, path: PathBuf) {
        self.inputs.push((path, true));
    }

    /// Sorts the buffer and keeps the latest record per key, preceded by the key's newest delete
    /// when that is not the latest (see [`Drops`]; only databases and tables have children).
    fn reduce(buffer: &mut Vec<(Vec<u8>, Entry)>) {
        buffer.sort_by(|(ka, a), (kb, b)| {
            ka.cmp(kb).then_with(|| (a.record.captured_at, &a.sequence).cmp(&(b.record.captured_at, &b.sequence)))
        });
        // Of each run of equal keys the last is the latest.
        let mut out: Vec<(Vec<u8>, Entry)> = Vec::with_capacity(buffer.len());
        for item in buffer.drain(..) {
            let same = out.last().is_some_and(|last| last.0 == item.0);
            let parent = !matches!(item.1.record.key, ObjectKey::Partition { .. });
            let last_deleted = out.last().is_some_and(|last| last.1.record.op == Op::Delete);
            match out.len() {
                // A delete followed by a newer record: keep the delete before it.
                n if same && parent && last_deleted => {
                    if n >= 2 && out[n - 2].0 == item.0 {
                        // At most two of a key: the delete takes the older one's place.
                        out.swap(n - 2, n - 1);
                        out[n - 1] = item;
                    } else {
                        out.push(item);
                    }
                }
                n if same => out[n - 1] = item,
                _ => out.push(item),
            }
        }
        *buffer = out;
    }

    fn spill(&mut self) -> Result<(), MergeError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        Self::reduce(&mut self.buffer);
        self.buffered = 0;
        let encoding = |e: SegmentError| std::io::Error::other(e.to_string());
        let mut run = segment::Builder::new("", false, 1).map_err(|e| self.scratch_error(encoding(e)))?;
        for (_, e) in &self.buffer {
            run.push(e).map_err(|e| self.scratch_error(encoding(e)))?;
        }
        self.buffer.clear();
        let (bytes, _) = run.finish().map_err(|e| self.scratch_error(encoding(e)))?;
        let path = self.dir.path().join(format!("run-{:06}.seg", self.stats.runs));
        std::fs::write(&path, bytes).map_err(|e| self.scratch_error(e))?;
        self.stats.runs += 1;
        self.inputs.push((path, false));
        Ok(())
    }

    /// Merges everything pushed and added; calls `out` with the latest record of each key, in
    /// key order, if `keep` accepts it.
    pub fn finish<E>(
        mut self,
        mut keep: impl FnMut(&Entry) -> bool,
        mut out: impl FnMut(Entry) -> Result<(), E>,
    ) -> Result<MergeStats, E>
    where
        E: From<MergeError>,
    {
        let mut drops = Drops::default();
        let keep_deletes = self.keep_deletes;
        let mut emit = |latest: Latest, stats: &mut MergeStats| -> Result<(), E> {
            let Latest { entry, delete } = latest;
            if drops.masks(&entry, delete.as_ref().map(mark_of)) {
                stats.masked += 1;
                return Ok(());
            }
            // The latest is newer than its delete, so this is an object created again.
            let beside = delete.filter(|d| {
                keep_deletes && entry.record.op == Op::Upsert && !matches!(d.record.key, ObjectKey::Partition { .. })
            });
            if let Some(d) = beside {
                if keep(&d) {
                    stats.keys_out += 1;
                    out(d)?;
                }
            }
            if keep(&entry) {
                stats.keys_out += 1;
                out(entry)
            } else {
                stats.dropped += 1;
                Ok(())
            }
        };
        if self.inputs.is_empty() {
            // Everything fit in memory: no scratch file at all.
            Self::reduce(&mut self.buffer);
            let mut stats = self.stats;
            let mut group: Option<(Vec<u8>, Latest)> = None;
            for (key, e) in std::mem::take(&mut self.buffer) {
                match &mut group {
                    Some((k, latest)) if *k == key => latest.add(e),
                    _ => {
                        if let Some((_, done)) = group.replace((key, Latest::of(e))) {
                            emit(done, &mut stats)?;
                        }
                    }
                }
            }
            if let Some((_, done)) = group {
                emit(done, &mut stats)?;
            }
            return Ok(stats);
        }
        self.spill()?;
        let mut stats = self.stats;
        // Past FAN_IN sources, the oldest are merged into one run first, as often as needed: a
        // source holds a decoder and a block, so the final merge's memory stays bounded however
        // many runs a large input spilled.
        let mut inputs = std::mem::take(&mut self.inputs);
        while inputs.len() > self.fan_in {
            let group: Vec<(PathBuf, bool)> = inputs.drain(..self.fan_in).collect();
            let path = self.dir.path().join(format!("run-{:06}.seg", stats.runs));
            stats.runs += 1;
            let mut run = segment::Builder::new("", false, 1).map_err(|e| scratch(&self.dir, encoding(e)))?;
            merge_sources(&group, &mut stats, |latest, _| {
                // Every record a later merge needs: the latest, and a delete it supersedes.
                if let Some(d) = latest.delete.filter(|_| latest.entry.record.op == Op::Upsert) {
                    run.push(&d).map_err(|e| scratch(&self.dir, encoding(e)))?;
                }
                run.push(&latest.entry).map_err(|e| scratch(&self.dir, encoding(e)))
            })?;
            let (bytes, _) = run.finish().map_err(|e| scratch(&self.dir, encoding(e)))?;
            std::fs::write(&path, bytes).map_err(|e| scratch(&self.dir, e))?;
            for (done, _) in &group {
                // Scratch space back as soon as a run is merged; the directory goes at the end anyway.
                let _ = std::fs::remove_file(done);
            }
            inputs.push((path, false));
        }
        merge_sources(&inputs, &mut stats, |latest, stats| emit(latest, stats))?;
        Ok(stats)
    }
}

/// Sources merged at once; more are merged in rounds.
const FAN_IN: usize = 64;

fn encoding(e: SegmentError) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

fn scratch(dir: &tempfile::TempDir, source: std::io::Error) -> MergeError {
    MergeError::Scratch { dir: dir.path().display().to_string(), source }
}

/// Merges sorted sources by key with a heap holding one record per source; calls `emit` with each
/// key's records folded into a [`Latest`], in key order. `counted` sources count their records in.
fn merge_sources<E: From<MergeError>>(
    inputs: &[(PathBuf, bool)],
    stats: &mut MergeStats,
    mut emit: impl FnMut(Latest, &mut MergeStats) -> Result<(), E>,
) -> Result<(), E> {
    let mut sources = Vec::with_capacity(inputs.len());
    for (path, counted) in inputs {
        let reader =
            Reader::open(path).map_err(|source| MergeError::Input { path: path.display().to_string(), source })?;
        sources.push((path.clone(), reader, *counted));
    }
    let mut heap = BinaryHeap::new();
    for (i, (path, reader, counted)) in sources.iter_mut().enumerate() {
        if let Some(head) = next(path, reader, *counted, stats)? {
            heap.push(Reverse(Head { key: sort_key(&head.record.key), source: i, entry: head }));
        }
    }
    // A source's next entry is read as soon as one is taken: a run may hold two of a key.
    while let Some(Reverse(first)) = heap.pop() {
        let key = first.key;
        let mut latest = Latest::of(first.entry);
        let mut taken = first.source;
        loop {
            let (path, reader, counted) = &mut sources[taken];
            if let Some(e) = next(path, reader, *counted, stats)? {
                heap.push(Reverse(Head { key: sort_key(&e.record.key), source: taken, entry: e }));
            }
            if heap.peek().is_none_or(|Reverse(h)| h.key != key) {
                break;
            }
            let Some(Reverse(same)) = heap.pop() else { break };
            latest.add(same.entry);
            taken = same.source;
        }
        emit(latest, stats)?;
    }
    Ok(())
}

/// When (capture time, sequence) an object was last deleted.
type Mark = (i64, SeqNo);

fn mark_of(e: &Entry) -> Mark {
    (e.record.captured_at, e.sequence.clone())
}

/// The latest record of one key, and the newest delete among its records.
struct Latest {
    entry: Entry,
    delete: Option<Entry>,
}

impl Latest {
    fn of(entry: Entry) -> Latest {
        let delete = (entry.record.op == Op::Delete).then(|| entry.clone());
        Latest { entry, delete }
    }

    fn add(&mut self, e: Entry) {
        if e.record.op == Op::Delete && self.delete.as_ref().is_none_or(|d| newer(&e, d)) {
            self.delete = Some(e.clone());
        }
        if newer(&e, &self.entry) {
            self.entry = e;
        }
    }
}

/// The deletes of the database and the table in progress, as the merge's output goes by in key
/// order (a database, then each of its tables followed by its partitions). A delete of a
/// database or table stands for its children — capture publishes none for them — so a child
/// whose latest record is older than its database's or table's newest delete went with it, even
/// when the database or table was created again since. (Children dropped so are left out of a
/// snapshot, and a snapshot keeps a re-created parent's delete beside it for the tombstone
/// retention, so a lagging shard's older child folded later is caught too; after that, as with
/// any expired tombstone, it is not.)
#[derive(Default)]
struct Drops {
    /// (catalog, database) and its newest delete.
    database: Option<(String, String, Option<Mark>)>,
    /// (catalog, database, table) and the newest delete that took its partitions.
    table: Option<(String, String, String, Option<Mark>)>,
}

impl Drops {
    /// Whether `e` (the latest record of its key, whose newest delete is `own`) is of an object
    /// gone with its parent.
    fn masks(&mut self, e: &Entry, own: Option<Mark>) -> bool {
        let older = |mark: &Option<Mark>| mark.as_ref().is_some_and(|m| mark_of(e) < *m);
        match &e.record.key {
            ObjectKey::Database { catalog, database } => {
                self.database = Some((catalog.clone(), database.clone(), own));
                self.table = None;
                false
            }
            ObjectKey::Table { catalog, database, table } => {
                let parent = match &self.database {
                    Some((c, d, mark)) if c == catalog && d == database => mark.clone(),
                    _ => None,
                };
                let masked = older(&parent);
                // A table gone with its database takes its partitions with it up to that delete;
                // a live one, up to its own latest delete.
                let mark = if masked { parent } else { own.max(parent) };
                self.table = Some((catalog.clone(), database.clone(), table.clone(), mark));
                masked
            }
            // A Lake Formation object on a table or database goes with it, as Lake Formation
            // drops a dropped table's grants, tags and filters; a catalog-level one (database
            // `""`) has no parent.
            ObjectKey::LakeFormation { catalog, lf } => {
                let (database, table) = (lf.database(), lf.table());
                let mark = match (&self.table, &self.database, table) {
                    (Some((c, d, t, mark)), _, Some(table)) if c == catalog && d == database && t == table => {
                        mark.clone()
                    }
                    (_, Some((c, d, mark)), _) if c == catalog && d == database && !database.is_empty() => mark.clone(),
                    _ => None,
                };
                older(&mark)
            }
            ObjectKey::Partition { catalog, database, table, .. } => {
                let mark = match (&self.table, &self.database) {
                    (Some((c, d, t, mark)), _) if c == catalog && d == database && t == table => mark.clone(),
                    (_, Some((c, d, mark))) if c == catalog && d == database => mark.clone(),
                    _ => None,
                };
                older(&mark)
            }
        }
    }
}

fn next<R: BufRead, E: From<MergeError>>(
    path: &Path,
    reader: &mut Reader<R>,
    counted: bool,
    stats: &mut MergeStats,
) -> Result<Option<Entry>, E> {
    match reader.next() {
        None => Ok(None),
        Some(Ok(e)) => {
            stats.records_in += u64::from(counted);
            Ok(Some(e))
        }
        Some(Err(source)) => Err(MergeError::Input { path: path.display().to_string(), source }.into()),
    }
}

struct Head {
    key: Vec<u8>,
    source: usize,
    entry: Entry,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key).then(self.source.cmp(&other.source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        CatalogObject, Cause, CauseKind, ChangeRecord, Database, ObjectKey, Op, Origin, Partition, Table,
    };
    use crate::stream::seqno::SeqNo;

    /// Merges in tests take at most this many sources at once, so a few spilled runs already
    /// make the merge go in rounds.
    const FAN_IN_IN_TESTS: usize = 3;

    fn entry(table: u32, at: i64, seq: u64) -> Entry {
        let key = ObjectKey::Table { catalog: "1".into(), database: "db".into(), table: format!("t{table:05}") };
        Entry {
            sequence: SeqNo::parse(&seq.to_string()).unwrap(),
            record: ChangeRecord::delete(key, &Origin::default(), Cause { kind: CauseKind::Event, event_id: None }, at),
        }
    }

    fn merged(mut m: Merger) -> (Vec<Entry>, MergeStats) {
        m.fan_in = m.fan_in.min(FAN_IN_IN_TESTS);
        let mut out = Vec::new();
        let stats = m_finish(&mut m, &mut out);
        (out, stats)
    }

    fn m_finish(m: &mut Merger, out: &mut Vec<Entry>) -> MergeStats {
        let m = std::mem::replace(m, Merger::new(1, None).unwrap());
        m.finish::<MergeError>(
            |_| true,
            |e| {
                out.push(e);
                Ok(())
            },
        )
        .unwrap()
    }

    /// The same records merged in memory and through many spilled runs give the same answer: the
    /// latest (capture time, sequence) per key, in key order.
    #[test]
    fn spilled_and_in_memory_merges_agree_on_the_latest_per_key() {
        let mut records = Vec::new();
        let mut rng = fastrand::Rng::with_seed(7);
        for seq in 0..5_000u64 {
            records.push(entry(rng.u32(0..700), rng.i64(0..100), seq));
        }
        let mut expected: std::collections::BTreeMap<Vec<u8>, Entry> = Default::default();
        for e in &records {
            let k = sort_key(&e.record.key);
            match expected.get(&k) {
                Some(old) if !newer(e, old) => {}
                _ => {
                    expected.insert(k, e.clone());
                }
            }
        }
        let expected: Vec<Entry> = expected.into_values().collect();
        for budget in [usize::MAX, 20_000] {
            let mut m = Merger::new(budget, None).unwrap();
            for e in &records {
                m.push(e.clone(), 100).unwrap();
            }
            let (out, stats) = merged(m);
            assert_eq!(out, expected, "budget {budget}");
            assert_eq!((stats.records_in, stats.keys_out), (5_000, expected.len() as u64));
            assert_eq!(stats.runs > 10, budget != usize::MAX, "{stats:?}");
        }
    }

    fn record(key: ObjectKey, delete: bool, at: i64, seq: u64) -> Entry {
        let cause = Cause { kind: CauseKind::Event, event_id: None };
        let origin = Origin { catalog_id: "1".into(), ..Default::default() };
        let record = if delete {
            ChangeRecord::delete(key.clone(), &origin, cause, at)
        } else {
            let state = match &key {
                ObjectKey::Database { database, .. } => {
                    CatalogObject::Database(Database { name: database.clone(), ..Default::default() })
                }
                ObjectKey::Table { database, table, .. } => CatalogObject::Table(Table {
                    database_name: database.clone(),
                    name: table.clone(),
                    ..Default::default()
                }),
                ObjectKey::Partition { database, table, values, .. } => CatalogObject::Partition(Partition {
                    database_name: database.clone(),
                    table_name: table.clone(),
                    values: values.clone(),
                    ..Default::default()
                }),
                ObjectKey::LakeFormation { catalog, lf } => {
                    use crate::model::lakeformation::{LfKey, LfObject, LfTag, Permission};
                    let lf = match lf {
                        LfKey::Permission { principal, resource } => LfObject::Permission(Permission::new(
                            principal.clone(),
                            resource.clone(),
                            vec!["SELECT".into()],
                            vec![],
                            None,
                        )),
                        LfKey::LfTag { key } => LfObject::LfTag(LfTag { key: key.clone(), values: vec!["v".into()] }),
                        other => unreachable!("not built by these tests: {other} in {catalog}"),
                    };
                    CatalogObject::LakeFormation { lf }
                }
            };
            ChangeRecord::upsert(state, &origin, cause, at)
        };
        assert_eq!(record.key, key);
        Entry { sequence: SeqNo::parse(&seq.to_string()).unwrap(), record }
    }

    /// Lake Formation drops a table's grants with it: a grant captured before its table's (or
    /// database's) delete goes, one captured after stays, and a catalog-level object (an LF-tag)
    /// has no parent to go with.
    #[test]
    fn a_table_or_database_delete_takes_the_grants_on_it_captured_before_it() {
        use crate::model::lakeformation::{LfKey, LfResource};
        let db = |d: &str| ObjectKey::Database { catalog: "1".into(), database: d.into() };
        let t = |d: &str, t: &str| ObjectKey::Table { catalog: "1".into(), database: d.into(), table: t.into() };
        let grant = |principal: &str, resource| ObjectKey::LakeFormation {
            catalog: "1".into(),
            lf: LfKey::Permission { principal: principal.into(), resource },
        };
        let on_table = |d: &str, t: &str| LfResource::Table { database: d.into(), table: t.into() };
        let records = vec![
            record(db("live"), false, 10, 1),
            record(t("live", "dropped"), false, 11, 2),
            record(grant("old", on_table("live", "dropped")), false, 12, 3),
            record(t("live", "dropped"), true, 30, 4),
            record(t("live", "dropped"), false, 40, 5),
            record(grant("new", on_table("live", "dropped")), false, 41, 6),
            record(db("gone"), false, 10, 7),
            record(grant("old", LfResource::TableWildcard { database: "gone".into() }), false, 12, 8),
            record(db("gone"), true, 50, 9),
            record(
                ObjectKey::LakeFormation { catalog: "1".into(), lf: LfKey::LfTag { key: "k".into() } },
                false,
                5,
                10,
            ),
        ];
        for budget in [usize::MAX, 300] {
            let mut m = Merger::new(budget, None).unwrap();
            for e in records.iter().rev() {
                m.push(e.clone(), 100).unwrap();
            }
            let (out, _) = merged(m);
            let live: Vec<String> =
                out.iter().filter(|e| e.record.op == Op::Upsert).map(|e| e.record.key.to_string()).collect();
            assert_eq!(
                live,
                ["1: LF-tag k", "1/live", "1/live/dropped", "1: permission of new on table live.dropped",],
                "budget {budget}"
            );
        }
    }

    /// A dropped database's or table's children are not published (its delete stands for them),
    /// so their latest records are older upserts: the merge must not bring them back.
    #[test]
    fn a_database_or_table_delete_takes_the_children_captured_before_it() {
        let db = |d: &str| ObjectKey::Database { catalog: "1".into(), database: d.into() };
        let t = |d: &str, t: &str| ObjectKey::Table { catalog: "1".into(), database: d.into(), table: t.into() };
        let p = |d: &str, t: &str, v: &str| ObjectKey::Partition {
            catalog: "1".into(),
            database: d.into(),
            table: t.into(),
            values: vec![v.into()],
        };
        let records = vec![
            record(db("gone"), false, 10, 1),
            record(t("gone", "old"), false, 11, 2),
            record(p("gone", "old", "1"), false, 12, 3),
            record(db("gone"), true, 50, 4),
            // Re-created after the drop: kept, as are children captured after it.
            record(db("back"), false, 10, 5),
            record(t("back", "x"), false, 11, 6),
            record(p("back", "x", "1"), false, 12, 7),
            record(db("back"), true, 50, 8),
            record(db("back"), false, 60, 9),
            record(t("back", "x"), false, 61, 10),
            record(p("back", "x", "2"), false, 62, 11),
            // A table dropped in a live database: its older partitions go, newer ones stay.
            record(db("live"), false, 10, 12),
            record(t("live", "dropped"), false, 11, 13),
            record(p("live", "dropped", "1"), false, 12, 14),
            record(t("live", "dropped"), true, 30, 15),
            record(t("live", "kept"), false, 11, 16),
            record(p("live", "kept", "1"), false, 12, 17),
            record(t("live", "reborn"), false, 11, 18),
            record(p("live", "reborn", "1"), false, 12, 19),
            record(t("live", "reborn"), true, 30, 20),
            record(t("live", "reborn"), false, 40, 21),
            record(p("live", "reborn", "2"), false, 41, 22),
        ];
        for budget in [usize::MAX, 300] {
            let mut m = Merger::new(budget, None).unwrap();
            for e in records.iter().rev() {
                m.push(e.clone(), 100).unwrap();
            }
            let (out, stats) = merged(m);
            let live: Vec<String> =
                out.iter().filter(|e| e.record.op == Op::Upsert).map(|e| e.record.key.to_string()).collect();
            assert_eq!(
                live,
                [
                    "1/back",
                    "1/back/x",
                    "1/back/x/[2]",
                    "1/live",
                    "1/live/kept",
                    "1/live/kept/[1]",
                    "1/live/reborn",
                    "1/live/reborn/[2]"
                ],
                "budget {budget}"
            );
            let deletes: Vec<String> =
                out.iter().filter(|e| e.record.op == Op::Delete).map(|e| e.record.key.to_string()).collect();
            assert_eq!(deletes, ["1/gone", "1/live/dropped"], "the deletes themselves stay");
            assert_eq!(stats.masked, 5, "budget {budget}: {stats:?}");
        }
    }

    #[test]
    fn a_sorted_input_joins_the_merge_and_keep_drops_what_it_refuses() {
        let mut m = Merger::new(usize::MAX, None).unwrap();
        let base: Vec<Entry> = (0..10).map(|t| entry(t, 5, 100 + u64::from(t))).collect();
        let (bytes, _) = segment::encode("", &base, true, 1).unwrap();
        let path = m.scratch().join("base.seg");
        std::fs::write(&path, bytes).unwrap();
        m.add_sorted(path);
        m.push(entry(3, 9, 500), 100).unwrap(); // newer than the base's t3
        m.push(entry(4, 1, 501), 100).unwrap(); // older than the base's t4: loses
        m.push(entry(20, 9, 502), 100).unwrap();
        let mut out = Vec::new();
        let stats = m
            .finish::<MergeError>(
                |e| e.record.key.table() != Some("t00007"),
                |e| {
                    out.push(e);
                    Ok(())
                },
            )
            .unwrap();
        let got: Vec<(String, i64)> =
            out.iter().map(|e| (e.record.key.table().unwrap().to_string(), e.record.captured_at)).collect();
        assert_eq!(got.len(), 10);
        assert!(got.contains(&("t00003".into(), 9)) && got.contains(&("t00004".into(), 5)));
        assert!(got.contains(&("t00020".into(), 9)) && !got.iter().any(|(t, _)| t == "t00007"));
        assert_eq!((stats.records_in, stats.dropped), (13, 1));
    }

    /// A database dropped and created again, both folded into one snapshot; then a table of the
    /// old database arrives from a lagging shard, captured before the drop. The snapshot keeps
    /// the drop beside the new database, so the next fold (and a restore) still leaves the table
    /// out. Without the kept delete the table came back.
    #[test]
    fn a_recreated_database_keeps_its_delete_in_the_snapshot_so_a_late_older_table_stays_gone() {
        let db = ObjectKey::Database { catalog: "1".into(), database: "sales".into() };
        let t = ObjectKey::Table { catalog: "1".into(), database: "sales".into(), table: "orders".into() };
        let mut first = Merger::new(usize::MAX, None).unwrap().keeping_deletes();
        for e in [record(db.clone(), false, 10, 1), record(db.clone(), true, 30, 3), record(db.clone(), false, 40, 4)] {
            first.push(e, 100).unwrap();
        }
        let (snapshot, _) = merged(first);
        let ops: Vec<(Op, i64)> = snapshot.iter().map(|e| (e.record.op, e.record.captured_at)).collect();
        assert_eq!(ops, [(Op::Delete, 30), (Op::Upsert, 40)], "the drop is kept just before the new database");
        let (part, _) = segment::encode("", &snapshot, true, 1).unwrap();

        for keeping in [true, false] {
            let mut next = Merger::new(usize::MAX, None).unwrap();
            if keeping {
                next = next.keeping_deletes();
            }
            let path = next.scratch().join("base.seg");
            std::fs::write(&path, &part).unwrap();
            next.add_sorted(path);
            next.push(record(t.clone(), false, 20, 2), 100).unwrap(); // the lagging shard's table
            let (out, stats) = merged(next);
            let keys: Vec<(String, Op)> = out.iter().map(|e| (e.record.key.to_string(), e.record.op)).collect();
            let expected = if keeping {
                vec![("1/sales".to_string(), Op::Delete), ("1/sales".to_string(), Op::Upsert)]
            } else {
                vec![("1/sales".to_string(), Op::Upsert)]
            };
            assert_eq!(keys, expected, "keeping deletes: {keeping}");
            assert_eq!(stats.masked, 1);
        }

        // An expired tombstone goes, the beside one too: then the merge is one record per key.
        let mut m = Merger::new(usize::MAX, None).unwrap().keeping_deletes();
        for e in [record(db.clone(), true, 30, 3), record(db.clone(), false, 40, 4)] {
            m.push(e, 100).unwrap();
        }
        let mut out = Vec::new();
        m.finish::<MergeError>(
            |e| e.record.op != Op::Delete,
            |e| {
                out.push(e);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(out.iter().map(|e| e.record.op).collect::<Vec<_>>(), [Op::Upsert]);
    }
}
