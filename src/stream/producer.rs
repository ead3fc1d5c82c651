//! The ordered, batching producer onto the [`ChangeLog`] (Kinesis PutRecords).
//!
//! Guarantees:
//! - **Per-key order.** Records are packed into frames per stream partition key. A PutRecords
//!   call carries at most one frame per key, and a failed entry is re-sent before any later
//!   frame of its key. So the order Kinesis stores for a key is the order records were captured,
//!   even across partial failures (PutRecords itself keeps no order across them).
//! - **Nothing dropped.** Throttled or failed entries are retried with backoff; a retryable call
//!   failure is retried by the shared [`RetryPolicy`], then the whole publish fails (nothing was
//!   acknowledged that was not stored).
//! - **Limits.** ≤ 500 entries and ≤ 5 MiB per call, each frame ≤ `frame_bytes` (≤ 1 MiB with
//!   its key).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::StreamError;
use crate::backend::changelog::{ChangeLog, LogEntry, PutResult, PUT_BYTES, PUT_ENTRIES, RECORD_BYTES};
use crate::backend::retry::RetryPolicy;
use crate::backend::ErrorClass;
use crate::metrics as m;
use crate::model::codec::{FrameBuilder, MAX_FRAME_OVERHEAD};
use crate::model::seqno::SeqNo;
use crate::model::{ChangeRecord, ObjectKind};

/// Buffered bytes that trigger a flush.
const FLUSH_BYTES: usize = 4 * 1024 * 1024;

/// What a publish run put on the stream.
#[derive(Debug, Clone, Default)]
pub struct Published {
    /// Change records acknowledged.
    pub records: u64,
    /// Kinesis records (frames) acknowledged.
    pub frames: u64,
    /// PutRecords calls made.
    pub put_calls: u64,
    /// Entries re-sent after partial failures.
    pub retried_entries: u64,
    /// The highest sequence number acknowledged per shard.
    pub last_sequence: BTreeMap<String, SeqNo>,
}

struct Frame {
    builder: FrameBuilder,
    /// Records per kind, in `ObjectKind` order (database, table, partition, then every Lake
    /// Formation kind together), for metrics.
    kinds: [u32; 4],
}

fn kind_index(kind: ObjectKind) -> usize {
    match kind {
        ObjectKind::Database => 0,
        ObjectKind::Table => 1,
        ObjectKind::Partition => 2,
        _ => 3,
    }
}

/// A finished frame: its bytes, record count and records per kind.
type Ready = (Vec<u8>, u32, [u32; 4]);

/// Publishes change records to one stream.
#[derive(Debug, Clone)]
pub struct Producer {
    log: Arc<dyn ChangeLog>,
    frame_bytes: usize,
    /// How long records may wait for company before a flush.
    linger: Duration,
}

impl Producer {
    pub fn new(log: Arc<dyn ChangeLog>, frame_bytes: usize) -> Producer {
        Producer { log, frame_bytes: frame_bytes.clamp(1024, RECORD_BYTES - 1024), linger: Duration::from_millis(200) }
    }

    /// Publishes everything received on `rx` until it closes.
    pub async fn publish_all(&self, mut rx: mpsc::Receiver<ChangeRecord>) -> Result<Published, StreamError> {
        let mut published = Published::default();
        let mut pending: BTreeMap<String, VecDeque<Frame>> = BTreeMap::new();
        let mut buffered = 0usize;
        loop {
            let deadline = tokio::time::sleep(self.linger);
            tokio::pin!(deadline);
            let mut closed = false;
            loop {
                tokio::select! {
                    rec = rx.recv() => match rec {
                        Some(rec) => {
                            buffered += self.add(&mut pending, &rec)?;
                            if buffered >= FLUSH_BYTES { break; }
                        }
                        None => { closed = true; break; }
                    },
                    _ = &mut deadline, if buffered > 0 => break,
                }
            }
            self.flush(&mut pending, &mut published).await?;
            buffered = 0;
            if closed {
                return Ok(published);
            }
        }
    }

