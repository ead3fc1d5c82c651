//! Operating lakelog, through the binary against the emulator: the Prometheus endpoint of
//! `lakelog run` (and that it renders every metric `grafana/` queries), secrets kept out of logs,
//! `lakelog status`, `lakelog diff` and `lakelog dlq list|replay|drop`.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_glue::types::{StorageDescriptor, TableInput};
use lakelog::aws::glue::GlueCatalog;
use lakelog::connect::Pipeline;
use lakelog::model::{now_millis, CatalogObject, Cause, CauseKind, ChangeRecord, Origin};
use lakelog::simulate::catalog::{generate, CatalogSpec};
use lakelog::simulate::events::crawler_burst;
use lakelog::state::deadletter::{DeadLetter, CAPTURE_EVENTS};
use serde_json::Value;

use crate::emulator::Emulator;
use crate::run::{route, run_config};
use crate::{config, config_yaml, seed, Names, ACCOUNT, SOURCE_REGION, TARGET_REGION};

fn lakelog(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lakelog"))
        .arg("-c")
        .arg(config)
        .args(args)
        .env("LAKELOG_LOG", "warn")
        .output()
        .expect("run lakelog")
}

/// Runs a command with `--output json`; returns its exit code and parsed output.
fn json(config: &Path, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let out = lakelog(config, &all);
    let text = String::from_utf8_lossy(&out.stdout);
    let value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!("{args:?}: not JSON ({e}): {text}\nstderr: {}", String::from_utf8_lossy(&out.stderr))
    });
    (out.status.code().unwrap_or(-1), value)
}

/// A minimal HTTP GET over a fresh connection: (status, body).
fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the metrics listener");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("response");
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// Sample values of `name` in Prometheus text (one per label set).
pub(crate) fn samples(metrics: &str, name: &str) -> Vec<f64> {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect()
}

/// Every `lakelog_*` metric name a text (a PromQL expression, a dashboard) mentions, with
/// histogram suffixes folded onto their histogram.
pub(crate) fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("lakelog_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_lowercase() || bytes[end].is_ascii_digit() || bytes[end] == b'_')
        {
            end += 1;
        }
        let preceded = start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        if !preceded {
            let name = &text[start..end];
            let base = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
            names.insert(if base.ends_with("_seconds") && base != name { base } else { name }.to_string());
        }
        i = end;
    }
    names
}

