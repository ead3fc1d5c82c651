//! In-memory backends with the semantics of the services they stand in for, scripted faults and
//! call logs: for unit tests, e2e tests and benches (not `cfg(test)`, so those can use them).

pub mod catalog;
