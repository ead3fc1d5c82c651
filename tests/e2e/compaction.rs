//! SIGKILL during compaction, at each of its stages, through the binary: `lakelog compact` talks
//! to the state bucket through a proxy that holds one request of the stage unanswered, and the
//! process is killed while it waits for it. A rerun of `lakelog compact` then finishes the job:
//! nothing is lost (a restore equals the source), nothing is counted twice (the snapshot holds
//! each live object once, the tail is folded once), and nothing is left behind (the archive holds
//! exactly what its manifest names).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use lakelog::archive::manifest::{Manifest, ManifestStore};
use lakelog::archive::writer::root;
use lakelog::backend::state::{each_key, StateStore};
use lakelog::commands::restore::rfc3339;
use lakelog::config::PipelineConfig;
use lakelog::connect::Pipeline;
use lakelog::model::now_millis;

use crate::archive::{lakelog, write_config, FRESH_REGION};
use crate::emulator::Emulator;
use crate::faults::forward_to;
use crate::{config_yaml, seed, CatalogDump, Names, SOURCE_REGION};

/// Where in a compaction the process is killed: while it writes ...
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// ... the first part of the new snapshot;
    Part,
    /// ... the list of the segments it folds (every part written);
    Folded,
    /// ... the manifest that commits it (everything else written);
    Manifest,
    /// ... its first delete of what retention removed (the manifest committed).
    Delete,
}

impl Stage {
    fn holds(self, method: &hyper::Method, path: &str) -> bool {
        let put = method == hyper::Method::PUT;
        match self {
            Stage::Part => put && path.contains("/snapshots/") && path.contains("/part-"),
            Stage::Folded => put && path.ends_with("/folded.json"),
            Stage::Manifest => put && path.ends_with("/manifest.json"),
            Stage::Delete => method == hyper::Method::DELETE,
        }
    }
}

