//! In-memory backends with AWS's semantics and scripted failures, for unit tests of the logic
//! above them. Never the only proof a feature works: end-to-end tests use the emulator.

pub mod catalog;
pub mod state;
