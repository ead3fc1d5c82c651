//! Operating lease mode, through the binary on the emulator (moto serves DynamoDB): a running
//! worker's `/metrics` renders the lease metrics the Grafana dashboard and alert rules query,
//! and `lakelog status` lists every lease (owner, checkpoint, counter, age and its basis,
//! parents) in text and JSON, takes the targets' checkpoints from the lease rows, and in
//! single-process mode says so and shows each group's lock.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::emulator::Emulator;
use crate::lease::{http_get, leases_config, Worker};
use crate::ops::{metric_names, samples};
use crate::run::{route, run_config};

fn status(config: &Path, json: bool) -> String {
    let mut args = vec!["status"];
    if json {
        args.extend(["--output", "json"]);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_lakelog")).args(&args).arg("-c").arg(config).output().expect("status");
    assert!(out.status.success(), "lakelog status failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_worker_renders_the_lease_metrics_and_status_lists_each_lease() {
    let emu = Emulator::start();
    let name = "lease-status";
    crate::seed(&emu, name, 1, 2, 5).await;
    let (_eb, _sqs, queue) = route(&emu, name).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pipeline.yaml");
    let config = leases_config(&emu, name, &queue).replace("mode: leases,", "mode: leases, worker_id: ops-w1,");
    assert!(config.contains("worker_id: ops-w1"), "{config}");
    std::fs::write(&path, &config).expect("write config");

    let mut worker = Worker::spawn(&path, "info");
    let addr = worker.wait_started();
    // Alone, the worker takes all four leases of each group.
    let deadline = Instant::now() + Duration::from_secs(120);
    let metrics = loop {
        let body = http_get(&addr, "/metrics");
        let held = |group: &str| {
            body.lines()
                .filter(|l| l.starts_with("lakelog_leases_held{") && l.contains(&format!("group=\"{group}\"")))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
        };
        if held("dr") == 4.0 && held("archive.segments") == 4.0 {
            break body;
        }
        assert!(Instant::now() < deadline, "the worker never held every lease:\n{body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // Takeovers and renewal failures exist from the start (at 0: nobody to take from).
    assert_eq!(samples(&metrics, lakelog::metrics::LEASE_TAKEOVERS).len(), 2, "{metrics}");
    assert!(!samples(&metrics, lakelog::metrics::LEASE_RENEW_FAILURES).is_empty(), "{metrics}");
    let rendered = metric_names(&metrics);
    let grafana = Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana");
    for file in ["lakelog-dashboard.json", "alerts.yaml"] {
        let queried = metric_names(&std::fs::read_to_string(grafana.join(file)).expect("grafana file"));
        let lease: BTreeSet<&String> = queried.iter().filter(|n| n.contains("lease")).collect();
        assert_eq!(lease.len(), 3, "grafana/{file} queries the three lease metrics: {lease:?}");
        for n in lease {
            assert!(rendered.contains(n), "grafana/{file} queries {n}, which the worker does not render");
        }
    }

    // A row as other KCL tooling writes it (no lakelog stamp), for a child of shard 0 that is
    // not leasable until shard 0 ends.
    let ep = lakelog::aws::client::Endpoint::new(crate::SOURCE_REGION, Some(&emu.moto_url));
    let table = format!("lakelog-lakelog-{name}-leases");
    let s = |v: &str| aws_sdk_dynamodb::types::AttributeValue::S(v.to_string());
    ep.dynamodb()
        .await
        .put_item()
        .table_name(&table)
        .item("leaseKey", s("dr:shardId-000000000009"))
        .item("leaseCounter", aws_sdk_dynamodb::types::AttributeValue::N("3".into()))
        .item("checkpoint", s("TRIM_HORIZON"))
        .item("parentShardId", aws_sdk_dynamodb::types::AttributeValue::Ss(vec!["shardId-000000000000".into()]))
        .send()
        .await
        .expect("put a KCL row");
    // Some checkpoints in the rows first (the seeded catalog's snapshot).
    crate::run::converges(&emu, name, Duration::from_secs(180)).await;

    let report: Value = serde_json::from_str(&status(&path, true)).expect("status JSON");
    let c = &report["coordination"];
    assert_eq!(c["mode"], "leases", "{c}");
    assert_eq!(c["table"], format!("dynamodb://{table}"));
    let leases = c["leases"].as_array().expect("leases");
    let dr: Vec<&Value> = leases.iter().filter(|l| l["group"] == "dr").collect();
    assert_eq!(dr.len(), 5, "four shards and the KCL row: {c}");
    assert_eq!(leases.iter().filter(|l| l["group"] == "archive.segments").count(), 4, "{c}");
    for l in leases.iter().filter(|l| l["shard"] != "shardId-000000000009") {
        assert_eq!(l["owner"], "ops-w1", "{l}");
        assert_eq!(l["key"], format!("{}:{}", l["group"].as_str().unwrap(), l["shard"].as_str().unwrap()));
        assert!(l["counter"].as_u64() >= Some(1), "taken and renewed: {l}");
        assert_eq!(l["age_basis"], "row", "lakelog stamps its rows: {l}");
        assert!(l["age_seconds"].as_f64().is_some_and(|a| a >= 0.0), "{l}");
        assert_eq!(l["parents"], serde_json::json!([]), "{l}");
    }
    let kcl = dr.iter().find(|l| l["shard"] == "shardId-000000000009").expect("the KCL row");
    assert_eq!(kcl["owner"], Value::Null, "{kcl}");
    assert_eq!(kcl["counter"], 3);
    assert_eq!(kcl["checkpoint"], "TRIM_HORIZON");
    assert_eq!(kcl["parents"], serde_json::json!(["shardId-000000000000"]));
    assert_eq!(kcl["age_basis"], "at_least", "an unstamped row nobody renews: {kcl}");
    assert!(kcl["age_seconds"].as_f64() >= Some(2.0), "watched for a renewal interval (2 s): {kcl}");

    // The target's shard checkpoints are the lease rows' (not the state bucket's).
    let shards = report["targets"][0]["shards"].as_array().expect("shards");
    assert_eq!(shards.len(), 4);
    let mut sequenced = 0;
    for sh in shards {
        let lease = dr.iter().find(|l| l["shard"] == sh["shard"]).expect("a lease per shard");
        match lease["checkpoint"].as_str() {
            Some("TRIM_HORIZON") => assert_eq!(sh["checkpoint"], Value::Null, "{sh}"),
            Some(seq) => {
                sequenced += 1;
                assert_eq!(sh["checkpoint"], seq, "{sh}");
            }
            None => panic!("no checkpoint in {lease}"),
        }
    }
    assert!(sequenced > 0, "the snapshot moved some checkpoint: {shards:?}");

    let text = status(&path, false);
    assert!(text.contains(&format!("coordination: leases in dynamodb://{table}; 9 leases")), "{text}");
    let line = |key: &str| text.lines().find(|l| l.contains(key)).unwrap_or_else(|| panic!("{key} missing:\n{text}"));
    let first = line("dr:shardId-000000000000 ");
    assert!(first.contains("ops-w1") && first.contains("s (row)"), "{first}");
    let child = line("dr:shardId-000000000009");
    assert!(child.contains(">") && child.contains("(watched)") && child.contains("shardId-000000000000"), "{child}");

    worker.terminate(Duration::from_secs(60));

    // The same stream in single-process mode: status says so and shows each group's lock.
    std::fs::write(&path, run_config(&emu, name, &queue, 3600).replace("  shards: 2\n", "  shards: 4\n"))
        .expect("write single config");
    let report: Value = serde_json::from_str(&status(&path, true)).expect("status JSON");
    let c = &report["coordination"];
    assert_eq!(c["mode"], "single", "{c}");
    let locks: Vec<(&str, &str)> = c["locks"]
        .as_array()
        .expect("locks")
        .iter()
        .map(|l| (l["group"].as_str().unwrap(), l["state"].as_str().unwrap()))
        .collect();
    assert_eq!(locks, [("dr", "free"), ("archive.segments", "free")], "never taken in single mode: {c}");
    let text = status(&path, false);
    assert!(text.contains("coordination: single process") && text.contains("lock dr: free"), "{text}");
}
