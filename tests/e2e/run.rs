//! `lakelog run` end to end: Glue events through EventBridge → SQS on the emulator, snapshot,
//! reconciliation, graceful shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_glue::types::{DatabaseInput, PartitionInput, TableInput};
use lakelog::aws::client::Endpoint;
use lakelog::aws::eventbridge::EventBridge;
use lakelog::aws::glue::GlueCatalog;
use lakelog::commands::run::{run, RunReport};
use lakelog::config::PipelineConfig;
use lakelog::connect::Pipeline;
use lakelog::simulate::catalog::{generate, CatalogSpec};
use lakelog::simulate::events::{crawler_burst, deliver, route_glue_events, GlueEvent};
use lakelog::state::deadletter::{DeadLetterStore, CAPTURE_EVENTS};
use tokio::sync::watch;

use crate::emulator::Emulator;
use crate::{config_yaml, seed, CatalogDump, Names, ACCOUNT, SOURCE_REGION, TARGET_REGION};

pub(crate) async fn route(emu: &Emulator, name: &str) -> (EventBridge, aws_sdk_sqs::Client, String) {
    let ep = Endpoint::new(SOURCE_REGION, Some(&emu.moto_url));
    let eb = EventBridge::connect(&ep).await;
    let r = route_glue_events(&eb, &format!("lakelog-{name}")).await.expect("route");
    (eb, ep.sqs().await, r.queue_url)
}

pub(crate) fn run_config(emu: &Emulator, name: &str, queue_url: &str, reconcile_seconds: u64) -> String {
    config_yaml(emu, name, "", "").replace(
        "  partition_segments: 1\n",
        &format!(
            "  partition_segments: 1\n  reconcile_interval_seconds: {reconcile_seconds}\n  events: {{ queue_url: \"{queue_url}\", wait_seconds: 1, visibility_timeout_seconds: 30 }}\n"
        ),
    )
}

pub(crate) struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<RunReport>,
}

pub(crate) async fn start(yaml: &str) -> Running {
    let cfg = PipelineConfig::from_yaml(yaml, "run").expect("config");
    let pipeline = Arc::new(Pipeline::connect(cfg).await.expect("connect"));
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(async move { run(&pipeline, None, rx).await.expect("run") });
    Running { stop, task }
}

impl Running {
    pub(crate) async fn stop(self) -> RunReport {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(60), self.task).await.expect("drains in time").expect("run task")
    }
}

