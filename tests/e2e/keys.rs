//! Stream partition keys of names at Glue's limits, and frames damaged on the stream: both through
//! the emulator (the `lakelog` binary, and PutRecords with the Kinesis client).

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::sync::Arc;

use lakelog::apply::group::{ConsumerGroup, StopWhen};
use lakelog::backend::changelog::{LogEntry, PutResult};
use lakelog::commands::sync::{sync, SyncOptions};
use lakelog::connect::Pipeline;
use lakelog::model::{codec, now_millis, CatalogObject, Cause, CauseKind, ChangeRecord, ObjectKey, Partition, Table};
use lakelog::progress::Progress;
use lakelog::simulate::catalog::GeneratedCatalog;
use lakelog::stream::seqno::SeqNo;
use serde_json::Value;

use crate::emulator::Emulator;
use crate::{config, config_yaml, seed, CatalogDump, Names, ACCOUNT, SOURCE_REGION, TARGET_REGION};

fn lakelog(config: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lakelog"))
        .args(["--output", "json", "-c"])
        .arg(config)
        .args(args)
        .env("LAKELOG_LOG", "warn")
        .output()
        .expect("run lakelog")
}

fn report(out: &Output, what: &str) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}\nstderr: {}", String::from_utf8_lossy(&out.stderr)))
}

/// `name` padded with `fill` to exactly `chars` characters.
fn padded(name: &str, fill: char, chars: usize) -> String {
    let mut s = name.to_string();
    while s.chars().count() < chars {
        s.push(fill);
    }
    s
}

