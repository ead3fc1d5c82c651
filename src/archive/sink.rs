//! What the archive's consumer group does with what it reads: per shard, records are buffered
//! and written as one raw segment when the buffer holds `segment_bytes` or `segment_records`, or
//! its oldest record has waited `segment_age`. The group may checkpoint a shard only up to what
//! [`ArchiveSink`] reports durable.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::segment::{Builder, Entry, LEVEL};
use super::writer::{SegmentWriter, Written};
use super::ArchiveError;
use crate::model::ChangeRecord;
use crate::stream::seqno::SeqNo;

/// When a segment is written.
#[derive(Debug, Clone, Copy)]
pub struct Flush {
    pub bytes: usize,
    pub records: usize,
    pub age: Duration,
}

/// One shard's segment in the making, held compressed as it grows.
#[derive(Default)]
struct Buffer {
    segment: Option<Builder>,
    since: Option<Instant>,
    /// Records up to here are archived (an earlier writer may have gone past what we read).
    skip_through: Option<SeqNo>,
}

/// The archive as a consumer of the stream.
pub struct ArchiveSink {
    writer: SegmentWriter,
    flush: Flush,
    /// One buffer per shard, each behind its own lock: shards write their segments concurrently.
    buffers: std::sync::Mutex<HashMap<String, Arc<Mutex<Buffer>>>>,
}

impl ArchiveSink {
    pub fn new(writer: SegmentWriter, flush: Flush) -> ArchiveSink {
        ArchiveSink { writer, flush, buffers: std::sync::Mutex::default() }
    }

    fn buffer(&self, shard: &str) -> Arc<Mutex<Buffer>> {
        let mut map = self.buffers.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(shard.to_string()).or_default().clone()
    }

    /// Takes one batch of a shard (records with their stream positions); returns what became
    /// durable, if a segment was written.
    pub async fn take(
        &self,
        shard: &str,
        records: Vec<(SeqNo, ChangeRecord)>,
        now_ms: i64,
    ) -> Result<Option<Written>, ArchiveError> {
        let buffer = self.buffer(shard);
        let mut buffer = buffer.lock().await;
        for (sequence, record) in records {
            if buffer.skip_through.as_ref().is_some_and(|s| sequence <= *s) {
                continue;
            }
            buffer.since.get_or_insert_with(Instant::now);
            let error = |source| ArchiveError::Segment { key: shard.to_string(), source };
            if buffer.segment.is_none() {
                buffer.segment = Some(Builder::new(shard, false, LEVEL).map_err(error)?);
            }
            if let Some(segment) = &mut buffer.segment {
                segment.push(&Entry { sequence, record }).map_err(error)?;
            }
        }
        let due = buffer
            .segment
            .as_ref()
            .is_some_and(|s| s.bytes() >= self.flush.bytes as u64 || s.count() as usize >= self.flush.records);
        if due {
            return self.write(&mut buffer, now_ms).await;
        }
        Ok(None)
    }

    /// Writes a shard's buffer if its oldest record has waited long enough (or `force`).
    pub async fn tick(&self, shard: &str, now_ms: i64, force: bool) -> Result<Option<Written>, ArchiveError> {
        let buffer = self.buffer(shard);
        let mut buffer = buffer.lock().await;
        let aged = buffer.since.is_some_and(|s| s.elapsed() >= self.flush.age);
        if buffer.segment.is_none() || !(aged || force) {
            return Ok(None);
        }
        self.write(&mut buffer, now_ms).await
    }

    /// Forgets what is buffered for a shard (its consumer restarts from its checkpoint).
    pub async fn reset(&self, shard: &str) {
        self.buffers.lock().unwrap_or_else(|p| p.into_inner()).remove(shard);
    }

    async fn write(&self, buffer: &mut Buffer, now_ms: i64) -> Result<Option<Written>, ArchiveError> {
        let Some(segment) = buffer.segment.take() else { return Ok(None) };
        let written = match self.writer.write_built(segment, now_ms).await {
            Ok(w) => w,
            Err(e) => {
                // Nothing of it is checkpointed: the group re-reads it from its checkpoint.
                buffer.since = None;
                return Err(e);
            }
        };
        buffer.since = None;
        buffer.skip_through = Some(written.through.clone());
        Ok(Some(written))
    }
}