/// Waits until the target equals the (rewritten) source, or fails after `limit`.
pub(crate) async fn converges(emu: &Emulator, name: &str, limit: Duration) {
    let n = Names::new(name);
    let deadline = Instant::now() + limit;
    loop {
        let source = CatalogDump::read(emu, SOURCE_REGION, &n.prefix).await;
        let want = source.rewritten(&format!("s3://{}", n.data_bucket), &format!("s3://{}-dr", n.data_bucket));
        match CatalogDump::try_read(emu, TARGET_REGION, &n.prefix).await {
            Ok(target) if want == target => return,
            Ok(target) if Instant::now() > deadline => {
                want.assert_same(&target);
                panic!("did not converge");
            }
            Err(e) if Instant::now() > deadline => panic!("target unreadable: {e}"),
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn table_input(name: &str, column: &str, location: &str) -> TableInput {
    let col = aws_sdk_glue::types::Column::builder().name(column).r#type("string").build().expect("col");
    let key = aws_sdk_glue::types::Column::builder().name("dt").r#type("string").build().expect("key");
    TableInput::builder()
        .name(name)
        .partition_keys(key)
        .storage_descriptor(aws_sdk_glue::types::StorageDescriptor::builder().columns(col).location(location).build())
        .build()
        .expect("table")
}

fn partition_input(dt: &str, location: &str) -> PartitionInput {
    PartitionInput::builder()
        .values(dt)
        .storage_descriptor(
            aws_sdk_glue::types::StorageDescriptor::builder().location(format!("{location}dt={dt}/")).build(),
        )
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_of_change_replicates_and_duplicated_reordered_events_converge() {
    let emu = Emulator::start();
    let name = "events";
    seed(&emu, name, 1, 2, 3).await;
    let (eb, _sqs, queue) = route(&emu, name).await;
    // Reconciliation is far away: only the snapshot and the events can make this converge.
    let running = start(&run_config(&emu, name, &queue, 3600)).await;
    converges(&emu, name, Duration::from_secs(60)).await;

    let n = Names::new(name);
    let glue = crate::glue(&emu, SOURCE_REGION).await;
    let db = format!("{}_extra", n.prefix);
    let loc = format!("s3://{}/extra/t/", n.data_bucket);
    let mut events = Vec::new();
    glue.create_database()
        .database_input(DatabaseInput::builder().name(&db).build().expect("db"))
        .send()
        .await
        .expect("create db");
    events.push(GlueEvent::database("CreateDatabase", &db, &[]));
    glue.update_database()
        .name(&db)
        .database_input(DatabaseInput::builder().name(&db).description("updated").build().expect("db"))
        .send()
        .await
        .expect("update db");
    events.push(GlueEvent::database("UpdateDatabase", &db, &[]));
    for t in ["t", "u", "gone1", "gone2"] {
        glue.create_table()
            .database_name(&db)
            .table_input(table_input(t, "a", &loc))
            .send()
            .await
            .expect("create table");
    }
    events.push(GlueEvent::database("CreateTable", &db, &["t", "u", "gone1", "gone2"]));
    glue.update_table().database_name(&db).table_input(table_input("t", "b", &loc)).send().await.expect("update table");
    events.push(GlueEvent::table("UpdateTable", &db, "t", &[]));
    glue.create_partition()
        .database_name(&db)
        .table_name("t")
        .partition_input(partition_input("2026-01-01", &loc))
        .send()
        .await
        .expect("p1");
    events.push(GlueEvent::table("CreatePartition", &db, "t", &[vec!["2026-01-01".into()]]));
    let batch: Vec<_> = ["2026-01-02", "2026-01-03", "2026-01-04"].iter().map(|d| partition_input(d, &loc)).collect();
    glue.batch_create_partition()
        .database_name(&db)
        .table_name("t")
        .set_partition_input_list(Some(batch))
        .send()
        .await
        .expect("batch");
    let three: Vec<Vec<String>> =
        ["2026-01-02", "2026-01-03", "2026-01-04"].iter().map(|d| vec![d.to_string()]).collect();
    events.push(GlueEvent::table("BatchCreatePartition", &db, "t", &three));
    glue.update_partition()
        .database_name(&db)
        .table_name("t")
        .partition_value_list("2026-01-01")
        .partition_input(partition_input("2026-01-01", "s3://elsewhere/"))
        .send()
        .await
        .expect("update p");
    events.push(GlueEvent::table("UpdatePartition", &db, "t", &[vec!["2026-01-01".into()]]));
    let entry = aws_sdk_glue::types::BatchUpdatePartitionRequestEntry::builder()
        .partition_value_list("2026-01-02")
        .partition_input(partition_input("2026-01-02", "s3://elsewhere/"))
        .build()
        .expect("entry");
    glue.batch_update_partition().database_name(&db).table_name("t").entries(entry).send().await.expect("batch update");
    events.push(GlueEvent::table("BatchUpdatePartition", &db, "t", &[vec!["2026-01-02".into()]]));
    glue.delete_partition()
        .database_name(&db)
        .table_name("t")
        .partition_values("2026-01-03")
        .send()
        .await
        .expect("delete p");
    events.push(GlueEvent::table("DeletePartition", &db, "t", &[vec!["2026-01-03".into()]]));
    let key = aws_sdk_glue::types::PartitionValueList::builder().values("2026-01-04").build().expect("key");
    glue.batch_delete_partition()
        .database_name(&db)
        .table_name("t")
        .partitions_to_delete(key)
        .send()
        .await
        .expect("batch delete");
    events.push(GlueEvent::table("BatchDeletePartition", &db, "t", &[vec!["2026-01-04".into()]]));
    glue.delete_table().database_name(&db).name("u").send().await.expect("delete table");
    events.push(GlueEvent::database("DeleteTable", &db, &["u"]));
    glue.batch_delete_table()
        .database_name(&db)
        .tables_to_delete("gone1")
        .tables_to_delete("gone2")
        .send()
        .await
        .expect("batch delete tables");
    events.push(GlueEvent::database("BatchDeleteTable", &db, &["gone1", "gone2"]));
    // Delete then re-create with the same name and another shape.
    glue.delete_table().database_name(&db).name("t").send().await.expect("drop t");
    events.push(GlueEvent::database("DeleteTable", &db, &["t"]));
    glue.create_table()
        .database_name(&db)
        .table_input(table_input("t", "reborn", &loc))
        .send()
        .await
        .expect("recreate t");
    events.push(GlueEvent::database("CreateTable", &db, &["t"]));
    // A change type lakelog does not know: handled by re-reading the table and its partitions.
    glue.create_partition()
        .database_name(&db)
        .table_name("t")
        .partition_input(partition_input("2027-01-01", &loc))
        .send()
        .await
        .expect("p");
    events.push(GlueEvent::table("SomeFutureChange", &db, "t", &[]));
    deliver(&eb, &events).await.expect("deliver");
    converges(&emu, name, Duration::from_secs(60)).await;

    // The same events again, reversed: re-reads of the current state change nothing.
    let mut again = events.clone();
    again.reverse();
    deliver(&eb, &again).await.expect("deliver again");
    // And a database drop at the end.
    glue.delete_database().name(&db).send().await.expect("drop db");
    deliver(&eb, &[GlueEvent::database("DeleteDatabase", &db, &[])]).await.expect("deliver drop");
    converges(&emu, name, Duration::from_secs(60)).await;
    let report = running.stop().await;
    assert!(report.events.messages as usize > events.len() * 2, "{:?}", report.events);
    assert_eq!(report.reconcile_passes, 1, "only the initial snapshot ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_fifth_of_the_events_lost_reconciliation_still_converges() {
    let emu = Emulator::start();
    let name = "lossy";
    let (eb, _sqs, queue) = route(&emu, name).await;
    let n = Names::new(name);
    let glue = crate::glue(&emu, SOURCE_REGION).await;
    // The initial snapshot must end before the burst, or (on a loaded machine, where it starts
    // late) it reads the burst's objects itself and no reconciliation is needed: it copies a
    // database that exists before the start, and the burst starts once the target has it.
    let before = DatabaseInput::builder().name(format!("{}_before", n.prefix)).build().expect("db");
    glue.create_database().database_input(before).send().await.expect("create");
    let running = start(&run_config(&emu, name, &queue, 3)).await;
    converges(&emu, name, Duration::from_secs(60)).await;
    let catalog = generate(&CatalogSpec {
        prefix: n.prefix.clone(),
        databases: 1,
        tables_per_database: 6,
        partitions_per_table: 300,
        bucket: n.data_bucket.clone(),
    });
    let burst = crawler_burst(&*GlueCatalog::retrying(glue.clone(), ACCOUNT), &eb, &catalog, 5).await.expect("burst");
    assert!(burst.events_dropped > 0 && burst.events_dropped * 5 >= burst.events_sent);
    converges(&emu, name, Duration::from_secs(90)).await;
    let report = running.stop().await;
    assert!(report.reconcile_passes >= 2, "reconciliation ran: {report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_events_are_dead_lettered_and_the_pipeline_keeps_running() {
    let emu = Emulator::start();
    let name = "malformed";
    seed(&emu, name, 1, 1, 2).await;
    let (eb, sqs, queue) = route(&emu, name).await;
    let running = start(&run_config(&emu, name, &queue, 3600)).await;
    converges(&emu, name, Duration::from_secs(60)).await;
    for body in [
        "{not json",
        r#"{"version":"0","id":"x1","detail-type":"Glue Data Catalog Table State Change","source":"aws.glue","time":"2026-11-22T10:00:00Z","region":"us-east-1","resources":[]}"#,
        r#"{"version":"0","id":"x2","detail-type":"Something Else Entirely","source":"aws.glue","time":"2026-11-22T10:00:00Z","region":"us-east-1","resources":[],"detail":{}}"#,
    ] {
        sqs.send_message().queue_url(&queue).message_body(body).send().await.expect("send");
    }
    // The pipeline still works afterwards.
    let n = Names::new(name);
    let db = format!("{}_after", n.prefix);
    crate::glue(&emu, SOURCE_REGION)
        .await
        .create_database()
        .database_input(DatabaseInput::builder().name(&db).build().expect("db"))
        .send()
        .await
        .expect("create");
    deliver(&eb, &[GlueEvent::database("CreateDatabase", &db, &[])]).await.expect("deliver");
    converges(&emu, name, Duration::from_secs(60)).await;
    let report = running.stop().await;
    assert_eq!(report.events.malformed, 3, "{:?}", report.events);
    let state = std::sync::Arc::new(lakelog::aws::s3::S3Store::new(
        Endpoint::new(SOURCE_REGION, Some(&emu.moto_url)).s3().await,
        &format!("lakelog-{name}-state"),
        "lakelog/",
    ));
    let letters = DeadLetterStore::new(state).list(CAPTURE_EVENTS).await.expect("list");
    assert_eq!(letters.len(), 3);
    assert!(letters.iter().all(|(_, d)| d.body.is_some() && !d.reason.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_burst_loses_nothing() {
    let emu = Emulator::start();
    let name = "burstkill";
    let (eb, _sqs, queue) = route(&emu, name).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pipeline.yaml");
    // Reconciliation is far away: what the killed run had not finished must come from the
    // redelivered SQS messages and the restarted run's snapshot.
    std::fs::write(&path, run_config(&emu, name, &queue, 3600)).expect("write");
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_lakelog"))
            .args(["run", "-c"])
            .arg(&path)
            .env("LAKELOG_LOG", "warn")
            .spawn()
            .expect("spawn")
    };
    let mut first = spawn();
    let n = Names::new(name);
    let catalog = generate(&CatalogSpec {
        prefix: n.prefix.clone(),
        databases: 1,
        tables_per_database: 4,
        partitions_per_table: 400,
        bucket: n.data_bucket.clone(),
    });
    let glue = crate::glue(&emu, SOURCE_REGION).await;
    let half = lakelog::simulate::catalog::GeneratedCatalog {
        databases: catalog.databases.clone(),
        tables: catalog.tables.clone(),
        partitions: catalog.partitions[..catalog.partitions.len() / 2].to_vec(),
    };
    crawler_burst(&*GlueCatalog::retrying(glue.clone(), ACCOUNT), &eb, &half, 0).await.expect("first half");
    first.kill().expect("SIGKILL");
    first.wait().expect("reap");
    crawler_burst(&*GlueCatalog::retrying(glue.clone(), ACCOUNT), &eb, &catalog, 0).await.expect("second half");
    let mut second = spawn();
    converges(&emu, name, Duration::from_secs(90)).await;
    // SIGTERM: graceful.
    let pid = second.id().to_string();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
    let status = second.wait().expect("wait");
    assert!(status.success(), "graceful stop failed: {status:?}");
}

fn gzip(text: &str) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(text.as_bytes()).expect("gzip");
    enc.finish().expect("gzip")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glue_calls_read_from_cloudtrail_log_files_replicate_once() {
    let emu = Emulator::start();
    let name = "trail";
    let catalog = seed(&emu, name, 1, 1, 3).await;
    let s3 = Endpoint::new(SOURCE_REGION, Some(&emu.moto_url)).s3().await;
    let bucket = "lakelog-trail-logs";
    s3.create_bucket().bucket(bucket).send().await.expect("trail bucket");
    // No events and no reconciliation: only the snapshot and the trail can bring changes.
    let yaml = config_yaml(&emu, name, "", "").replace(
        "  partition_segments: 1\n",
        &format!("  partition_segments: 1\n  reconcile_interval_seconds: 3600\n  cloudtrail: {{ bucket: {bucket}, poll_seconds: 1 }}\n"),
    );
    let running = start(&yaml).await;
    converges(&emu, name, Duration::from_secs(60)).await;

    let db = catalog.databases[0].name.clone();
    let n = Names::new(name);
    let glue = crate::glue(&emu, SOURCE_REGION).await;
    glue.create_table()
        .database_name(&db)
        .table_input(table_input("from_trail", "a", &format!("s3://{}/t/", n.data_bucket)))
        .send()
        .await
        .expect("create");
    let gone = catalog.partitions[0].clone();
    glue.delete_partition()
        .database_name(&gone.database_name)
        .table_name(&gone.table_name)
        .set_partition_values(Some(gone.values.clone()))
        .send()
        .await
        .expect("delete partition");
    let now = time::OffsetDateTime::now_utc();
    let folder = format!(
        "AWSLogs/{ACCOUNT}/CloudTrail/{SOURCE_REGION}/{:04}/{:02}/{:02}/",
        now.year(),
        u8::from(now.month()),
        now.day()
    );
    let create = serde_json::json!({"eventVersion": "1.08", "eventSource": "glue.amazonaws.com", "eventName": "CreateTable", "eventID": "ct-1",
        "eventTime": "2026-11-22T10:00:00Z", "awsRegion": SOURCE_REGION,
        "requestParameters": {"databaseName": db, "tableInput": {"name": "from_trail"}}, "responseElements": null});
    let delete = serde_json::json!({"eventVersion": "1.08", "eventSource": "glue.amazonaws.com", "eventName": "DeletePartition", "eventID": "ct-2",
        "eventTime": "2026-11-22T10:00:01Z", "awsRegion": SOURCE_REGION,
        "requestParameters": {"databaseName": gone.database_name, "tableName": gone.table_name, "partitionValues": gone.values}});
    let read = serde_json::json!({"eventSource": "glue.amazonaws.com", "eventName": "GetTable", "eventID": "ct-3", "requestParameters": {"databaseName": db, "name": "x"}});
    let files = [
        ("a", serde_json::json!({"Records": [create, read]})),
        ("b", serde_json::json!({"Records": [delete, create]})),
    ];
    for (suffix, body) in files {
        let key = format!("{folder}{ACCOUNT}_CloudTrail_{SOURCE_REGION}_20261122T1000Z_{suffix}.json.gz");
        s3.put_object().bucket(bucket).key(key).body(gzip(&body.to_string()).into()).send().await.expect("log file");
    }
    converges(&emu, name, Duration::from_secs(60)).await;
    let report = running.stop().await;
    assert_eq!(report.cloudtrail.files, 2, "{:?}", report.cloudtrail);
    assert_eq!(report.cloudtrail.events, 2, "{:?}", report.cloudtrail);
    assert_eq!(report.cloudtrail.duplicates, 1, "{:?}", report.cloudtrail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_while_the_initial_snapshot_runs_are_not_lost_or_overwritten() {
    let emu = Emulator::start();
    let name = "gapfree";
    // Large enough that the snapshot takes a while on the emulator.
    let catalog = seed(&emu, name, 1, 8, 400).await;
    let (eb, _sqs, queue) = route(&emu, name).await;
    let running = start(&run_config(&emu, name, &queue, 3600)).await;
    // Immediately: change a table and drop partitions, with their events, while the snapshot reads.
    let glue = crate::glue(&emu, SOURCE_REGION).await;
    let table = catalog.tables.iter().find(|t| !t.partition_keys.is_empty()).expect("partitioned table");
    let mut input = lakelog::aws::glue_convert::table_input(table).expect("input");
    input.description = Some("changed during the snapshot".into());
    glue.update_table().database_name(&table.database_name).table_input(input).send().await.expect("update");
    let mut events = vec![GlueEvent::table("UpdateTable", &table.database_name, &table.name, &[])];
    let doomed: Vec<_> = catalog.partitions.iter().filter(|p| p.table_name == table.name).take(5).collect();
    for p in &doomed {
        glue.delete_partition()
            .database_name(&p.database_name)
            .table_name(&p.table_name)
            .set_partition_values(Some(p.values.clone()))
            .send()
            .await
            .expect("delete");
    }
    let values: Vec<Vec<String>> = doomed.iter().map(|p| p.values.clone()).collect();
    events.push(GlueEvent::table("BatchDeletePartition", &table.database_name, &table.name, &values));
    deliver(&eb, &events).await.expect("deliver");
    converges(&emu, name, Duration::from_secs(90)).await;
    let report = running.stop().await;
    assert_eq!(report.reconcile_passes, 1, "only the snapshot: no later pass repaired anything");
}
