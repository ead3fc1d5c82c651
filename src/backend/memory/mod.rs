//! In-memory fakes of the backend traits, for unit tests, e2e tests and benches. Each keeps its
//! trait's guarantees and can be scripted to fail the way the real service does (throttling,
//! partial failures, expiry), so the policy above it is tested without an emulator. They never
//! talk to a network and never sleep. Never the only proof a feature works: end-to-end tests use
//! the emulator.

pub mod catalog;
pub mod changelog;
pub mod history;
pub mod lakeformation;
pub mod lease;
pub mod queue;
pub mod state;
