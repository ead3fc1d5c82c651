//! What every backend shares, whatever it is backed by: the classified error a call returns and
//! the one retry policy (with per-target adaptive concurrency) that reads its class.
//!
//! - [`error`]: [`AwsError`] and [`ErrorClass`].
//! - [`retry`]: full-jitter retries driven by the class, and the AIMD concurrency limiter.
//! - [`changelog`]: the change log (Kinesis): sharded, ordered per shard, at least once.
//! - [`queue`]: the event queue (SQS): at least once, unordered, visibility timeouts.
//! - [`memory`]: in-memory fakes of every backend trait.

pub mod changelog;
pub mod error;
pub mod memory;
pub mod queue;
pub mod retry;

pub use error::{AwsError, ErrorClass};
