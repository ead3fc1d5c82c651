//! The change log as a backend: an append-only, sharded log of opaque frames (Kinesis Data
//! Streams in production, [`MemoryLog`](crate::backend::memory::changelog::MemoryLog) in tests).
//!
//! This module owns the shape of that conversation (entries, shards, positions, pages) and the
//! guarantees every implementation keeps. It must never know what a frame holds (that is
//! `crate::model::codec`), nor retry: each method makes one attempt and fails with a classified
//! [`AwsError`]; the callers in `crate::stream` retry by its class.
//!
//! # Guarantees
//! - **Routing.** An entry goes to the one open shard whose hash-key range holds the MD5 of its
//!   partition key (or its explicit hash key), read as a 128-bit integer.
//! - **Order within a shard.** Entries stored in one shard are read back in the order they were
//!   stored, and their sequence numbers increase. There is no order across shards.
//! - **Order across a partial failure is not kept.** [`ChangeLog::put`] answers per entry: some
//!   may be stored while others of the same call fail. A caller that needs per-key order sends at
//!   most one entry per key per call and re-sends a failed one before anything later for its key
//!   (the producer does).
//! - **At least once.** A stored entry is never lost while retained; a caller that re-sends after
//!   an unclear failure (a timeout) may store it twice. Readers must tolerate duplicates.
//! - **Parents before children.** After a reshard the parent shards are closed (they have an
//!   ending sequence number and take no more entries) and the children take the parents' hash
//!   ranges. Every entry of a key stored before the reshard is in a parent, every one after in a
//!   child, so reading each parent to its end before its children keeps per-key order.
//! - **Expired positions are an outcome, not an error.** A [`ShardCursor`] may expire (Kinesis:
//!   five minutes); reading it then answers [`ReadOutcome::Expired`] and the reader opens a new
//!   one after the last record it has.

use std::fmt;

use async_trait::async_trait;

use crate::backend::AwsError;
use crate::model::seqno::SeqNo;

/// Entries of one [`ChangeLog::put`] at most (Kinesis PutRecords).
pub const PUT_ENTRIES: usize = 500;
/// Bytes of one [`ChangeLog::put`] at most: data and partition keys of every entry.
pub const PUT_BYTES: usize = 5 * 1024 * 1024;
/// Bytes of one entry at most: its data and partition key.
pub const RECORD_BYTES: usize = 1024 * 1024;

/// One frame to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Chooses the shard (through its MD5) and groups the entries whose order matters.
    pub partition_key: String,
    /// Places the entry by this hash key (a decimal 128-bit integer) instead of the partition
    /// key's MD5. For tests that aim at one shard.
    pub explicit_hash_key: Option<String>,
    pub data: Vec<u8>,
}

impl LogEntry {
    pub fn new(partition_key: impl Into<String>, data: Vec<u8>) -> LogEntry {
        LogEntry { partition_key: partition_key.into(), explicit_hash_key: None, data }
    }
}

/// What became of one entry of a [`ChangeLog::put`].
#[derive(Debug, Clone)]
pub enum PutResult {
    Stored {
        shard_id: String,
        seq: SeqNo,
    },
    /// Not stored; `class` says whether re-sending can help (throttled, retryable) or not.
    Failed(AwsError),
}

/// The inclusive range of 128-bit hash keys a shard takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashRange {
    pub start: u128,
    pub end: u128,
}

impl HashRange {
    /// Every hash key: what a stream of one shard covers.
    pub const ALL: HashRange = HashRange { start: 0, end: u128::MAX };

    pub fn contains(&self, hash: u128) -> bool {
        self.start <= hash && hash <= self.end
    }
}

/// One shard and its lineage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    pub shard_id: String,
    pub parent: Option<String>,
    /// The second parent of a merged shard.
    pub adjacent_parent: Option<String>,
    pub hash_range: HashRange,
    /// Set once the shard is closed (resharded): the last sequence number it can hold.
    pub ending_sequence: Option<SeqNo>,
}

impl ShardInfo {
    /// The shards that must be read to their end before this one.
    pub fn parents(&self) -> impl Iterator<Item = &str> {
        [&self.parent, &self.adjacent_parent].into_iter().flatten().map(String::as_str)
    }

