//! Capture: turning the source catalog into change records.
//!
//! - [`reader`]: paginated, segmented reads of any Glue catalog into lakelog's model (also used
//!   to read targets for `--prune` and dry runs).
//! - [`snapshot`]: the full scan that emits one full-state upsert per object.

pub mod cloudtrail;
pub mod events;
pub mod hint;
pub mod lookup;
pub mod queue;
pub mod reader;
pub mod reconcile;
pub mod resolve;
pub mod snapshot;

use thiserror::Error;

use crate::aws::AwsError;

#[derive(Debug, Error)]
pub enum CaptureError {
    #[error("reading {what} from the catalog: {source}")]
    Aws { what: String, source: AwsError },
    #[error("the capture pipeline stopped before the scan finished (downstream failed)")]
    Closed,
}

impl CaptureError {
    pub fn aws(what: impl Into<String>, source: AwsError) -> CaptureError {
        CaptureError::Aws { what: what.into(), source }
    }
}
