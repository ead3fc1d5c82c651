//! Capture: turning the source catalog into change records.
//!
//! - [`reader`]: paginated, segmented reads of any Glue catalog into lakelog's model (also used
//!   to read targets for `--prune` and dry runs).
//! - [`snapshot`]: the full scan that emits one full-state upsert per object.

pub mod events;
pub mod resolve;
pub mod scan;

use async_trait::async_trait;
use thiserror::Error;
use tokio::sync::watch;

use crate::backend::AwsError;
use crate::catalog::ReadError;

#[derive(Debug, Error)]
pub enum CaptureError {
    #[error("reading {what} from the catalog: {source}")]
    Aws { what: String, source: AwsError },
    #[error("the capture pipeline stopped before the scan finished (downstream failed)")]
    Closed,
}

impl From<ReadError> for CaptureError {
    fn from(e: ReadError) -> CaptureError {
        match e {
            ReadError::Aws { what, source } => CaptureError::Aws { what, source },
            ReadError::Closed => CaptureError::Closed,
        }
    }
}

impl CaptureError {
    pub fn aws(what: impl Into<String>, source: AwsError) -> CaptureError {
        CaptureError::Aws { what: what.into(), source }
    }
}

/// The one shape of every capture source — the SQS queue, the trail's files, LookupEvents and
/// the reconciliation scan: a loop that captures and publishes until `stop` turns true, finishing
/// what it has in hand, then reports what it did. A source never applies anything itself.
#[async_trait]
pub trait Source: Send + Sync {
    type Report: Send;
    type Error: std::error::Error + Send;
    /// What it is, for logs and `/readyz`.
    fn name(&self) -> &'static str;
    async fn run(&self, stop: watch::Receiver<bool>) -> Result<Self::Report, Self::Error>;
}
