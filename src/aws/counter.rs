//! Counts requests per operation at the HTTP layer (one count per attempt), so "a second sync
//! makes zero writes" is measured on the wire rather than self-reported, and feeds the
//! `lakelog_target_api_calls_total` metric.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use crate::backend::ErrorClass;
use crate::metrics as m;

/// The `outcome` label of one response: ok, throttled (HTTP 429 or a throttling error code, which
/// Glue sends with HTTP 400), client_error, server_error.
fn outcome(status: u16, code: Option<String>) -> &'static str {
    let throttled = status == 429 || code.is_some_and(|c| ErrorClass::from_code(&c) == ErrorClass::Throttled);
    match status {
        s if s < 300 => "ok",
        _ if throttled => "throttled",
        s if s < 500 => "client_error",
        _ => "server_error",
    }
}

/// The error code of an AWS JSON-protocol error response: the `x-amzn-ErrorType` header, else
/// the body's `__type` (both may carry a namespace or a `:uri` suffix).
fn error_code(header: Option<&str>, body: Option<&[u8]>) -> Option<String> {
    let raw = match header {
        Some(h) => h.to_string(),
        None => {
            let v: serde_json::Value = serde_json::from_slice(body?).ok()?;
            v.get("__type")?.as_str()?.to_string()
        }
    };
    let code = raw.split(':').next().unwrap_or(&raw);
    Some(code.rsplit('#').next().unwrap_or(code).to_string())
}

/// Shared per-operation request counts for one client (one target).
#[derive(Debug, Clone, Default)]
pub struct ApiCounter {
    /// The target's name; `None` counts source requests.
    target: Option<String>,
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
    throttled: Arc<std::sync::atomic::AtomicU64>,
}

/// Whether an operation name changes the catalog.
pub fn is_write(operation: &str) -> bool {
    const WRITE_PREFIXES: [&str; 15] = [
        "Register",
        "Deregister",
        "Create",
        "Update",
        "Delete",
        "BatchCreate",
        "BatchUpdate",
        "BatchDelete",
        "Put",
        "Grant",
        "Revoke",
        "BatchGrant",
        "BatchRevoke",
        "Add",
        "Remove",
    ];
    WRITE_PREFIXES.iter().any(|w| operation.starts_with(w))
}

impl ApiCounter {
    /// Counts requests to a target; its metrics carry `target=name`.
    pub fn new(target: &str) -> ApiCounter {
        ApiCounter { target: Some(target.to_string()), ..Default::default() }
    }

    /// Counts requests to the source catalog.
    pub fn source() -> ApiCounter {
        ApiCounter::default()
    }

    /// Requests sent so far, per operation.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Responses that were throttling errors so far.
    pub fn throttled(&self) -> u64 {
        self.throttled.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Write requests sent so far.
    pub fn writes(&self) -> u64 {
        self.snapshot().iter().filter(|(op, _)| is_write(op)).map(|(_, n)| n).sum()
    }
}

impl Intercept for ApiCounter {
    fn name(&self) -> &'static str {
        "lakelog-api-counter"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg.load::<Metadata>().map(|m| m.name().to_string()).unwrap_or_else(|| "unknown".into());
        let response = context.response();
        let outcome = match response {
            Some(r) => outcome(r.status().as_u16(), error_code(r.headers().get("x-amzn-errortype"), r.body().bytes())),
            None => "no_response",
        };
        if outcome == "throttled" {
            self.throttled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            m::throttled(if self.target.is_some() { "apply" } else { "capture" }, "glue", 1);
        }
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry(operation.clone()).or_default() += 1;
        }
        match &self.target {
            Some(t) => m::target_api_call(t, &operation, outcome),
            None => m::source_api_call(&operation, outcome),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{error_code, outcome};

    #[tokio::test]
    async fn a_glue_throttling_response_is_counted_as_throttled() {
        use aws_sdk_glue::Client;
        use aws_smithy_mocks::{mock, mock_client, RuleMode};
        use aws_smithy_runtime_api::http::{Response, StatusCode};
        use aws_smithy_types::body::SdkBody;
        let throttle = mock!(Client::get_table).then_http_response(|| {
            let body = r#"{"__type":"ThrottlingException","Message":"Rate exceeded"}"#;
            Response::new(StatusCode::try_from(400).expect("status"), SdkBody::from(body))
        });
        let counter = super::ApiCounter::new("dr");
        let c = counter.clone();
        let glue = mock_client!(aws_sdk_glue, RuleMode::MatchAny, &[&throttle], move |conf| conf
            .interceptor(c.clone())
            .retry_config(aws_smithy_types::retry::RetryConfig::disabled()));
        let err = glue.get_table().database_name("d").name("t").send().await.expect_err("throttled");
        assert_eq!(
            crate::backend::AwsError::from_sdk("glue", "GetTable", err).class,
            crate::backend::ErrorClass::Throttled
        );
        assert_eq!(counter.throttled(), 1);
        assert_eq!(counter.snapshot().get("GetTable"), Some(&1));
    }

    #[test]
    fn throttling_is_its_own_outcome_whatever_the_status() {
        let throttling = error_code(None, Some(br#"{"__type":"ThrottlingException"}"#));
        assert_eq!(outcome(400, throttling), "throttled");
        assert_eq!(outcome(429, None), "throttled");
        assert_eq!(outcome(400, Some("EntityNotFoundException".into())), "client_error");
        assert_eq!(outcome(503, Some("ServiceUnavailable".into())), "server_error");
        assert_eq!(outcome(200, None), "ok");
    }

    #[test]
    fn error_codes_from_header_or_body() {
        assert_eq!(
            error_code(Some("ThrottlingException:http://internal.amazon.com/"), None).as_deref(),
            Some("ThrottlingException")
        );
        let body = br#"{"__type":"com.amazonaws.glue#ThrottlingException","message":"Rate exceeded"}"#;
        assert_eq!(error_code(None, Some(body)).as_deref(), Some("ThrottlingException"));
        assert_eq!(error_code(None, Some(b"<html>")), None);
        assert_eq!(error_code(None, None), None);
    }
}
