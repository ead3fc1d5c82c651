//! The operator's HTTP endpoint of `lakelog run`: `/metrics` (Prometheus text), `/healthz` (the
//! process is serving) and `/readyz` (every component is working: 503 names the ones that are
//! not, and why).
//!
//! Loopback by default (`metrics.listen`); it serves read-only state and must never block the
//! pipeline, so every request is answered from memory.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use thiserror::Error;
use tokio::net::TcpListener;
use tracing::{debug, info};

use crate::metrics as m;

#[derive(Debug, Error)]
pub enum ServeError {
    #[error("installing the Prometheus recorder: {0}")]
    Recorder(String),
    #[error("cannot listen on {addr} for metrics: {source}; free the port or set metrics.listen (or --metrics-listen) to another address, or `off`")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// Whether each component of the running pipeline works.
#[derive(Debug, Default)]
pub struct Health {
    components: Mutex<BTreeMap<String, Result<(), String>>>,
}

impl Health {
    /// The process-wide health.
    pub fn global() -> &'static Health {
        static HEALTH: OnceLock<Health> = OnceLock::new();
        HEALTH.get_or_init(Health::default)
    }

    pub fn ready(&self, component: &str) {
        self.set(component, Ok(()));
    }

    pub fn not_ready(&self, component: &str, why: impl Into<String>) {
        self.set(component, Err(why.into()));
    }

    fn set(&self, component: &str, state: Result<(), String>) {
        if let Ok(mut c) = self.components.lock() {
            c.insert(component.to_string(), state);
        }
    }

    /// Ready when at least one component reported and none is failing; the text lists them all.
    pub fn report(&self) -> (bool, String) {
        let Ok(c) = self.components.lock() else { return (false, "health state unavailable\n".into()) };
        let mut ready = !c.is_empty();
        let mut text = String::new();
        for (name, state) in c.iter() {
            match state {
                Ok(()) => text.push_str(&format!("{name}: ready\n")),
                Err(why) => {
                    ready = false;
                    text.push_str(&format!("{name}: not ready: {why}\n"));
                }
            }
        }
        if c.is_empty() {
            text.push_str("starting\n");
        }
        (ready, text)
    }
}

/// Installs the process-wide Prometheus recorder (once; later calls return the same handle).
pub fn install_recorder() -> Result<PrometheusHandle, ServeError> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(m::APPLY_BATCH_DURATION.to_string()), &m::APPLY_BATCH_BUCKETS)
        .map_err(|e| ServeError::Recorder(e.to_string()))?
        .install_recorder()
        .map_err(|e| ServeError::Recorder(e.to_string()))?;
    m::describe();
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// Starts serving on `addr`; returns the bound address (useful with port 0). Runs until the
/// process exits.
pub async fn serve(addr: SocketAddr, handle: PrometheusHandle) -> Result<SocketAddr, ServeError> {
    let listener = TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr, source })?;
    let local = listener.local_addr().map_err(|source| ServeError::Bind { addr, source })?;
    info!(address = %local, "serving /metrics, /healthz and /readyz");
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            m::refresh_ages();
            upkeep.run_upkeep();
        }
    });
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    debug!(error = %e, "metrics listener accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let handle = handle.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let handle = handle.clone();
                    async move { Ok::<_, Infallible>(respond(req.method(), req.uri().path(), &handle)) }
                });
                if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await {
                    debug!(error = %e, "metrics connection ended with an error");
                }
            });
        }
    });
    Ok(local)
}

fn respond(method: &Method, path: &str, handle: &PrometheusHandle) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".into(), "text/plain; charset=utf-8");
    }
    match path {
        "/metrics" => {
            m::refresh_ages();
            text(StatusCode::OK, handle.render(), "text/plain; version=0.0.4; charset=utf-8")
        }
        "/healthz" => text(StatusCode::OK, "ok\n".into(), "text/plain; charset=utf-8"),
        "/readyz" => {
            let (ready, body) = Health::global().report();
            let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            text(status, body, "text/plain; charset=utf-8")
        }
        _ => text(StatusCode::NOT_FOUND, "not found; try /metrics, /healthz or /readyz\n".into(), "text/plain"),
    }
}

fn text(status: StatusCode, body: String, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_names_what_is_not_ready() {
        let h = Health::default();
        assert!(!h.report().0, "nothing reported yet is not ready");
        h.ready("stream");
        h.not_ready("target dr", "consumer failed: throttled");
        let (ready, text) = h.report();
        assert!(!ready);
        assert!(text.contains("target dr: not ready: consumer failed: throttled"), "{text}");
        h.ready("target dr");
        assert!(h.report().0);
    }
}
