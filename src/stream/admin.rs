//! Stream administration: ensure it exists, list its shards.

use std::time::Duration;

use aws_sdk_kinesis::types::StreamStatus;
use tracing::info;

use super::StreamError;
use crate::backend::retry::RetryPolicy;
use crate::backend::{AwsError, ErrorClass};

/// One shard and its lineage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    pub shard_id: String,
    pub parent: Option<String>,
    pub adjacent_parent: Option<String>,
}

/// Makes sure the stream exists and is ACTIVE, creating it with `shards` shards if allowed.
pub async fn ensure_stream(
    kinesis: &aws_sdk_kinesis::Client,
    stream: &str,
    shards: i32,
    create_if_missing: bool,
) -> Result<(), StreamError> {
    let retry = RetryPolicy::default();
    let describe = || async {
        let req = kinesis.describe_stream_summary().stream_name(stream);
        req.send().await.map_err(|e| AwsError::from_sdk("kinesis", "DescribeStreamSummary", e))
    };
    match retry.run(describe).await {
        Ok(_) => {}
        Err(err) => {
            if err.class != ErrorClass::NotFound {
                return Err(err.into());
            }
            if !create_if_missing {
                return Err(StreamError::Missing { stream: stream.to_string() });
            }
            info!(stream, shards, "creating Kinesis stream");
            let create = || async {
                let req = kinesis.create_stream().stream_name(stream).shard_count(shards);
                req.send().await.map_err(|e| AwsError::from_sdk("kinesis", "CreateStream", e))
            };
            if let Err(err) = retry.run(create).await {
                if err.class != ErrorClass::AlreadyExists {
                    return Err(err.into());
                }
            }
        }
    }
    let wait = 60;
    let mut status = String::new();
    for _ in 0..wait * 5 {
        let out = retry.run(describe).await?;
        if let Some(d) = out.stream_description_summary {
            if d.stream_status == StreamStatus::Active || d.stream_status == StreamStatus::Updating {
                return Ok(());
            }
            status = d.stream_status.as_str().to_string();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(StreamError::NotActive { stream: stream.to_string(), seconds: wait, status })
}

/// Every shard of the stream (open and closed), following ListShards pagination.
pub async fn list_shards(kinesis: &aws_sdk_kinesis::Client, stream: &str) -> Result<Vec<ShardInfo>, StreamError> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let req = match &token {
            Some(t) => kinesis.list_shards().next_token(t),
            None => kinesis.list_shards().stream_name(stream),
        };
        let out = RetryPolicy::default().send("kinesis", "ListShards", || req.clone().send()).await?;
        for s in out.shards() {
            shards.push(ShardInfo {
                shard_id: s.shard_id.clone(),
                parent: s.parent_shard_id.clone(),
                adjacent_parent: s.adjacent_parent_shard_id.clone(),
            });
        }
        match out.next_token {
            Some(t) => token = Some(t),
            None => return Ok(shards),
        }
    }
}
