//! Resharding while `lakelog run` goes, on the emulator (kinesalite): the stream is split, then
//! the two children are merged, while every table of a database is updated in order (its
//! description `v001`, `v002`, …). The target converges to each table's last version, and
//! per-table order held: every state the applier wrote (the target's table versions, which moto
//! keeps for every UpdateTable as it ignores `SkipArchive`) and every record in the stream, read
//! parents before children, go up and never back. Once in single-process mode and once under
//! leases (one worker in the test process).
//!
//! What kinesalite 3.3.3 implements, measured 2026-12-01 with raw JSON calls on a loopback
//! instance (the configuration of `emulator.rs`):
//! - SplitShard and MergeShards: yes. The stream is UPDATING for a moment, the parent gets an
//!   `EndingSequenceNumber`, new records go to the children at once. A second SplitShard sent
//!   while the stream is UPDATING is accepted too (AWS refuses it with ResourceInUseException).
//! - ListShards: every shard, closed ones included, with `ParentShardId`,
//!   `AdjacentParentShardId` (merges) and the hash key range; `ShardFilter` is ignored (all
//!   shards come back). DescribeStreamSummary has `OpenShardCount`.
//! - GetRecords on a closed shard: the page with its last records still has a
//!   `NextShardIterator`; the next read is empty with no `NextShardIterator` (SHARD_END) and a
//!   `MillisBehindLatest` above 0. `ChildShards` is never returned (AWS returns it at
//!   SHARD_END), so lakelog finds the children by listing the shards again, which works on both.
//! - GetShardIterator AFTER_SEQUENCE_NUMBER at a closed shard's last record (a resumed
//!   checkpoint) and LATEST on a closed shard: an iterator, whose first read is SHARD_END.
//! - UpdateShardCount: not implemented (HTTP 400 `UnknownOperationException`).

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_kinesis::types::StreamStatus;
use lakelog::aws::client::Endpoint;
use lakelog::backend::changelog::{hash_key_of, ShardInfo};
use lakelog::commands::run::RunReport;
use lakelog::model::{CatalogObject, ObjectKey};
use lakelog::simulate::events::{deliver, GlueEvent};

use crate::emulator::Emulator;
use crate::run::{converges, route, run_config, start};
use crate::{seed, Names, ACCOUNT, SOURCE_REGION, TARGET_REGION};

/// Tables per database of the generated catalog (it adds views and resource links: 10 tables).
const TABLES: usize = 6;
/// Updates per table; the split comes after a third of them, the merge after two thirds.
const VERSIONS: usize = 24;

