//! The applier's failure policy, on the in-memory catalog and state store, wrapped exactly as in
//! production (the applier puts the target behind the target's retry policy itself).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::applier::Applier;
use super::stats::ApplyStats;
use super::transform::Transform;
use super::ApplyError;
use crate::backend::memory::catalog::MemoryCatalog;
use crate::backend::memory::state::MemoryStore;
use crate::backend::retry::RECOVER_AFTER;
use crate::backend::ErrorClass;
use crate::config::{ApplyConfig, TargetConfig};
use crate::model::{
    now_millis, CatalogObject, Cause, CauseKind, ChangeRecord, Database, ObjectKey, ObjectKind, Origin, Partition,
    Table,
};
use crate::state::deadletter::DeadLetterStore;

const SOURCE: &str = "111122223333";
const TARGET: &str = "444455556666";

struct Setup {
    applier: Applier,
    target: Arc<MemoryCatalog>,
    dead_letters: DeadLetterStore,
}

fn setup(target: MemoryCatalog, cfg: ApplyConfig, dry_run: bool) -> Setup {
    let target = Arc::new(target);
    let config: TargetConfig = serde_yaml_ng::from_str("{ name: dr, region: us-west-2 }").expect("target config");
    let transform = Transform::new(&config, SOURCE, "us-east-1", TARGET).expect("transform");
    let dead_letters = DeadLetterStore::new(Arc::new(MemoryStore::new()));
    let applier = Applier::new("dr", target.clone(), transform, dead_letters.clone(), cfg, dry_run);
    Setup { applier, target, dead_letters }
}

fn cfg(concurrency: usize, max_attempts: u32) -> ApplyConfig {
    ApplyConfig { concurrency, max_attempts, dependency_wait_seconds: 1, ..Default::default() }
}

/// A target that has database `d`.
fn with_database() -> MemoryCatalog {
    let c = MemoryCatalog::new(TARGET);
    c.put(CatalogObject::Database(database("d")));
    c
}

fn database(name: &str) -> Database {
    Database { name: name.into(), ..Default::default() }
}

fn table(name: &str, location: &str) -> Table {
    let sd = crate::model::StorageDescriptor { location: Some(location.into()), ..Default::default() };
    Table { database_name: "d".into(), name: name.into(), storage_descriptor: Some(sd), ..Default::default() }
}

fn partition(table: &str, value: String) -> Partition {
    Partition { database_name: "d".into(), table_name: table.into(), values: vec![value], ..Default::default() }
}

fn origin() -> Origin {
    Origin { account: SOURCE.into(), region: "us-east-1".into(), catalog_id: SOURCE.into() }
}

fn upsert(object: CatalogObject) -> ChangeRecord {
    ChangeRecord::upsert(object, &origin(), Cause { kind: CauseKind::Snapshot, event_id: None }, now_millis())
}

fn delete(key: ObjectKey) -> ChangeRecord {
    ChangeRecord::delete(key, &origin(), Cause { kind: CauseKind::Snapshot, event_id: None }, now_millis())
}

fn tables(names: impl IntoIterator<Item = String>) -> Vec<ChangeRecord> {
    names.into_iter().map(|n| upsert(CatalogObject::Table(table(&n, "s3://lake/t/")))).collect()
}

fn limit(applier: &Applier) -> usize {
    applier.retry().limiter().expect("a target's policy has a limiter").limit()
}

#[tokio::test(start_paused = true)]
async fn throttling_halves_the_concurrency_then_successes_restore_it_and_everything_is_applied() {
    let s = setup(with_database(), cfg(8, 10), false);
    s.target.throttle_next("CreateTable", 3);
    let stats = s.applier.apply(tables((0..8).map(|i| format!("t{i}")))).await.expect("applied despite throttling");
    assert_eq!(stats.kind(ObjectKind::Table).created, 8);
    assert!(limit(&s.applier) <= 4, "halved at least once: {}", limit(&s.applier));
    assert_eq!(s.target.calls_of("CreateTable"), 8 + 3, "each throttled create was sent again");

    // 2 successes per table (GetTable, CreateTable): enough to grow back from 1 to 8.
    let n = RECOVER_AFTER as usize * 8 / 2;
    let stats = s.applier.apply(tables((0..n).map(|i| format!("u{i}")))).await.expect("applied");
    assert_eq!(stats.kind(ObjectKind::Table).created as usize, n);
    assert_eq!(limit(&s.applier), 8, "recovered to apply.concurrency");
}

