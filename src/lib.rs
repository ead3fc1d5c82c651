//! lakelog keeps an AWS Glue Data Catalog replicated from a source (Region, account) to one or
//! more targets through a Kinesis change log, and keeps that log's history.
//!
//! # Layout
//! - [`model`]: lakelog's own catalog objects, change records and their versioned wire format.
//! - [`config`]: `pipeline.yaml`: parsing, `${ENV}` interpolation, validation of every problem at once.
//! - [`aws`]: the edge to AWS: client construction (endpoint overrides), SDK ↔ model conversions,
//!   error classification (retryable or permanent), request counting.
//! - [`capture`]: reading the source catalog into change records (full paginated scan).
//! - [`stream`]: the Kinesis change log: ordered, batched producer and per-shard consumer.
//! - [`checkpoint`]: durable per-shard, per-consumer-group checkpoints (S3 conditional writes).
//! - [`apply`]: per-target transforms and the Glue applier (compare, create or update, batch).
//! - [`deadletter`]: where records that cannot be applied are parked, with their reason.
//! - [`sync`]: the on-demand `lakelog sync` job that ties capture, stream and apply together.
//! - [`simulate`]: realistic, crawler-like catalogs for the demo, the tests and the benchmarks.

pub mod aws;
pub mod model;
pub mod simulate;
