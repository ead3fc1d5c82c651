//! The lease table: one row per (consumer group, shard), KCL's lease row, in DynamoDB
//! (`crate::aws::dynamodb::DynamoLeases`); in tests [`super::memory::lease::MemoryLeases`].
//!
//! Guarantees every implementation gives:
//! - **One owner per lease at a time.** Every change of a row (take, renew, checkpoint, release,
//!   the end of its shard) is a conditional write on the lease counter: it lands only if the
//!   stored `leaseCounter` is still the one the writer read, and it moves the counter on. Of two
//!   writers racing from the same counter exactly one gets [`Swap::Done`], the other
//!   [`Swap::Lost`]; a lost write changes nothing. A retried write whose earlier attempt landed
//!   (its answer lost) is recognised as done, not reported as lost.
//! - [`LeaseStore::create`] writes a row only where none exists.
//! - Reads are strongly consistent: a scan after a write sees it.
//! - Transient failures are retried inside the implementation; an error returned has used its
//!   attempts or is permanent.
//!
//! The row is the KCL's (`leaseKey`, `leaseOwner`, `leaseCounter`, `checkpoint`,
//! `checkpointSubSequenceNumber`, `ownerSwitchesSinceCheckpoint`, `parentShardId`,
//! `childShardId`, `startingHashKey`/`endingHashKey`), so operators' KCL tooling reads it, plus
//! four attributes of lakelog's own for `status` (when the checkpoint was written, records
//! applied, newest capture time, when the row was last written). One table holds every consumer group of a stream, the group in
//! the key (`<group>:<shardId>`, as KCL's multi-stream mode puts the stream in it): one table
//! to provision with on-demand billing, encryption and point-in-time recovery, one IAM resource,
//! one scan for `status`, and no table to create at run time when a target is added.

use std::fmt::Debug;

use async_trait::async_trait;

use super::AwsError;

/// KCL's checkpoint before any record was processed: read from the oldest record.
pub const TRIM_HORIZON: &str = "TRIM_HORIZON";
/// KCL's checkpoint of a shard read to its end: its children may be leased.
pub const SHARD_END: &str = "SHARD_END";

/// One lease row.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lease {
    /// `<group>:<shardId>` (`leaseKey`).
    pub key: String,
    /// The worker holding it (`leaseOwner`); `None`: free.
    pub owner: Option<String>,
    /// Moves on with every change (`leaseCounter`); the condition of every write.
    pub counter: u64,
    /// A sequence number, [`TRIM_HORIZON`] or [`SHARD_END`] (`checkpoint`).
    pub checkpoint: String,
    /// `checkpointSubSequenceNumber` (0: lakelog checkpoints whole Kinesis records).
    pub checkpoint_sub: u64,
    /// Owner changes since the last checkpoint (`ownerSwitchesSinceCheckpoint`).
    pub owner_switches: u64,
    /// `parentShardId` (a string set in DynamoDB).
    pub parents: Vec<String>,
    /// `childShardId`.
    pub children: Vec<String>,
    /// `startingHashKey`, `endingHashKey`.
    pub hash_range: Option<(String, String)>,
    /// When the checkpoint was written (epoch ms; `lakelogCheckpointAt`).
    pub checkpoint_at: Option<i64>,
    /// Change records applied through this shard by the group (`lakelogRecords`).
    pub records: u64,
    /// Capture time of the newest change applied (epoch ms; `lakelogNewestCapturedAt`).
    pub newest_captured_at: Option<i64>,
    /// When the owner last found the shard caught up (an empty read at its tip, everything
    /// before it applied; epoch ms; `lakelogCaughtUpAt`), written with renewals: how other
    /// workers know an idle shard holds no parent they wait for.
    pub caught_up_at: Option<i64>,
    /// When the row was last written (epoch ms, the writer's clock; `lakelogUpdatedAt`): set by
    /// the store on every write, read by `status` for a lease's age. `None` on rows written by
    /// other KCL tooling. Not a condition of any write (clocks are not compared; the counter is).
    pub updated_at: Option<i64>,
}

impl Lease {
    /// The key of `group`'s lease of `shard`.
    pub fn key_of(group: &str, shard: &str) -> String {
        format!("{group}:{shard}")
    }

    /// The group and the shard of the key (shard ids hold no `:`).
    pub fn parts(&self) -> (&str, &str) {
        self.key.rsplit_once(':').unwrap_or(("", &self.key))
    }

    pub fn shard(&self) -> &str {
        self.parts().1
    }

    pub fn ended(&self) -> bool {
        self.checkpoint == SHARD_END
    }
}

/// Outcome of a conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swap {
    Done,
    /// The row's counter moved on since it was read (or, for a create, the row exists).
    Lost,
}

#[async_trait]
pub trait LeaseStore: Send + Sync + Debug {
    /// Where the table is, for messages: `dynamodb://table`.
    fn location(&self) -> String;
    /// Writes `lease` unless a row with its key exists.
    async fn create(&self, lease: &Lease) -> Result<Swap, AwsError>;
    /// Writes `lease` (the whole row) if the stored counter is still `expected`; the caller has
    /// moved `lease.counter` past it.
    async fn update(&self, lease: &Lease, expected: u64) -> Result<Swap, AwsError>;
    /// Every lease of `group`.
    async fn list(&self, group: &str) -> Result<Vec<Lease>, AwsError>;
}
