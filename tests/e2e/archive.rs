//! The archive end to end: `lakelog run` keeps the change log in the state bucket while it
//! replicates, and the `lakelog` binary, as a user runs it, restores a past state from it (into a
//! Region the run never wrote to, under a new name beside the live database, with the stream
//! deleted, as a dry run) and shows an object's history. The library is used only to look inside
//! the archive.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lakelog::archive::history::retained_segments;
use lakelog::archive::manifest::ManifestStore;
use lakelog::archive::segment;
use lakelog::archive::writer::root;
use lakelog::commands::restore::rfc3339;
use lakelog::commands::run::{run, RunReport};
use lakelog::config::PipelineConfig;
use lakelog::connect::Pipeline;
use lakelog::model::{now_millis, ChangeRecord, Column, Partition, Table};
use lakelog::simulate::catalog::{generate, CatalogSpec, GeneratedCatalog};
use lakelog::simulate::events::{crawler_burst, deliver, GlueEvent, DATABASE_STATE_CHANGE};
use lakelog::stream::consumer::ShardReader;
use lakelog::stream::seqno::SeqNo;
use tokio::sync::watch;

use crate::emulator::Emulator;
use crate::run::{converges, route, run_config};
use crate::{seed, CatalogDump, Names, ACCOUNT, SOURCE_REGION, TARGET_REGION};

/// The Region of target `fresh`: in the config from the start, never written by a run.
pub(crate) const FRESH_REGION: &str = "eu-west-1";

/// `run`'s config (events from the queue, reconciliation only at start) with a second target
/// `fresh`, and an archive that writes a segment within a second and compacts every two seconds
/// whatever the tail's size, so restores read snapshots and raw segments both.
fn archive_config(emu: &Emulator, name: &str, queue_url: &str) -> String {
    let fresh = format!("  - name: fresh\n    region: {FRESH_REGION}\n    endpoint: {}\napply:\n", emu.moto_url);
    let mut yaml = run_config(emu, name, queue_url, 3600).replacen("apply:\n", &fresh, 1);
    yaml.push_str("archive:\n  segment_age: 1s\n  compact_check: 2s\n  head: 1ms\n  compact_tail_mib: 0\n");
    yaml
}

pub(crate) fn write_config(dir: &tempfile::TempDir, yaml: &str) -> PathBuf {
    let path = dir.path().join("pipeline.yaml");
    std::fs::write(&path, yaml).expect("write pipeline.yaml");
    path
}

/// `lakelog -c <config> <args>`; its stdout, after checking it succeeded.
pub(crate) fn lakelog(config: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lakelog"))
        .arg("-c")
        .arg(config)
        .args(args)
        .env("LAKELOG_LOG", "warn")
        .output()
        .expect("start lakelog");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "lakelog {args:?} failed ({}):\n{stdout}\n{stderr}", out.status);
    stdout.into_owned()
}

pub(crate) fn lakelog_json(config: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let out = lakelog(config, &all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("lakelog {args:?} printed no JSON ({e}):\n{out}"))
}

/// `lakelog run` as a library call, applying to one target only.
struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<RunReport>,
}

async fn start(yaml: &str, target: &str) -> Running {
    let cfg = PipelineConfig::from_yaml(yaml, "archive").expect("config");
    let pipeline = Arc::new(Pipeline::connect(cfg).await.expect("connect"));
    let (stop, rx) = watch::channel(false);
    let target = target.to_string();
    let task = tokio::spawn(async move { run(&pipeline, Some(&target), rx).await.expect("run") });
    Running { stop, task }
}

impl Running {
    /// Stops gracefully: the archive writes what it holds before the run returns.
    async fn stop(self) -> RunReport {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(60), self.task).await.expect("drains in time").expect("run task")
    }
}

/// The part of `dump` in database `from`, named `to`.
fn database_as(dump: &CatalogDump, from: &str, to: &str) -> CatalogDump {
    let mut out = CatalogDump::default();
    for (name, d) in dump.databases.iter().filter(|(n, _)| *n == from) {
        let mut d = d.clone();
        d.name = to.to_string();
        out.databases.insert(name.replacen(from, to, 1), d);
    }
    for ((db, t), table) in dump.tables.iter().filter(|((db, _), _)| db == from) {
        let mut table = table.clone();
        table.database_name = to.to_string();
        out.tables.insert((db.replacen(from, to, 1), t.clone()), table);
    }
    for ((db, t, v), p) in dump.partitions.iter().filter(|((db, _, _), _)| db == from) {
        let mut p = p.clone();
        p.database_name = to.to_string();
        out.partitions.insert((db.replacen(from, to, 1), t.clone(), v.clone()), p);
    }
    out
}

