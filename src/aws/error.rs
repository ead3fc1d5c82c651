//! The one place SDK errors are classified. Retry policies and the dead-letter decision read
//! [`ErrorClass`]; nothing else inspects error codes or messages.

use std::fmt;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

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

    /// Classifies an AWS error code (as returned in an error response or in a batch item error).
    pub fn from_code(code: &str) -> ErrorClass {
        match code {
            "ThrottlingException"
            | "Throttling"
            | "ThrottledException"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "ProvisionedThroughputExceededException"
            | "SlowDown"
            | "RequestThrottled"
            | "RequestThrottledException" => ErrorClass::Throttled,
            "InternalServiceException"
            | "InternalServerException"
            | "InternalError"
            | "InternalFailure"
            | "ServiceUnavailable"
            | "ServiceUnavailableException"
            | "ConcurrentModificationException"
            | "OperationTimeoutException"
            | "KMSThrottlingException"
            | "RequestTimeout" => ErrorClass::Retryable,
            "EntityNotFoundException" | "ResourceNotFoundException" | "NoSuchKey" | "NoSuchBucket" | "NotFound" => {
                ErrorClass::NotFound
            }
            "AlreadyExistsException" | "ResourceInUseException" | "BucketAlreadyOwnedByYou" => {
                ErrorClass::AlreadyExists
            }
            "PreconditionFailed" | "ConditionalRequestConflict" => ErrorClass::Conflict,
            _ => ErrorClass::Permanent,
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
    /// Classifies an SDK error.
    pub fn from_sdk<E>(service: &'static str, operation: &'static str, err: SdkError<E, Response>) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let (class, code, message) = match &err {
            SdkError::ServiceError(ctx) => {
                let code = ctx.err().code().map(str::to_string);
                let status = ctx.raw().status().as_u16();
                let class = match code.as_deref() {
                    Some(c) => match ErrorClass::from_code(c) {
                        ErrorClass::Permanent if status >= 500 => ErrorClass::Retryable,
                        ErrorClass::Permanent if status == 429 => ErrorClass::Throttled,
                        other => other,
                    },
                    None if status == 404 => ErrorClass::NotFound,
                    None if status == 412 => ErrorClass::Conflict,
                    None if status == 429 => ErrorClass::Throttled,
                    None if status >= 500 => ErrorClass::Retryable,
                    None => ErrorClass::Permanent,
                };
                let message = ctx
                    .err()
                    .message()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("HTTP {status}: {}", DisplayErrorContext(ctx.err())));
                (class, code, message)
            }
            SdkError::TimeoutError(_) => {
                (ErrorClass::Retryable, None, "timed out; is the endpoint reachable?".to_string())
            }
            SdkError::DispatchFailure(_) => (
                ErrorClass::Retryable,
                None,
                format!(
                    "could not reach the {service} endpoint (check the endpoint/region in the config and that the service is up): {}",
                    DisplayErrorContext(&err)
                ),
            ),
            SdkError::ResponseError(_) => (ErrorClass::Retryable, None, DisplayErrorContext(&err).to_string()),
            _ => (ErrorClass::Permanent, None, DisplayErrorContext(&err).to_string()),
        };
        AwsError { service, operation, class, code, message }
    }

    /// The service answered something lakelog cannot use.
    pub fn invalid_response(service: &'static str, operation: &'static str, what: &str) -> AwsError {
        AwsError { service, operation, class: ErrorClass::Permanent, code: None, message: what.to_string() }
    }

    /// An error reported for one item of a batch call (e.g. BatchCreatePartition's `Errors`).
    pub fn batch_item(
        service: &'static str,
        operation: &'static str,
        code: Option<&str>,
        message: Option<&str>,
    ) -> AwsError {
        AwsError {
            service,
            operation,
            class: code.map(ErrorClass::from_code).unwrap_or(ErrorClass::Permanent),
            code: code.map(str::to_string),
            message: message.unwrap_or("no message").to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified() {
        assert_eq!(ErrorClass::from_code("ThrottlingException"), ErrorClass::Throttled);
        assert_eq!(ErrorClass::from_code("ProvisionedThroughputExceededException"), ErrorClass::Throttled);
        assert_eq!(ErrorClass::from_code("EntityNotFoundException"), ErrorClass::NotFound);
        assert_eq!(ErrorClass::from_code("InvalidInputException"), ErrorClass::Permanent);
        assert_eq!(ErrorClass::from_code("AccessDeniedException"), ErrorClass::Permanent);
        assert!(ErrorClass::from_code("InternalServiceException").is_retryable());
        assert!(!ErrorClass::from_code("AlreadyExistsException").is_retryable());
    }
}
