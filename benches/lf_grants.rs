//! Cold copy of N Lake Formation grants (default 10,000) through the change log, on the local
//! emulator, then a re-sync: the target's Lake Formation calls (the minimum for the copy is
//! ⌈N/20⌉ BatchGrantPermissions; the re-sync's minimum is 0 writes) and wall time. The grants
//! are N principals on one database, so they ride one shard. Run with `scripts/bench.sh` (it
//! starts the emulator and sets the endpoints).

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;

use lakelog::aws::client::Endpoint;
use lakelog::aws::glue::GlueCatalog;
use lakelog::aws::lakeformation::LfCatalog;
use lakelog::backend::lakeformation::{LakeFormation, GRANT_BATCH};
use lakelog::commands::sync::{sync, SyncOptions, SyncReport};
use lakelog::config::PipelineConfig;
use lakelog::connect::Pipeline;
use lakelog::model::lakeformation::{LfResource, Permission};
use lakelog::model::Database;
use lakelog::simulate::catalog::GeneratedCatalog;
use lakelog::simulate::seed::write_catalog;

const ACCOUNT: &str = "123456789012";

/// The Lake Formation operations that change something.
fn lf_writes(report: &SyncReport) -> Vec<(String, u64)> {
    let lf = [
        "BatchGrant",
        "BatchRevoke",
        "CreateLFTag",
        "UpdateLFTag",
        "DeleteLFTag",
        "AddLFTags",
        "RemoveLFTags",
        "PutDataLake",
    ];
    report.targets["dr"]
        .api_calls
        .iter()
        .filter(|(op, _)| lf.iter().any(|p| op.starts_with(p)))
        .map(|(op, n)| (op.clone(), *n))
        .collect()
}

async fn run(yaml: &str) -> (SyncReport, f64) {
    let config = PipelineConfig::from_yaml(yaml, "bench").expect("config");
    let pipeline = Pipeline::connect(config).await.expect("connect");
    let started = Instant::now();
    let report = sync(&pipeline, &SyncOptions::default()).await.expect("sync");
    (report, started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() {
    if std::env::var_os("AWS_ENDPOINT_URL").is_none() || std::env::var_os("AWS_ENDPOINT_URL_KINESIS").is_none() {
        eprintln!("lf_grants: needs the local emulator; run scripts/bench.sh");
        return;
    }
    let n: usize = std::env::var("LAKELOG_BENCH_GRANTS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let run_id = format!("lfbench{}", std::process::id());
    let db = format!("{run_id}_db");
    let source = Endpoint::new("us-east-1", None);
    let only_db =
        GeneratedCatalog { databases: vec![Database { name: db.clone(), ..Default::default() }], ..Default::default() };
    write_catalog(&*GlueCatalog::retrying(source.glue(None).await, ACCOUNT), &only_db).await.expect("seed source");
    let lf: Arc<dyn LakeFormation> = Arc::new(LfCatalog::new(source.lakeformation(None).await, ACCOUNT));
    let grants: Vec<Permission> = (0..n)
        .map(|i| {
            Permission::new(
                format!("arn:aws:iam::{ACCOUNT}:role/{run_id}-reader-{i:05}"),
                LfResource::Database { database: db.clone() },
                vec!["DESCRIBE".into()],
                vec![],
                None,
            )
        })
        .collect();
    futures::stream::iter(grants.chunks(GRANT_BATCH).map(|chunk| {
        let lf = lf.clone();
        async move { assert!(lf.grant(chunk).await.expect("grant").is_empty()) }
    }))
    // One at a time: moto's grant store is not safe for concurrent writes (HTTP 500).
    .buffer_unordered(1)
    .collect::<Vec<()>>()
    .await;

    let yaml = format!(
        "source: {{ region: us-east-1, include: [\"{db}\"], partition_segments: 1, lakeformation: true }}\n\
         stream: {{ name: lakelog-{run_id}, shards: 2, create_if_missing: true }}\n\
         state: {{ bucket: lakelog-{run_id}-state, create_bucket_if_missing: true }}\n\
         targets: [ {{ name: dr, region: us-west-2 }} ]\n"
    );
    let (cold, cold_seconds) = run(&yaml).await;
    let (again, again_seconds) = run(&yaml).await;
    let dr = &cold.targets["dr"];
    println!("cold copy of {n} Lake Formation grants (one database)");
    println!("  wall time            {cold_seconds:.2} s ({:.0} grants/s)", n as f64 / cold_seconds);
    println!(
        "  Lake Formation writes {:?} (minimum {} BatchGrantPermissions)",
        lf_writes(&cold),
        n.div_ceil(GRANT_BATCH)
    );
    println!("  ListPermissions      {:?}", dr.api_calls.get("ListPermissions"));
    println!("  dead-lettered        {}", dr.stats.total().dead_lettered);
    println!("re-sync of the unchanged grants");
    println!("  wall time            {again_seconds:.2} s");
    println!("  Lake Formation writes {:?} (minimum: none)", lf_writes(&again));
    println!("  target write calls   {}", again.targets["dr"].write_calls);
}