/// `dump` without database `skip`.
fn without(dump: &CatalogDump, skip: &str) -> CatalogDump {
    CatalogDump {
        databases: dump.databases.iter().filter(|(n, _)| *n != skip).map(|(k, v)| (k.clone(), v.clone())).collect(),
        tables: dump.tables.iter().filter(|((d, _), _)| d != skip).map(|(k, v)| (k.clone(), v.clone())).collect(),
        partitions: dump
            .partitions
            .iter()
            .filter(|((d, _, _), _)| d != skip)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// The source with the data bucket rewritten as target `dr` rewrites it.
fn as_in_dr(dump: &CatalogDump, n: &Names) -> CatalogDump {
    dump.rewritten(&format!("s3://{}", n.data_bucket), &format!("s3://{}-dr", n.data_bucket))
}

/// A catalog replicated by `lakelog run`, changed before a time T and after it, one database
/// dropped after T, the run stopped (its archive written).
struct Scenario {
    emu: Emulator,
    _dir: tempfile::TempDir,
    config: PathBuf,
    n: Names,
    stream: String,
    /// T, RFC 3339 with milliseconds.
    at: String,
    /// The source as it was at T.
    at_t: CatalogDump,
    /// Changed after T (table `changed` among its tables, `regained` deleted from that table).
    kept: String,
    changed: String,
    regained: Vec<String>,
    /// Dropped after T, by the event `drop_event`.
    dropped: String,
    drop_event: String,
}

/// The tables of `db` with at least 3 partitions in `catalog`.
fn partitioned<'a>(catalog: &'a GeneratedCatalog, db: &str) -> Vec<&'a Table> {
    catalog
        .tables
        .iter()
        .filter(|t| t.database_name == db)
        .filter(|t| catalog.partitions.iter().filter(|p| p.database_name == db && p.table_name == t.name).count() >= 3)
        .collect()
}

fn partitions_of<'a>(catalog: &'a GeneratedCatalog, t: &Table) -> Vec<&'a Partition> {
    catalog.partitions.iter().filter(|p| p.database_name == t.database_name && p.table_name == t.name).collect()
}

