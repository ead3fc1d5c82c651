//! Whole tables without holding them: `lakelog diff` of a table of several pages of partitions (moto pages at 1,000, as AWS does) reports what
//! a whole-object comparison reports (counts, the first named drifts, a different partition's
//! field path); an event that names a table without its partitions re-reads the whole table (more
//! partitions than one page) and the target converges from that alone.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use aws_sdk_glue::types::{PartitionInput, PartitionValueList};
use lakelog::aws::glue_convert::partition_input;
use lakelog::model::Partition;
use lakelog::simulate::catalog::GeneratedCatalog;
use lakelog::simulate::events::GlueEvent;
use serde_json::Value;

use crate::emulator::Emulator;
use crate::run::{converges, route, run_config, start};
use crate::{config_yaml, seed, Names, ACCOUNT, SOURCE_REGION, TARGET_REGION};

/// `lakelog --output json diff --target dr [extra]`: exit code and report.
fn diff(config: &Path, extra: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_lakelog"))
        .arg("-c")
        .arg(config)
        .args(["--output", "json", "diff", "--target", "dr"])
        .args(extra)
        .env("LAKELOG_LOG", "warn")
        .output()
        .expect("run lakelog");
    let text = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {text}\nstderr: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), report)
}

fn objects(report: &Value, list: &str) -> Vec<String> {
    report[list]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d["object"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// The generated catalog as the target holds it after a copy: locations rewritten to the
/// `-dr` bucket (independently of lakelog's transform: through the JSON text).
fn as_copied(catalog: &GeneratedCatalog, bucket: &str) -> GeneratedCatalog {
    let json = serde_json::to_string(&(&catalog.databases, &catalog.tables, &catalog.partitions)).expect("json");
    let json = json.replace(&format!("\"s3://{bucket}/"), &format!("\"s3://{bucket}-dr/"));
    let (databases, tables, partitions) = serde_json::from_str(&json).expect("json back");
    GeneratedCatalog { databases, tables, partitions }
}

fn values(v: &[String]) -> PartitionValueList {
    PartitionValueList::builder().set_values(Some(v.to_vec())).build().expect("values")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diff_of_several_pages_of_partitions_counts_and_names_the_drift() {
    let emu = Emulator::start();
    let name = "diffmem";
    let n = Names::new(name);
    let catalog = seed(&emu, name, 1, 1, 4_500).await;
    let table = catalog.tables.iter().find(|t| !t.partition_keys.is_empty()).expect("a partitioned table").clone();
    let parts: Vec<_> = catalog.partitions.iter().filter(|p| p.table_name == table.name).cloned().collect();
    assert_eq!(parts.len(), 4_500);
    let (db, t) = (table.database_name.clone(), table.name.clone());
    let target = crate::glue(&emu, TARGET_REGION).await;
    let copy = as_copied(&catalog, &n.data_bucket);
    lakelog::simulate::seed::write_catalog(&*crate::catalog(&emu, TARGET_REGION).await, &copy)
        .await
        .expect("writing the copy");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pipeline.yaml");
    std::fs::write(&path, config_yaml(&emu, name, "", "")).expect("write config");
    let (code, report) = diff(&path, &[]);
    assert_eq!(code, 0, "the copy is in sync: {report}");
    assert_eq!(report["counts"]["partition"]["in_sync"], 4_500, "{report}");

    // Drift: 3 partitions dropped from the target, 2 added to it, 2 with another location.
    let object = |p: &Partition| format!("{db}.{t}/{}", p.values.join("/"));
    let copied: Vec<_> = copy.partitions.iter().filter(|p| p.table_name == table.name).collect();
    let (dropped, changed) = (&parts[100..103], [copied[1_700], copied[4_499]]);
    target
        .batch_delete_partition()
        .database_name(&db)
        .table_name(&t)
        .set_partitions_to_delete(Some(dropped.iter().map(|p| values(&p.values)).collect()))
        .send()
        .await
        .expect("drop three");
    let extra_values: Vec<Vec<String>> =
        ["x1", "x2"].iter().map(|x| parts[0].values.iter().map(|v| format!("{v}{x}")).collect()).collect();
    for v in &extra_values {
        let input = PartitionInput::builder().set_values(Some(v.clone())).build();
        target.create_partition().database_name(&db).table_name(&t).partition_input(input).send().await.expect("extra");
    }
    for p in changed {
        let mut moved = p.clone();
        if let Some(sd) = moved.storage_descriptor.as_mut() {
            sd.location = Some(format!("s3://elsewhere/{}", p.values.join("/")));
        }
        let input = partition_input(&moved).expect("input");
        target
            .update_partition()
            .database_name(&db)
            .table_name(&t)
            .set_partition_value_list(Some(p.values.clone()))
            .partition_input(input)
            .send()
            .await
            .expect("move two");
    }

    let (code, report) = diff(&path, &[]);
    assert_eq!(code, 3, "drift: {report}");
    let counts = &report["counts"]["partition"];
    assert_eq!(
        (&counts["in_sync"], &counts["missing"], &counts["extra"], &counts["different"]),
        (&Value::from(4_500 - 5), &Value::from(3), &Value::from(2), &Value::from(2)),
        "{report}"
    );
    let mut want_missing: Vec<String> = dropped.iter().map(object).collect();
    want_missing.sort();
    assert_eq!(objects(&report, "missing"), want_missing);
    let mut want_extra: Vec<String> = extra_values.iter().map(|v| format!("{db}.{t}/{}", v.join("/"))).collect();
    want_extra.sort();
    assert_eq!(objects(&report, "extra"), want_extra);
    let mut want_different: Vec<String> = changed.iter().map(|p| object(p)).collect();
    want_different.sort();
    assert_eq!(objects(&report, "different"), want_different);
    for d in report["different"].as_array().expect("different") {
        assert_eq!(d["fields"], serde_json::json!(["storage_descriptor.location"]), "{d}");
    }

    // A limit lists the first of each sort; the counts stay complete.
    let (code, report) = diff(&path, &["--limit", "1"]);
    assert_eq!(code, 3);
    assert_eq!(report["counts"]["partition"]["missing"], 3, "{report}");
    assert_eq!(objects(&report, "missing"), want_missing[..1].to_vec());
    assert_eq!(objects(&report, "different"), want_different[..1].to_vec());
    assert_eq!(report["different"][0]["fields"], serde_json::json!(["storage_descriptor.location"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_table_reread_of_more_than_a_page_of_partitions_converges() {
    let emu = Emulator::start();
    let name = "rereadbig";
    let catalog = seed(&emu, name, 1, 1, 1_200).await;
    let table = catalog.tables.iter().find(|t| !t.partition_keys.is_empty()).expect("a partitioned table").clone();
    let (db, t) = (table.database_name.clone(), table.name.clone());
    let (_eb, sqs, queue) = route(&emu, name).await;
    // Reconciliation is an hour away: after the snapshot, only the event can make this converge.
    let running = start(&run_config(&emu, name, &queue, 3600)).await;
    converges(&emu, name, Duration::from_secs(120)).await;

    // 1,300 more partitions (2,500 in all, three pages), and one event that names the table
    // without them: a whole-table re-read.
    let glue = crate::glue(&emu, SOURCE_REGION).await;
    let keys = table.partition_keys.len();
    let added: Vec<Vec<String>> = (0..1_300).map(|i| (0..keys).map(|k| format!("added{i}-{k}")).collect()).collect();
    for chunk in added.chunks(100) {
        let inputs = chunk
            .iter()
            .map(|v| {
                let p = Partition {
                    database_name: db.clone(),
                    table_name: t.clone(),
                    values: v.clone(),
                    storage_descriptor: table.storage_descriptor.clone(),
                    ..Default::default()
                };
                partition_input(&p).expect("input")
            })
            .collect();
        let out = glue
            .batch_create_partition()
            .database_name(&db)
            .table_name(&t)
            .set_partition_input_list(Some(inputs))
            .send()
            .await
            .expect("add partitions");
        assert!(out.errors().is_empty(), "{:?}", out.errors());
    }
    let event = GlueEvent::table("BatchCreatePartition", &db, &t, &[]);
    let body = serde_json::json!({
        "version": "0", "id": "ev-whole-table", "detail-type": event.detail_type, "source": "aws.glue",
        "account": ACCOUNT, "time": "2026-12-01T10:00:00Z", "region": SOURCE_REGION, "resources": [],
        "detail": event.detail,
    });
    sqs.send_message().queue_url(&queue).message_body(body.to_string()).send().await.expect("send");

    converges(&emu, name, Duration::from_secs(120)).await;
    let report = running.stop().await;
    assert_eq!(report.events.messages, 1, "{:?}", report.events);
    assert!(report.events.records > 2_500, "the table and all of its partitions: {:?}", report.events);
}
