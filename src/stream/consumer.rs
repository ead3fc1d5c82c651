//! Reading one shard of the [`ChangeLog`] from a checkpoint.
//!
//! The reader starts after the checkpointed sequence number (or at the trim horizon), follows
//! each page's next cursor, re-opens an expired cursor after the last record it returned, and
//! backs off when throttled (the shared [`RetryPolicy`]). A closed shard ends (`end_of_shard`)
//! once read to its last record.
//!
//! Memory: a batch holds at most about [`BATCH_BYTES`] of frames. GetRecords limits a call by
//! record count only (AWS stops at 10 MB, the emulator not at all), and one frame may be up to
//! 1 MiB or a few hundred bytes, so the reader sizes each call's `Limit` from the frames it has
//! seen: few records while frames are large (a crawler burst), up to the configured limit while
//! they are small (real time).

use std::sync::Arc;

use super::StreamError;
use crate::backend::changelog::{ChangeLog, LogRecord, ReadOutcome, ShardCursor, StartAt};
use crate::backend::retry::RetryPolicy;
use crate::backend::ErrorClass;
use crate::model::seqno::SeqNo;

/// What one GetRecords returned.
#[derive(Debug, Default)]
pub struct ReadBatch {
    pub records: Vec<LogRecord>,
    pub millis_behind: Option<i64>,
    /// The shard is closed and has no more records.
    pub end_of_shard: bool,
}

/// Expired iterators re-opened in a row before the read gives up (each renewal is a fresh
/// iterator, so more expiries mean something else is wrong).
const MAX_RENEWALS: u32 = 8;
/// The bytes of frames one batch aims to hold (what a consumer decodes and applies at once).
pub const BATCH_BYTES: usize = 2 * 1024 * 1024;
/// Records asked for before any frame was seen: few, as frames may be 1 MiB each.
const FIRST_LIMIT: i32 = 4;

/// The GetRecords limit after a call returned `records`: as many frames of their mean size as fit
/// in [`BATCH_BYTES`], within `1..=max`. `None` when nothing was returned (keep the last limit).
fn next_limit(records: &[LogRecord], max: i32) -> Option<i32> {
    if records.is_empty() {
        return None;
    }
    let bytes: usize = records.iter().map(|r| r.data.len()).sum();
    let mean = (bytes / records.len()).max(1);
    Some(i32::try_from(BATCH_BYTES / mean).unwrap_or(i32::MAX).clamp(1, max))
}

/// Sequential reader of one shard.
#[derive(Debug)]
pub struct ShardReader {
    log: Arc<dyn ChangeLog>,
    shard_id: String,
    cursor: Option<ShardCursor>,
    /// The checkpoint we started after, then the last record returned.
    position: Option<SeqNo>,
    /// The configured most records per call.
    max_limit: i32,
    /// The records asked for in the next call (adapted to frame sizes).
    limit: i32,
    retry: RetryPolicy,
}

impl ShardReader {
    /// Opens the shard after `after` (exclusive), or at its oldest record.
    pub async fn open(
        log: Arc<dyn ChangeLog>,
        shard_id: &str,
        after: Option<SeqNo>,
        limit: i32,
    ) -> Result<ShardReader, StreamError> {
        let mut reader = ShardReader {
            log,
            shard_id: shard_id.to_string(),
            cursor: None,
            position: after,
            max_limit: limit.clamp(1, 10_000),
            limit: FIRST_LIMIT.min(limit.clamp(1, 10_000)),
            retry: RetryPolicy::default(),
        };
        reader.cursor = reader.new_cursor().await?;
        Ok(reader)
    }

    pub fn shard_id(&self) -> &str {
        &self.shard_id
    }

    async fn new_cursor(&self) -> Result<Option<ShardCursor>, StreamError> {
        let at = match &self.position {
            Some(seq) => StartAt::After(seq.clone()),
            None => StartAt::TrimHorizon,
        };
        Ok(self.retry.run(|| self.log.open(&self.shard_id, &at)).await?)
    }

