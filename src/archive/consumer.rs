//! The archive as a consumer group's sink: it reads every shard like a target's group does, and
//! checkpoints (as group [`GROUP`]) only what is durable in raw segments.

use std::sync::Arc;

use async_trait::async_trait;

use super::sink::{ArchiveSink, Flush};
use super::writer::{SegmentWriter, Written};
use super::ArchiveError;
use crate::apply::group::{Durable, Sink, Taken};
use crate::apply::watermark::Watermark;
use crate::apply::ApplyError;
use crate::backend::state::SharedStore;
use crate::backend::AwsError;
use crate::metrics as m;
use crate::model::now_millis;
use crate::stream::seqno::SeqNo;

/// The archive's consumer group name (its checkpoints, its metric labels). Not a valid target
/// name, so it never collides with one.
pub const GROUP: &str = "archive.segments";

/// The sink.
pub struct ArchiveConsumer {
    sink: ArchiveSink,
    /// Nothing waits on the archive's reading; the group needs one all the same.
    watermark: Arc<Watermark>,
}

impl ArchiveConsumer {
    pub fn new(store: SharedStore, stream: &str, flush: Flush) -> ArchiveConsumer {
        ArchiveConsumer { sink: ArchiveSink::new(SegmentWriter::new(store, stream), flush), watermark: Arc::default() }
    }

    /// The flush thresholds `pipeline.yaml`'s `archive` section sets.
    pub fn flush_of(c: &crate::config::ArchiveConfig) -> Flush {
        Flush { bytes: (c.segment_mib as usize) << 20, records: c.segment_records, age: c.segment_age() }
    }
}

fn failed(e: ArchiveError) -> ApplyError {
    let source = match e {
        ArchiveError::Store { source } => source,
        other => AwsError::invalid_response("archive", "WriteSegment", &other.to_string()),
    };
    ApplyError::Unavailable { target: GROUP.to_string(), attempts: 1, source }
}

fn noted(written: Option<Written>) -> Option<SeqNo> {
    let w = written?;
    if w.written > 0 {
        m::archive_written(w.records, w.bytes);
    }
    Some(w.through)
}

#[async_trait]
impl Sink for ArchiveConsumer {
    fn name(&self) -> &str {
        GROUP
    }

    fn watermark(&self) -> &Arc<Watermark> {
        &self.watermark
    }

    async fn take(&self, shard: &str, records: Vec<Taken>, _last: &SeqNo) -> Result<Durable, ApplyError> {
        let records = records.into_iter().map(|t| (t.sequence, t.record)).collect();
        let written = self.sink.take(shard, records, now_millis()).await.map_err(failed)?;
        Ok(Durable { through: noted(written), stats: Default::default() })
    }

    async fn idle(&self, shard: &str, force: bool) -> Result<Option<SeqNo>, ApplyError> {
        Ok(noted(self.sink.tick(shard, now_millis(), force).await.map_err(failed)?))
    }

    async fn opened(&self, shard: &str) {
        self.sink.reset(shard).await;
    }
}
