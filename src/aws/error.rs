//! The one place SDK errors are classified. Retry policies and the dead-letter decision read
//! [`ErrorClass`]; nothing else inspects error codes or messages.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use std::future::Future;

use crate::backend::error::{AwsError, ErrorClass};
use crate::backend::retry::RetryPolicy;

impl RetryPolicy {
    /// Sends one SDK request under this policy (`request` clones the fluent builder, as each
    /// attempt sends anew), its failure classified as `service operation`.
    pub async fn send<T, E, F, Fut>(
        &self,
        service: &'static str,
        operation: &'static str,
        request: F,
    ) -> Result<T, AwsError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, Response>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.run(|| async { request().await.map_err(|e| AwsError::from_sdk(service, operation, e)) }).await
    }
}

impl ErrorClass {
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
            "PreconditionFailed" | "ConditionalRequestConflict" | "ConditionalCheckFailedException" => {
                ErrorClass::Conflict
            }
            _ => ErrorClass::Permanent,
        }
    }
}

impl AwsError {
    /// Kinesis: the shard iterator is too old (five minutes) or points at trimmed records; the
    /// reader must open a new one. An outcome of a read, not a failure
    /// ([`ReadOutcome::Expired`](crate::backend::changelog::ReadOutcome::Expired)).
    pub(crate) fn is_expired_iterator(&self) -> bool {
        self.code.as_deref() == Some("ExpiredIteratorException")
    }
}

impl AwsError {
    /// Lake Formation: the endpoint does not offer the operation at all. An HTTP 404 without an
    /// AWS error code is how moto answers an operation it does not implement (ListLFTagExpressions,
    /// ListLakeFormationOptIns, GetDataCellsFilter); a missing object on AWS always carries a code
    /// (`EntityNotFoundException`). Read by the Lake Formation adapter as "not offered".
    pub(crate) fn is_not_offered(&self) -> bool {
        self.service == "lakeformation" && self.class == ErrorClass::NotFound && self.code.is_none()
    }

    /// An HTTP 500 without an AWS error code: an unhandled exception page (moto's answer to some
    /// reads of objects it never stored), never AWS's own error format, which carries a code.
    pub(crate) fn is_bare_server_error(&self) -> bool {
        self.class == ErrorClass::Retryable && self.code.is_none() && self.message.starts_with("HTTP 500")
    }
}

impl AwsError {
    /// Classifies an SDK error. The message is one short line an operator can act on: the
    /// service's own message, or the HTTP status with the start of the body, or the root cause of
    /// a failed connection and what to check. Never the SDK's Debug dump, each cause once.
    pub fn from_sdk<E>(service: &'static str, operation: &'static str, err: SdkError<E, Response>) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let check = format!("check the {service} endpoint and region in the config, and that the service is up");
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
                // Without a message (a body that is not the service's error format, e.g. a load
                // balancer's "Service Unavailable"), the SDK's parse error says nothing useful:
                // the status and the body do.
                let message = match ctx.err().message().filter(|m| !m.trim().is_empty()) {
                    Some(m) => m.to_string(),
                    None => http_status_and_body(status, ctx.raw().body().bytes()),
                };
                (class, code, message)
            }
            SdkError::TimeoutError(_) => {
                (ErrorClass::Retryable, None, format!("no answer from the {service} endpoint in time; {check}"))
            }
            SdkError::DispatchFailure(_) => (
                ErrorClass::Retryable,
                None,
                format!("could not reach the {service} endpoint ({}); {check}", root_cause(&err)),
            ),
            SdkError::ResponseError(ctx) => (
                ErrorClass::Retryable,
                None,
                format!(
                    "unreadable answer ({}: {}); is the {service} endpoint in the config a {service} endpoint?",
                    http_status_and_body(ctx.raw().status().as_u16(), ctx.raw().body().bytes()),
                    root_cause(&err)
                ),
            ),
            _ => (ErrorClass::Permanent, None, root_cause(&err)),
        };
        AwsError { service, operation, class, code, message }
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

/// Characters of a response body quoted in a message.
const BODY_SNIPPET_CHARS: usize = 120;

/// `HTTP 503: Service Unavailable`: the status and the start of the body on one line.
fn http_status_and_body(status: u16, body: Option<&[u8]>) -> String {
    let text = body.map(String::from_utf8_lossy).unwrap_or_default();
    let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if words.is_empty() {
        return format!("HTTP {status} with an empty body");
    }
    match words.char_indices().nth(BODY_SNIPPET_CHARS) {
        Some((cut, _)) => format!("HTTP {status}: {}...", &words[..cut]),
        None => format!("HTTP {status}: {words}"),
    }
}

/// The innermost cause of an error chain (`Connection reset by peer (os error 104)`): the
/// layers above it (dispatch failure, io error, client error) only say where it surfaced.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_glue::operation::get_tables::GetTablesError;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

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

    fn response(status: u16, body: &str) -> Response {
        Response::new(status.try_into().expect("status"), SdkBody::from(body.to_string()))
    }

    #[test]
    fn a_5xx_without_an_aws_error_reads_as_status_and_body_and_is_retryable() {
        let err = SdkError::service_error(
            GetTablesError::generic(ErrorMetadata::builder().build()),
            response(503, "Service Unavailable\n"),
        );
        let e = AwsError::from_sdk("glue", "GetTables", err);
        assert_eq!(e.to_string(), "glue GetTables failed: HTTP 503: Service Unavailable");
        assert_eq!(e.class, ErrorClass::Retryable);

        let page =
            format!("<html>\n<head><title>502 Bad Gateway</title></head>\n<body>{}</body></html>", "x".repeat(500));
        let err =
            SdkError::service_error(GetTablesError::generic(ErrorMetadata::builder().build()), response(502, &page));
        let e = AwsError::from_sdk("glue", "GetTables", err);
        assert!(e.message.starts_with("HTTP 502: <html> <head><title>502 Bad Gateway</title>"), "{e}");
        assert!(e.message.len() < 150 && e.message.ends_with("..."), "{e}");
    }

    #[test]
    fn an_aws_error_keeps_its_code_and_message() {
        let meta = ErrorMetadata::builder().code("EntityNotFoundException").message("Database db not found.").build();
        let err = SdkError::service_error(GetTablesError::generic(meta), response(400, "{}"));
        let e = AwsError::from_sdk("glue", "GetTables", err);
        assert_eq!(e.to_string(), "glue GetTables failed (EntityNotFoundException): Database db not found.");
        assert_eq!(e.class, ErrorClass::NotFound);
    }

    #[test]
    fn a_reset_connection_is_one_line_with_the_root_cause_and_what_to_check() {
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let err: SdkError<GetTablesError, Response> = SdkError::dispatch_failure(ConnectorError::io(Box::new(reset)));
        let e = AwsError::from_sdk("glue", "GetTables", err);
        assert_eq!(
            e.to_string(),
            "glue GetTables failed: could not reach the glue endpoint (connection reset); check the glue endpoint and region in the config, and that the service is up"
        );
        assert_eq!(e.class, ErrorClass::Retryable);
    }
}
