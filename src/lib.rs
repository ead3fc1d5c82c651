//! lakelog keeps an AWS Glue Data Catalog replicated from a source (Region, account) to one or
//! more targets through a Kinesis change log, and keeps that log's history.
//!
//! # Layout
//! - [`model`]: lakelog's own catalog objects, change records and their versioned wire format.
//! - [`config`]: `pipeline.yaml`: parsing, `${ENV}` interpolation, validation of every problem at once.
//! - [`aws`]: the edge to AWS: client construction (endpoint overrides), SDK ↔ model conversions,
//!   error classification (retryable or permanent), request counting.
//! - [`capture`]: reading a catalog into change records (paginated, segmented scans).
//! - [`stream`]: the Kinesis change log: ordered, batched producer and per-shard reader.
//! - [`checkpoint`]: durable per-shard, per-consumer-group checkpoints (S3 conditional writes).
//! - [`apply`]: per-target filters and transforms, and the Glue applier (compare, create or update, batch).
//! - [`lag`]: replication-lag percentiles per applied record.
//! - [`deadletter`]: where records that cannot be applied are parked, with their reason.
//! - [`replicate`]: consumer groups: a task per shard, parents before children, checkpoint after apply.
//! - [`pipeline`]: the connected clients and stores a job needs.
//! - [`run`]: the long-running `lakelog run`: events, snapshot, reconciliation, apply, graceful drain.
//! - [`sync`]: the on-demand `lakelog sync` job that ties capture, stream and apply together.
//! - [`simulate`]: realistic, crawler-like catalogs for the demo, the tests and the benchmarks.
//! - [`metrics`]: every metric name and label, in one place.
//! - [`state`], [`progress`], [`resources`]: the state bucket; progress bars; peak memory for reports.

pub mod apply;
pub mod archive;
pub mod aws;
pub mod backend;
pub mod capture;
pub mod catalog;
pub mod commands;
pub mod config;
pub mod connect;
pub mod metrics;
pub mod model;
pub mod progress;
pub mod resources;
pub mod simulate;
pub mod state;
pub mod stream;