/// A partitioned table of `catalog` and its partitions, under new names.
fn renamed(catalog: &GeneratedCatalog, database: &str, table: &str) -> (Table, Vec<Partition>) {
    let model = catalog
        .tables
        .iter()
        .find(|t| catalog.partitions.iter().any(|p| p.table_name == t.name && p.database_name == t.database_name))
        .expect("a partitioned table");
    let t = Table { database_name: database.into(), name: table.into(), ..model.clone() };
    let parts = catalog
        .partitions
        .iter()
        .filter(|p| p.table_name == model.name && p.database_name == model.database_name)
        .map(|p| Partition { database_name: database.into(), table_name: table.into(), ..p.clone() })
        .collect();
    (t, parts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_at_glue_limits_sync_beside_ordinary_ones_and_diff_is_in_sync() {
    let emu = Emulator::start();
    let name = "keys-long";
    let prefix = Names::new(name).prefix;
    let ordinary = seed(&emu, name, 1, 3, 4).await;

    // The tester's case (120 + 130 characters), and names at Glue's 255-character limit, ASCII
    // and multi-byte (2 and 3 bytes a character), all with partitions.
    let db_120 = padded(&format!("{prefix}_"), 'd', 120);
    let db_255 = padded(&format!("{prefix}_"), 'x', 255);
    let db_255_accents = padded(&format!("{prefix}_"), 'é', 255);
    let tables = [
        (db_120.clone(), "t".repeat(130)),
        (db_255.clone(), "t".repeat(255)),
        (db_255.clone(), "売".repeat(255)),
        (db_255_accents.clone(), "é".repeat(255)),
    ];
    let mut extra = GeneratedCatalog { databases: Vec::new(), tables: Vec::new(), partitions: Vec::new() };
    for db in [&db_120, &db_255, &db_255_accents] {
        extra.databases.push(lakelog::model::Database { name: db.clone(), ..ordinary.databases[0].clone() });
    }
    for (db, table) in &tables {
        let key = ObjectKey::Table { catalog: ACCOUNT.into(), database: db.clone(), table: table.clone() };
        assert!(format!("{ACCOUNT}/{db}/{table}").chars().count() > 256, "{key} would fit unhashed");
        let (t, parts) = renamed(&ordinary, db, table);
        extra.tables.push(t);
        extra.partitions.extend(parts);
    }
    assert!(!extra.partitions.is_empty());
    lakelog::simulate::seed::write_catalog(&*crate::catalog(&emu, SOURCE_REGION).await, &extra)
        .await
        .expect("the source accepts Glue-legal names");

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pipeline.yaml");
    std::fs::write(&path, config_yaml(&emu, name, "", "")).expect("write config");
    let out = lakelog(&path, &["sync"]);
    assert!(out.status.success(), "sync failed: {}", String::from_utf8_lossy(&out.stderr));
    let synced = report(&out, "sync");
    for kind in ["database", "table", "partition"] {
        assert_eq!(synced["targets"]["dr"]["stats"][kind]["dead_lettered"], 0, "{synced}");
    }

    let source = CatalogDump::read(&emu, SOURCE_REGION, &prefix).await;
    let target = CatalogDump::read(&emu, TARGET_REGION, &prefix).await;
    assert_eq!(source.databases.len(), ordinary.databases.len() + 3);
    assert_eq!(source.tables.len(), ordinary.tables.len() + tables.len());
    assert_eq!(source.partitions.len(), ordinary.partitions.len() + extra.partitions.len());
    for (db, table) in &tables {
        assert!(target.tables.contains_key(&(db.clone(), table.clone())), "{db}.{table} not in the target");
    }
    let bucket = Names::new(name).data_bucket;
    source.rewritten(&format!("s3://{bucket}"), &format!("s3://{bucket}-dr")).assert_same(&target);

    let out = lakelog(&path, &["diff", "--target", "dr"]);
    let diff = report(&out, "diff");
    assert_eq!(out.status.code(), Some(0), "diff finds drift: {diff}");
    let in_sync = |kind: &str| diff["counts"][kind]["in_sync"].as_u64().unwrap_or(0) as usize;
    assert_eq!(in_sync("table"), source.tables.len(), "{diff}");
    assert_eq!(in_sync("partition"), source.partitions.len(), "{diff}");
}

/// One table's record, upserted now from `state`.
fn upsert(pipeline: &Pipeline, state: CatalogObject) -> ChangeRecord {
    ChangeRecord::upsert(state, &pipeline.origin, Cause { kind: CauseKind::Event, event_id: None }, now_millis())
}

fn entry(record: &ChangeRecord, frame: Vec<u8>) -> LogEntry {
    LogEntry::new(record.key.stream_partition_key(), frame)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_with_one_flipped_bit_is_dead_lettered_and_the_frames_beside_it_apply() {
    let emu = Emulator::start();
    let name = "keys-flip";
    let catalog = seed(&emu, name, 1, 3, 2).await;
    let pipeline = Pipeline::connect(config(&emu, name, "", "")).await.expect("connect");
    sync(&pipeline, &SyncOptions::default()).await.expect("initial sync");
    let prefix = Names::new(name).prefix;
    let before = CatalogDump::read(&emu, TARGET_REGION, &prefix).await;

    // The victim: its current state, one bit of its location flipped on the way. Decoded without
    // a checksum, that is a valid frame moving the target table to another location.
    let victim = catalog
        .tables
        .iter()
        .find(|t| {
            t.storage_descriptor.as_ref().is_some_and(|sd| sd.location.is_some())
                && catalog.partitions.iter().any(|p| p.table_name == t.name)
        })
        .expect("a partitioned table with a location");
    let location = victim.storage_descriptor.as_ref().and_then(|sd| sd.location.clone()).expect("location");
    let bad = upsert(&pipeline, CatalogObject::Table(victim.clone()));
    let mut corrupt = codec::encode(std::slice::from_ref(&bad)).expect("encode");
    let at = corrupt.windows(location.len()).position(|w| w == location.as_bytes()).expect("location in frame")
        + location.len()
        - 1;
    corrupt[at] ^= 0x01;

    // Good frames beside it: other tables, and a partition of the victim's own table (same key).
    let mut good = Vec::new();
    for t in catalog.tables.iter().filter(|t| t.name != victim.name).take(2) {
        good.push(upsert(
            &pipeline,
            CatalogObject::Table(Table { description: Some("changed by a good frame".into()), ..t.clone() }),
        ));
    }
    let victim_partition = catalog.partitions.iter().find(|p| p.table_name == victim.name).expect("victim partition");
    let mut parameters = victim_partition.parameters.clone();
    parameters.insert("changed_by".into(), "a good frame".into());
    good.push(upsert(&pipeline, CatalogObject::Partition(Partition { parameters, ..victim_partition.clone() })));

    let mut entries = vec![entry(&good[0], codec::encode(&good[..1]).expect("encode"))];
    entries.push(entry(&bad, corrupt.clone()));
    for r in &good[1..] {
        entries.push(entry(r, codec::encode(std::slice::from_ref(r)).expect("encode")));
    }
    let put = pipeline.log.put(&entries).await.expect("put records");
    let mut ends: BTreeMap<String, SeqNo> = BTreeMap::new();
    for r in put {
        let PutResult::Stored { shard_id, seq } = r else { panic!("unacknowledged entry {r:?}") };
        let end = ends.entry(shard_id).or_insert_with(|| seq.clone());
        if seq > *end {
            *end = seq;
        }
    }

    // The target's consumer reads on from the initial sync's checkpoints.
    let handle = pipeline.select_targets(Some("dr")).expect("target")[0];
    let group = Arc::new(ConsumerGroup {
        log: pipeline.log.clone(),
        sink: Arc::new(pipeline.applier(handle, false).expect("applier")),
        checkpoints: pipeline.checkpoints.clone(),
        dead_letters: pipeline.dead_letters.clone(),
        batch_limit: 100,
        progress: Progress::new(false),
        log_batches: false,
        health: None,
        coordination: Default::default(),
    });
    let (_end_tx, end_rx) = tokio::sync::watch::channel(Some(ends));
    let applied = group.run(StopWhen::Drained(end_rx)).await.expect("the consumer keeps going");
    assert_eq!(applied.stats.total().dead_lettered, 0, "the good records all apply");

    let after = CatalogDump::read(&emu, TARGET_REGION, &prefix).await;
    let key = (victim.database_name.clone(), victim.name.clone());
    let location_of = |dump: &CatalogDump| {
        dump.tables.get(&key).and_then(|t| t.storage_descriptor.as_ref()).and_then(|sd| sd.location.clone())
    };
    assert_eq!(location_of(&after), location_of(&before), "the damaged frame moved the target table");
    assert_eq!(after.tables.get(&key), before.tables.get(&key), "the damaged frame changed the target table");
    let letters = pipeline.dead_letters.list("dr").await.expect("dead letters");
    assert_eq!(letters.len(), 1, "exactly the damaged frame is parked: {letters:?}");
    let letter = &letters[0].1;
    assert_eq!(letter.class, "undecodable");
    assert!(letter.reason.contains("checksum"), "the reason names the damage: {}", letter.reason);
    let hex: String = corrupt.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(letter.raw_hex.as_deref(), Some(hex.as_str()), "the frame is kept as it arrived");

    for r in &good {
        match &r.state {
            Some(CatalogObject::Table(t)) => {
                let have = &after.tables[&(t.database_name.clone(), t.name.clone())];
                assert_eq!(have.description.as_deref(), Some("changed by a good frame"), "{}", r.key);
            }
            Some(CatalogObject::Partition(p)) => {
                let have = &after.partitions[&(p.database_name.clone(), p.table_name.clone(), p.values.clone())];
                assert_eq!(have.parameters.get("changed_by").map(String::as_str), Some("a good frame"), "{}", r.key);
            }
            other => panic!("unexpected record {other:?}"),
        }
    }
}