    /// The next batch (possibly empty). After `end_of_shard`, every call returns an empty end batch.
    pub async fn next_batch(&mut self) -> Result<ReadBatch, StreamError> {
        let mut renewals = 0u32;
        loop {
            let Some(cursor) = self.cursor.clone() else {
                return Ok(ReadBatch { end_of_shard: true, ..Default::default() });
            };
            let outcome = self
                .retry
                .run(|| async {
                    let out = self.log.read(&cursor, self.limit).await;
                    if out.as_ref().is_err_and(|e| e.class == ErrorClass::Throttled) {
                        crate::metrics::throttled("consume", "kinesis", 1);
                    }
                    out
                })
                .await?;
            match outcome {
                ReadOutcome::Page(page) => {
                    self.cursor = page.next;
                    if let Some(last) = page.records.last() {
                        self.position = Some(last.seq.clone());
                    }
                    self.limit = next_limit(&page.records, self.max_limit).unwrap_or(self.limit);
                    return Ok(ReadBatch {
                        end_of_shard: self.cursor.is_none() && page.records.is_empty(),
                        records: page.records,
                        millis_behind: page.millis_behind,
                    });
                }
                ReadOutcome::Expired if renewals < MAX_RENEWALS => {
                    renewals += 1;
                    self.cursor = self.new_cursor().await?;
                }
                ReadOutcome::Expired => {
                    return Err(StreamError::Expired { shard: self.shard_id.clone(), renewals });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(sizes: &[usize]) -> Vec<LogRecord> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, n)| LogRecord {
                seq: SeqNo::parse(&(i + 1).to_string()).expect("seq"),
                data: vec![0; *n],
                arrival_ms: None,
            })
            .collect()
    }

    #[test]
    fn large_frames_shrink_the_next_call() {
        // Four 1 MiB frames: two fit in the batch budget.
        assert_eq!(next_limit(&frames(&[1 << 20; 4]), 500), Some(2));
        // Frames larger than the budget still make progress, one at a time.
        assert_eq!(next_limit(&frames(&[8 << 20]), 500), Some(1));
    }

    #[test]
    fn small_frames_grow_it_up_to_the_configured_limit() {
        assert_eq!(next_limit(&frames(&[300; 10]), 500), Some(500));
        assert_eq!(next_limit(&frames(&[100; 10]), 10_000), Some(10_000));
        assert_eq!(next_limit(&frames(&[100_000; 3]), 500), Some(20));
    }

    #[test]
    fn an_empty_answer_keeps_the_limit() {
        assert_eq!(next_limit(&[], 500), None);
    }

    use crate::backend::changelog::LogEntry;
    use crate::backend::memory::changelog::{throttled, MemoryLog, ReadFault};

    const SHARD: &str = "shardId-000000000000";

    async fn log_with(n: u8) -> Arc<MemoryLog> {
        let log = Arc::new(MemoryLog::new("s", 1));
        let entries: Vec<LogEntry> = (0..n).map(|i| LogEntry::new("k", vec![i])).collect();
        log.put(&entries).await.expect("put");
        log
    }

    /// Everything the reader returns until it is caught up or the shard ends.
    async fn drain(reader: &mut ShardReader) -> (Vec<u8>, bool) {
        let mut data = Vec::new();
        loop {
            let batch = reader.next_batch().await.expect("batch");
            data.extend(batch.records.iter().flat_map(|r| r.data.clone()));
            if batch.end_of_shard || (batch.records.is_empty() && batch.millis_behind == Some(0)) {
                return (data, batch.end_of_shard);
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_cursor_is_renewed_after_the_last_record_read() {
        let log = log_with(10).await;
        let checkpoint = log.records(SHARD)[2].seq.clone();
        let mut reader = ShardReader::open(log.clone(), SHARD, Some(checkpoint), 3).await.expect("open");
        let first = reader.next_batch().await.expect("first");
        assert_eq!(first.records.iter().map(|r| r.data[0]).collect::<Vec<_>>(), vec![3, 4, 5]);
        log.push_read_fault(ReadFault::Expire);
        log.push_read_fault(ReadFault::Expire);
        let (rest, ended) = drain(&mut reader).await;
        assert_eq!(rest, vec![6, 7, 8, 9], "nothing skipped, nothing read twice");
        assert!(!ended, "an open shard does not end");
    }

    #[tokio::test(start_paused = true)]
    async fn a_cursor_that_keeps_expiring_is_an_error_naming_the_shard() {
        let log = log_with(1).await;
        let mut reader = ShardReader::open(log.clone(), SHARD, None, 10).await.expect("open");
        for _ in 0..=MAX_RENEWALS {
            log.push_read_fault(ReadFault::Expire);
        }
        match reader.next_batch().await {
            Err(e @ StreamError::Expired { .. }) => assert!(e.to_string().contains(SHARD), "{e}"),
            other => panic!("expected an expiry error, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_read_is_retried() {
        let log = log_with(2).await;
        let mut reader = ShardReader::open(log.clone(), SHARD, None, 10).await.expect("open");
        log.push_read_fault(ReadFault::Error(throttled("GetRecords")));
        let batch = reader.next_batch().await.expect("retried");
        assert_eq!(batch.records.len(), 2);
        assert_eq!(log.read_calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_shard_ends_after_its_last_record() {
        let log = log_with(3).await;
        log.split(SHARD, 1 << 127).expect("split");
        log.put(&[LogEntry::new("k", vec![9])]).await.expect("put after the split");
        let mut reader = ShardReader::open(log.clone(), SHARD, None, 2).await.expect("open");
        let (data, ended) = drain(&mut reader).await;
        assert_eq!((data, ended), (vec![0, 1, 2], true), "the parent holds what came before the split");
        assert!(reader.next_batch().await.expect("after the end").end_of_shard);

        // Resumed from a checkpoint at its last record (a parent read to its end before a
        // restart), the shard ends at once.
        let last = log.records(SHARD).last().map(|r| r.seq.clone());
        let mut resumed = ShardReader::open(log.clone(), SHARD, last, 2).await.expect("open");
        let batch = resumed.next_batch().await.expect("read");
        assert!(batch.records.is_empty() && batch.end_of_shard);
    }
}
