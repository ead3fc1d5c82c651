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
//! Must never: hold more than the budget plus one record per run, or lose a record to a full
//! disk (an I/O error fails the merge; nothing is written from a failed merge).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::segment::{self, sort_key, Entry, Reader, SegmentError};

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
        })
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

    /// Sorts the buffer and keeps the latest record per key.
    fn reduce(buffer: &mut Vec<(Vec<u8>, Entry)>) {
        buffer.sort_by(|(ka, a), (kb, b)| {
            ka.cmp(kb).then_with(|| (a.record.captured_at, &a.sequence).cmp(&(b.record.captured_at, &b.sequence)))
        });
        // Of each run of equal keys the last is the latest: keep it.
        let mut out: Vec<(Vec<u8>, Entry)> = Vec::with_capacity(buffer.len());
        for item in buffer.drain(..) {
            match out.last_mut() {
                Some(last) if last.0 == item.0 => *last = item,
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
        let mut emit = |entry: Entry, stats: &mut MergeStats| -> Result<(), E> {
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
            for (_, e) in std::mem::take(&mut self.buffer) {
                emit(e, &mut stats)?;
            }
            return Ok(stats);
        }
        self.spill()?;
        let mut sources = Vec::with_capacity(self.inputs.len());
        for (path, counted) in &self.inputs {
            let reader =
                Reader::open(path).map_err(|source| MergeError::Input { path: path.display().to_string(), source })?;
            sources.push((path.clone(), reader, *counted));
        }
        let mut heap = BinaryHeap::new();
        let mut stats = self.stats;
        for (i, (path, reader, counted)) in sources.iter_mut().enumerate() {
            if let Some(head) = next(path, reader, *counted, &mut stats)? {
                heap.push(Reverse(Head { key: sort_key(&head.record.key), source: i, entry: head }));
            }
        }
        while let Some(Reverse(first)) = heap.pop() {
            let mut best = first.entry;
            let key = first.key;
            let mut refill = vec![first.source];
            while heap.peek().is_some_and(|Reverse(h)| h.key == key) {
                let Some(Reverse(same)) = heap.pop() else { break };
                if newer(&same.entry, &best) {
                    best = same.entry;
                }
                refill.push(same.source);
            }
            for i in refill {
                let (path, reader, counted) = &mut sources[i];
                if let Some(e) = next(path, reader, *counted, &mut stats)? {
                    heap.push(Reverse(Head { key: sort_key(&e.record.key), source: i, entry: e }));
                }
            }
            emit(best, &mut stats)?;
        }
        Ok(stats)
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
    use crate::model::{Cause, CauseKind, ChangeRecord, ObjectKey, Origin};
    use crate::stream::seqno::SeqNo;

    fn entry(table: u32, at: i64, seq: u64) -> Entry {
        let key = ObjectKey::Table { catalog: "1".into(), database: "db".into(), table: format!("t{table:05}") };
        Entry {
            sequence: SeqNo::parse(&seq.to_string()).unwrap(),
            record: ChangeRecord::delete(key, &Origin::default(), Cause { kind: CauseKind::Event, event_id: None }, at),
        }
    }

    fn merged(mut m: Merger) -> (Vec<Entry>, MergeStats) {
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
}
