//! Operator commands: what `lakelog status`, `lakelog diff` and `lakelog dlq` do. Read-only,
//! except `dlq replay` and `dlq drop`, which act on the dead-letter store and the one target named.

pub mod diff;
pub mod dlq;
pub mod run;
pub mod status;
pub mod sync;
