//! Operator commands: what `lakelog sync`, `run`, `status`, `diff`, `dlq` and `simulate` do, and
//! the reports they return. Each report implements `Display` (the text `main.rs` prints) and
//! `Serialize` (`--output json`). Read-only, except `sync` and `run` (which replicate), `dlq
//! replay` and `dlq drop` (which act on the dead-letter store and the one target named), and
//! `simulate` (which writes to the source, for demos and tests).

pub mod archive;
pub mod compact;
pub mod diff;
pub mod dlq;
pub mod history;
pub mod restore;
pub mod run;
pub mod simulate;
pub mod status;
pub mod sync;
