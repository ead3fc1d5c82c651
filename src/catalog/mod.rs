//! The Glue catalog backend, and the catalog's Lake Formation (`lakeformation`).

pub mod lakeformation;
pub mod reader;

use thiserror::Error;

use crate::backend::AwsError;

/// A catalog read that failed, naming what was being read.
#[derive(Debug, Error)]
pub enum ReadError {
    #[error("reading {what} from the catalog: {source}")]
    Aws { what: String, source: AwsError },
    #[error("the reader's consumer stopped before the scan finished (downstream failed)")]
    Closed,
}

impl ReadError {
    pub fn new(what: impl Into<String>, source: AwsError) -> ReadError {
        ReadError::Aws { what: what.into(), source }
    }
}
