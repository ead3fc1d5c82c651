//! A child whose parent sits behind on another shard waits for it, with reads only; a child whose
//! parent never comes is dead-lettered once every shard has been read past its capture time.
//!
//! Records are written straight to the stream with explicit hash keys, so the test, not the
//! hash of a name, decides which of the two shards each one lands on. The "backlog" is a run of
//! unrelated database records before the parent on the other shard, read a few per batch.

use std::time::Duration;

use lakelog::backend::changelog::{LogEntry, PutResult};
use lakelog::commands::sync::{sync, SyncOptions, SyncReport};
use lakelog::connect::Pipeline;
use lakelog::model::codec::encode;
use lakelog::model::{now_millis, CatalogObject, Cause, CauseKind, ChangeRecord, Database, ObjectKind, Origin, Table};
use lakelog::state::deadletter::DeadLetterStore;

use crate::emulator::Emulator;
use crate::{config, Names, ACCOUNT, SOURCE_REGION};

/// Hash keys at the two ends of the key space: the first and the second of two shards.
pub(crate) const SHARD_A: &str = "0";
pub(crate) const SHARD_B: &str = "340282366920938463463374607431768211455";

fn origin() -> Origin {
    Origin { account: ACCOUNT.into(), region: SOURCE_REGION.into(), catalog_id: ACCOUNT.into() }
}

pub(crate) fn record(state: CatalogObject, captured_at: i64) -> ChangeRecord {
    ChangeRecord::upsert(state, &origin(), Cause { kind: CauseKind::Snapshot, event_id: None }, captured_at)
}

pub(crate) fn database(name: &str) -> CatalogObject {
    CatalogObject::Database(Database { name: name.into(), ..Default::default() })
}

pub(crate) fn table(db: &str, name: &str) -> CatalogObject {
    CatalogObject::Table(Table { database_name: db.into(), name: name.into(), ..Default::default() })
}

/// Puts each record as its own frame on the shard owning `hash_key`, in order.
pub(crate) async fn put(pipeline: &Pipeline, hash_key: &str, records: &[ChangeRecord]) {
    for r in records {
        let entry = LogEntry {
            partition_key: r.key.stream_partition_key(),
            explicit_hash_key: Some(hash_key.to_string()),
            data: encode(std::slice::from_ref(r)).expect("encode"),
        };
        let put = pipeline.log.put(&[entry]).await.expect("put record");
        assert!(matches!(put[..], [PutResult::Stored { .. }]), "{put:?}");
    }
}

/// Connects a pipeline on a two-shard stream; `apply_extra` goes into the apply section.
async fn pipeline(emu: &Emulator, name: &str, apply_extra: &str) -> Pipeline {
    let cfg = config(emu, name, "", apply_extra);
    let pipeline = Pipeline::connect(cfg.clone()).await.expect("connect");
    lakelog::stream::admin::ensure_stream(pipeline.log.as_ref(), 2, true).await.expect("stream");
    let shards = lakelog::stream::admin::list_shards(pipeline.log.as_ref()).await.expect("shards");
    assert_eq!(shards.len(), 2);
    pipeline
}

/// Runs a sync (the source has nothing under the prefix: everything applied comes from the
/// records put on the stream), bounded so a child that waits forever fails the test.
async fn sync_bounded(pipeline: &Pipeline) -> SyncReport {
    tokio::time::timeout(Duration::from_secs(180), sync(pipeline, &SyncOptions::default()))
        .await
        .expect("sync finished")
        .expect("sync")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_wait_for_their_database_behind_on_the_other_shard_and_are_created_with_one_write_each() {
    let emu = Emulator::start();
    let name = "depwait";
    let prefix = Names::new(name).prefix;
    // A fixed wait of 2 s is far shorter than the backlog takes to read: under that rule the
    // tables would be dead-lettered, and their creates re-sent while they wait.
    let pipeline = pipeline(&emu, name, "  dependency_wait_seconds: 2\n  batch_records: 5").await;
    let db = format!("{prefix}_sales");
    let t0 = now_millis();
    // Captured in catalog order (the database first) but the database reaches the target last.
    let tables: Vec<ChangeRecord> = (0..8).map(|i| record(table(&db, &format!("t{i}")), t0 + 10 + i)).collect();
    put(&pipeline, SHARD_A, &tables).await;
    let mut backlog: Vec<ChangeRecord> =
        (0..150).map(|i| record(database(&format!("{prefix}_filler_{i:03}")), t0 - 1_000 + i)).collect();
    backlog.push(record(database(&db), t0));
    put(&pipeline, SHARD_B, &backlog).await;

    let report = sync_bounded(&pipeline).await;
    let dr = &report.targets["dr"];
    assert_eq!(dr.stats.total().dead_lettered, 0, "{:?}", dr.stats);
    assert_eq!(dr.stats.kind(ObjectKind::Table).created, 8);
    assert_eq!(dr.api_calls.get("CreateTable"), Some(&8), "one CreateTable per table: {:?}", dr.api_calls);
    let letters = DeadLetterStore::new(pipeline.state.clone()).list("dr").await.expect("list");
    assert!(letters.is_empty(), "{letters:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_whose_database_never_comes_is_dead_lettered_once_every_shard_is_read_past_it() {
    let emu = Emulator::start();
    let name = "depnever";
    let prefix = Names::new(name).prefix;
    // The wait bound is long: the dead letter can only come from the shards' progress.
    let pipeline = pipeline(&emu, name, "  dependency_wait_seconds: 600\n  batch_records: 5").await;
    let t0 = now_millis();
    put(&pipeline, SHARD_A, &[record(table(&format!("{prefix}_gone"), "orphan"), t0)]).await;
    // Later captures on the other shard: it has been read past the orphan once they are read.
    let later: Vec<ChangeRecord> =
        (0..3).map(|i| record(database(&format!("{prefix}_later_{i}")), t0 + 1 + i)).collect();
    put(&pipeline, SHARD_B, &later).await;

    let report = sync_bounded(&pipeline).await;
    let dr = &report.targets["dr"];
    assert_eq!(dr.stats.kind(ObjectKind::Table).dead_lettered, 1, "{:?}", dr.stats);
    assert_eq!(dr.stats.kind(ObjectKind::Database).created, 3);
    assert_eq!(dr.api_calls.get("CreateTable"), None, "no write for a table whose parent is missing");
    let letters = DeadLetterStore::new(pipeline.state.clone()).list("dr").await.expect("list");
    assert_eq!(letters.len(), 1, "{letters:?}");
    let reason = &letters[0].1.reason;
    assert!(
        reason.contains("parent does not exist") && reason.contains("(database ") && reason.contains("read past"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_does_not_wait_for_a_shard_that_has_drained_for_good() {
    let emu = Emulator::start();
    let name = "depdrained";
    let prefix = Names::new(name).prefix;
    // The other shard stays empty: it is never read past the orphan's capture time, but once the
    // sync has drained it, nothing more can arrive there in this run.
    let pipeline = pipeline(&emu, name, "  dependency_wait_seconds: 600").await;
    put(&pipeline, SHARD_A, &[record(table(&format!("{prefix}_gone"), "orphan"), now_millis())]).await;

    let report = sync_bounded(&pipeline).await;
    assert_eq!(report.targets["dr"].stats.kind(ObjectKind::Table).dead_lettered, 1);
    let letters = DeadLetterStore::new(pipeline.state.clone()).list("dr").await.expect("list");
    assert_eq!(letters.len(), 1, "{letters:?}");
}
