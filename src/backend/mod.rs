//! What every backend shares, whatever it is backed by: the classified error a call returns and
//! the one retry policy (with per-target adaptive concurrency) that reads its class.
//!
//! - [`error`]: [`AwsError`] and [`ErrorClass`].
//! - [`retry`]: full-jitter retries driven by the class, and the AIMD concurrency limiter.
//! - [`catalog`]: one Glue Data Catalog ([`catalog::Catalog`]), and retries around any of them.
//! - [`state`]: the state store (get, conditional put, list, delete) checkpoints, dead letters and
//!   cursors sit on.
//! - [`memory`]: in-memory implementations of each backend, for unit tests.

pub mod catalog;
pub mod error;
pub mod memory;
pub mod retry;
pub mod state;

pub use error::{AwsError, ErrorClass};
