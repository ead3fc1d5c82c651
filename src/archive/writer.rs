//! Writing raw segments: a run of one shard's records becomes one object whose name is fixed by
//! the shard and the first record's sequence number, written only if absent. A crash, a restart
//! or a second writer re-reading the same records therefore finds the object already there and
//! takes it as written (or, when it ends sooner, writes only the records after it): never a
//! duplicate, never a hole. The segment enters the manifest after it is durable, and the caller
//! checkpoints only after that.

use time::OffsetDateTime;

use super::manifest::{ManifestStore, SegmentEntry};
use super::segment::{self, Builder, Entry, LEVEL};
use super::ArchiveError;
use crate::backend::state::{PutOutcome, SharedStore};
use crate::stream::seqno::SeqNo;

/// The archive's root in the state store, for one stream.
pub fn root(stream: &str) -> String {
    format!("archive/{stream}/")
}

/// The key of the raw segment starting with `first` in `shard`: time-partitioned by the first
/// record's capture time (UTC), so a listing by hour finds it.
pub fn segment_key(root: &str, shard: &str, first: &SeqNo, captured_at: i64) -> String {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(captured_at) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{root}segments/dt={:04}-{:02}-{:02}/hh={:02}/{shard}-{}.seg",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        first.as_str()
    )
}

fn built(shard: &str, entries: &[Entry]) -> Result<Builder, ArchiveError> {
    let error = |source| ArchiveError::Segment { key: shard.to_string(), source };
    let mut builder = Builder::new(shard, false, LEVEL).map_err(error)?;
    for e in entries {
        builder.push(e).map_err(|source| ArchiveError::Segment { key: shard.to_string(), source })?;
    }
    Ok(builder)
}

/// What one write made durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Every record up to here is in the archive: the checkpoint may move to it, and records up
    /// to it read again must be skipped (an earlier writer may have archived past this batch).
    pub through: SeqNo,
    /// Segments written by this call, and segments found already written.
    pub written: u32,
    pub found: u32,
    /// Records in the segments this call wrote (records found already written are not counted).
    pub records: u64,
    pub bytes: u64,
}

/// Writes one shard's records into the archive.
#[derive(Debug, Clone)]
pub struct SegmentWriter {
    store: SharedStore,
    root: String,
    manifest: ManifestStore,
}

impl SegmentWriter {
    pub fn new(store: SharedStore, stream: &str) -> SegmentWriter {
        let root = root(stream);
        SegmentWriter { manifest: ManifestStore::new(&root), store, root }
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    /// Makes `entries` (one shard's, in stream order, at least one) durable as segments and lists
    /// them in the manifest.
    pub async fn write(&self, shard: &str, entries: &[Entry], now_ms: i64) -> Result<Written, ArchiveError> {
        self.write_built(built(shard, entries)?, now_ms).await
    }

    /// Makes a built segment durable (and lists it), or what of it is not archived yet.
    pub async fn write_built(&self, builder: Builder, now_ms: i64) -> Result<Written, ArchiveError> {
        let shard = builder.shard().to_string();
        let segment_error = |key: &str| {
            let key = key.to_string();
            move |source| ArchiveError::Segment { key, source }
        };
        let (Some(last), Some((_, first_captured))) = (builder.last().cloned(), builder.first()) else {
            return Err(segment_error(&shard)(segment::SegmentError::Empty));
        };
        let (mut bytes, mut index) = builder.finish().map_err(segment_error(&shard))?;
        let mut first_captured = first_captured;
        // What the manifest already holds of this shard (folded into a snapshot, whose raw
        // segments retention may have removed, or listed in the tail) is not written again.
        let (manifest, _) = self.manifest.load(&*self.store).await?;
        let tail_end = manifest.tail.iter().filter(|s| s.shard == shard).map(|s| &s.last_sequence).max();
        let covered = manifest.folded.get(&shard).max(tail_end).cloned();
        let through = covered.clone().filter(|c| *c > last).unwrap_or_else(|| last.clone());
        let mut done = Written { through, written: 0, found: 0, records: 0, bytes: 0 };
        if let Some(c) = covered.as_ref().filter(|c| index.first_sequence <= **c) {
            let rest = segment::entries_after(&bytes, c).map_err(segment_error(&shard))?;
            let Some(first) = rest.first() else { return Ok(done) };
            first_captured = first.record.captured_at;
            (bytes, index) = segment::encode(&shard, &rest, false, LEVEL).map_err(segment_error(&shard))?;
        }
        let mut listed = Vec::new();
        loop {
            let key = segment_key(&self.root, &shard, &index.first_sequence, first_captured);
            let len = bytes.len() as u64;
            match self.store.put_if_absent(&key, bytes.clone()).await? {
                PutOutcome::Written(_) => {
                    listed.push(SegmentEntry::new(&key, &index, len));
                    done.written += 1;
                    done.records += index.count;
                    done.bytes += len;
                    break;
                }
                PutOutcome::Conflict => {
                    // Written before (a crash after the write, before the checkpoint): it covers a
                    // prefix of these records, maybe all of them.
                    let stored = self.store.get(&key).await?.ok_or_else(|| ArchiveError::Corrupt {
                        what: key.clone(),
                        reason: "exists for a conditional write but not for a read".into(),
                    })?;
                    let found = segment::read_index(&stored.bytes).map_err(segment_error(&key))?;
                    listed.push(SegmentEntry::new(&key, &found, stored.bytes.len() as u64));
                    done.found += 1;
                    if found.last_sequence > done.through {
                        done.through = found.last_sequence.clone();
                    }
                    if found.last_sequence < index.first_sequence {
                        return Err(ArchiveError::Corrupt {
                            what: key,
                            reason: "an existing segment ends before its own first record".into(),
                        });
                    }
                    let rest = segment::entries_after(&bytes, &found.last_sequence).map_err(segment_error(&key))?;
                    let Some(first) = rest.first() else { break };
                    first_captured = first.record.captured_at;
                    (bytes, index) = segment::encode(&shard, &rest, false, LEVEL).map_err(segment_error(&key))?;
                }
            }
        }
        if listed.is_empty() {
            return Ok(done);
        }
        self.manifest
            .update(&*self.store, now_ms, |m| {
                let before = m.tail.len();
                for entry in &listed {
                    m.add_segment(entry.clone());
                }
                Ok(m.tail.len() != before)
            })
            .await?;
        Ok(done)
    }
}
