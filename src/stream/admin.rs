//! Stream administration on the [`ChangeLog`]: ensure the stream exists and is usable, list its
//! shards, compare its open shards with `stream.shards`. Retries here (the log makes one attempt
//! per call).
//!
//! lakelog sets the shard count only when it creates the stream. It never reshards an existing
//! one (UpdateShardCount): the stream belongs to its infrastructure stack (`infra/` sets
//! `ShardCount`, and a stack update would undo or fight a change made behind it), Kinesis allows
//! few such changes a day, each at most doubling or halving the count, and with several
//! processes every one of them would race to make it. A count that differs is reported at start
//! with the operator's step (README, "Resharding"); a reshard done while lakelog runs is followed
//! (parents are read before children).

use std::fmt;
use std::time::Duration;

use tracing::{info, warn};

use super::StreamError;
use crate::backend::changelog::{ChangeLog, ShardInfo};
use crate::backend::retry::RetryPolicy;
use crate::backend::ErrorClass;

/// How long a new stream may take to become ACTIVE.
const ACTIVE_WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(200);

/// Makes sure the stream exists and is ACTIVE, creating it with `shards` shards if allowed.
pub async fn ensure_stream(log: &dyn ChangeLog, shards: i32, create_if_missing: bool) -> Result<(), StreamError> {
    let retry = RetryPolicy::default();
    let stream = log.stream();
    if retry.run(|| log.describe()).await?.is_none() {
        if !create_if_missing {
            return Err(StreamError::Missing { stream: stream.to_string() });
        }
        info!(stream, shards, "creating Kinesis stream");
        match retry.run(|| log.create(shards)).await {
            // Another process created it meanwhile: wait for it like for ours.
            Err(err) if err.class != ErrorClass::AlreadyExists => return Err(err.into()),
            _ => {}
        }
    }
    let polls = ACTIVE_WAIT.as_millis() / POLL.as_millis();
    let mut status = String::new();
    for _ in 0..polls {
        match retry.run(|| log.describe()).await? {
            Some(s) if s.is_usable() => {
                // Only a warning: a stream of another size works, just not at the planned throughput.
                match shard_count(log, shards).await {
                    Ok(count) if count.differs() => warn!(stream, open = count.open, configured = shards, "{count}"),
                    Ok(_) => {}
                    Err(e) => warn!(stream, error = %e, "cannot count the stream's open shards"),
                }
                return Ok(());
            }
            Some(s) => status = s.to_string(),
            None => status = "not found".into(),
        }
        tokio::time::sleep(POLL).await;
    }
    Err(StreamError::NotActive { stream: stream.to_string(), seconds: ACTIVE_WAIT.as_secs(), status })
}

/// The stream's open shards against `stream.shards`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardCount {
    pub stream: String,
    pub open: usize,
    pub configured: i32,
}

impl ShardCount {
    pub fn differs(&self) -> bool {
        i32::try_from(self.open) != Ok(self.configured)
    }
}

impl fmt::Display for ShardCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ShardCount { stream, open, configured } = self;
        write!(
            f,
            "stream {stream} has {open} open shards, stream.shards says {configured}; lakelog sets the count only when it creates the stream. To reshard, change ShardCount in the infra stack (or run `aws kinesis update-shard-count --stream-name {stream} --target-shard-count {configured} --scaling-type UNIFORM_SCALING`); lakelog keeps running and follows the reshard. Otherwise set stream.shards: {open}"
        )
    }
}

/// Counts the stream's open shards (a closed one has an ending sequence number).
pub async fn shard_count(log: &dyn ChangeLog, configured: i32) -> Result<ShardCount, StreamError> {
    let open = list_shards(log).await?.iter().filter(|s| !s.is_closed()).count();
    Ok(ShardCount { stream: log.stream().to_string(), open, configured })
}

/// Every shard of the stream (open and closed), parents before their children.
pub async fn list_shards(log: &dyn ChangeLog) -> Result<Vec<ShardInfo>, StreamError> {
    Ok(RetryPolicy::default().run(|| log.list_shards()).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::memory::changelog::MemoryLog;

    #[tokio::test]
    async fn a_missing_stream_is_created_only_when_allowed() {
        let log = MemoryLog::missing("s");
        assert!(matches!(ensure_stream(&log, 2, false).await, Err(StreamError::Missing { .. })));
        ensure_stream(&log, 2, true).await.expect("created");
        assert_eq!(list_shards(&log).await.expect("shards").len(), 2);
        ensure_stream(&log, 2, false).await.expect("exists now");
    }

    #[tokio::test]
    async fn open_shards_are_counted_against_the_configured_count() {
        let log = MemoryLog::new("s", 2);
        assert!(!shard_count(&log, 2).await.expect("count").differs());
        log.split("shardId-000000000000", 1 << 64).expect("split");
        let count = shard_count(&log, 2).await.expect("count");
        assert_eq!((count.open, count.differs()), (3, true), "the closed parent is not counted");
        let text = count.to_string();
        for needed in ["stream s has 3 open shards", "stream.shards says 2", "update-shard-count", "stream.shards: 3"] {
            assert!(text.contains(needed), "{needed:?} missing from: {text}");
        }
    }
}
