//! Scanning the source catalog: the initial snapshot and the reconciliation passes.

pub mod lakeformation;
pub mod reconcile;
pub mod snapshot;
