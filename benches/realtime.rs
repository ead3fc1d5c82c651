//! End-to-end lag of `lakelog run` on the local emulator: Glue changes delivered as EventBridge
//! events → SQS → capture → Kinesis → apply. Two phases:
//! 1. sustained: `LAKELOG_BENCH_RATE` partition changes/s (default 200) for
//!    `LAKELOG_BENCH_SECONDS` (default 30), as BatchCreatePartition calls of 20 with one event each;
//! 2. burst: a crawler writing `LAKELOG_BENCH_BURST_TABLES` × `LAKELOG_BENCH_BURST_PARTITIONS`
//!    (default 66 × 2,000: the generator leaves a quarter of tables unpartitioned, so 100,000) partitions as fast as the emulator takes them.
//!
//! Reports lag p50/p99 (capture → applied, per record) and API calls per partition change.
//! Run with `scripts/bench.sh` (it starts the emulator and sets the endpoints).

use std::sync::Arc;
use std::time::{Duration, Instant};

use lakelog::aws::client::Endpoint;
use lakelog::aws::eventbridge::EventBridge;
use lakelog::aws::glue::GlueCatalog;
use lakelog::commands::run::{run, RunReport};
use lakelog::config::PipelineConfig;
use lakelog::connect::Pipeline;
use lakelog::simulate::catalog::{generate, CatalogSpec, GeneratedCatalog};
use lakelog::simulate::events::{crawler_burst, deliver, route_glue_events, GlueEvent};
use tokio::sync::watch;

const ACCOUNT: &str = "123456789012";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn start(name: &str) -> (watch::Sender<bool>, tokio::task::JoinHandle<RunReport>) {
    let yaml = format!(
        "source: {{ region: us-east-1, include: [\"{name}_*\"], partition_segments: 1, reconcile_interval_seconds: 3600,\n\
         events: {{ queue_name: {name}-events, wait_seconds: 1, visibility_timeout_seconds: 60 }} }}\n\
         stream: {{ name: {name}-changes, shards: 2, create_if_missing: true }}\n\
         state: {{ bucket: {name}-state, create_bucket_if_missing: true }}\n\
         targets: [ {{ name: dr, region: us-west-2 }} ]\n"
    );
    let pipeline =
        Arc::new(Pipeline::connect(PipelineConfig::from_yaml(&yaml, "bench").expect("config")).await.expect("connect"));
    let (tx, rx) = watch::channel(false);
    (tx, tokio::spawn(async move { run(&pipeline, None, rx).await.expect("run") }))
}

fn print(phase: &str, partitions: usize, seconds: f64, report: &RunReport) {
    let dr = &report.targets["dr"];
    let source_calls: u64 = report.source_api_calls.values().sum();
    println!("{phase}: {partitions} partition changes in {seconds:.1} s ({:.0}/s)", partitions as f64 / seconds);
    println!(
        "  lag capture->applied  p50 {:.3} s  p99 {:.3} s  max {:.3} s  ({} records)",
        dr.lag_from_capture.p50_seconds,
        dr.lag_from_capture.p99_seconds,
        dr.lag_from_capture.max_seconds,
        dr.lag_from_capture.samples
    );
    println!(
        "  lag event->applied    p50 {:.3} s  p99 {:.3} s  (event times have 1 s resolution)",
        dr.lag_from_change.p50_seconds, dr.lag_from_change.p99_seconds
    );
    println!(
        "  source calls per partition change {:.3} {:?}",
        source_calls as f64 / partitions as f64,
        report.source_api_calls
    );
    let target_calls: u64 = report.target_api_calls["dr"].values().sum();
    let target_writes: u64 = report.target_api_calls["dr"]
        .iter()
        .filter(|(op, _)| lakelog::aws::counter::is_write(op))
        .map(|(_, n)| n)
        .sum();
    println!(
        "  target calls per partition change {:.3} ({:.3} writes) {:?}",
        target_calls as f64 / partitions as f64,
        target_writes as f64 / partitions as f64,
        report.target_api_calls["dr"]
    );
    println!("  events {:?}", report.events);
}

