//! The error every backend call returns: what failed, and what it means for the caller.
//!
//! [`ErrorClass`] is what retry policies and the dead-letter decision read. The SDK adapters in
//! `crate::aws` classify AWS answers into it (the one place error codes are compared); in-memory
//! backends build it directly.

use std::fmt;

/// What a failed call means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The service asked us to slow down: back off, lower concurrency, retry. Never drop.
    Throttled,
    /// Transient: 5xx, timeouts, connection failures, concurrent modification. Retry with backoff.
    Retryable,
    /// The object (or its parent) does not exist.
    NotFound,
    /// The object already exists (a create raced with another writer).
    AlreadyExists,
    /// A conditional write lost (S3 412): someone else wrote first.
    Conflict,
    /// The request itself is wrong (validation, access denied, quota): retrying cannot help.
    Permanent,
}

impl ErrorClass {
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorClass::Throttled | ErrorClass::Retryable)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Throttled => "throttled",
            ErrorClass::Retryable => "retryable",
            ErrorClass::NotFound => "not_found",
            ErrorClass::AlreadyExists => "already_exists",
            ErrorClass::Conflict => "conflict",
            ErrorClass::Permanent => "permanent",
        }
    }
}

/// A failed AWS call, classified, with enough context to act on.
#[derive(Debug, Clone)]
pub struct AwsError {
    pub service: &'static str,
    pub operation: &'static str,
    pub class: ErrorClass,
    /// The AWS error code, when the service answered with one.
    pub code: Option<String>,
    pub message: String,
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} failed", self.service, self.operation)?;
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for AwsError {}

impl AwsError {
    /// The service answered something lakelog cannot use.
    pub fn invalid_response(service: &'static str, operation: &'static str, what: &str) -> AwsError {
        AwsError { service, operation, class: ErrorClass::Permanent, code: None, message: what.to_string() }
    }
}
