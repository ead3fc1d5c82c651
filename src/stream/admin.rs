//! Stream administration on the [`ChangeLog`]: ensure the stream exists and is usable, list its
//! shards. Retries here (the log makes one attempt per call).

use std::time::Duration;

use tracing::info;

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
            Some(s) if s.is_usable() => return Ok(()),
            Some(s) => status = s.to_string(),
            None => status = "not found".into(),
        }
        tokio::time::sleep(POLL).await;
    }
    Err(StreamError::NotActive { stream: stream.to_string(), seconds: ACTIVE_WAIT.as_secs(), status })
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
}