#[tokio::main]
async fn main() {
    if std::env::var_os("AWS_ENDPOINT_URL").is_none() || std::env::var_os("AWS_ENDPOINT_URL_KINESIS").is_none() {
        eprintln!("realtime: needs the local emulator; run scripts/bench.sh");
        return;
    }
    let ep = Endpoint::new("us-east-1", None);
    let (glue, eb, sqs) = (ep.glue(None).await, EventBridge::connect(&ep).await, ep.sqs().await);

    // 1. Sustained rate.
    let rate = env_or("LAKELOG_BENCH_RATE", 200);
    let seconds = env_or("LAKELOG_BENCH_SECONDS", 30);
    let name = format!("rt{}", std::process::id());
    route_glue_events(&eb, &format!("{name}-events")).await.expect("route");
    let spec = CatalogSpec {
        prefix: name.clone(),
        databases: 1,
        tables_per_database: 10,
        partitions_per_table: rate * seconds / 7 + 1,
        bucket: "bench-data".into(),
    };
    let catalog = generate(&spec);
    let skeleton = GeneratedCatalog {
        databases: catalog.databases.clone(),
        tables: catalog.tables.clone(),
        partitions: Vec::new(),
    };
    crawler_burst(&*GlueCatalog::retrying(glue.clone(), ACCOUNT), &eb, &skeleton, 0).await.expect("tables");
    let (stop, task) = start(&name).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let per_tick = 20usize;
    let tick = Duration::from_secs_f64(per_tick as f64 / rate as f64);
    let total = rate * seconds;
    let started = Instant::now();
    let mut next = Instant::now();
    let mut written = 0usize;
    // Chunks of one table each (a chunk never straddles two tables).
    let mut chunks: Vec<Vec<lakelog::model::Partition>> = Vec::new();
    for p in &catalog.partitions {
        match chunks.last_mut() {
            Some(c) if c.len() < per_tick && c[0].table_name == p.table_name => c.push(p.clone()),
            _ => chunks.push(vec![p.clone()]),
        }
    }
    for same in chunks.into_iter().take(total / per_tick) {
        let (db, t) = (same[0].database_name.clone(), same[0].table_name.clone());
        let (db, t) = (&db, &t);
        written += same.len();
        let target = lakelog::aws::glue::GlueCatalog::retrying(glue.clone(), ACCOUNT);
        target.create_partitions(db, t, &same).await.expect("partitions");
        let values: Vec<Vec<String>> = same.iter().map(|p| p.values.clone()).collect();
        deliver(&eb, &[GlueEvent::table("BatchCreatePartition", db, t, &values)]).await.expect("event");
        next += tick;
        tokio::time::sleep_until(next.into()).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let _ = stop.send(true);
    let report = task.await.expect("run");
    print("sustained", written, elapsed, &report);

    // 2. Crawler burst.
    let tables = env_or("LAKELOG_BENCH_BURST_TABLES", 66);
    let parts = env_or("LAKELOG_BENCH_BURST_PARTITIONS", 2_000);
    let name = format!("burst{}", std::process::id());
    route_glue_events(&eb, &format!("{name}-events")).await.expect("route");
    let (stop, task) = start(&name).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let catalog = generate(&CatalogSpec {
        prefix: name.clone(),
        databases: 1,
        tables_per_database: tables,
        partitions_per_table: parts,
        bucket: "bench-data".into(),
    });
    let started = Instant::now();
    let burst = crawler_burst(&*GlueCatalog::retrying(glue.clone(), ACCOUNT), &eb, &catalog, 0).await.expect("burst");
    let elapsed = started.elapsed().as_secs_f64();
    // Let capture catch up with the queue, then drain.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(
                sqs.get_queue_url()
                    .queue_name(format!("{name}-events"))
                    .send()
                    .await
                    .ok()
                    .and_then(|o| o.queue_url)
                    .unwrap_or_default(),
            )
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await;
        let pending = attrs
            .ok()
            .and_then(|a| a.attributes)
            .map(|a| {
                [
                    aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages,
                    aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                ]
                .iter()
                .filter_map(|k| a.get(k).and_then(|v| v.parse::<u64>().ok()))
                .sum::<u64>()
            })
            .unwrap_or(0);
        if pending == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = stop.send(true);
    let report = task.await.expect("run");
    print("burst", burst.partitions as usize, elapsed, &report);
}