async fn scenario(name: &str) -> Scenario {
    let emu = Emulator::start();
    let n = Names::new(name);
    let catalog = seed(&emu, name, 2, 3, 20).await;
    let (eb, sqs, queue) = route(&emu, name).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = archive_config(&emu, name, &queue);
    let config = write_config(&dir, &yaml);
    let running = start(&yaml, "dr").await;
    converges(&emu, name, Duration::from_secs(90)).await;

    let src = crate::catalog(&emu, SOURCE_REGION).await;
    let (kept, dropped) = (catalog.databases[0].name.clone(), catalog.databases[1].name.clone());
    let tables = partitioned(&catalog, &kept);
    assert!(tables.len() >= 2, "the generator makes partitioned tables");
    let (a, b) = (tables[0], tables[1]);

    // Before T: a database's description, a table's description and columns, partitions added
    // to one table and deleted from another.
    let mut db = catalog.databases[0].clone();
    db.description = Some("before T".into());
    src.update_database(&db).await.expect("update database");
    let mut table = a.clone();
    table.description = Some("before T".into());
    let sd = table.storage_descriptor.get_or_insert_with(Default::default);
    sd.columns.push(Column { name: "added_before_t".into(), type_: Some("bigint".into()), ..Default::default() });
    src.update_table(&table).await.expect("update table");
    let template = partitions_of(&catalog, a)[0].clone();
    let added: Vec<Partition> = (0..2)
        .map(|i| {
            let mut p = template.clone();
            if let Some(last) = p.values.last_mut() {
                *last = format!("added-{i}");
            }
            if let Some(sd) = p.storage_descriptor.as_mut() {
                sd.location = Some(format!("s3://{}/added/{i}/", n.data_bucket));
            }
            p
        })
        .collect();
    assert!(src.create_partitions(&kept, &a.name, &added).await.expect("create partitions").is_empty());
    let gone: Vec<Vec<String>> = partitions_of(&catalog, b)[..2].iter().map(|p| p.values.clone()).collect();
    assert!(src.delete_partitions(&kept, &b.name, &gone).await.expect("delete partitions").is_empty());
    let added_values: Vec<Vec<String>> = added.iter().map(|p| p.values.clone()).collect();
    let events = [
        GlueEvent::database("UpdateDatabase", &kept, &[]),
        GlueEvent::table("UpdateTable", &kept, &a.name, &[]),
        GlueEvent::table("BatchCreatePartition", &kept, &a.name, &added_values),
        GlueEvent::table("BatchDeletePartition", &kept, &b.name, &gone),
    ];
    deliver(&eb, &events).await.expect("deliver");
    converges(&emu, name, Duration::from_secs(60)).await;
    // Converged: every change above has been captured, so the state lakelog knew at T is this.
    let at_t = CatalogDump::read(&emu, SOURCE_REGION, &n.prefix).await;
    let at_ms = now_millis();
    tokio::time::sleep(Duration::from_millis(50)).await;

    // After T: the table again, one of its new partitions deleted, the other database dropped.
    table.description = Some("after T".into());
    src.update_table(&table).await.expect("update table again");
    let regained = added_values[0].clone();
    assert!(src
        .delete_partitions(&kept, &a.name, std::slice::from_ref(&regained))
        .await
        .expect("delete partition")
        .is_empty());
    deliver(
        &eb,
        &[
            GlueEvent::table("UpdateTable", &kept, &a.name, &[]),
            GlueEvent::table("DeletePartition", &kept, &a.name, std::slice::from_ref(&regained)),
        ],
    )
    .await
    .expect("deliver");
    src.delete_database(&dropped).await.expect("drop database");
    // The drop's event goes to the queue as EventBridge delivers it, with an id the test knows.
    let drop_event = format!("drop-{}", n.prefix.replace('_', "-"));
    let body = serde_json::json!({
        "version": "0", "id": drop_event, "detail-type": DATABASE_STATE_CHANGE, "source": "aws.glue",
        "account": ACCOUNT, "time": "2026-11-22T10:00:00Z", "region": SOURCE_REGION,
        "resources": [format!("arn:aws:glue:{SOURCE_REGION}:{ACCOUNT}:database/{dropped}")],
        "detail": {"databaseName": dropped, "typeOfChange": "DeleteDatabase"}
    });
    sqs.send_message().queue_url(&queue).message_body(body.to_string()).send().await.expect("send the drop");
    converges(&emu, name, Duration::from_secs(60)).await;
    let report = running.stop().await;
    assert!(report.archived.is_some_and(|n| n > 0), "the run archived: {report:?}");
    Scenario {
        emu,
        _dir: dir,
        config,
        stream: format!("lakelog-{name}"),
        at: rfc3339(at_ms),
        at_t,
        kept,
        changed: a.name.clone(),
        regained,
        dropped,
        drop_event,
        n,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_into_a_fresh_region_equals_the_source_at_that_time_field_by_field() {
    let s = scenario("arc-fresh").await;
    assert_eq!(CatalogDump::read(&s.emu, FRESH_REGION, &s.n.prefix).await, CatalogDump::default(), "untouched");
    assert!(s.at_t.databases.contains_key(&s.dropped), "the dropped database existed at T");
    let out = lakelog(&s.config, &["restore", "--at", &s.at, "--target", "fresh"]);
    let restored = CatalogDump::read(&s.emu, FRESH_REGION, &s.n.prefix).await;
    s.at_t.assert_same(&restored);
    assert_eq!(s.at_t, restored, "{out}");
    // The live source is not the state at T: the restore did not just copy the present.
    let now = CatalogDump::read(&s.emu, SOURCE_REGION, &s.n.prefix).await;
    assert_ne!(now, restored);
}

/// Half the target's Glue calls throttled: the plan says everything would be created and writes
/// nothing; a restore killed (SIGKILL) part-way and run again ends equal to the source at T.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_half_its_calls_throttled_a_restore_killed_part_way_and_run_again_equals_the_source_at_t() {
    let s = scenario("arc-faults").await;
    let proxy = crate::faults::FaultProxy::start(&s.emu.moto_url, crate::faults::Fault::Throttle, 0.5, 11).await;
    let yaml = std::fs::read_to_string(&s.config).expect("config");
    let direct = format!("    endpoint: {}\napply:\n", s.emu.moto_url);
    assert!(yaml.contains(&direct) && !yaml.contains("max_attempts"), "the config changed shape: {yaml}");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        &dir,
        &yaml.replace(&direct, &format!("    endpoint: {}\napply:\n  max_attempts: 20\n", proxy.url)),
    );
    let fresh = || CatalogDump::read(&s.emu, FRESH_REGION, &s.n.prefix);

    let plan = lakelog_json(&config, &["restore", "--at", &s.at, "--target", "fresh", "--dry-run"]);
    assert_eq!(fresh().await, CatalogDump::default(), "a dry run wrote");
    let created: u64 = plan["stats"].as_object().expect("stats").values().filter_map(|k| k["created"].as_u64()).sum();
    let objects = s.at_t.databases.len() + s.at_t.tables.len() + s.at_t.partitions.len();
    assert_eq!(created as usize, objects, "into an empty target everything would be created: {}", plan["stats"]);

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lakelog"))
        .arg("-c")
        .arg(&config)
        .args(["restore", "--at", &s.at, "--target", "fresh"])
        .env("LAKELOG_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start restore");
    // Killed once it has written partitions (its databases and some tables before them).
    for _ in 0..600 {
        if !fresh().await.partitions.is_empty() || child.try_wait().expect("wait").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let status = child.wait().expect("wait");
    let partial = fresh().await;
    eprintln!("killed ({status}) with {} of {} partitions restored", partial.partitions.len(), s.at_t.partitions.len());

    lakelog(&config, &["restore", "--at", &s.at, "--target", "fresh"]);
    let restored = fresh().await;
    s.at_t.assert_same(&restored);
    assert_eq!(s.at_t, restored);
    assert!(proxy.injected() > 0, "no fault was injected: the test would prove nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restored_under_a_new_name_sits_beside_the_untouched_live_one() {
    let s = scenario("arc-rename").await;
    let before = CatalogDump::read(&s.emu, TARGET_REGION, &s.n.prefix).await;
    let renamed = format!("{}_restored", s.kept);
    let rename = format!("{}={renamed}", s.kept);
    lakelog(&s.config, &["restore", "--at", &s.at, "--rename-database", &rename, "--target", "dr"]);
    let after = CatalogDump::read(&s.emu, TARGET_REGION, &s.n.prefix).await;
    let want = as_in_dr(&database_as(&s.at_t, &s.kept, &renamed), &s.n);
    let got = database_as(&after, &renamed, &renamed);
    assert!(!want.tables.is_empty() && !want.partitions.is_empty());
    want.assert_same(&got);
    assert_eq!(want, got);
    // Everything else in the target, the live database first, is as it was.
    assert_eq!(without(&after, &renamed), before);
    let live = as_in_dr(&CatalogDump::read(&s.emu, SOURCE_REGION, &s.n.prefix).await, &s.n);
    assert_eq!(without(&after, &renamed), live);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_stream_deleted_a_restore_from_the_archive_alone_equals_the_source_now() {
    let s = scenario("arc-nostream").await;
    let kinesis = lakelog::aws::client::Endpoint::new(SOURCE_REGION, Some(&s.emu.kinesis_url)).kinesis().await;
    kinesis.delete_stream().stream_name(&s.stream).send().await.expect("DeleteStream");
    let mut deleted = false;
    for _ in 0..100 {
        match kinesis.describe_stream_summary().stream_name(&s.stream).send().await {
            Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => {
                deleted = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(deleted, "kinesalite deleted the stream");
    // After the drop: the state now, which no database of the restore's selection outlives.
    let at = rfc3339(now_millis());
    lakelog(&s.config, &["restore", "--at", &at, "--target", "fresh"]);
    let now = CatalogDump::read(&s.emu, SOURCE_REGION, &s.n.prefix).await;
    let restored = CatalogDump::read(&s.emu, FRESH_REGION, &s.n.prefix).await;
    assert!(!now.databases.contains_key(&s.dropped));
    now.assert_same(&restored);
    assert_eq!(now, restored);
    assert!(
        kinesis.describe_stream_summary().stream_name(&s.stream).send().await.is_err(),
        "the restore did not recreate the stream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_writes_nothing_and_names_the_objects_and_fields_it_would_change() {
    let s = scenario("arc-dryrun").await;
    let before = CatalogDump::read(&s.emu, TARGET_REGION, &s.n.prefix).await;
    let text = lakelog(&s.config, &["restore", "--at", &s.at, "--target", "dr", "--dry-run"]);
    let json = lakelog_json(&s.config, &["restore", "--at", &s.at, "--target", "dr", "--dry-run"]);
    assert_eq!(CatalogDump::read(&s.emu, TARGET_REGION, &s.n.prefix).await, before, "a dry run wrote");

    let table = format!("/{}/{}", s.kept, s.changed);
    assert!(text.contains("would restore"), "{text}");
    assert!(
        text.lines().any(|l| l.trim_start().starts_with("update") && l.ends_with(&table)),
        "the changed table is named:\n{text}"
    );
    assert!(text.contains(r#"description: "after T" → "before T""#), "its field, old → new:\n{text}");
    let plan = json["plan"].as_array().expect("plan");
    let line = |action: &str, object: &str| {
        plan.iter().find(|l| l["action"] == action && l["object"].as_str().is_some_and(|o| o.ends_with(object)))
    };
    let update = line("update", &table).unwrap_or_else(|| panic!("no update of {table}: {json:#}"));
    let fields: Vec<&str> =
        update["fields"].as_array().expect("fields").iter().filter_map(|f| f["path"].as_str()).collect();
    assert_eq!(fields, ["description"], "only what changed after T: {update:#}");
    let regained = format!("{table}/[{}]", s.regained.join(","));
    assert!(line("create", &regained).is_some(), "the partition deleted after T comes back: {json:#}");
    assert!(line("create", &format!("/{}", s.dropped)).is_some(), "the dropped database comes back: {json:#}");
    assert_eq!(json["dry_run"], true);
    let planned = json["planned_writes"].as_object().expect("planned writes");
    assert!(planned.contains_key("CreateDatabase") && planned.contains_key("UpdateTable"), "{planned:?}");

    // The target's partitions are read a table at a time, by the plan as by the compare: not one
    // call per partition (a plan of a million partitions was a million calls).
    let (tables, partitions) = (s.at_t.tables.len() as u64, s.at_t.partitions.len());
    let reads = json["api_calls"]["BatchGetPartition"].as_u64().expect("BatchGetPartition counted");
    assert!(
        reads <= 2 * tables,
        "{reads} BatchGetPartition calls for {partitions} partitions in {tables} tables: {}",
        json["api_calls"]
    );
    assert!(text.contains("target API calls:"), "{text}");

    // What the plan counts (objects it found in sync are not compared again) is what the
    // restore then does.
    let done = lakelog_json(&s.config, &["restore", "--at", &s.at, "--target", "dr"]);
    assert_eq!(done["dry_run"], false);
    assert_eq!(json["stats"], done["stats"], "the plan's counts, then the restore's");
    assert!(json["stats"].to_string().contains("unchanged"), "{}", json["stats"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_shows_the_drop_with_the_event_that_caused_it() {
    let s = scenario("arc-history").await;
    let text = lakelog(&s.config, &["history", &s.dropped]);
    assert!(text.lines().any(|l| l.contains("deleted") && l.contains(&format!("event {}", s.drop_event))), "{text}");
    let json = lakelog_json(&s.config, &["history", &s.dropped]);
    let changes = json["changes"].as_array().expect("changes");
    let whats: Vec<&str> = changes.iter().filter_map(|c| c["what"].as_str()).collect();
    assert_eq!(whats.first(), Some(&"created"), "{json:#}");
    assert_eq!(whats.last(), Some(&"deleted"), "{json:#}");
    let drop = changes.last().expect("a change");
    assert_eq!(
        (drop["cause"]["kind"].as_str(), drop["cause"]["event_id"].as_str()),
        (Some("event"), Some(&*s.drop_event))
    );

    // The changed table: both updates, with their old and new values.
    let object = format!("{}.{}", s.kept, s.changed);
    let json = lakelog_json(&s.config, &["history", &object]);
    let descriptions: Vec<(serde_json::Value, serde_json::Value)> = json["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["what"] == "updated")
        .flat_map(|c| c["fields"].as_array().cloned().unwrap_or_default())
        .filter(|f| f["path"] == "description")
        .map(|f| (f["old"].clone(), f["new"].clone()))
        .collect();
    assert_eq!(
        descriptions.last().map(|(o, n)| (o.as_str(), n.as_str())),
        Some((Some("before T"), Some("after T"))),
        "{json:#}"
    );
    assert!(descriptions.iter().any(|(_, n)| n == "before T"), "{json:#}");
}

/// Every record of every shard of the stream, in stream order.
pub(crate) async fn stream_records(pipeline: &Pipeline) -> BTreeMap<String, Vec<(SeqNo, ChangeRecord)>> {
    let mut out = BTreeMap::new();
    for shard in pipeline.log.list_shards().await.expect("shards") {
        let mut reader = ShardReader::open(pipeline.log.clone(), &shard.shard_id, None, 10_000).await.expect("open");
        let mut records = Vec::new();
        loop {
            let batch = reader.next_batch().await.expect("read");
            if batch.records.is_empty() {
                break;
            }
            for r in batch.records {
                for record in lakelog::model::codec::decode(&r.data).expect("frame") {
                    records.push((r.seq.clone(), record));
                }
            }
        }
        out.insert(shard.shard_id, records);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_archiving_a_burst_leaves_every_record_in_exactly_one_segment() {
    let emu = Emulator::start();
    let name = "arc-kill";
    let n = Names::new(name);
    let (eb, _sqs, queue) = route(&emu, name).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = archive_config(&emu, name, &queue);
    let config = write_config(&dir, &yaml);
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_lakelog"))
            .args(["run", "--target", "dr", "-c"])
            .arg(&config)
            .env("LAKELOG_LOG", "warn")
            .spawn()
            .expect("spawn")
    };
    let mut first = spawn();
    let catalog = generate(&CatalogSpec {
        prefix: n.prefix.clone(),
        databases: 1,
        tables_per_database: 4,
        partitions_per_table: 400,
        bucket: n.data_bucket.clone(),
    });
    let src = crate::catalog(&emu, SOURCE_REGION).await;
    let half = GeneratedCatalog {
        databases: catalog.databases.clone(),
        tables: catalog.tables.clone(),
        partitions: catalog.partitions[..catalog.partitions.len() / 2].to_vec(),
    };
    crawler_burst(&*src, &eb, &half, 0).await.expect("first half");
    // SIGKILL once the archive has written its first segment, while the run still reads the burst.
    let pipeline = Pipeline::connect(PipelineConfig::from_yaml(&yaml, name).expect("config")).await.expect("connect");
    let manifests = ManifestStore::new(&root(&pipeline.config.stream.name));
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let archived_at_kill = loop {
        let (m, _) = manifests.load(&*pipeline.state).await.expect("manifest");
        let n: u64 = retained_segments(&*pipeline.state, &m).await.expect("segments").iter().map(|s| s.count).sum();
        if n > 0 {
            first.kill().expect("SIGKILL");
            break n;
        }
        assert!(std::time::Instant::now() < deadline, "the first run archived nothing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    first.wait().expect("reap");
    // For the log: how far it had come (timing decides; nothing asserts on it).
    let in_stream: usize = stream_records(&pipeline).await.values().map(Vec::len).sum();
    eprintln!("at the SIGKILL: {archived_at_kill} of {in_stream} stream records archived");
    crawler_burst(&*src, &eb, &catalog, 0).await.expect("second half");
    let mut second = spawn();
    converges(&emu, name, Duration::from_secs(120)).await;
    let pid = second.id().to_string();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
    assert!(second.wait().expect("wait").success(), "graceful stop");

    let store = &*pipeline.state;
    let (manifest, _) = manifests.load(store).await.expect("manifest");
    assert!(manifest.from_genesis, "retention removed nothing");
    let segments = retained_segments(store, &manifest).await.expect("segments");
    let mut by_shard: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for s in &segments {
        by_shard.entry(s.shard.clone()).or_default().push(s.clone());
    }
    let mut archived: BTreeMap<String, Vec<(SeqNo, ChangeRecord)>> = BTreeMap::new();
    for (shard, segs) in &mut by_shard {
        segs.sort_by(|a, b| a.first_sequence.cmp(&b.first_sequence));
        for w in segs.windows(2) {
            assert!(w[0].last_sequence < w[1].first_sequence, "{shard}: {} overlaps {}", w[0].key, w[1].key);
        }
        for s in segs.iter() {
            let stored = store.get(&s.key).await.expect("get").expect("a listed segment exists");
            let (index, entries) = segment::decode(&stored.bytes).expect("decode");
            assert_eq!(
                (index.count, &index.first_sequence, &index.last_sequence),
                (s.count, &s.first_sequence, &s.last_sequence)
            );
            archived.entry(shard.clone()).or_default().extend(entries.into_iter().map(|e| (e.sequence, e.record)));
        }
    }
    let stream = stream_records(&pipeline).await;
    let total: usize = stream.values().map(Vec::len).sum();
    assert!(total > catalog.partitions.len(), "the burst is in the stream: {total} records");
    let stream: BTreeMap<_, _> = stream.into_iter().filter(|(_, r)| !r.is_empty()).collect();
    assert_eq!(archived.keys().collect::<Vec<_>>(), stream.keys().collect::<Vec<_>>(), "shards");
    for (shard, records) in &stream {
        let got = &archived[shard];
        assert_eq!(got.len(), records.len(), "{shard}: archived records vs stream records");
        assert!(got == records, "{shard}: the archive holds the stream's records, each once, in order");
    }

    let at = rfc3339(now_millis());
    lakelog(&config, &["restore", "--at", &at, "--target", "fresh"]);
    let source = CatalogDump::read(&emu, SOURCE_REGION, &n.prefix).await;
    let restored = CatalogDump::read(&emu, FRESH_REGION, &n.prefix).await;
    assert_eq!(source.partitions.len(), catalog.partitions.len());
    source.assert_same(&restored);
    assert_eq!(source, restored);
}

/// `lakelog sync` alone (from a schedule, no `run`): an object dropped at the source between two
/// syncs is recorded as deleted in the archive, so a restore to a time after the drop does not
/// bring it back, and the target loses it through the change log (no `--prune`). Before, sync
/// published only what it saw, and the restore resurrected the dropped table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_dropped_between_two_syncs_is_a_delete_in_the_archive() {
    let emu = Emulator::start();
    let name = "arc-sync-drop";
    let n = Names::new(name);
    let generated = seed(&emu, name, 1, 3, 20).await;
    let fresh = format!("  - name: fresh\n    region: {FRESH_REGION}\n    endpoint: {}\napply:\n", emu.moto_url);
    let yaml = crate::config_yaml(&emu, name, "", "").replacen("apply:\n", &fresh, 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(&dir, &yaml);
    lakelog(&config, &["sync", "--target", "dr"]);

    let src = crate::catalog(&emu, SOURCE_REGION).await;
    let dropped = partitioned(&generated, &generated.databases[0].name)[0].clone();
    src.delete_table(&dropped.database_name, &dropped.name).await.expect("drop a table");
    lakelog(&config, &["sync", "--target", "dr"]);

    let source = CatalogDump::read(&emu, SOURCE_REGION, &n.prefix).await;
    let target = CatalogDump::read(&emu, TARGET_REGION, &n.prefix).await;
    assert!(
        !target.tables.contains_key(&(dropped.database_name.clone(), dropped.name.clone())),
        "dropped at the target"
    );
    assert_eq!(target.partitions.len(), source.partitions.len());
    lakelog(&config, &["restore", "--at", &rfc3339(now_millis()), "--target", "fresh"]);
    let restored = CatalogDump::read(&emu, FRESH_REGION, &n.prefix).await;
    source.assert_same(&restored);
    assert_eq!(source, restored);
    let history = lakelog_json(&config, &["history", &format!("{}.{}", dropped.database_name, dropped.name)]);
    let what: Vec<&str> =
        history["changes"].as_array().expect("changes").iter().filter_map(|c| c["what"].as_str()).collect();
    assert_eq!(what.last(), Some(&"deleted"), "{history:#}");
}
