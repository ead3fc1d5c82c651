//! Apply: making one target catalog equal to the transformed source, record batch by batch.
//!
//! - [`filter`]: include/exclude globs.
//! - [`transform`]: per-target location rewrite and catalog mapping.
//! - [`applier`]: compare-then-write of a batch of records on a target `backend::catalog::Catalog`,
//!   retries, dependency waits, dead letters.
//! - [`permissions`]: Lake Formation records on a target `backend::lakeformation::LakeFormation`:
//!   batched grants and revokes, LF-tags before their assignments, settings, filters.
//! - [`dry_run`]: the catalog a dry run writes to: reads pass to the target, writes are recorded.
//! - [`stats`]: created / updated / deleted / unchanged counts per object kind.
//! - [`watermark`]: how far the consumer group has read each shard (may a missing parent still come?).
//!
//! Must never: delete-and-recreate an object (that destroys grants and history), send read-only
//! fields, or move a checkpoint past a record that is neither applied nor dead-lettered.

pub mod applier;
pub mod coordination;
pub mod dry_run;
pub mod group;
pub mod lag;
pub mod permissions;
pub mod stats;
pub mod transform;
pub mod watermark;

#[cfg(test)]
mod tests;

use thiserror::Error;

use crate::backend::AwsError;
use crate::state::checkpoint::CheckpointError;

#[derive(Debug, Error)]
pub enum ApplyError {
    #[error("target {target} stays unavailable after {attempts} attempts: {source}; nothing past the last checkpoint was skipped, run again to resume")]
    Unavailable { target: String, attempts: u32, source: AwsError },
    #[error("target {target}: cannot park a dead letter: {source}")]
    DeadLetter { target: String, source: AwsError },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("consumer group {group} no longer owns shard {shard} (its lock or lease lapsed or was taken over); stopped before writing")]
    Fenced { group: String, shard: String },
    #[error(transparent)]
    Stream(#[from] crate::stream::StreamError),
}
