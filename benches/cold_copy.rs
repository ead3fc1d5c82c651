//! Cold copy of one table with N partitions (default 10,000) through the change log, on the local
//! emulator: target write calls (the minimum is 1 CreateTable + N/100 BatchCreatePartition) and
//! wall time, against the emulator's floor for the same copy: the fewest Glue calls issued
//! directly with the SDK (read everything, then CreateTable and BatchCreatePartition of 100, 8 at a
//! time), into another Region of the same emulator. Run with `scripts/bench.sh` (it starts the
//! emulator and sets the endpoints).

use std::time::Instant;

use futures::StreamExt;

use lakelog::aws::client::Endpoint;
use lakelog::aws::glue::GlueCatalog;
use lakelog::aws::glue_convert::{partition_from_sdk, partition_input, table_from_sdk, table_input};
use lakelog::commands::sync::{sync, SyncOptions};
use lakelog::config::PipelineConfig;
use lakelog::connect::Pipeline;
use lakelog::model::{Database, Partition, StorageDescriptor};
use lakelog::simulate::catalog::{generate, CatalogSpec, GeneratedCatalog};
use lakelog::simulate::seed::write_catalog;

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

/// The floor: read the table and its partitions from the source with paginated SDK calls, then
/// create them in `region` (whose database exists) with CreateTable and BatchCreatePartition of
/// 100, 8 calls at a time. Returns the seconds it took.
async fn floor(source: &aws_sdk_glue::Client, region: &str, db: &str, table: &str) -> f64 {
    let target = Endpoint::new(region, None).glue(None).await;
    let started = Instant::now();
    let t = source.get_table().catalog_id(ACCOUNT).database_name(db).name(table).send().await.expect("GetTable");
    let t = table_from_sdk(t.table().expect("table"), db);
    let mut parts = Vec::new();
    let mut pages =
        source.get_partitions().catalog_id(ACCOUNT).database_name(db).table_name(table).into_paginator().send();
    while let Some(page) = pages.next().await {
        parts.extend(page.expect("GetPartitions").partitions().iter().map(|p| partition_from_sdk(p, db, table)));
    }
    target
        .create_table()
        .catalog_id(ACCOUNT)
        .database_name(db)
        .table_input(table_input(&t).expect("input"))
        .send()
        .await
        .expect("CreateTable");
    let inputs: Vec<_> = parts.iter().map(|p| partition_input(p).expect("input")).collect();
    futures::stream::iter(inputs.chunks(100).map(|chunk| {
        let req = target
            .batch_create_partition()
            .catalog_id(ACCOUNT)
            .database_name(db)
            .table_name(table)
            .set_partition_input_list(Some(chunk.to_vec()));
        async move { req.send().await.expect("BatchCreatePartition") }
    }))
    .buffer_unordered(8)
    .for_each(|out| async move { assert!(out.errors().is_empty(), "{:?}", out.errors()) })
    .await;
    started.elapsed().as_secs_f64()
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
    write_catalog(&*GlueCatalog::retrying(source.glue(None).await, ACCOUNT), &catalog).await.expect("seed source");
    // The target database exists already (as in the source): what is measured is the table and its partitions.
    let target_db: Database = catalog.databases[0].clone();
    for region in ["us-west-2", "eu-west-1"] {
        let target = GlueCatalog::retrying(Endpoint::new(region, None).glue(None).await, ACCOUNT);
        let only_db = GeneratedCatalog { databases: vec![target_db.clone()], ..Default::default() };
        write_catalog(&*target, &only_db).await.expect("target db");
    }
    let floor_seconds = floor(&source.glue(None).await, "eu-west-1", &table.database_name, &table.name).await;

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
    println!("  floor (direct SDK)   {floor_seconds:.2} s; lakelog sync / floor = {:.2}", seconds / floor_seconds);
}
