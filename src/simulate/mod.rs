//! Realistic, crawler-like catalogs for the demo, tests and benchmarks.
pub mod catalog;
pub mod seed;
pub mod events;
