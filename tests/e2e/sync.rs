//! `lakelog sync` end to end.

use std::process::Command;
use std::time::{Duration, Instant};

use lakelog::aws::client::Endpoint;
use lakelog::aws::s3::S3Store;
use lakelog::backend::changelog::{LogEntry, PutResult};
use lakelog::backend::state::SharedStore;
use lakelog::commands::sync::{sync, SyncOptions, SyncReport};
use lakelog::connect::Pipeline;
use lakelog::model::{CatalogObject, Cause, CauseKind, ChangeRecord, ObjectKind, Origin, Partition};
use lakelog::state::deadletter::DeadLetterStore;
use lakelog::stream::producer::Producer;

use crate::emulator::Emulator;
use crate::{config, config_yaml, seed, CatalogDump, Names, ACCOUNT, SOURCE_REGION, TARGET_REGION};

async fn run_sync(emu: &Emulator, name: &str, opts: SyncOptions) -> SyncReport {
    let pipeline = Pipeline::connect(config(emu, name, "", "")).await.expect("connect");
    sync(&pipeline, &opts).await.expect("sync")
}

fn assert_converged(source: &CatalogDump, target: &CatalogDump, name: &str) {
    let bucket = Names::new(name).data_bucket;
    source.rewritten(&format!("s3://{bucket}"), &format!("s3://{bucket}-dr")).assert_same(target);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_catalog_replicates_field_by_field_and_a_second_sync_writes_nothing() {
    let emu = Emulator::start();
    let name = "fidelity";
    let probe = lakelog::simulate::catalog::CatalogSpec {
        prefix: "x".into(),
        databases: 3,
        tables_per_database: 10,
        partitions_per_table: 1,
        bucket: "b".into(),
    };
    let per_table = 10_000usize.div_ceil(probe.total_partitions());
    let catalog = seed(&emu, name, 3, 10, per_table).await;
    assert!(catalog.databases.len() >= 3 && catalog.tables.len() >= 30 && catalog.partitions.len() >= 10_000);

    let report = run_sync(&emu, name, SyncOptions::default()).await;
    let dr = &report.targets["dr"];
    assert_eq!(report.source.partitions as usize, catalog.partitions.len());
    assert_eq!(dr.stats.kind(ObjectKind::Database).created as usize, catalog.databases.len());
    assert_eq!(dr.stats.kind(ObjectKind::Table).created as usize, catalog.tables.len());
    assert_eq!(dr.stats.kind(ObjectKind::Partition).created as usize, catalog.partitions.len());
    assert_eq!(dr.stats.total().dead_lettered, 0);
    // Partitions go in batches of up to 100, never one call per partition. How full the batches
    // are depends on how much had arrived when the consumer read (timing); the exact minimum is
    // measured by `benches/cold_copy.rs`, not asserted here.
    let batch_creates = dr.api_calls.get("BatchCreatePartition").copied().unwrap_or(0) as usize;
    eprintln!("{batch_creates} BatchCreatePartition calls for {} partitions", catalog.partitions.len());
    assert!(
        batch_creates >= catalog.partitions.len() / 100 && batch_creates * 10 <= catalog.partitions.len(),
        "{batch_creates} BatchCreatePartition calls"
    );
    assert_eq!(dr.api_calls.get("CreatePartition"), None);

    let prefix = Names::new(name).prefix;
    let source = CatalogDump::read(&emu, SOURCE_REGION, &prefix).await;
    let target = CatalogDump::read(&emu, TARGET_REGION, &prefix).await;
    assert_eq!(source.partitions.len(), catalog.partitions.len());
    assert_converged(&source, &target, name);

    let again = run_sync(&emu, name, SyncOptions::default()).await;
    let dr = &again.targets["dr"];
    assert_eq!(dr.write_calls, 0, "second sync wrote: {:?}", dr.api_calls);
    assert_eq!(
        dr.stats.total().unchanged as usize,
        catalog.databases.len() + catalog.tables.len() + catalog.partitions.len()
    );
    assert_eq!(dr.extra_total, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_writes_nothing_and_prune_removes_what_the_source_lacks() {
    let emu = Emulator::start();
    let name = "prune";
    let catalog = seed(&emu, name, 1, 4, 20).await;

    let plan = run_sync(&emu, name, SyncOptions { dry_run: true, ..Default::default() }).await;
    let dr = &plan.targets["dr"];
    assert_eq!(dr.write_calls, 0);
    assert_eq!(dr.stats.kind(ObjectKind::Partition).created as usize, catalog.partitions.len());
    // What the report lists is what was recorded instead of sent.
    assert_eq!(dr.planned_writes["BatchCreatePartition"].objects as usize, catalog.partitions.len());
    assert_eq!(dr.planned_writes["CreateTable"].calls as usize, catalog.tables.len());
    assert_eq!(plan.published_records, 0);
    let prefix = Names::new(name).prefix;
    assert!(CatalogDump::read(&emu, TARGET_REGION, &prefix).await.databases.is_empty());

    run_sync(&emu, name, SyncOptions::default()).await;

    // The source loses a partition; the target gains a table nobody replicated.
    let src = crate::glue(&emu, SOURCE_REGION).await;
    let gone = &catalog.partitions[0];
    src.delete_partition()
        .database_name(&gone.database_name)
        .table_name(&gone.table_name)
        .set_partition_values(Some(gone.values.clone()))
        .send()
        .await
        .expect("delete source partition");
    let dst = crate::glue(&emu, TARGET_REGION).await;
    let stray = aws_sdk_glue::types::TableInput::builder().name("stray").build().expect("input");
    dst.create_table().database_name(&catalog.databases[0].name).table_input(stray).send().await.expect("stray");

    // The partition lakelog replicated is gone from the source: the archive knows it, so sync
    // publishes its delete and the target loses it (as `run` does). The stray is only listed.
    let listed = run_sync(&emu, name, SyncOptions::default()).await;
    let dr = &listed.targets["dr"];
    assert_eq!(dr.extra_total, 1, "{:?}", dr.extra);
    assert!(dr.extra.iter().any(|e| e.contains("stray")));
    assert_eq!(dr.stats.kind(ObjectKind::Partition).deleted, 1, "the source's delete replicated");
    assert_eq!(dr.api_calls.get("BatchDeletePartition"), Some(&1), "{:?}", dr.api_calls);
    assert_eq!(dr.write_calls, 1, "without --prune only what the source deleted is deleted: {:?}", dr.api_calls);

    let pruned = run_sync(&emu, name, SyncOptions { prune: true, ..Default::default() }).await;
    assert_eq!(pruned.targets["dr"].pruned.total().deleted, 1, "the stray");
    let source = CatalogDump::read(&emu, SOURCE_REGION, &prefix).await;
    let target = CatalogDump::read(&emu, TARGET_REGION, &prefix).await;
    assert_converged(&source, &target, name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_the_target_rejects_are_dead_lettered_and_the_rest_complete() {
    let emu = Emulator::start();
    let name = "dlq";
    let catalog = seed(&emu, name, 1, 3, 10).await;
    // The orphan's parent never comes: wait briefly before dead-lettering it.
    let cfg = config(&emu, name, "", "  dependency_wait_seconds: 2");
    let pipeline = Pipeline::connect(cfg.clone()).await.expect("connect");
    lakelog::stream::admin::ensure_stream(pipeline.log.as_ref(), 2, true).await.expect("stream");

    // A partition of a table that exists nowhere (e.g. captured just before its table was dropped).
    let origin = Origin { account: ACCOUNT.into(), region: SOURCE_REGION.into(), catalog_id: ACCOUNT.into() };
    let orphan = Partition {
        database_name: catalog.databases[0].name.clone(),
        table_name: "dropped_table".into(),
        values: vec!["2026-01-01".into()],
        ..Default::default()
    };
    let rec = ChangeRecord::upsert(
        CatalogObject::Partition(orphan),
        &origin,
        Cause { kind: CauseKind::Event, event_id: None },
        1,
    );
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(rec).await.expect("send");
    drop(tx);
    Producer::new(pipeline.log.clone(), 1_000_000).publish_all(rx).await.expect("publish");
    // And a frame that is not lakelog's at all.
    let garbage = LogEntry::new("garbage", b"{\"not\": \"a change record\"}".to_vec());
    let put = pipeline.log.put(&[garbage]).await.expect("put garbage");
    assert!(matches!(put[..], [PutResult::Stored { .. }]), "{put:?}");

    let report = sync(&pipeline, &SyncOptions::default()).await.expect("sync completes despite bad records");
    let dr = &report.targets["dr"];
    assert_eq!(dr.stats.kind(ObjectKind::Partition).dead_lettered, 1);
    assert_eq!(dr.stats.kind(ObjectKind::Partition).created as usize, catalog.partitions.len());

    let letters = DeadLetterStore::new(pipeline.state.clone()).list("dr").await.expect("list");
    assert_eq!(letters.len(), 2, "{letters:?}");
    let orphan = letters.iter().find(|(_, d)| d.key.contains("dropped_table")).expect("orphan parked");
    assert!(orphan.1.reason.contains("parent does not exist"), "{}", orphan.1.reason);
    assert!(orphan.1.record.is_some(), "the record itself is kept for replay");
    let garbage = letters.iter().find(|(_, d)| d.class == "undecodable").expect("garbage parked");
    assert!(garbage.1.reason.contains("not a lakelog change-log frame"), "{}", garbage.1.reason);

    let prefix = Names::new(name).prefix;
    let source = CatalogDump::read(&emu, SOURCE_REGION, &prefix).await;
    let target = CatalogDump::read(&emu, TARGET_REGION, &prefix).await;
    assert_converged(&source, &target, name);
}

fn write_config(dir: &tempfile::TempDir, yaml: &str) -> std::path::PathBuf {
    let path = dir.path().join("pipeline.yaml");
    std::fs::write(&path, yaml).expect("write config");
    path
}

fn lakelog() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lakelog"));
    c.env("LAKELOG_LOG", "warn");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_apply_then_rerun_resumes_from_the_checkpoint_and_converges() {
    let emu = Emulator::start();
    let name = "killed";
    let catalog = seed(&emu, name, 1, 5, 800).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // Small frames and batches: many checkpoints, so the kill lands between two of them.
    let path = write_config(&dir, &config_yaml(&emu, name, "  frame_bytes: 4096", "  batch_records: 2"));

    let mut child = lakelog().args(["sync", "--output", "json", "-c"]).arg(&path).spawn().expect("spawn");
    let state: SharedStore = std::sync::Arc::new(S3Store::new(
        Endpoint::new(SOURCE_REGION, Some(&emu.moto_url)).s3().await,
        &format!("lakelog-{name}-state"),
        "lakelog/",
    ));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if state.list("checkpoints/", None).await.map(|l| !l.keys.is_empty()).unwrap_or(false) {
            break;
        }
        assert!(Instant::now() < deadline, "no checkpoint appeared");
        assert!(child.try_wait().expect("poll").is_none(), "sync finished before it could be killed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");

    let store = lakelog::state::checkpoint::StoredCheckpoints::new(state.clone(), &format!("lakelog-{name}"));
    let kinesis = Endpoint::new(SOURCE_REGION, Some(&emu.kinesis_url)).kinesis().await;
    let log = lakelog::aws::kinesis::KinesisLog::new(kinesis, &format!("lakelog-{name}"));
    let shards = lakelog::stream::admin::list_shards(&log).await.expect("shards");
    let mut saved = Vec::new();
    for s in &shards {
        use lakelog::state::checkpoint::CheckpointStore;
        if let Some(cp) = store.load("dr", &s.shard_id).await.expect("load") {
            saved.push((s.shard_id.clone(), cp.sequence.to_string()));
        }
    }
    assert!(!saved.is_empty());
    let prefix = Names::new(name).prefix;
    let partial = CatalogDump::read(&emu, TARGET_REGION, &prefix).await;
    assert!(partial.partitions.len() < catalog.partitions.len(), "the kill landed after apply finished");

    let out = lakelog().args(["sync", "--output", "json", "-c"]).arg(&path).output().expect("rerun");
    assert!(out.status.success(), "rerun failed: {}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    for (shard, seq) in &saved {
        let resumed = report["targets"]["dr"]["shards"]
            .as_array()
            .expect("shards")
            .iter()
            .find(|s| s["shard"] == shard.as_str())
            .map(|s| s["resumed_after"].clone());
        assert_eq!(
            resumed,
            Some(serde_json::Value::String(seq.clone())),
            "shard {shard} did not resume from its checkpoint"
        );
    }
    let source = CatalogDump::read(&emu, SOURCE_REGION, &prefix).await;
    let target = CatalogDump::read(&emu, TARGET_REGION, &prefix).await;
    assert_converged(&source, &target, name);
}

#[test]
fn a_malformed_config_lists_all_its_problems() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(
        &dir,
        r#"
source: { region: us-east-1, colour: blue }
stream: { name: "no spaces allowed", shards: 0 }
state: { bucket: "s3://Not_A_Bucket" }
targets:
  - name: dr
    region: us-west-2
    location_rewrite: [ { from: "bucket-without-scheme", to: "s3://dr-bucket" } ]
"#,
    );
    let out = lakelog().args(["validate", "-c"]).arg(&path).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for path in ["source.colour", "stream.name", "stream.shards", "state.bucket", "targets[0].location_rewrite[0].from"]
    {
        assert!(err.contains(path), "{path} missing from:\n{err}");
    }
    assert!(err.contains("5 problem(s)"), "{err}");
}

#[test]
fn an_unreachable_endpoint_fails_with_a_clear_error_and_no_panic() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let dead = format!("http://127.0.0.1:{port}");
    let yaml = format!(
        "source: {{ region: us-east-1, catalog_id: \"123456789012\", endpoint: \"{dead}\" }}\n\
         stream: {{ name: s, endpoint: \"{dead}\" }}\n\
         state: {{ bucket: lakelog-dead-state, endpoint: \"{dead}\" }}\n\
         targets: [ {{ name: dr, region: us-west-2, catalog_id: \"210987654321\", endpoint: \"{dead}\" }} ]\n"
    );
    let path = write_config(&dir, &yaml);
    crate::emulator::set_test_credentials();
    let out = lakelog().args(["sync", "-c"]).arg(&path).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("could not reach"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Peak memory of `lakelog sync` (the binary, alone in its process) for a catalog.
async fn sync_peak_rss(emu: &Emulator, name: &str, tables: usize, partitions: usize) -> u64 {
    seed(emu, name, 1, tables, partitions).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(&dir, &config_yaml(emu, name, "", ""));
    let out = lakelog().args(["sync", "--output", "json", "-c"]).arg(&path).output().expect("sync");
    assert!(out.status.success(), "sync failed: {}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert!(report["published_records"].as_u64().unwrap_or(0) >= partitions as u64, "{report}");
    report["peak_rss_bytes"].as_u64().expect("peak_rss_bytes on Linux")
}

/// Memory does not grow with the catalog: 5× the partitions costs no more than a constant.
/// Before, sync held every frame of a GetRecords batch (up to 500 × 1 MiB) and its decoded
/// records, and listed each target table's partitions whole: about 18 KB a partition (over 700 MB
/// for 40,000 more). The pipeline's bounded buffers (pages of 1,000 partitions in flight per
/// table, two tables at a time; a raw archive segment per shard) are full at 10,000 partitions,
/// so the small catalog is that large: at 2,000 they were not yet, and filling them read as
/// growth (83 MB on CI). The bound is 2 KB a partition, far under the bug and far over the
/// noise of a flat pipeline. Sizes are measured in bytes, not time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_memory_stays_flat_as_the_catalog_grows() {
    let emu = Emulator::start();
    let small = sync_peak_rss(&emu, "memsmall", 2, 5_000).await;
    let large = sync_peak_rss(&emu, "memlarge", 2, 25_000).await;
    let growth = large.saturating_sub(small);
    eprintln!("sync peak RSS: {} MB for 10,000 partitions, {} MB for 50,000", small >> 20, large >> 20);
    assert!(
        growth < 80 * 1024 * 1024,
        "peak RSS grew by {} MB from 10,000 to 50,000 partitions ({} MB → {} MB)",
        growth >> 20,
        small >> 20,
        large >> 20
    );
}
