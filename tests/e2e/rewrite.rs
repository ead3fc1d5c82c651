//! S3 location rewrite end to end: every S3 URI of a rewritten bucket, under any key and in any
//! scheme Hadoop uses, is rewritten in the target; `lakelog diff` names a target object that
//! names the source bucket again.

use std::path::Path;

use lakelog::commands::sync::{sync, SyncOptions};
use lakelog::connect::Pipeline;
use lakelog::model::{Column, Database, Params, Partition, SerDeInfo, StorageDescriptor, Table};
use lakelog::simulate::catalog::GeneratedCatalog;
use serde_json::Value;

use crate::emulator::Emulator;
use crate::errors::lakelog_json;
use crate::{config, config_yaml, CatalogDump, Names, SOURCE_REGION, TARGET_REGION};

/// Where a JSON value's strings name `bucket` as an S3 bucket (`scheme://bucket` followed by the
/// end, `/` or a character that cannot continue a bucket name), as `path: string`. Written
/// independently of lakelog's matcher, so the test does not share its bugs.
fn naming_bucket(value: &Value, bucket: &str, path: &str, out: &mut Vec<String>) {
    match value {
        Value::String(s) => {
            let needle = format!("://{bucket}");
            let hit = s.match_indices(&needle).any(|(at, _)| {
                let next = s[at + needle.len()..].chars().next();
                !next.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            });
            if hit {
                out.push(format!("{path}: {s}"));
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                naming_bucket(v, bucket, &format!("{path}[{i}]"), out);
            }
        }
        Value::Object(fields) => {
            for (k, v) in fields {
                naming_bucket(v, bucket, &format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

fn dump_naming_bucket(dump: &CatalogDump, bucket: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (name, db) in &dump.databases {
        naming_bucket(&serde_json::to_value(db).expect("json"), bucket, name, &mut out);
    }
    for ((db, t), table) in &dump.tables {
        naming_bucket(&serde_json::to_value(table).expect("json"), bucket, &format!("{db}.{t}"), &mut out);
    }
    for ((db, t, values), p) in &dump.partitions {
        let at = format!("{db}.{t}/{}", values.join("/"));
        naming_bucket(&serde_json::to_value(p).expect("json"), bucket, &at, &mut out);
    }
    out
}

/// A source catalog whose URIs hide where a fixed list of keys would not look: custom table,
/// partition, SerDe and storage parameters, `${dt}` templates, `s3a://` and `s3n://`, a URI
/// inside a longer value; plus a bucket whose name only starts like the source bucket.
fn catalog(prefix: &str, bucket: &str) -> GeneratedCatalog {
    let db = format!("{prefix}_db");
    let params =
        |pairs: &[(&str, String)]| -> Params { pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect() };
    let table = Table {
        database_name: db.clone(),
        name: "events".into(),
        table_type: Some("EXTERNAL_TABLE".into()),
        partition_keys: vec![Column { name: "dt".into(), type_: Some("string".into()), ..Default::default() }],
        parameters: params(&[
            ("classification", "parquet".into()),
            ("projection.dt.type", "date".into()),
            ("storage.location.template", format!("s3://{bucket}/events/dt=${{dt}}/")),
            ("spark.sql.sources.provider", "parquet".into()),
            ("custom.checkpoint", format!("s3a://{bucket}/_checkpoints/events")),
            ("custom.sources", format!("s3n://{bucket}/raw/a,s3://{bucket}/raw/b")),
            ("neighbour", format!("s3://{bucket}-other/events/")),
        ]),
        storage_descriptor: Some(StorageDescriptor {
            columns: vec![Column { name: "id".into(), type_: Some("bigint".into()), ..Default::default() }],
            location: Some(format!("s3a://{bucket}/events/")),
            input_format: Some("org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat".into()),
            output_format: Some("org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat".into()),
            parameters: params(&[("archive.location", format!("s3://{bucket}/archive/events"))]),
            serde_info: Some(SerDeInfo {
                serialization_library: Some("org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe".into()),
                parameters: params(&[
                    ("path", format!("s3://{bucket}/events")),
                    ("custom.path.template", format!("s3a://{bucket}/events/${{dt}}/")),
                ]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let partitions = ["2026-01-01", "2026-01-02"]
        .into_iter()
        .map(|dt| Partition {
            database_name: db.clone(),
            table_name: "events".into(),
            values: vec![dt.into()],
            parameters: params(&[
                ("source.uri", format!("s3n://{bucket}/events/dt={dt}/")),
                ("compaction.template", format!("s3://{bucket}/compacted/${{dt}}/part-*.parquet")),
            ]),
            storage_descriptor: Some(StorageDescriptor {
                location: Some(format!("s3a://{bucket}/events/dt={dt}/")),
                serde_info: Some(SerDeInfo {
                    parameters: params(&[("custom.path", format!("s3://{bucket}/events/dt={dt}"))]),
                    ..Default::default()
                }),
                ..table.storage_descriptor.clone().unwrap_or_default()
            }),
            ..Default::default()
        })
        .collect();
    GeneratedCatalog {
        databases: vec![Database {
            name: db,
            location_uri: Some(format!("s3://{bucket}/")),
            parameters: params(&[("landing", format!("s3a://{bucket}/landing/${{dt}}"))]),
            ..Default::default()
        }],
        tables: vec![table],
        partitions,
    }
}

fn write_config(emu: &Emulator, name: &str, dir: &Path) -> std::path::PathBuf {
    let path = dir.join("pipeline.yaml");
    std::fs::write(&path, config_yaml(emu, name, "", "  dependency_wait_seconds: 1\n")).expect("write config");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_target_string_names_the_source_bucket_and_diff_flags_one_put_back() {
    let emu = Emulator::start();
    let name = "rewrite";
    let n = Names::new(name);
    let source = catalog(&n.prefix, &n.data_bucket);
    lakelog::simulate::seed::write_catalog(&*crate::catalog(&emu, SOURCE_REGION).await, &source)
        .await
        .expect("seeding the source");
    let pipeline = Pipeline::connect(config(&emu, name, "", "  dependency_wait_seconds: 1\n")).await.expect("connect");
    let report = sync(&pipeline, &SyncOptions::default()).await.expect("sync");
    assert_eq!(report.targets["dr"].stats.total().dead_lettered, 0, "{:?}", report.targets["dr"].stats);

    let source_dump = CatalogDump::read(&emu, SOURCE_REGION, &n.prefix).await;
    let target_dump = CatalogDump::read(&emu, TARGET_REGION, &n.prefix).await;
    assert_eq!(target_dump.partitions.len(), 2, "every partition replicated");
    // The emulator kept what the source was given, so the test checks what it means to check.
    assert!(dump_naming_bucket(&source_dump, &n.data_bucket).len() >= 15, "the source names its bucket");
    let left = dump_naming_bucket(&target_dump, &n.data_bucket);
    assert!(left.is_empty(), "target strings still name the source bucket {}:\n{}", n.data_bucket, left.join("\n"));

    // What they became: the DR bucket, scheme, template and the rest of the key kept.
    let dr = format!("{}-dr", n.data_bucket);
    let table = &target_dump.tables[&(format!("{}_db", n.prefix), "events".to_string())];
    assert_eq!(table.parameters["storage.location.template"], format!("s3://{dr}/events/dt=${{dt}}/"));
    assert_eq!(table.parameters["custom.sources"], format!("s3n://{dr}/raw/a,s3://{dr}/raw/b"));
    assert_eq!(table.parameters["neighbour"], format!("s3://{}-other/events/", n.data_bucket), "another bucket");
    let sd = table.storage_descriptor.as_ref().expect("sd");
    assert_eq!(sd.location.as_deref(), Some(format!("s3a://{dr}/events/").as_str()));
    assert_eq!(
        sd.serde_info.as_ref().expect("serde").parameters["custom.path.template"],
        format!("s3a://{dr}/events/${{dt}}/")
    );

    // Diff agrees it is in sync; then a target parameter names the source bucket behind
    // lakelog's back (what a target written by an older lakelog looks like).
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(&emu, name, dir.path());
    let (code, diff) = lakelog_json(&path, &["diff", "--target", "dr"]);
    assert_eq!(code, 0, "in sync after sync: {diff}");

    let mut changed = table.clone();
    changed.parameters.insert("custom.checkpoint".into(), format!("s3a://{}/_checkpoints/events", n.data_bucket));
    let target = crate::catalog(&emu, TARGET_REGION).await;
    target.update_table(&changed).await.expect("update the target table");
    let (code, diff) = lakelog_json(&path, &["diff", "--target", "dr"]);
    assert_eq!(code, 3, "a target naming the source bucket is drift: {diff}");
    let different = diff["different"].as_array().expect("different");
    let object = format!("{}_db.events", n.prefix);
    let drift = different.iter().find(|d| d["object"] == object.as_str()).unwrap_or_else(|| panic!("{diff}"));
    let named: Vec<&str> =
        drift["source_locations"].as_array().expect("source_locations").iter().filter_map(Value::as_str).collect();
    assert_eq!(named, vec!["parameters.custom.checkpoint"], "{diff}");
}