    pub fn is_closed(&self) -> bool {
        self.ending_sequence.is_some()
    }
}

/// Where a read starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartAt {
    /// The oldest record retained.
    TrimHorizon,
    /// Just after this record (a checkpoint).
    After(SeqNo),
    /// At this record.
    At(SeqNo),
    /// After the newest record: only what is stored from now on.
    Latest,
}

/// An open read position in one shard (a Kinesis shard iterator). Opaque to callers; it may
/// expire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardCursor(pub String);

/// One stored frame.
#[derive(Debug, Clone)]
pub struct LogRecord {
    pub seq: SeqNo,
    pub data: Vec<u8>,
    /// When the log stored it (epoch ms).
    pub arrival_ms: Option<i64>,
}

/// One page of a shard.
#[derive(Debug, Clone, Default)]
pub struct LogPage {
    pub records: Vec<LogRecord>,
    /// Where the next page starts; `None` once a closed shard is read to its end.
    pub next: Option<ShardCursor>,
    /// How far this page is behind the newest record of the shard (0: caught up).
    pub millis_behind: Option<i64>,
    /// At the end of a closed shard: the shards that took over its hash range.
    pub child_shards: Vec<String>,
}

/// What a read of a cursor gave.
#[derive(Debug, Clone)]
pub enum ReadOutcome {
    Page(LogPage),
    /// The cursor is too old to read: open a new one (after the last record read).
    Expired,
}

/// The state of the stream behind the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamStatus {
    Creating,
    Active,
    /// Resharding or changing settings: readable and writable.
    Updating,
    Deleting,
    Other(String),
}

impl StreamStatus {
    /// Whether entries can be put and read.
    pub fn is_usable(&self) -> bool {
        matches!(self, StreamStatus::Active | StreamStatus::Updating)
    }
}

impl fmt::Display for StreamStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StreamStatus::Creating => "CREATING",
            StreamStatus::Active => "ACTIVE",
            StreamStatus::Updating => "UPDATING",
            StreamStatus::Deleting => "DELETING",
            StreamStatus::Other(s) => s,
        })
    }
}

/// The change log of one stream. See the module docs for what every implementation guarantees.
#[async_trait]
pub trait ChangeLog: Send + Sync + fmt::Debug {
    /// The stream's name (for messages and metrics).
    fn stream(&self) -> &str;

    /// The stream's status, or `None` when it does not exist.
    async fn describe(&self) -> Result<Option<StreamStatus>, AwsError>;

    /// Creates the stream with `shards` shards; fails with class `AlreadyExists` if it exists.
    async fn create(&self, shards: i32) -> Result<(), AwsError>;

    /// Appends `entries` (at most [`PUT_ENTRIES`], [`PUT_BYTES`] together, each at most
    /// [`RECORD_BYTES`]; a call over a limit fails as a whole); one result per entry, in the same
    /// order. `Err` only when the call as a whole failed (then nothing is known to be stored).
    async fn put(&self, entries: &[LogEntry]) -> Result<Vec<PutResult>, AwsError>;

    /// Every shard retained, open and closed, with its lineage.
    async fn list_shards(&self) -> Result<Vec<ShardInfo>, AwsError>;

    /// A cursor in `shard_id` at `at`. Kinesis gives one even past a closed shard's last
    /// record (its first read is the end); `None` says the same: nothing is left to read there.
    async fn open(&self, shard_id: &str, at: &StartAt) -> Result<Option<ShardCursor>, AwsError>;

    /// At most `limit` records from `cursor`.
    async fn read(&self, cursor: &ShardCursor, limit: i32) -> Result<ReadOutcome, AwsError>;
}

/// Where Kinesis puts a partition key: the MD5 of its bytes as a big-endian 128-bit integer.
pub fn hash_key_of(partition_key: &str) -> u128 {
    use md5::Digest;
    u128::from_be_bytes(md5::Md5::digest(partition_key.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_key_hashes_like_kinesis() {
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e, read big-endian (AWS documents the
        // mapping as "MD5 of the partition key, as a 128-bit integer").
        assert_eq!(hash_key_of(""), 0xd41d8cd98f00b204e9800998ecf8427e);
        assert_ne!(hash_key_of("1/db/a"), hash_key_of("1/db/b"));
    }
}