    /// Publishes `records` and returns once Kinesis has acknowledged every one of them.
    pub async fn publish_batch(&self, records: &[ChangeRecord]) -> Result<Published, StreamError> {
        let mut published = Published::default();
        let mut pending: BTreeMap<String, VecDeque<Frame>> = BTreeMap::new();
        for rec in records {
            self.add(&mut pending, rec)?;
        }
        self.flush(&mut pending, &mut published).await?;
        Ok(published)
    }

    /// Adds one record to its key's last open frame (or a new one); returns the bytes added.
    fn add(&self, pending: &mut BTreeMap<String, VecDeque<Frame>>, rec: &ChangeRecord) -> Result<usize, StreamError> {
        let key = rec.key.stream_partition_key();
        // Errors name the object, not its stream key (which may be a hash).
        let encoded = FrameBuilder::encode_record(rec)
            .map_err(|e| StreamError::Encode { key: rec.key.to_string(), source: e })?;
        let limit = self.frame_bytes.saturating_sub(key.len());
        if encoded.len() + MAX_FRAME_OVERHEAD > limit {
            return Err(StreamError::RecordTooLarge { key: rec.key.to_string(), bytes: encoded.len(), limit });
        }
        let frames = pending.entry(key).or_default();
        let fits = frames.back().is_some_and(|f| f.builder.frame_len() + encoded.len() <= limit);
        if !fits {
            frames.push_back(Frame { builder: FrameBuilder::default(), kinds: [0; 4] });
        }
        if let Some(f) = frames.back_mut() {
            f.builder.push_encoded(&encoded);
            f.kinds[kind_index(rec.key.kind())] += 1;
        }
        Ok(encoded.len())
    }

