//! The change log's archive in the state store: what the stream held, kept past Kinesis'
//! retention, so any past state can be restored and any object's history read.
//!
//! - [`segment`]: the object format (zstd MessagePack records behind an index), raw and snapshot.
//! - [`manifest`]: the one document listing snapshots and the raw tail; conditional updates.
//! - [`merge`]: the latest record per key, in key order, in bounded memory (external merge).
//!
//! Layout under the state store's root, per stream:
//! `archive/<stream>/manifest.json`,
//! `archive/<stream>/segments/dt=YYYY-MM-DD/hh=HH/<shard>-<first sequence>.seg` (raw, by the
//! capture time of their first record), `archive/<stream>/snapshots/<id>/part-<n>.seg` and
//! `.../folded.json`.

pub mod compact;
pub mod consumer;
pub mod history;
pub mod manifest;
pub mod merge;
pub mod rebuild;
pub mod replay;
pub mod segment;
pub mod sink;
pub mod writer;

#[cfg(test)]
mod tests;

use thiserror::Error;

use crate::backend::AwsError;

#[derive(Debug, Error)]
pub enum ArchiveError {
    #[error("archive store: {source}")]
    Store { source: AwsError },
    #[error("{what} is unreadable ({reason}); it was written by lakelog and must not be edited")]
    Corrupt { what: String, reason: String },
    #[error("the archive manifest has format {found}, newer than this lakelog reads; upgrade lakelog")]
    NewerManifest { found: u32 },
    #[error(
        "{key} was changed by other writers {races} times in a row; is a second lakelog archiving the same stream?"
    )]
    Contended { key: String, races: u32 },
    #[error("archive segment {key}: {source}")]
    Segment { key: String, source: segment::SegmentError },
    #[error(transparent)]
    Merge(merge::MergeError),
    #[error("{what}; nothing was changed, run it again")]
    Raced { what: String },
    #[error("the archive merge stopped: {0}")]
    Worker(String),
    #[error("the reader of the archive stopped before the end")]
    Stopped,
    #[error("the archive holds nothing yet; it fills as `lakelog run` (or `lakelog archive`) reads the stream")]
    Empty,
    #[error("{at} is before the earliest restorable time {earliest} (archive.retention); restore a later time")]
    NotRestorable { at: i64, earliest: i64 },
}

impl From<AwsError> for ArchiveError {
    fn from(source: AwsError) -> ArchiveError {
        ArchiveError::Store { source }
    }
}
