//! What every backend shares, whatever it is backed by: the classified error a call returns and
//! the one retry policy (with per-target adaptive concurrency) that reads its class.
//!
//! - [`error`]: [`AwsError`] and [`ErrorClass`].
//! - [`retry`]: full-jitter retries driven by the class, and the AIMD concurrency limiter.
//! - [`catalog`]: one Glue Data Catalog ([`catalog::Catalog`]), and retries around any of them.
//! - [`extras`]: what a catalog holds that lakelog does not replicate, for `diff` to list.
//! - [`changelog`]: the change log (Kinesis): sharded, ordered per shard, at least once.
//! - [`state`]: the state store (get, conditional put, list, delete) checkpoints, dead letters and
//!   cursors sit on.
//! - [`queue`]: the event queue (SQS): at least once, unordered, visibility timeouts.
//! - [`history`]: the event history (CloudTrail LookupEvents): paged, late but not lost.
//! - [`lease`]: the lease table (DynamoDB): one owner per lease, every change conditional on
//!   its counter.
//! - [`lakeformation`]: one catalog's Lake Formation (grants, LF-tags, filters, settings).
//! - [`memory`]: in-memory fakes of every backend trait.

pub mod catalog;
pub mod changelog;
pub mod error;
pub mod extras;
pub mod history;
pub mod lakeformation;
pub mod lease;
pub mod memory;
pub mod queue;
pub mod retry;
pub mod state;

pub use error::{AwsError, ErrorClass};
