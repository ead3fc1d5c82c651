//! A fault-injecting HTTP proxy in front of moto, owned by the tests, and `sync` through it.
//!
//! The proxy answers a configurable fraction of Glue requests (`X-Amz-Target: AWSGlue.*`) with a
//! fault instead of forwarding them: a `ThrottlingException` (HTTP 400, as Glue sends it), a
//! server error (503, or 500 `InternalServiceException`), or a connection closed without an
//! answer (what a reset looks like to the client). Other requests (STS) always pass, so the
//! faults land on the catalog calls the retry policy is about. Which requests fail is drawn from
//! a seeded generator: the same seed gives the same sequence of decisions.
//!
//! It is put only in front of the target (its own `endpoint:` in the config); the source, the
//! stream and the state bucket talk to the emulators directly.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use lakelog::commands::sync::{sync, SyncOptions};
use lakelog::connect::Pipeline;
use lakelog::model::ObjectKind;
use lakelog::state::deadletter::DeadLetterStore;

use crate::emulator::Emulator;
use crate::{config_yaml, seed, CatalogDump, Names, SOURCE_REGION, TARGET_REGION};

/// What the proxy answers instead of forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Throttle,
    ServerError,
    Reset,
}

struct Shared {
    upstream: String,
    fault: Fault,
    fraction: f64,
    rng: Mutex<fastrand::Rng>,
    client: Client<HttpConnector, Full<Bytes>>,
    injected: AtomicU64,
    /// Glue requests only (STS always passes).
    forwarded: AtomicU64,
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The closed connection of [`Fault::Reset`]: hyper drops a connection whose service fails.
#[derive(Debug)]
struct Reset;

impl std::fmt::Display for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("injected connection reset")
    }
}

impl std::error::Error for Reset {}

fn json(status: u16, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/x-amz-json-1.1"));
    r
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`http://host:port`) that fails `fraction` of Glue requests
    /// with `fault`, deciding with a generator seeded by `seed`.
    pub async fn start(upstream: &str, fault: Fault, fraction: f64, seed: u64) -> FaultProxy {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            fault,
            fraction,
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            client: Client::builder(TokioExecutor::new()).build_http(),
            injected: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(s.clone(), req));
                    // A reset ends the connection with an error; that is the point.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FaultProxy { url, shared, task }
    }

    /// Requests answered with a fault so far.
    pub fn injected(&self) -> u64 {
        self.shared.injected.load(Ordering::SeqCst)
    }

    /// Glue requests forwarded to the emulator so far.
    pub fn forwarded(&self) -> u64 {
        self.shared.forwarded.load(Ordering::SeqCst)
    }
}

