//! [`KinesisLog`]: the change log on Kinesis Data Streams. The one place Kinesis SDK types are
//! converted to lakelog's [`crate::backend::changelog`] model and Kinesis answers are
//! classified. One SDK call per trait call (ListShards follows its pages); retries are the
//! caller's.

use async_trait::async_trait;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType, StreamStatus as SdkStatus};
use tracing::warn;

use crate::backend::changelog::{
    ChangeLog, HashRange, LogEntry, LogPage, LogRecord, PutResult, ReadOutcome, ShardCursor, ShardInfo, StartAt,
    StreamStatus,
};
use crate::backend::{AwsError, ErrorClass};
use crate::model::seqno::SeqNo;

const SERVICE: &str = "kinesis";

/// One Kinesis stream as the change log.
#[derive(Debug, Clone)]
pub struct KinesisLog {
    client: aws_sdk_kinesis::Client,
    stream: String,
}

impl KinesisLog {
    pub fn new(client: aws_sdk_kinesis::Client, stream: &str) -> KinesisLog {
        KinesisLog { client, stream: stream.to_string() }
    }
}

fn status(s: &SdkStatus) -> StreamStatus {
    match s {
        SdkStatus::Active => StreamStatus::Active,
        SdkStatus::Creating => StreamStatus::Creating,
        SdkStatus::Updating => StreamStatus::Updating,
        SdkStatus::Deleting => StreamStatus::Deleting,
        other => StreamStatus::Other(other.as_str().to_string()),
    }
}

/// A hash key as Kinesis writes it (a decimal 128-bit integer).
fn hash_key(s: &str) -> Result<u128, AwsError> {
    s.parse().map_err(|_| {
        AwsError::invalid_response(SERVICE, "ListShards", &format!("hash key {s} is not a 128-bit integer"))
    })
}

#[async_trait]
impl ChangeLog for KinesisLog {
    fn stream(&self) -> &str {
        &self.stream
    }

