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

use crate::aws::ErrorClass;
use crate::metrics as m;

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
}

/// Whether an operation name changes the catalog.
pub fn is_write(operation: &str) -> bool {
    const WRITE_PREFIXES: [&str; 13] = [
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
        ApiCounter { target: Some(target.to_string()), counts: Arc::default() }
    }

    /// Counts requests to the source catalog.
    pub fn source() -> ApiCounter {
        ApiCounter { target: None, counts: Arc::default() }
    }

    /// Requests sent so far, per operation.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
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
        let throttled = response.is_some_and(|r| {
            let code = error_code(r.headers().get("x-amzn-errortype"), r.body().bytes());
            r.status().as_u16() == 429 || code.is_some_and(|c| ErrorClass::from_code(&c) == ErrorClass::Throttled)
        });
        let outcome = match response.map(|r| r.status().as_u16()) {
            Some(s) if s < 300 => "ok",
            Some(_) if throttled => "throttled",
            Some(s) if s < 500 => "client_error",
            Some(_) => "server_error",
            None => "no_response",
        };
        if throttled {
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
    use super::error_code;

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