async fn handle(s: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Reset> {
    let glue =
        req.headers().get("x-amz-target").and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("AWSGlue."));
    let roll = s.rng.lock().map(|mut r| r.f64()).unwrap_or(0.0);
    if glue && roll < s.fraction {
        s.injected.fetch_add(1, Ordering::SeqCst);
        return match s.fault {
            Fault::Throttle => Ok(json(400, r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#)),
            // Half 503 (what a load balancer sends), half Glue's own 500.
            Fault::ServerError if roll < s.fraction / 2.0 => Ok(json(503, r#"{"message":"Service Unavailable"}"#)),
            Fault::ServerError => {
                Ok(json(500, r#"{"__type":"InternalServiceException","message":"Internal service error"}"#))
            }
            Fault::Reset => Err(Reset),
        };
    }
    if glue {
        s.forwarded.fetch_add(1, Ordering::SeqCst);
    }
    Ok(forward(&s, req).await.unwrap_or_else(|e| json(502, &format!(r#"{{"message":"proxy: {e}"}}"#))))
}

async fn forward(s: &Shared, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, String> {
    forward_to(&s.client, &s.upstream, req).await
}

/// Sends `req` on to `upstream` and returns its answer, bodies in full.
pub(crate) async fn forward_to(
    client: &Client<HttpConnector, Full<Bytes>>,
    upstream: &str,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, String> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut out = Request::builder().method(parts.method).uri(format!("{upstream}{path}"));
    for (k, v) in &parts.headers {
        out = out.header(k, v);
    }
    let out = out.body(Full::new(body)).map_err(|e| e.to_string())?;
    let resp = client.request(out).await.map_err(|e| e.to_string())?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Response::from_parts(parts, Full::new(body)))
}

/// The test config with the target's endpoint pointed at `proxy`.
fn config_through(emu: &Emulator, name: &str, proxy: &str, apply_extra: &str) -> String {
    let yaml = config_yaml(emu, name, "", apply_extra);
    let direct = format!("    endpoint: {}\n    location_rewrite", emu.moto_url);
    assert!(yaml.contains(&direct), "the target section changed shape: {yaml}");
    yaml.replace(&direct, &format!("    endpoint: {proxy}\n    location_rewrite"))
}

/// `sync` through `fault` at 20% and at 50% of target Glue calls converges with no dead letters.
///
/// At 50% a call fails k times in a row with probability 2^-k; 20 attempts make a run that fails
/// by chance (about one in a million per call) practically impossible, while the faults still
/// hit on every run.
async fn converges_through(fault: Fault) {
    let emu = Emulator::start();
    for (i, fraction) in [0.2, 0.5].into_iter().enumerate() {
        let name = format!("faults-{}-{}", format!("{fault:?}").to_lowercase(), i);
        let catalog = seed(&emu, &name, 2, 3, 20).await;
        let proxy = FaultProxy::start(&emu.moto_url, fault, fraction, 7 + i as u64).await;
        let yaml = config_through(&emu, &name, &proxy.url, "  max_attempts: 20");
        let cfg = lakelog::config::PipelineConfig::from_yaml(&yaml, &name).expect("config");
        let pipeline = Pipeline::connect(cfg).await.expect("connect");
        let report = sync(&pipeline, &SyncOptions::default())
            .await
            .unwrap_or_else(|e| panic!("sync through {fraction} {fault:?} failed: {e}"));
        assert!(proxy.injected() > 0, "no fault was injected: the test would prove nothing");
        let dr = &report.targets["dr"];
        assert_eq!(dr.stats.total().dead_lettered, 0, "{fault:?} at {fraction}: {:?}", dr.stats);
        assert_eq!(dr.stats.kind(ObjectKind::Partition).created as usize, catalog.partitions.len());
        assert_eq!(dr.extra_total, 0, "{:?}", dr.extra);
        let letters = DeadLetterStore::new(pipeline.state.clone()).list("dr").await.expect("list dead letters");
        assert!(letters.is_empty(), "a transient fault dead-lettered: {letters:?}");

        let prefix = Names::new(&name).prefix;
        let bucket = Names::new(&name).data_bucket;
        let source = CatalogDump::read(&emu, SOURCE_REGION, &prefix).await;
        let target = CatalogDump::read(&emu, TARGET_REGION, &prefix).await;
        source.rewritten(&format!("s3://{bucket}"), &format!("s3://{bucket}-dr")).assert_same(&target);
        eprintln!("{fault:?} at {fraction}: {} injected, {} forwarded", proxy.injected(), proxy.forwarded());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_converges_with_20_and_50_percent_of_target_calls_throttled() {
    converges_through(Fault::Throttle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_converges_with_20_and_50_percent_of_target_calls_answered_5xx() {
    converges_through(Fault::ServerError).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_converges_with_20_and_50_percent_of_target_connections_reset() {
    converges_through(Fault::Reset).await;
}

/// Every target call throttled: `lakelog sync` stops after `apply.max_attempts` attempts with
/// exit 1 and a message naming the target, parks nothing, and does not panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_gives_up_cleanly_when_every_target_call_is_throttled() {
    let emu = Emulator::start();
    let name = "faults-all";
    seed(&emu, name, 1, 2, 5).await;
    let proxy = FaultProxy::start(&emu.moto_url, Fault::Throttle, 1.0, 1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pipeline.yaml");
    std::fs::write(&path, config_through(&emu, name, &proxy.url, "  max_attempts: 6")).expect("write config");

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_lakelog"))
        .env("LAKELOG_LOG", "warn")
        .args(["sync", "-c"])
        .arg(&path)
        .output()
        .await
        .expect("run lakelog");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("target dr") && err.contains("after 6 attempts"), "{err}");
    assert!(err.contains("ThrottlingException"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(proxy.forwarded(), 0, "every Glue call was throttled");
    assert!(proxy.injected() >= 6, "{} attempts", proxy.injected());

    let cfg = lakelog::config::PipelineConfig::from_yaml(&config_yaml(&emu, name, "", ""), name).expect("config");
    let pipeline = Pipeline::connect(cfg).await.expect("connect");
    let letters = DeadLetterStore::new(pipeline.state.clone()).list("dr").await.expect("list dead letters");
    assert!(letters.is_empty(), "throttling dead-lettered: {letters:?}");
}
