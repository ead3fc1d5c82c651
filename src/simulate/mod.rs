//! Realistic, crawler-like catalogs for the demo, tests and benchmarks.
pub mod catalog;
pub mod events;
pub mod seed;
