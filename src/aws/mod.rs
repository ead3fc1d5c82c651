//! The edge to AWS. Everything that knows SDK types lives here; the rest of lakelog speaks its
//! own model.
//!
//! - [`clients`]: every client the config describes, and the backends made from them.
//! - [`client`]: SDK configuration per (region, endpoint): retries, timeouts, path-style S3.
//! - [`credentials`]: a target's own credentials (STS AssumeRole with its external id).
//! - [`error`]: the one place SDK errors are classified (retryable, throttled, not found, ...).
//! - [`counter`]: an interceptor that counts requests per operation, for metrics and for tests
//!   that assert how many writes a run made.
//! - [`cloudtrail`]: the event history on CloudTrail LookupEvents ([`crate::backend::history::EventHistory`]).
//! - [`eventbridge`]: delivering events and routing them to a queue (the demo and tests only).
//! - [`glue`]: [`glue::GlueCatalog`], the Glue Data Catalog behind `backend::catalog::Catalog`.
//! - [`glue_convert`]: Glue SDK types ↔ lakelog model.
//! - [`glue_extras`]: the Glue reads of what lakelog does not replicate ([`crate::backend::extras::CatalogExtras`]).
//! - [`lakeformation`]: [`lakeformation::LfCatalog`], Lake Formation behind
//!   `backend::lakeformation::LakeFormation`, with its SDK ↔ model conversions.
//! - [`kinesis`]: the change log on Kinesis ([`crate::backend::changelog::ChangeLog`]).
//! - [`s3`]: the state store (and trail-bucket reads) on S3.
//! - [`sqs`]: the event queue on SQS ([`crate::backend::queue::EventQueue`]).

pub mod client;
pub mod clients;
pub mod cloudtrail;
pub mod counter;
pub mod credentials;
pub mod dynamodb;
pub mod error;
pub mod eventbridge;
pub mod glue;
pub mod glue_convert;
pub mod glue_extras;
pub mod kinesis;
pub mod lakeformation;
pub mod s3;
pub mod sqs;