    /// Sends every pending frame, at most one per key per call, oldest first.
    async fn flush(
        &self,
        pending: &mut BTreeMap<String, VecDeque<Frame>>,
        published: &mut Published,
    ) -> Result<(), StreamError> {
        // Frames are finished lazily so their bytes are built once.
        let mut ready: BTreeMap<String, VecDeque<Ready>> = BTreeMap::new();
        for (key, frames) in std::mem::take(pending) {
            let finished = frames.into_iter().map(|f| {
                let count = f.builder.count();
                (f.builder.finish(), count, f.kinds)
            });
            ready.insert(key, finished.collect());
        }
        let mut by_kind = [0u64; 4];
        let mut backoff = Duration::from_millis(50);
        while !ready.is_empty() {
            // One head frame per key, within call limits.
            let mut keys = Vec::new();
            let mut entries = Vec::new();
            let mut bytes = 0usize;
            for (key, frames) in &ready {
                let Some((data, _, _)) = frames.front() else { continue };
                let size = data.len() + key.len();
                if entries.len() == PUT_ENTRIES || bytes + size > PUT_BYTES {
                    break;
                }
                bytes += size;
                entries.push(LogEntry::new(key.clone(), data.clone()));
                keys.push(key.clone());
            }
            let calls = std::sync::atomic::AtomicU64::new(0);
            let out = RetryPolicy::default()
                .run(|| async {
                    calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let out = self.log.put(&entries).await;
                    if let Err(e) = &out {
                        warn!(stream = %self.log.stream(), error = %e, "PutRecords failed");
                    }
                    out
                })
                .await;
            published.put_calls += calls.into_inner();
            let out = out?;
            let mut failed = 0u64;
            for (key, result) in keys.iter().zip(out) {
                let (shard, seq) = match result {
                    PutResult::Stored { shard_id, seq } => (shard_id, seq),
                    PutResult::Failed(e) => {
                        failed += 1;
                        if e.class == ErrorClass::Throttled {
                            m::throttled("publish", "kinesis", 1);
                        }
                        debug!(key = %key, error = %e, "PutRecords entry failed; will re-send before later frames of this key");
                        continue;
                    }
                };
                let Some(frames) = ready.get_mut(key) else { continue };
                if let Some((_, count, kinds)) = frames.pop_front() {
                    published.records += u64::from(count);
                    published.frames += 1;
                    for (total, n) in by_kind.iter_mut().zip(kinds) {
                        *total += u64::from(n);
                    }
                }
                if frames.is_empty() {
                    ready.remove(key);
                }
                let last = published.last_sequence.entry(shard).or_insert_with(|| seq.clone());
                if seq > *last {
                    *last = seq;
                }
            }
            if failed > 0 {
                published.retried_entries += failed;
                m::kinesis_put_retries(failed);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            } else {
                backoff = Duration::from_millis(50);
            }
        }
        for kind in [ObjectKind::Database, ObjectKind::Table, ObjectKind::Partition] {
            m::records_published(kind.as_str(), by_kind[kind_index(kind)]);
        }
        // One label for every Lake Formation kind: they are few, and labels stay few.
        m::records_published("lakeformation", by_kind[3]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::changelog::ShardInfo;
    use crate::backend::memory::changelog::{throttled, MemoryLog, PutFault};
    use crate::model::{codec, CatalogObject, Cause, CauseKind, Origin, Table};

    /// Version `v` of table `t`: its description carries the version (and pads the record, so a
    /// 1 KiB frame holds only a few).
    fn version(t: usize, v: usize) -> ChangeRecord {
        let origin = Origin { account: "1".into(), region: "us-east-1".into(), catalog_id: "1".into() };
        let table = Table {
            database_name: "db".into(),
            name: format!("t{t}"),
            description: Some(format!("{v}:{}", "x".repeat(200))),
            ..Default::default()
        };
        ChangeRecord::upsert(CatalogObject::Table(table), &origin, Cause { kind: CauseKind::Event, event_id: None }, 1)
    }

    fn version_of(r: &ChangeRecord) -> (String, usize) {
        let Some(CatalogObject::Table(t)) = &r.state else { panic!("a table") };
        let v = t.description.as_deref().and_then(|d| d.split(':').next()).and_then(|v| v.parse().ok());
        (t.name.clone(), v.expect("a version"))
    }

    /// Every change record of the log, shard by shard, in stored order.
    fn stored(log: &MemoryLog, shards: &[ShardInfo]) -> Vec<ChangeRecord> {
        shards
            .iter()
            .flat_map(|s| log.records(&s.shard_id))
            .flat_map(|r| codec::decode(&r.data).expect("frame"))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn per_key_order_survives_partial_failures() {
        let log = Arc::new(MemoryLog::new("s", 2));
        let shards = log.list_shards().await.expect("shards");
        // The first entries of calls are refused again and again, a whole call fails, and later
        // two entries of one call: each time some frames of a call are stored and some not.
        for fault in [
            PutFault::Throttle(vec![0]),
            PutFault::Throttle(vec![0]),
            PutFault::Call(throttled("PutRecords")),
            PutFault::Throttle(vec![1, 2]),
            PutFault::Throttle(vec![0, 3]),
        ] {
            log.push_put_fault(fault);
        }
        let records: Vec<ChangeRecord> = (0..12).flat_map(|v| (0..4).map(move |t| version(t, v))).collect();
        let producer = Producer::new(log.clone(), 1024);
        let published = producer.publish_batch(&records).await.expect("publish");

        assert_eq!(published.records, 48);
        assert!(published.retried_entries >= 6, "the scripted refusals were re-sent: {published:?}");
        assert!(log.put_calls() > 5);
        let mut seen: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for r in stored(&log, &shards) {
            let (table, v) = version_of(&r);
            seen.entry(table).or_default().push(v);
        }
        assert_eq!(seen.len(), 4);
        for (table, versions) in seen {
            assert_eq!(versions, (0..12).collect::<Vec<_>>(), "{table}: every version once, in capture order");
        }
        for s in &shards {
            if let Some(last) = log.records(&s.shard_id).last() {
                assert_eq!(published.last_sequence.get(&s.shard_id), Some(&last.seq));
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_call_failure_fails_the_publish() {
        let log = Arc::new(MemoryLog::new("s", 1));
        let mut denied = throttled("PutRecords");
        denied.class = crate::backend::ErrorClass::Permanent;
        log.push_put_fault(PutFault::Call(denied));
        let err = Producer::new(log.clone(), 1024).publish_batch(&[version(0, 0)]).await;
        assert!(matches!(err, Err(StreamError::Aws(e)) if e.class == crate::backend::ErrorClass::Permanent));
        assert_eq!(log.put_calls(), 1, "not retried");
    }
}