#[tokio::test(start_paused = true)]
async fn a_target_throttling_every_call_fails_the_batch_after_exactly_max_attempts() {
    let s = setup(with_database(), cfg(4, 5), false);
    s.target.throttle_always("CreateTable");
    let err = s.applier.apply(tables(["t".to_string()])).await.expect_err("unavailable");
    match &err {
        ApplyError::Unavailable { target, attempts, source } => {
            assert_eq!((target.as_str(), *attempts, source.class), ("dr", 5, ErrorClass::Throttled));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.target.calls_of("CreateTable"), 5);
    assert!(s.dead_letters.keys("dr").await.expect("keys").is_empty(), "throttling never dead-letters");
}

#[tokio::test]
async fn a_create_that_loses_a_race_updates_instead_and_ends_equal() {
    let s = setup(with_database(), cfg(4, 3), false);
    let ours = table("t", "s3://lake/ours/");
    s.target.write_before_next("CreateTable", CatalogObject::Table(table("t", "s3://lake/theirs/")));
    let stats = s.applier.apply(vec![upsert(CatalogObject::Table(ours.clone()))]).await.expect("applied");
    assert_eq!(stats.kind(ObjectKind::Table).updated, 1);
    let calls = s.target.calls();
    let create = calls.iter().position(|c| *c == "CreateTable").expect("a create");
    assert_eq!(calls[create + 1..], ["UpdateTable"], "{calls:?}");
    let want = s.applier.transform().apply(&CatalogObject::Table(ours));
    assert_eq!(s.target.table("d", "t").map(CatalogObject::Table), Some(want));
}

/// Starts applying a table whose database the target lacks, from shard `s1` of a group that has
/// not read past it; returns once it has been waiting a while, having made no write.
async fn waiting_table(s: &Setup) -> tokio::task::JoinHandle<Result<ApplyStats, ApplyError>> {
    s.applier.watermark().attach([("s1".to_string(), false)]);
    let (applier, rec) = (s.applier.clone(), upsert(CatalogObject::Table(table("t", "s3://lake/t/"))));
    let task = tokio::spawn(async move { applier.apply_from(Some("s1"), vec![rec]).await });
    // Long enough for several looks at the parent (one after each change of the group's progress,
    // or every 1.2 s without one).
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(s.target.calls_of("GetDatabase") >= 2, "the parent is read again while waiting: {:?}", s.target.calls());
    assert_eq!(s.target.writes(), 0, "no write while waiting: {:?}", s.target.calls());
    assert!(!task.is_finished());
    task
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_waits_without_writing_for_its_database_then_is_created_when_it_arrives() {
    let s = setup(MemoryCatalog::new(TARGET), cfg(4, 3), false);
    let task = waiting_table(&s).await;
    s.target.put(CatalogObject::Database(database("d")));
    let stats = tokio::time::timeout(Duration::from_secs(10), task).await.expect("done").expect("task").expect("ok");
    assert_eq!(stats.kind(ObjectKind::Table).created, 1);
    assert_eq!(s.target.writes(), 1, "one CreateTable: {:?}", s.target.calls());
    assert!(s.target.table("d", "t").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_whose_database_cannot_come_any_more_is_dead_lettered_without_a_write() {
    let s = setup(MemoryCatalog::new(TARGET), cfg(4, 3), false);
    let task = waiting_table(&s).await;
    // The group reads past the table's capture time, and no database came.
    let w = s.applier.watermark();
    w.opened("s1");
    w.batch_read("s1", Some(now_millis() + 1_000), HashSet::new());
    let stats = tokio::time::timeout(Duration::from_secs(10), task).await.expect("done").expect("task").expect("ok");
    assert_eq!(stats.kind(ObjectKind::Table).dead_lettered, 1);
    assert_eq!(s.target.writes(), 0, "{:?}", s.target.calls());
    let parked = s.dead_letters.list("dr").await.expect("list");
    assert_eq!(parked.len(), 1);
    assert!(parked[0].1.reason.contains("database d"), "{}", parked[0].1.reason);
}

#[tokio::test]
async fn a_rejected_partition_is_dead_lettered_and_the_other_99_of_its_chunk_are_applied() {
    let target = with_database();
    target.put(CatalogObject::Table(table("t", "s3://lake/t/")));
    target.fail_item(&["p-042"], ErrorClass::Permanent);
    let s = setup(target, cfg(4, 3), false);
    let parts: Vec<ChangeRecord> =
        (0..100).map(|i| upsert(CatalogObject::Partition(partition("t", format!("p-{i:03}"))))).collect();
    let stats = s.applier.apply(parts).await.expect("applied");
    let p = stats.kind(ObjectKind::Partition);
    assert_eq!((p.created, p.dead_lettered), (99, 1), "{stats:?}");
    assert_eq!(s.target.calls_of("BatchCreatePartition"), 1, "one chunk, not retried: the error is permanent");
    let stored = s.target.partitions("d", "t");
    assert_eq!(stored.len(), 99);
    assert!(stored.iter().all(|p| p.values != ["p-042"]));
    let parked = s.dead_letters.list("dr").await.expect("list");
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].1.key, format!("{SOURCE}/d/t/[p-042]"));
    assert_eq!(parked[0].1.class, "permanent");
    // The applier compares a partition's own state, not a copy: the dead letter still holds it
    // whole (a replay needs it).
    let record = parked[0].1.record.as_ref().expect("the record is parked");
    assert_eq!(record.state, Some(CatalogObject::Partition(partition("t", "p-042".into()))));
}

/// A batch touching every kind of write: an update, a create (whose partitions follow it), and
/// deletes of objects present and absent.
fn mixed_batch() -> Vec<ChangeRecord> {
    let mut records = vec![
        upsert(CatalogObject::Table(table("changed", "s3://lake/new/"))),
        upsert(CatalogObject::Table(table("fresh", "s3://lake/fresh/"))),
        delete(ObjectKey::Table { catalog: SOURCE.into(), database: "d".into(), table: "old".into() }),
        delete(ObjectKey::Table { catalog: SOURCE.into(), database: "d".into(), table: "never".into() }),
    ];
    records.extend((0..5).map(|i| upsert(CatalogObject::Partition(partition("fresh", i.to_string())))));
    records
}

fn mixed_target() -> MemoryCatalog {
    let target = with_database();
    target.put(CatalogObject::Table(table("changed", "s3://lake/old/")));
    target.put(CatalogObject::Table(table("old", "s3://lake/old/")));
    target
}

#[tokio::test]
async fn a_dry_run_writes_nothing_and_reports_what_the_real_run_then_does() {
    let s = setup(mixed_target(), cfg(4, 3), true);
    let planned = s.applier.apply(mixed_batch()).await.expect("planned");
    assert_eq!(s.target.writes(), 0, "{:?}", s.target.calls());
    let (t, p) = (planned.kind(ObjectKind::Table), planned.kind(ObjectKind::Partition));
    assert_eq!((t.created, t.updated, t.deleted, t.unchanged), (1, 1, 1, 1), "{planned:?}");
    assert_eq!(p.created, 5, "partitions of a table the run creates are new");
    let writes = s.applier.dry_run().expect("a dry run").planned();
    let calls: Vec<(&str, u64, u64)> = writes.iter().map(|(op, w)| (op.as_str(), w.calls, w.objects)).collect();
    assert_eq!(
        calls,
        vec![("BatchCreatePartition", 1, 5), ("CreateTable", 1, 1), ("DeleteTable", 1, 1), ("UpdateTable", 1, 1)]
    );
    assert!(s.dead_letters.keys("dr").await.expect("keys").is_empty());

    let real = setup(mixed_target(), cfg(4, 3), false);
    let applied = real.applier.apply(mixed_batch()).await.expect("applied");
    assert_eq!(applied, planned, "the dry run said what the real run does");
    for (op, w) in &writes {
        // The real run also sends the delete of the absent table, which Glue refuses (NotFound).
        let refused = u64::from(op == "DeleteTable");
        assert_eq!(real.target.calls_of(op) as u64, w.calls + refused, "{op}: {:?}", real.target.calls());
    }
}
