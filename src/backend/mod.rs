//! What every backend shares, whatever it is backed by: the classified error a call returns and
//! the one retry policy (with per-target adaptive concurrency) that reads its class.
//!
//! - [`error`]: [`AwsError`] and [`ErrorClass`].
//! - [`retry`]: full-jitter retries driven by the class, and the AIMD concurrency limiter.

pub mod error;
pub mod retry;

pub use error::{AwsError, ErrorClass};