/// The version a table's description names (`v007` → 7); the seeded description is version 0.
fn version(description: Option<&str>) -> usize {
    description.and_then(|d| d.strip_prefix('v')).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// Asserts that `versions` (of `what`, in the order they were written) never go back.
fn never_back(what: &str, versions: &[usize]) {
    for w in versions.windows(2) {
        assert!(w[0] <= w[1], "{what} went back from v{} to v{}: {versions:?}", w[0], w[1]);
    }
}

async fn shards(kinesis: &aws_sdk_kinesis::Client, stream: &str) -> Vec<aws_sdk_kinesis::types::Shard> {
    kinesis.list_shards().stream_name(stream).send().await.expect("ListShards").shards.unwrap_or_default()
}

async fn until_active(kinesis: &aws_sdk_kinesis::Client, stream: &str) {
    for _ in 0..100 {
        let d = kinesis.describe_stream_summary().stream_name(stream).send().await.expect("DescribeStreamSummary");
        if d.stream_description_summary.is_some_and(|s| s.stream_status == StreamStatus::Active) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("stream {stream} did not become ACTIVE again");
}

fn range(s: &aws_sdk_kinesis::types::Shard) -> (u128, u128) {
    let r = s.hash_key_range.as_ref().expect("hash key range");
    (r.starting_hash_key.parse().expect("start"), r.ending_hash_key.parse().expect("end"))
}

/// Splits the open shard holding the most of `hashes` between two of them, so both children
/// take some tables. Returns the parent's id.
async fn split(kinesis: &aws_sdk_kinesis::Client, stream: &str, hashes: &[u128]) -> String {
    let open: Vec<_> = shards(kinesis, stream).await.into_iter().filter(|s| s.parent_shard_id.is_none()).collect();
    let inside = |s: &aws_sdk_kinesis::types::Shard| {
        let (lo, hi) = range(s);
        let mut h: Vec<u128> = hashes.iter().copied().filter(|h| lo <= *h && *h <= hi).collect();
        h.sort();
        h
    };
    let parent = open.iter().max_by_key(|s| inside(s).len()).expect("an open shard");
    let h = inside(parent);
    assert!(h.len() >= 2, "{} tables on 2 shards: one shard holds at least 3", hashes.len());
    let k = h.len() / 2;
    let at = h[k - 1] + (h[k] - h[k - 1]) / 2 + 1;
    kinesis
        .split_shard()
        .stream_name(stream)
        .shard_to_split(&parent.shard_id)
        .new_starting_hash_key(at.to_string())
        .send()
        .await
        .expect("SplitShard");
    until_active(kinesis, stream).await;
    parent.shard_id.clone()
}

/// Merges the two children of `parent` back into one shard; returns the children's ids.
async fn merge(kinesis: &aws_sdk_kinesis::Client, stream: &str, parent: &str) -> Vec<String> {
    let mut children: Vec<_> =
        shards(kinesis, stream).await.into_iter().filter(|s| s.parent_shard_id.as_deref() == Some(parent)).collect();
    children.sort_by_key(|s| range(s).0);
    assert_eq!(children.len(), 2, "the split made two children");
    kinesis
        .merge_shards()
        .stream_name(stream)
        .shard_to_merge(&children[0].shard_id)
        .adjacent_shard_to_merge(&children[1].shard_id)
        .send()
        .await
        .expect("MergeShards");
    until_active(kinesis, stream).await;
    children.into_iter().map(|s| s.shard_id).collect()
}

/// Every table record in the stream, per table: (generation in the shard lineage, sequence,
/// version), so sorting a table's records reads parents before children.
async fn stream_versions(name: &str, emu: &Emulator) -> BTreeMap<String, Vec<(usize, String, usize)>> {
    let cfg = lakelog::config::PipelineConfig::from_yaml(&crate::config_yaml(emu, name, "", ""), name).expect("config");
    let pipeline = lakelog::connect::Pipeline::connect(cfg).await.expect("connect");
    let list: Vec<ShardInfo> = pipeline.log.list_shards().await.expect("shards");
    let generation = |id: &str| {
        let mut n = 0;
        let mut at = list.iter().find(|s| s.shard_id == id);
        while let Some(s) = at.and_then(|s| s.parent.as_deref()) {
            n += 1;
            at = list.iter().find(|x| x.shard_id == s);
        }
        n
    };
    let mut out: BTreeMap<String, Vec<(usize, String, usize)>> = BTreeMap::new();
    for (shard, records) in crate::archive::stream_records(&pipeline).await {
        for (seq, record) in records {
            if let Some(CatalogObject::Table(t)) = &record.state {
                out.entry(t.name.clone()).or_default().push((
                    generation(&shard),
                    seq.as_str().to_string(),
                    version(t.description.as_deref()),
                ));
            }
        }
    }
    out
}

/// The target's versions of each table, oldest first.
async fn target_versions(emu: &Emulator, database: &str, tables: &[String]) -> BTreeMap<String, Vec<usize>> {
    let glue = crate::glue(emu, TARGET_REGION).await;
    let mut out = BTreeMap::new();
    for t in tables {
        let got = glue.get_table_versions().database_name(database).table_name(t).send().await.expect("versions");
        let mut versions: Vec<(u64, usize)> = got
            .table_versions
            .unwrap_or_default()
            .into_iter()
            .map(|v| {
                let id = v.version_id.as_deref().and_then(|i| i.parse().ok()).expect("numeric version id");
                (id, version(v.table.as_ref().and_then(|t| t.description.as_deref())))
            })
            .collect();
        versions.sort();
        out.insert(t.clone(), versions.into_iter().map(|(_, v)| v).collect());
    }
    out
}

async fn split_and_merge_during_run(name: &str, leases: bool) -> RunReport {
    let emu = Emulator::start();
    let catalog = seed(&emu, name, 1, TABLES, 0).await;
    let database = catalog.databases[0].name.clone();
    let tables: Vec<String> = catalog.tables.iter().map(|t| t.name.clone()).collect();
    let (eb, _sqs, queue) = route(&emu, name).await;
    let mut yaml = run_config(&emu, name, &queue, 3600);
    if leases {
        yaml = yaml.replacen(
            "  create_bucket_if_missing: true\n",
            "  create_bucket_if_missing: true\n  coordination: { mode: leases, create_table_if_missing: true, lease_duration: 6s, renew_interval: 2s }\n",
            1,
        );
    }
    let running = start(&yaml).await;
    converges(&emu, name, Duration::from_secs(60)).await;

    let stream = format!("lakelog-{name}");
    let kinesis = Endpoint::new(SOURCE_REGION, Some(&emu.kinesis_url)).kinesis().await;
    let hashes: Vec<u128> = tables
        .iter()
        .map(|t| {
            let key = ObjectKey::Table { catalog: ACCOUNT.into(), database: database.clone(), table: t.clone() };
            hash_key_of(&key.stream_partition_key())
        })
        .collect();
    let source = crate::catalog(&emu, SOURCE_REGION).await;
    let (mut parent, mut children) = (String::new(), Vec::new());
    for v in 1..=VERSIONS {
        let mut events = Vec::new();
        for t in &catalog.tables {
            let mut next = t.clone();
            next.description = Some(format!("v{v:03}"));
            source.update_table(&next).await.expect("UpdateTable");
            events.push(GlueEvent::table("UpdateTable", &database, &t.name, &[]));
        }
        deliver(&eb, &events).await.expect("deliver");
        if v == VERSIONS / 3 {
            parent = split(&kinesis, &stream, &hashes).await;
        }
        if v == 2 * VERSIONS / 3 {
            children = merge(&kinesis, &stream, &parent).await;
        }
        // Spread over a few seconds, so each generation of shards takes several versions.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // Without reading the children during the run, the last versions never arrive.
    converges(&emu, name, Duration::from_secs(90)).await;
    let report = running.stop().await;

    let n = Names::new(name);
    assert!(database.starts_with(&n.prefix));
    for (t, versions) in target_versions(&emu, &database, &tables).await {
        eprintln!("{name}: target versions of {t}: {versions:?}");
        never_back(&format!("target table {t}"), &versions);
        assert_eq!(versions.last(), Some(&VERSIONS), "{t}: {versions:?}");
    }
    let in_stream = stream_versions(name, &emu).await;
    let mut holders: BTreeMap<usize, usize> = BTreeMap::new();
    for (t, mut records) in in_stream {
        records.sort();
        let versions: Vec<usize> = records.iter().map(|r| r.2).collect();
        eprintln!(
            "{name}: {t} in the stream (generation, version): {:?}",
            records.iter().map(|r| (r.0, r.2)).collect::<Vec<_>>()
        );
        never_back(&format!("table {t} in the stream, parents first"), &versions);
        for generation in records.iter().map(|r| r.0).collect::<std::collections::BTreeSet<_>>() {
            *holders.entry(generation).or_default() += 1;
        }
    }
    assert_eq!(holders.keys().copied().collect::<Vec<_>>(), [0, 1, 2], "tables in the parent, children, merged child");

    // The children and the merged child were read by this run, not left for a restart.
    let merged = shards(&kinesis, &stream)
        .await
        .into_iter()
        .find(|s| s.adjacent_parent_shard_id.is_some())
        .map(|s| s.shard_id)
        .expect("the merged shard");
    let dr = &report.targets["dr"];
    for shard in children.iter().chain([&merged]) {
        let read = dr.shards.iter().find(|s| &s.shard == shard).map(|s| s.records).unwrap_or(0);
        assert!(read > 0, "shard {shard} was not read during the run: {:#?}", dr.shards);
    }
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_and_a_merge_during_run_keep_each_tables_order() {
    split_and_merge_during_run("reshard", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_and_a_merge_during_run_keep_each_tables_order_under_leases() {
    split_and_merge_during_run("reshard-lease", true).await;
}
