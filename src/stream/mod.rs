//! The Kinesis change log.
//!
//! - [`producer`]: ordered, batched, frame-packing PutRecords.
//! - [`consumer`]: per-shard reading from a checkpoint.
//! - [`lineage`]: the shards a reader meets as the stream is resharded, parents before children.
//! - [`publisher`]: serialised, ordered publishing; [`recorded`]: its compact memory per object.
//! - [`seqno`]: sequence numbers compared numerically (they live in the model: checkpoints and
//!   the change-log backend speak them too).
//! - [`admin`]: creating/describing the stream and listing its shards.

pub mod admin;
pub mod consumer;
pub mod lineage;
pub mod producer;
pub mod publisher;
pub mod recorded;
pub use crate::model::seqno;

use thiserror::Error;

use crate::backend::AwsError;
use crate::model::codec::CodecError;

#[derive(Debug, Error)]
pub enum StreamError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("cannot encode the record for {key}: {source}")]
    Encode { key: String, source: CodecError },
    #[error("the record for {key} encodes to {bytes} bytes, over the {limit}-byte frame limit; Kinesis records hold at most 1 MiB")]
    RecordTooLarge { key: String, bytes: usize, limit: usize },
    #[error("stream {stream} does not exist; create it (infra/) or set stream.create_if_missing: true")]
    Missing { stream: String },
    #[error("shard {shard}: its iterator expired {renewals} times in a row right after being opened; is the stream's clock or retention misconfigured?")]
    Expired { shard: String, renewals: u32 },
    #[error("stream {stream} did not become ACTIVE within {seconds}s (status {status})")]
    NotActive { stream: String, seconds: u64, status: String },
}