/// `lakelog run` as a child process, with its JSON log lines collected.
struct RunProcess {
    child: Child,
    logs: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl RunProcess {
    /// Waits for a log line containing `needle`.
    fn wait_for_log(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(line) = self.logs.recv_timeout(Duration::from_millis(200)) {
                self.seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
        }
        panic!("no log line with {needle:?} within {limit:?}; saw:\n{}", self.seen.join("\n"));
    }

    fn stop(mut self) -> Vec<String> {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill -TERM");
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "graceful stop failed: {status:?}");
        self.seen.extend(self.logs.try_iter());
        self.seen
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_lag_returning_to_zero_and_render_every_name_grafana_queries() {
    let emu = Emulator::start();
    let name = "metrics";
    seed(&emu, name, 1, 2, 10).await;
    let (eb, sqs, queue) = route(&emu, name).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pipeline.yaml");
    std::fs::write(&path, run_config(&emu, name, &queue, 3600)).expect("write config");

    // Credentials that must never reach a log line, with the SDK's credential and signing code
    // logging at trace level.
    let (secret, token) = ("lakelogSECRETkey0123456789abcdefXYZ", "lakelogSESSIONtoken9876543210zyxwv");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lakelog"))
        .args(["--log-json", "run", "-c"])
        .arg(&path)
        .env("LAKELOG_LOG", "info,aws_config=trace,aws_sigv4=trace,aws_smithy_runtime=debug,aws_credential_types=trace")
        .env("AWS_ACCESS_KEY_ID", "AKIDLAKELOGTEST")
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_SESSION_TOKEN", token)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn lakelog run");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut run = RunProcess { child, logs: rx, seen: Vec::new() };
    let line = run.wait_for_log("serving /metrics", Duration::from_secs(30));
    let log: Value = serde_json::from_str(&line).expect("--log-json writes JSON lines");
    let addr = log["fields"]["address"].as_str().expect("address field").to_string();
    assert!(addr.starts_with("127.0.0.1:"), "loopback by default: {addr}");

    assert_eq!(http_get(&addr, "/healthz").0, 200);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = http_get(&addr, "/readyz");
        if status == 200 {
            assert!(body.contains("target dr: ready"), "{body}");
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(Instant::now() < deadline, "never ready: {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(http_get(&addr, "/nope").0, 404);

    // A crawler-like burst through EventBridge → SQS.
    let n = Names::new(name);
    let burst = generate(&CatalogSpec {
        prefix: format!("{}_burst", n.prefix),
        databases: 1,
        tables_per_database: 3,
        partitions_per_table: 50,
        bucket: n.data_bucket.clone(),
    });
    let glue = crate::glue(&emu, SOURCE_REGION).await;
    crawler_burst(&*GlueCatalog::retrying(glue.clone(), ACCOUNT), &eb, &burst, 0).await.expect("burst");
    let expected = (burst.databases.len() + burst.tables.len() + burst.partitions.len()) as f64;

    // Wait until the burst is applied (the target equals the source) and every shard is caught
    // up: lag back to zero.
    crate::run::converges(&emu, name, Duration::from_secs(120)).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let metrics = loop {
        let (status, body) = http_get(&addr, "/metrics");
        assert_eq!(status, 200);
        let event_records: f64 = body
            .lines()
            .filter(|l| l.starts_with("lakelog_records_captured_total{") && l.contains("cause=\"event\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        let lag = samples(&body, "lakelog_replication_lag_seconds");
        let pending = samples(&body, "lakelog_oldest_unapplied_age_seconds");
        let behind = samples(&body, "lakelog_kinesis_behind_latest_seconds");
        let idle = !lag.is_empty() && lag.iter().chain(&pending).chain(&behind).all(|v| *v == 0.0);
        // (Not "applied ≥ published": records of one key in one batch are applied once, as the
        // newest, and capture may publish a parent again for each of its children's events.)
        let applied: f64 = samples(&body, "lakelog_records_applied_total").iter().sum();
        if event_records >= expected && applied >= expected && idle {
            break body;
        }
        assert!(Instant::now() < deadline, "burst not applied / lag not back to 0:\n{body}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let applied: f64 = samples(&metrics, "lakelog_records_applied_total").iter().sum();
    assert!(applied >= expected, "applied {applied} < {expected}");
    assert_eq!(samples(&metrics, "lakelog_build_info"), vec![1.0]);

    // Every metric lakelog defines is rendered, and so is every one grafana/ queries.
    let rendered: BTreeSet<String> = metric_names(&metrics);
    for name in lakelog::metrics::ALL {
        assert!(rendered.contains(name), "{name} missing from /metrics:\n{metrics}");
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana");
    let mut queried = BTreeSet::new();
    for file in ["lakelog-dashboard.json", "alerts.yaml"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("grafana/{file}: {e}"));
        let names = metric_names(&text);
        assert!(!names.is_empty(), "grafana/{file} queries no lakelog metric");
        queried.extend(names);
    }
    // The lease metrics only a lease-mode worker renders are checked by leaseops.rs.
    let lease_only = |n: &String| lakelog::metrics::LEASE_ONLY.contains(&n.as_str());
    let missing: Vec<&String> = queried.iter().filter(|n| !rendered.contains(*n) && !lease_only(n)).collect();
    assert!(missing.is_empty(), "grafana/ queries metrics a running pipeline does not render: {missing:?}");

    // `lakelog status` from another process agrees: nothing waiting anywhere.
    let (code, status) = json(&path, &["status"]);
    assert_eq!(code, 0, "{status}");
    assert_eq!(status["events"]["waiting"], 0, "{status}");
    assert_eq!(status["targets"][0]["backlog_records"], 0, "{status}");
    assert_eq!(status["targets"][0]["lag_seconds"], 0.0, "{status}");

    let logs = run.stop();
    assert!(logs.iter().any(|l| l.contains("applied changes")), "run logs its batches");
    // With lakelog stopped, an event waits in the queue and status says so.
    sqs.send_message().queue_url(&queue).message_body("{}").send().await.expect("send");
    // (A long poll the stopped run had sent may still take it: then it shows as in flight.)
    let (_, status) = json(&path, &["status"]);
    let queued =
        status["events"]["waiting"].as_u64().unwrap_or(0) + status["events"]["in_flight"].as_u64().unwrap_or(0);
    assert_eq!(queued, 1, "{status}");
    for line in &logs {
        assert!(serde_json::from_str::<Value>(line).is_ok(), "not a JSON log line: {line}");
        assert!(!line.contains(secret) && !line.contains(token), "a credential reached the log: {line}");
    }
    assert!(logs.len() > 20, "the trace-level credential logging ran ({} lines)", logs.len());
}

#[test]
fn metric_names_are_extracted_from_promql() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (le) (rate(lakelog_apply_batch_duration_seconds_bucket[5m]))) > on() max(lakelog_replication_lag_seconds{target="x"}) + notlakelog_x"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        vec!["lakelog_apply_batch_duration_seconds".to_string(), "lakelog_replication_lag_seconds".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_diff_and_dlq_replay_work_against_the_emulator() {
    let emu = Emulator::start();
    let name = "opscli";
    let catalog = seed(&emu, name, 1, 2, 5).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pipeline.yaml");
    let yaml = config_yaml(&emu, name, "", "  dependency_wait_seconds: 1\n");
    std::fs::write(&path, &yaml).expect("write config");
    let out = lakelog(&path, &["sync"]);
    assert!(out.status.success(), "sync: {}", String::from_utf8_lossy(&out.stderr));

    // status: caught up, every record accounted for in the checkpoints.
    let (code, status) = json(&path, &["status"]);
    assert_eq!(code, 0, "{status}");
    let target = &status["targets"][0];
    assert_eq!(target["name"], "dr");
    assert_eq!(target["lag_seconds"], 0.0);
    assert_eq!(target["backlog_records"], 0);
    assert_eq!(target["backlog_complete"], true);
    let applied: u64 =
        target["shards"].as_array().expect("shards").iter().map(|s| s["applied_records"].as_u64().unwrap_or(0)).sum();
    let objects = (catalog.databases.len() + catalog.tables.len() + catalog.partitions.len()) as u64;
    assert_eq!(applied, objects, "{status}");

    // diff: in sync.
    let (code, diff) = json(&path, &["diff", "--target", "dr"]);
    assert_eq!(code, 0, "{diff}");
    assert_eq!(diff["counts"]["partition"]["in_sync"], catalog.partitions.len() as u64);

    // A backlog: records in the change log that no consumer has applied, captured a minute ago.
    let cfg = config(&emu, name, "", "");
    let pipeline = Pipeline::connect(cfg).await.expect("connect");
    let origin = Origin { account: ACCOUNT.into(), region: SOURCE_REGION.into(), catalog_id: ACCOUNT.into() };
    let minute_ago = now_millis() - 60_000;
    let cause = Cause { kind: CauseKind::Event, event_id: None };
    let pending: Vec<ChangeRecord> = catalog.partitions[..3]
        .iter()
        .map(|p| ChangeRecord::upsert(CatalogObject::Partition(p.clone()), &origin, cause.clone(), minute_ago))
        .collect();
    lakelog::stream::producer::Producer::new(pipeline.log.clone(), 1_000_000)
        .publish_batch(&pending)
        .await
        .expect("publish");
    let (code, status) = json(&path, &["status", "--max-lag", "30"]);
    assert_eq!(code, 3, "lag above --max-lag exits 3: {status}");
    let target = &status["targets"][0];
    assert_eq!(target["backlog_records"], 3, "{status}");
    assert!(target["lag_seconds"].as_f64().unwrap_or(0.0) >= 60.0, "{status}");
    let text = lakelog(&path, &["status"]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("backlog 3 records"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );

    // Drift made behind lakelog's back: a changed location, a lost partition, an extra table.
    let target_glue = crate::glue(&emu, TARGET_REGION).await;
    let changed = &catalog.partitions[0];
    let (db, table) = (changed.database_name.clone(), changed.table_name.clone());
    let t = target_glue.get_table().database_name(&db).name(&table).send().await.expect("get").table.expect("table");
    let sd = t.storage_descriptor.clone().expect("sd");
    let input = TableInput::builder()
        .name(&table)
        .set_partition_keys(t.partition_keys.clone())
        .set_parameters(t.parameters.clone())
        .set_table_type(t.table_type.clone())
        .storage_descriptor(
            StorageDescriptor::builder().set_columns(sd.columns.clone()).location("s3://somewhere-else/x").build(),
        )
        .build()
        .expect("input");
    target_glue.update_table().database_name(&db).table_input(input).send().await.expect("update");
    target_glue
        .delete_partition()
        .database_name(&db)
        .table_name(&table)
        .set_partition_values(Some(changed.values.clone()))
        .send()
        .await
        .expect("delete partition");
    target_glue
        .create_table()
        .database_name(&db)
        .table_input(TableInput::builder().name("only_in_target").build().expect("input"))
        .send()
        .await
        .expect("extra table");
    let (code, diff) = json(&path, &["diff", "--target", "dr"]);
    assert_eq!(code, 3, "drift exits 3: {diff}");
    let objects = |sort: &str| -> Vec<String> {
        diff[sort].as_array().expect(sort).iter().map(|d| d["object"].as_str().unwrap_or("").to_string()).collect()
    };
    assert_eq!(objects("missing"), vec![format!("{db}.{table}/{}", changed.values.join("/"))]);
    assert_eq!(objects("extra"), vec![format!("{db}.only_in_target")]);
    assert_eq!(objects("different"), vec![format!("{db}.{table}")]);
    let fields: Vec<&str> =
        diff["different"][0]["fields"].as_array().expect("fields").iter().filter_map(|f| f.as_str()).collect();
    assert!(fields.contains(&"storage_descriptor.location"), "{fields:?}");
    let out = lakelog(&path, &["diff", "--target", "nope"]);
    assert_eq!(out.status.code(), Some(2), "an unknown target is a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no target named `nope`"));

    // Dead letters made by the real applier: partitions of a table the target does not have.
    let other = catalog.partitions.iter().find(|p| p.table_name != table).expect("a second partitioned table");
    target_glue.delete_table().database_name(&other.database_name).name(&other.table_name).send().await.expect("drop");
    let handle = &pipeline.targets[0];
    let applier = pipeline.applier(handle, false).expect("applier");
    let record = ChangeRecord::upsert(CatalogObject::Partition(other.clone()), &origin, cause.clone(), now_millis());
    let stats = applier.apply(vec![record]).await.expect("apply");
    assert_eq!(stats.total().dead_lettered, 1);
    pipeline
        .dead_letters
        .park(&DeadLetter::malformed_event("m-1", "{not json", "not JSON".into()))
        .await
        .expect("park an event");

    let (code, listed) = json(&path, &["dlq", "list"]);
    assert_eq!(code, 0);
    let listed = listed.as_array().expect("entries").clone();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let parked = listed.iter().find(|e| e["store"] == "dr").expect("the target's entry");
    assert!(parked["reason"].as_str().unwrap_or("").contains(&other.table_name), "{parked}");

    // Replay while the table is still missing: fails again, stays parked (with a fresh reason).
    let (code, replay) = json(&path, &["dlq", "replay", "--target", "dr"]);
    assert_eq!(code, 3, "{replay}");
    assert_eq!(replay["stats"]["partition"]["dead_lettered"], 1, "{replay}");
    let (_, listed) = json(&path, &["dlq", "list", "--target", "dr"]);
    assert_eq!(listed.as_array().map(|a| a.len()), Some(1));

    // Once the table is back, a replay applies the partition's current source state and clears it.
    let source_table = catalog.tables.iter().find(|t| t.name == other.table_name).expect("table").clone();
    let table_record = ChangeRecord::upsert(CatalogObject::Table(source_table), &origin, cause.clone(), now_millis());
    applier.apply(vec![table_record]).await.expect("restore the table");
    let (code, replay) = json(&path, &["dlq", "replay", "--target", "dr"]);
    assert_eq!(code, 0, "{replay}");
    assert_eq!(replay["replayed"], 1);
    assert_eq!(replay["stats"]["partition"]["created"], 1, "{replay}");
    let (_, listed) = json(&path, &["dlq", "list", "--target", "dr"]);
    assert_eq!(listed.as_array().map(|a| a.len()), Some(0));
    let found = target_glue
        .get_partition()
        .database_name(&other.database_name)
        .table_name(&other.table_name)
        .set_partition_values(Some(other.values.clone()))
        .send()
        .await
        .expect("the replayed partition exists in the target");
    let location = found.partition.and_then(|p| p.storage_descriptor).and_then(|sd| sd.location).unwrap_or_default();
    assert!(location.starts_with(&format!("s3://{}-dr/", Names::new(name).data_bucket)), "rewritten: {location}");

    // The unparseable event cannot be replayed; it is dropped by id after inspection.
    let event = listed_event_id(&path);
    let out = lakelog(&path, &["dlq", "drop", "--target", CAPTURE_EVENTS, "--id", &event]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, listed) = json(&path, &["dlq", "list"]);
    assert_eq!(listed.as_array().map(|a| a.len()), Some(0), "{listed}");
    let out = lakelog(&path, &["dlq", "drop", "--target", CAPTURE_EVENTS, "--id", "no-such-id"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no dead letter with id no-such-id"));
}

fn listed_event_id(path: &Path) -> String {
    let (_, listed) = json(path, &["dlq", "list"]);
    listed
        .as_array()
        .and_then(|a| a.iter().find(|e| e["store"] == CAPTURE_EVENTS))
        .and_then(|e| e["id"].as_str())
        .expect("the parked event")
        .to_string()
}

#[test]
fn the_container_passes_the_whole_config_in_lakelog_config_yaml() {
    // As the Dockerfile and infra/ run it: no config file, the YAML in the environment, flags
    // after the subcommand.
    let yaml = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("pipeline.yaml")).expect("read");
    let validate = |text: &str| {
        Command::new(env!("CARGO_BIN_EXE_lakelog"))
            .args(["validate", "--log-json", "-c", "/nonexistent/pipeline.yaml"])
            .env("LAKELOG_CONFIG_YAML", text)
            .output()
            .expect("run lakelog")
    };
    let ok = validate(&yaml);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("LAKELOG_CONFIG_YAML: valid"));
    let bad = validate(&yaml.replace("listen: ${LAKELOG_METRICS_LISTEN:-127.0.0.1:9464}", "listen: everywhere"));
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("LAKELOG_CONFIG_YAML") && err.contains("metrics.listen"), "{err}");
}
