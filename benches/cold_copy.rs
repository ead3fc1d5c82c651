//! Cold copy of one table with N partitions (default 10,000) through the change log, on the local
//! emulator: target write calls (the minimum is 1 CreateTable + N/100 BatchCreatePartition) and
//! wall time. Run with `scripts/bench.sh` (it starts the emulator and sets the endpoints).

use std::time::Instant;

use lakelog::aws::client::Endpoint;
use lakelog::config::PipelineConfig;
use lakelog::model::{Database, Partition, StorageDescriptor};
use lakelog::pipeline::Pipeline;
use lakelog::simulate::catalog::{generate, CatalogSpec, GeneratedCatalog};
use lakelog::simulate::seed::write_catalog;
use lakelog::sync::{sync, SyncOptions};

const ACCOUNT: &str = "123456789012";

fn one_table(partitions: usize, run: &str) -> GeneratedCatalog {
    // One realistic partitioned Parquet table from the generator, with `partitions` partitions.
    let spec = CatalogSpec {
        prefix: run.to_string(),
        databases: 1,
        tables_per_database: 1,
        partitions_per_table: 1,
        bucket: "bench-data".into(),
    };
    let base = generate(&spec);
    let mut table = base.tables.iter().find(|t| !t.partition_keys.is_empty()).cloned().expect("a partitioned table");
    table.partition_keys.truncate(1);
    table.partition_keys[0].name = "dt_hour".into();
    let location = table.storage_descriptor.as_ref().and_then(|s| s.location.clone()).unwrap_or_default();
    let parts = (0..partitions)
        .map(|i| {
            let value = format!(
                "{}-{:02}-{:02}-{:02}",
                2026 + i / (12 * 28 * 24),
                1 + i / (28 * 24) % 12,
                1 + (i / 24) % 28,
                i % 24
            );
            let mut sd: StorageDescriptor = table.storage_descriptor.clone().unwrap_or_default();
            sd.location = Some(format!("{location}dt_hour={value}/"));
            Partition {
                database_name: table.database_name.clone(),
                table_name: table.name.clone(),
                values: vec![value],
                storage_descriptor: Some(sd),
                ..Default::default()
            }
        })
        .collect();
    let db = base.databases.iter().find(|d| d.name == table.database_name).cloned().expect("its database");
    GeneratedCatalog { databases: vec![db], tables: vec![table], partitions: parts }
}

#[tokio::main]
async fn main() {
    if std::env::var_os("AWS_ENDPOINT_URL").is_none() || std::env::var_os("AWS_ENDPOINT_URL_KINESIS").is_none() {
        eprintln!("cold_copy: needs the local emulator; run scripts/bench.sh");
        return;
    }
    let partitions: usize =
        std::env::var("LAKELOG_BENCH_PARTITIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let run = format!("bench{}", std::process::id());
    let catalog = one_table(partitions, &run);
    let table = &catalog.tables[0];
    let source = Endpoint::new("us-east-1", None);
    write_catalog(&source.glue(None).await, ACCOUNT, &catalog).await.expect("seed source");
    // The target database exists already (as in the source): what is measured is the table and its partitions.
    let target_db: Database = catalog.databases[0].clone();
    let target_glue = Endpoint::new("us-west-2", None).glue(None).await;
    write_catalog(&target_glue, ACCOUNT, &GeneratedCatalog { databases: vec![target_db], ..Default::default() })
        .await
        .expect("target db");

    let yaml = format!(
        "source: {{ region: us-east-1, include: [\"{db}.{t}\"], partition_segments: 1 }}\n\
         stream: {{ name: lakelog-{run}, shards: 2, create_if_missing: true }}\n\
         state: {{ bucket: lakelog-{run}-state, create_bucket_if_missing: true }}\n\
         targets: [ {{ name: dr, region: us-west-2 }} ]\n",
        db = table.database_name,
        t = table.name,
    );
    let config = PipelineConfig::from_yaml(&yaml, "bench").expect("config");
    let pipeline = Pipeline::connect(config).await.expect("connect");
    let started = Instant::now();
    let report = sync(&pipeline, &SyncOptions::default()).await.expect("sync");
    let seconds = started.elapsed().as_secs_f64();
    let dr = &report.targets["dr"];
    let writes: Vec<_> = dr.api_calls.iter().filter(|(op, _)| lakelog::aws::counter::is_write(op)).collect();
    println!("cold copy of 1 table with {partitions} partitions");
    println!("  wall time            {seconds:.2} s ({:.0} partitions/s)", partitions as f64 / seconds);
    println!("    replicated in      {:.2} s (capture, publish and apply overlap)", report.replicate_seconds);
    println!("    compared in        {:.2} s (target listed against the source)", report.compare_seconds);
    println!(
        "  change log           {} records in {} Kinesis records, {} PutRecords calls",
        report.published_records, report.published_frames, report.put_calls
    );
    println!("  target write calls   {} {:?} (minimum {})", dr.write_calls, writes, 1 + partitions.div_ceil(100));
    println!("  target calls, all    {:?}", dr.api_calls);
}
