//! lakelog keeps an AWS Glue Data Catalog replicated from a source (Region, account) to one or
//! more targets through a Kinesis change log, and keeps that log's history.
//!
//! # Layout
//! Layers, lowest first; a module imports only from lower layers (checked by a test,
//! `layering.rs`), and modules of one layer never import each other.
//!
//! 0. [`model`]: lakelog's own catalog objects, change records, sequence numbers, include/exclude
//!    filters, and the versioned wire format (`model::codec`).
//! 1. [`metrics`]: every metric name and label, and the `/metrics` + `/readyz` endpoint;
//!    [`progress`]: progress bars; [`resources`]: peak memory for reports.
//! 2. [`config`]: `pipeline.yaml`: sections, `${ENV}` interpolation, per-service endpoints,
//!    validation with full paths, every problem at once.
//! 3. [`backend`]: one narrow trait per backend, each stating its guarantees — the Glue catalog
//!    (`Catalog`), the change log (`ChangeLog`), the state store (`StateStore`), the event queue
//!    (`EventQueue`) and history (`EventHistory`) — with in-memory fakes (`backend::memory`), the
//!    classified error every call returns, and the one retry policy with per-target AIMD.
//! 4. [`aws`]: the only module that knows the AWS SDK: clients per service endpoint, the adapters
//!    implementing the backend traits, SDK ↔ model conversions, the error classifier.
//! 5. [`catalog`]: paged, segmented reads of any catalog; [`stream`]: the ordered, batched
//!    producer, the publisher with its compact per-object memory, the per-shard reader;
//!    [`lease`]: the write fence, and the lease workers that share shards between processes.
//! 6. [`state`]: checkpoints, dead letters, CloudTrail cursors and the single-writer lock, typed
//!    views over the state store.
//! 7. [`capture`]: the source's changes into records (`capture::scan`: snapshot and reconciliation;
//!    `capture::events`: SQS, trail files, LookupEvents; one resolve-and-publish step);
//!    [`apply`]: per-target transform, the applier, dry runs, consumer groups, lag;
//!    [`simulate`]: realistic, crawler-like catalogs for the demo, tests and benchmarks.
//! 8. [`archive`]: the change log kept in the state store, a consumer group of its own: raw
//!    segments, the manifest, compaction, the state at a time, per-object history.
//! 9. [`connect`]: the composition root: from `pipeline.yaml` to connected components.
//! 10. [`commands`]: what each CLI command does (`run`, `sync`, `status`, `diff`, `dlq`, `simulate`),
//!     with reports that print themselves; `main.rs` only parses, dispatches and renders errors.

pub mod apply;
pub mod archive;
pub mod aws;
pub mod backend;
pub mod capture;
pub mod catalog;
pub mod commands;
pub mod config;
pub mod connect;
pub mod lease;
pub mod metrics;
pub mod model;
pub mod progress;
pub mod resources;
pub mod simulate;
pub mod state;
pub mod stream;

#[cfg(test)]
mod layering;
