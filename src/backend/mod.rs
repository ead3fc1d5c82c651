//! What every backend shares, whatever it is backed by: the classified error a call returns and
//! the one retry policy (with per-target adaptive concurrency) that reads its class.
//!
//! - [`error`]: [`AwsError`] and [`ErrorClass`].
//! - [`retry`]: full-jitter retries driven by the class, and the AIMD concurrency limiter.
//! - [`changelog`]: the change log (Kinesis): sharded, ordered per shard, at least once.
//! - [`queue`]: the event queue (SQS): at least once, unordered, visibility timeouts.
//! - [`history`]: the event history (CloudTrail LookupEvents): paged, late but not lost.
//! - [`memory`]: in-memory fakes of every backend trait.

pub mod changelog;
pub mod error;
pub mod history;
pub mod memory;
pub mod queue;
pub mod retry;

pub use error::{AwsError, ErrorClass};