/// A proxy to the emulator that forwards every request but the first one its stage holds: that
/// one it never answers.
struct HoldProxy {
    url: String,
    held: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HoldProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HoldProxy {
    async fn start(upstream: &str, stage: Stage) -> HoldProxy {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        let held = Arc::new(AtomicU64::new(0));
        let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let (upstream, h) = (upstream.trim_end_matches('/').to_string(), held.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (client, upstream, held) = (client.clone(), upstream.clone(), h.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (client, upstream, held) = (client.clone(), upstream.clone(), held.clone());
                        async move {
                            if stage.holds(req.method(), req.uri().path()) && held.fetch_add(1, Ordering::SeqCst) == 0 {
                                std::future::pending::<()>().await;
                            }
                            let answer = forward_to(&client, &upstream, req).await;
                            Ok::<Response<Full<Bytes>>, std::convert::Infallible>(answer.unwrap_or_else(|e| {
                                let mut r = Response::new(Full::new(Bytes::from(e)));
                                *r.status_mut() = hyper::StatusCode::BAD_GATEWAY;
                                r
                            }))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        HoldProxy { url, held, task }
    }
}

/// Every key the archive holds.
async fn archive_keys(store: &dyn StateStore, root: &str) -> Vec<String> {
    let mut keys = Vec::new();
    each_key(store, root, |page| keys.extend(page)).await.expect("list the archive");
    keys
}

/// What the manifest names: itself, the tail, and each snapshot's parts and folded list, with
/// the segments folded into snapshots after the oldest (the oldest's own are gone once it is the
/// earliest restorable point).
async fn named(store: &dyn StateStore, root: &str, m: &Manifest) -> Vec<String> {
    let mut keys = vec![format!("{root}manifest.json")];
    keys.extend(m.tail.iter().map(|s| s.key.clone()));
    for (i, snap) in m.snapshots.iter().enumerate() {
        keys.extend(snap.parts.iter().map(|p| p.key.clone()));
        keys.push(snap.folded.clone());
        if i > 0 || m.from_genesis {
            let bytes = store.get(&snap.folded).await.expect("get").expect("a named folded list").bytes;
            let folded: Vec<lakelog::archive::manifest::SegmentEntry> = serde_json::from_slice(&bytes).expect("json");
            keys.extend(folded.into_iter().map(|s| s.key));
        }
    }
    keys.sort();
    keys
}

fn compact_process(config: &Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_lakelog"))
        .args(["compact", "-c"])
        .arg(config)
        .env("LAKELOG_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn lakelog compact")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_each_stage_of_compaction_loses_nothing_counts_nothing_twice_and_leaves_nothing() {
    let emu = Emulator::start();
    let name = "compact-kill";
    let n = Names::new(name);
    let generated = seed(&emu, name, 1, 3, 40).await;
    let fresh = format!("  - name: fresh\n    region: {FRESH_REGION}\n    endpoint: {}\napply:\n", emu.moto_url);
    // Everything older than a millisecond is folded, and retention removes all but the newest
    // snapshot: every compaction writes parts, a folded list and the manifest, then deletes.
    let yaml = config_yaml(&emu, name, "", "").replacen("apply:\n", &fresh, 1)
        + "archive:\n  head: 1ms\n  retention: 1ms\n  tombstone_retention: 1ms\n  compact_tail_mib: 0\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(&dir, &yaml);
    let pipeline = Pipeline::connect(PipelineConfig::from_yaml(&yaml, name).expect("config")).await.expect("connect");
    let (store, root) = (&*pipeline.state, root(&pipeline.config.stream.name));
    let manifests = ManifestStore::new(&root);
    let src = crate::catalog(&emu, SOURCE_REGION).await;

    for (round, stage) in [Stage::Part, Stage::Folded, Stage::Manifest, Stage::Delete].into_iter().enumerate() {
        // A change to every table, replicated (and archived) by sync.
        for t in &generated.tables {
            let mut table = src.get_table(&t.database_name, &t.name).await.expect("get").expect("table");
            table.description = Some(format!("round {round}"));
            src.update_table(&table).await.expect("update");
        }
        lakelog(&config, &["sync", "--target", "dr"]);
        let (before, _) = manifests.load(store).await.expect("manifest");

        let proxy = HoldProxy::start(&emu.moto_url, stage).await;
        let state_at = format!("  bucket: lakelog-{name}-state\n  endpoint: {}", emu.moto_url);
        let held_yaml =
            yaml.replacen(&state_at, &format!("  bucket: lakelog-{name}-state\n  endpoint: {}", proxy.url), 1);
        assert_ne!(held_yaml, yaml, "the state bucket goes through the proxy");
        let held_config = dir.path().join("held.yaml");
        std::fs::write(&held_config, held_yaml).expect("write");
        let mut killed = compact_process(&held_config);
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while proxy.held.load(Ordering::SeqCst) == 0 {
            assert!(killed.try_wait().expect("poll").is_none(), "{stage:?}: compact ended before the held request");
            assert!(std::time::Instant::now() < deadline, "{stage:?}: compaction never reached its stage");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        killed.kill().expect("SIGKILL");
        killed.wait().expect("reap");
        drop(proxy);

        let (after_kill, _) = manifests.load(store).await.expect("manifest");
        let committed = stage == Stage::Delete;
        assert_eq!(
            after_kill.snapshots != before.snapshots,
            committed,
            "{stage:?}: the manifest changed only if the kill came after its write"
        );
        if !committed {
            assert_eq!(after_kill.tail, before.tail, "{stage:?}: an uncommitted compaction folded nothing");
        }

        // The rerun finishes the job.
        lakelog(&config, &["compact"]);
        let (m, _) = manifests.load(store).await.expect("manifest");
        assert!(m.tail.is_empty(), "{stage:?}: the tail is folded");
        assert_eq!(m.snapshots.len(), 1, "{stage:?}: retention keeps the newest snapshot only");
        let source = CatalogDump::read(&emu, SOURCE_REGION, &n.prefix).await;
        let live = (source.databases.len() + source.tables.len() + source.partitions.len()) as u64;
        assert_eq!((m.snapshots[0].keys, m.snapshots[0].tombstones), (live, 0), "{stage:?}: each object once");
        assert_eq!(archive_keys(store, &root).await, named(store, &root, &m).await, "{stage:?}: no object left behind");

        lakelog(&config, &["restore", "--at", &rfc3339(now_millis()), "--target", "fresh"]);
        let restored = CatalogDump::read(&emu, FRESH_REGION, &n.prefix).await;
        source.assert_same(&restored);
        assert_eq!(source, restored, "{stage:?}: the restore equals the source");
    }
}
