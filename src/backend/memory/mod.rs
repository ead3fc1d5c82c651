//! In-memory fakes of the backend traits, for unit tests, e2e tests and benches. Each keeps its
//! trait's guarantees and can be scripted to fail the way the real service does (throttling,
//! partial failures, expiry), so the policy above it is tested without an emulator. They never
//! talk to a network and never sleep.

pub mod changelog;
pub mod history;
pub mod queue;