    async fn describe(&self) -> Result<Option<StreamStatus>, AwsError> {
        let out = self.client.describe_stream_summary().stream_name(&self.stream).send().await;
        match out.map_err(|e| AwsError::from_sdk(SERVICE, "DescribeStreamSummary", e)) {
            Ok(out) => Ok(out.stream_description_summary.map(|d| status(&d.stream_status))),
            Err(e) if e.class == ErrorClass::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn create(&self, shards: i32) -> Result<(), AwsError> {
        let req = self.client.create_stream().stream_name(&self.stream).shard_count(shards);
        req.send().await.map(|_| ()).map_err(|e| AwsError::from_sdk(SERVICE, "CreateStream", e))
    }

    async fn put(&self, entries: &[LogEntry]) -> Result<Vec<PutResult>, AwsError> {
        let mut records = Vec::with_capacity(entries.len());
        for e in entries {
            let entry = PutRecordsRequestEntry::builder()
                .partition_key(&e.partition_key)
                .set_explicit_hash_key(e.explicit_hash_key.clone())
                .data(Blob::new(e.data.clone()))
                .build()
                .map_err(|err| AwsError::invalid_response(SERVICE, "PutRecords", &err.to_string()))?;
            records.push(entry);
        }
        let req = self.client.put_records().stream_name(&self.stream).set_records(Some(records));
        let out = req.send().await.map_err(|e| AwsError::from_sdk(SERVICE, "PutRecords", e))?;
        if out.records.len() != entries.len() {
            let what = format!("{} results for {} entries", out.records.len(), entries.len());
            return Err(AwsError::invalid_response(SERVICE, "PutRecords", &what));
        }
        Ok(out
            .records
            .into_iter()
            .map(|r| {
                if r.error_code.is_some() {
                    // Classified like any error code: ProvisionedThroughputExceeded is a throttle.
                    return PutResult::Failed(AwsError::batch_item(
                        SERVICE,
                        "PutRecords",
                        r.error_code.as_deref(),
                        r.error_message.as_deref(),
                    ));
                }
                match (r.shard_id, r.sequence_number.as_deref().and_then(SeqNo::parse)) {
                    (Some(shard_id), Some(seq)) => PutResult::Stored { shard_id, seq },
                    _ => PutResult::Failed(AwsError::invalid_response(
                        SERVICE,
                        "PutRecords",
                        "an entry without error has no shard or sequence number",
                    )),
                }
            })
            .collect())
    }

    async fn list_shards(&self) -> Result<Vec<ShardInfo>, AwsError> {
        let mut shards = Vec::new();
        let mut token: Option<String> = None;
        loop {
            // ListShards takes either the stream or the token of the previous page, not both.
            let req = match &token {
                Some(t) => self.client.list_shards().next_token(t),
                None => self.client.list_shards().stream_name(&self.stream),
            };
            let out = req.send().await.map_err(|e| AwsError::from_sdk(SERVICE, "ListShards", e))?;
            for s in out.shards.unwrap_or_default() {
                let hash_range = match &s.hash_key_range {
                    Some(r) => HashRange { start: hash_key(&r.starting_hash_key)?, end: hash_key(&r.ending_hash_key)? },
                    None => HashRange::ALL,
                };
                let ending_sequence = s
                    .sequence_number_range
                    .as_ref()
                    .and_then(|r| r.ending_sequence_number.as_deref())
                    .and_then(SeqNo::parse);
                shards.push(ShardInfo {
                    shard_id: s.shard_id,
                    parent: s.parent_shard_id,
                    adjacent_parent: s.adjacent_parent_shard_id,
                    hash_range,
                    ending_sequence,
                });
            }
            match out.next_token {
                Some(t) => token = Some(t),
                None => return Ok(shards),
            }
        }
    }

    async fn open(&self, shard_id: &str, at: &StartAt) -> Result<Option<ShardCursor>, AwsError> {
        let req = self.client.get_shard_iterator().stream_name(&self.stream).shard_id(shard_id);
        let req = match at {
            StartAt::TrimHorizon => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
            StartAt::Latest => req.shard_iterator_type(ShardIteratorType::Latest),
            StartAt::After(seq) => {
                req.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).starting_sequence_number(seq.as_str())
            }
            StartAt::At(seq) => {
                req.shard_iterator_type(ShardIteratorType::AtSequenceNumber).starting_sequence_number(seq.as_str())
            }
        };
        let out = req.send().await.map_err(|e| AwsError::from_sdk(SERVICE, "GetShardIterator", e))?;
        Ok(out.shard_iterator.map(ShardCursor))
    }

    async fn read(&self, cursor: &ShardCursor, limit: i32) -> Result<ReadOutcome, AwsError> {
        let req = self.client.get_records().shard_iterator(&cursor.0).limit(limit);
        let out = match req.send().await.map_err(|e| AwsError::from_sdk(SERVICE, "GetRecords", e)) {
            Ok(out) => out,
            Err(e) if e.is_expired_iterator() => return Ok(ReadOutcome::Expired),
            Err(e) => return Err(e),
        };
        let mut records = Vec::with_capacity(out.records.len());
        for r in out.records {
            let Some(seq) = SeqNo::parse(&r.sequence_number) else {
                warn!(stream = %self.stream, seq = %r.sequence_number, "skipping record with a malformed sequence number");
                continue;
            };
            records.push(LogRecord {
                seq,
                arrival_ms: r.approximate_arrival_timestamp.and_then(|t| t.to_millis().ok()),
                data: r.data.into_inner(),
            });
        }
        Ok(ReadOutcome::Page(LogPage {
            records,
            next: out.next_shard_iterator.map(ShardCursor),
            millis_behind: out.millis_behind_latest,
            child_shards: out.child_shards.unwrap_or_default().into_iter().map(|c| c.shard_id).collect(),
        }))
    }
}
