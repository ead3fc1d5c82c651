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

use crate::metrics as m;

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
        let outcome = match context.response().map(|r| r.status().as_u16()) {
            Some(s) if s < 300 => "ok",
            Some(429) => "throttled",
            Some(s) if s < 500 => "client_error",
            Some(_) => "server_error",
            None => "no_response",
        };
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
