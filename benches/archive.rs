//! The archive's benchmarks: writing raw segments, compacting them into a snapshot, rebuilding
//! from a snapshot's heads, the state at a time, and a restore (its `--dry-run` plan, then the
//! restore itself, through `lakelog restore`'s own code) into a target that already holds every
//! object. One line per measurement; `scripts/bench_archive.sh` runs
//! each phase in its own process so each phase's peak RSS is its own.
//!
//! No emulator and no S3: the state store is a local directory ([`DirStore`]) so that neither
//! network time nor the store's memory is measured; the restore's target is a `MemoryCatalog`.
//! Records are realistic partitions from `simulate::catalog` (the generator the demo seeds
//! with), published the way `run` publishes them: per table on one of two shards, in frames of
//! up to 1 MB sharing one Kinesis sequence number, archived with `pipeline.yaml`'s default
//! segment thresholds.
//!
//! Environment: `BENCH_PHASE` (write, state-raw, compact, heads, state, restore, plan-empty; default: all in
//! one process), `BENCH_RECORDS` (partition records, default 1,000,000), `BENCH_DIR` (the store;
//! default a directory under the system's temporary directory), `BENCH_RESTORE` (objects the
//! restore selects, default 1,000,000).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use lakelog::apply::applier::Applier;
use lakelog::apply::transform::Transform;
use lakelog::archive::compact::{compact, CompactOptions};
use lakelog::archive::manifest::ManifestStore;
use lakelog::archive::replay::{sources_of, state_at};
use lakelog::archive::segment::Heads;
use lakelog::archive::sink::{ArchiveSink, Flush};
use lakelog::archive::writer::{root, SegmentWriter};
use lakelog::backend::catalog::Catalog;
use lakelog::backend::memory::catalog::MemoryCatalog;
use lakelog::backend::state::{ListPage, PutOutcome, SharedStore, StateStore, Stored};
use lakelog::backend::{AwsError, ErrorClass};
use lakelog::commands::restore::{
    into_target, At, Into as RestoreInto, IntoTarget, RestoreEnv, RestoreOptions, RestoreReport,
};
use lakelog::config::{ApplyConfig, ArchiveConfig, TargetConfig};
use lakelog::model::seqno::SeqNo;
use lakelog::model::{CatalogObject, Cause, CauseKind, ChangeRecord, ObjectKey, Origin};
use lakelog::simulate::catalog::{generate, CatalogSpec};
use lakelog::state::deadletter::DeadLetterStore;

/// As in the `lakelog` binary, so peak RSS is what it would be there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const STREAM: &str = "bench";
const ACCOUNT: &str = "123456789012";
const SHARDS: [&str; 2] = ["shardId-000000000000", "shardId-000000000001"];
/// Tables per generated database (the demo's 12: 9 partitioned, plus the special tables).
const TABLES: usize = 12;
const PARTITIONS_PER_TABLE: usize = 10_000;
/// The producer's frame limit (a Kinesis record).
const FRAME_BYTES: usize = 1 << 20;
/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;
/// The merge's memory, as `archive.merge_memory_mib` defaults to.
const BUDGET: usize = 64 << 20;
/// Records per batch out of `state_at`, as `restore` asks for.
const BATCH: usize = 500;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(default)
}

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("archive bench: {what}: {e}");
    std::process::exit(1)
}

// ---------------------------------------------------------------------------------------------
// Measuring.

/// CPU seconds (user + system, every thread) this process has used, from `/proc/self/stat`.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // After the command name: state is field 0, utime 11 and stime 12 (clock ticks of 1/100 s).
    (ticks(11) + ticks(12)) / 100.0
}

/// Wall and CPU time of a span of work.
struct Clock {
    wall: Instant,
    cpu: f64,
    spent_wall: f64,
    spent_cpu: f64,
}

impl Clock {
    fn new() -> Clock {
        Clock { wall: Instant::now(), cpu: cpu_seconds(), spent_wall: 0.0, spent_cpu: 0.0 }
    }

    /// Starts (again) counting.
    fn resume(&mut self) {
        self.wall = Instant::now();
        self.cpu = cpu_seconds();
    }

    /// Stops counting; what was counted stays.
    fn pause(&mut self) {
        self.spent_wall += self.wall.elapsed().as_secs_f64();
        self.spent_cpu += cpu_seconds() - self.cpu;
    }

    /// `records` per wall second and per CPU second, as text.
    fn rates(&self, records: u64) -> String {
        let per = |s: f64| if s > 0.0 { records as f64 / s } else { f64::NAN };
        format!(
            "{:.1} s wall, {:.1} s CPU: {} records/s, {} records/s per core",
            self.spent_wall,
            self.spent_cpu,
            thousands(per(self.spent_wall)),
            thousands(per(self.spent_cpu))
        )
    }
}

fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    let digits = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn peak_rss() -> String {
    match lakelog::resources::peak_rss_bytes() {
        Some(b) => format!("peak RSS {} MB", b >> 20),
        None => "peak RSS n/a".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// A state store in a local directory: each key a file, the version a hash of its bytes (as an
// S3 ETag is of a plain upload). One process uses it at a time, so compare-and-set is a read
// then a write.

#[derive(Debug)]
struct DirStore {
    root: PathBuf,
}

impl DirStore {
    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn io(operation: &'static str, e: std::io::Error) -> AwsError {
        AwsError { service: "dir", operation, class: ErrorClass::Permanent, code: None, message: e.to_string() }
    }

    fn version(bytes: &[u8]) -> String {
        format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(bytes))
    }

    fn read(&self, key: &str) -> Result<Option<Vec<u8>>, AwsError> {
        match std::fs::read(self.path(key)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Self::io("get", e)),
        }
    }

    fn write(&self, key: &str, bytes: &[u8]) -> Result<String, AwsError> {
        let path = self.path(key);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Self::io("put", e))?;
        }
        // Written aside, then renamed: a reader sees the old object or the new one.
        let aside = path.with_extension("partial");
        std::fs::write(&aside, bytes).map_err(|e| Self::io("put", e))?;
        std::fs::rename(&aside, &path).map_err(|e| Self::io("put", e))?;
        Ok(Self::version(bytes))
    }

    fn keys(&self, dir: &Path, out: &mut Vec<String>) -> Result<(), AwsError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Self::io("list", e)),
        };
        for entry in entries {
            let path = entry.map_err(|e| Self::io("list", e))?.path();
            if path.is_dir() {
                self.keys(&path, out)?;
            } else if let Ok(rel) = path.strip_prefix(&self.root) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
        Ok(())
    }
}

#[async_trait]
impl StateStore for DirStore {
    fn location(&self) -> String {
        format!("file://{}", self.root.display())
    }

    async fn get(&self, key: &str) -> Result<Option<Stored>, AwsError> {
        Ok(self.read(key)?.map(|bytes| Stored { version: Self::version(&bytes), bytes }))
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<String, AwsError> {
        self.write(key, &bytes)
    }

    async fn put_if_absent(&self, key: &str, bytes: Vec<u8>) -> Result<PutOutcome, AwsError> {
        if self.path(key).exists() {
            return Ok(PutOutcome::Conflict);
        }
        Ok(PutOutcome::Written(self.write(key, &bytes)?))
    }

    async fn put_if_match(&self, key: &str, bytes: Vec<u8>, version: &str) -> Result<PutOutcome, AwsError> {
        match self.read(key)? {
            Some(old) if Self::version(&old) == version => Ok(PutOutcome::Written(self.write(key, &bytes)?)),
            _ => Ok(PutOutcome::Conflict),
        }
    }

    async fn list(&self, prefix: &str, after: Option<&str>) -> Result<ListPage, AwsError> {
        let mut keys = Vec::new();
        self.keys(&self.root, &mut keys)?;
        keys.retain(|k| k.starts_with(prefix) && after.is_none_or(|a| k.as_str() > a) && !k.ends_with(".partial"));
        keys.sort();
        let more = keys.len() > 1_000;
        keys.truncate(1_000);
        Ok(ListPage { keys, more })
    }

    async fn delete(&self, key: &str) -> Result<(), AwsError> {
        match std::fs::remove_file(self.path(key)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Self::io("delete", e)),
            _ => Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The records.

fn origin() -> Origin {
    Origin { account: ACCOUNT.into(), region: "us-east-1".into(), catalog_id: ACCOUNT.into() }
}

/// The generated databases are `b<chunk>_<domain>`: one chunk, one database.
fn chunk_of(database: &str) -> usize {
    database.get(1..5).and_then(|n| n.parse().ok()).unwrap_or(usize::MAX)
}

/// One database's records (its database, tables and partitions), at most `partitions` of them
/// partitions, in the order a snapshot scan captures them.
fn chunk_records(chunk: usize, partitions: usize) -> Vec<ChangeRecord> {
    let spec = CatalogSpec {
        prefix: format!("b{chunk:04}"),
        databases: 1,
        tables_per_database: TABLES,
        partitions_per_table: PARTITIONS_PER_TABLE,
        bucket: "lakelog-bench-data".into(),
    };
    let catalog = generate(&spec);
    let cause = || Cause { kind: CauseKind::Snapshot, event_id: None };
    let objects = catalog
        .databases
        .into_iter()
        .map(CatalogObject::Database)
        .chain(catalog.tables.into_iter().map(CatalogObject::Table))
        .chain(catalog.partitions.into_iter().take(partitions).map(CatalogObject::Partition));
    objects.map(|o| ChangeRecord::upsert(o, &origin(), cause(), 0)).collect()
}

fn partitions_per_chunk() -> usize {
    CatalogSpec {
        prefix: String::new(),
        databases: 1,
        tables_per_database: TABLES,
        partitions_per_table: PARTITIONS_PER_TABLE,
        bucket: String::new(),
    }
    .total_partitions()
}

/// A Kinesis-like sequence number: 56 digits, increasing per shard.
fn sequence(shard: usize, n: u64) -> SeqNo {
    SeqNo::parse(&format!("4965{shard:01}{:051}", n * 7919)).unwrap_or_else(|| fail("sequence", n))
}

/// The producer's framing: consecutive records of one stream key, up to a frame's bytes.
fn frames(records: Vec<ChangeRecord>) -> Vec<Vec<ChangeRecord>> {
    let mut out: Vec<Vec<ChangeRecord>> = Vec::new();
    let (mut key, mut bytes) = (String::new(), 0);
    for r in records {
        let size = lakelog::model::codec::FrameBuilder::encode_record(&r).map_or(1_500, |e| e.len());
        let k = r.key.stream_partition_key();
        if out.is_empty() || k != key || bytes + size > FRAME_BYTES - k.len() - 64 {
            out.push(Vec::new());
            bytes = 0;
            key = k;
        }
        bytes += size;
        out.last_mut().unwrap_or_else(|| fail("frames", "empty")).push(r);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Phases.

struct Bench {
    store: SharedStore,
    records: usize,
    restore: usize,
}

impl Bench {
    /// Publishes and archives `records` partition records through the archive's sink.
    async fn write(&self) {
        let a = ArchiveConfig::default();
        let flush = Flush { bytes: (a.segment_mib as usize) << 20, records: a.segment_records, age: a.segment_age() };
        let sink = ArchiveSink::new(SegmentWriter::new(self.store.clone(), STREAM), flush);
        let mut sink_clock = Clock::new();
        sink_clock.pause();
        let all = Clock::new();
        let (mut written, mut at, mut seq) = (0usize, T0, [0u64; 2]);
        let (mut records, mut segments, mut bytes, mut raw) = (0u64, 0u64, 0u64, 0u64);
        let mut chunk = 0;
        while written < self.records {
            let take = (self.records - written).min(partitions_per_chunk());
            let batch = chunk_records(chunk, take);
            written += take;
            chunk += 1;
            for frame in frames(batch) {
                let shard = (xxhash_rust::xxh3::xxh3_64(frame[0].key.stream_partition_key().as_bytes()) % 2) as usize;
                let encoded = lakelog::model::codec::encode(&frame).map_or(0, |e| e.len());
                raw += encoded as u64;
                seq[shard] += 1;
                let sequence = sequence(shard, seq[shard]);
                let taken: Vec<_> = frame
                    .into_iter()
                    .map(|mut r| {
                        at += 1;
                        r.captured_at = at;
                        (sequence.clone(), r)
                    })
                    .collect();
                sink_clock.resume();
                let w = sink.take(SHARDS[shard], taken, at).await.unwrap_or_else(|e| fail("archive", e));
                sink_clock.pause();
                if let Some(w) = w {
                    (records, segments, bytes) =
                        (records + w.records, segments + u64::from(w.written), bytes + w.bytes);
                }
            }
        }
        sink_clock.resume();
        for shard in SHARDS {
            if let Some(w) = sink.tick(shard, at, true).await.unwrap_or_else(|e| fail("archive", e)) {
                (records, segments, bytes) = (records + w.records, segments + u64::from(w.written), bytes + w.bytes);
            }
        }
        sink_clock.pause();
        let mut all = all;
        all.pause();
        println!(
            "archive write: {} records ({} partitions) in {segments} raw segments: {:.0} B/record in the stream, \
             {:.1} B/record compressed ({:.1}x)",
            thousands(records as f64),
            thousands(self.records as f64),
            raw as f64 / records as f64,
            bytes as f64 / records as f64,
            raw as f64 / bytes as f64
        );
        println!("archive write (segment encode + store): {}", sink_clock.rates(records));
        println!("archive write (with generating the catalog): {}; {}", all.rates(records), peak_rss());
    }

    /// Compacts every raw segment into one snapshot.
    async fn compact(&self) {
        let latest = self.latest().await;
        let opts = CompactOptions { head_ms: 0, ..CompactOptions::default() };
        let mut clock = Clock::new();
        let report = compact(&self.store, STREAM, latest + 1, &opts, true).await.unwrap_or_else(|e| fail("compact", e));
        clock.pause();
        println!(
            "archive compact: {} records in, {} keys out in {} parts, {:.1} B/key; {}; {}",
            thousands(report.records_in as f64),
            thousands(report.keys as f64),
            report.parts,
            report.bytes as f64 / report.keys.max(1) as f64,
            clock.rates(report.records_in),
            peak_rss()
        );
    }

    async fn latest(&self) -> i64 {
        let (manifest, _) =
            ManifestStore::new(&root(STREAM)).load(&*self.store).await.unwrap_or_else(|e| fail("manifest", e));
        manifest.latest_captured_at().unwrap_or_else(|| fail("manifest", "the archive is empty"))
    }

    /// Reads the newest snapshot's heads (what rebuilding `run`'s memory reads).
    async fn heads(&self) {
        let (manifest, _) =
            ManifestStore::new(&root(STREAM)).load(&*self.store).await.unwrap_or_else(|e| fail("manifest", e));
        let Some(snapshot) = manifest.snapshots.last() else { fail("heads", "no snapshot: run the compact phase") };
        let mut clock = Clock::new();
        clock.pause();
        let mut heads = 0u64;
        for part in &snapshot.parts {
            let bytes = match self.store.get(&part.key).await {
                Ok(Some(s)) => s.bytes,
                other => fail(&part.key, format!("{other:?}")),
            };
            clock.resume();
            for h in Heads::new(&bytes).unwrap_or_else(|e| fail(&part.key, e)) {
                std::hint::black_box(h.unwrap_or_else(|e| fail(&part.key, e)));
                heads += 1;
            }
            clock.pause();
        }
        println!(
            "archive heads (rebuild from snapshot {}, {} parts): {}; {}",
            snapshot.id,
            snapshot.parts.len(),
            clock.rates(heads),
            peak_rss()
        );
    }

    /// The state at the newest time, every object.
    async fn state(&self, what: &str) {
        let at = self.latest().await;
        let mut clock = Clock::new();
        let sources = sources_of(&*self.store, STREAM, at).await.unwrap_or_else(|e| fail("sources", e));
        let (mut rx, merging) =
            state_at(&*self.store, &sources, |_| true, BUDGET, None, BATCH).await.unwrap_or_else(|e| fail("state", e));
        let mut objects = 0u64;
        while let Some(batch) = rx.recv().await {
            objects += batch.len() as u64;
        }
        let stats = merging.await.unwrap_or_else(|e| fail("merge", e)).unwrap_or_else(|e| fail("merge", e));
        clock.pause();
        println!(
            "archive state_at ({what}: {} segments{}): {} objects from {} records, {} spilled runs; {}; {}",
            sources.segments.len(),
            sources.base.as_ref().map_or(String::new(), |b| format!(" + snapshot {}", b.id)),
            thousands(objects as f64),
            thousands(stats.records_in as f64),
            stats.runs,
            clock.rates(stats.records_in),
            peak_rss()
        );
    }

    /// A restore of the first `restore` objects' databases into a target that already holds
    /// them, through the command's own code ([`into_target`]): planned first (`--dry-run`: the
    /// state at the time compared with the target, reads only), then applied (compares, finds
    /// nothing to write; lists each table's target partitions for those the state lacks).
    /// With `filled` false, only the plan, into an empty target: every object would be created
    /// (the disaster case's plan), and the peak RSS is the restore's own.
    async fn restore(&self, filled: bool) {
        let at = self.latest().await;
        let per_chunk = partitions_per_chunk() + TABLES + 4;
        let chunks = self.restore.div_ceil(per_chunk);
        let select = move |k: &ObjectKey| chunk_of(k.database()) < chunks;
        let sources = sources_of(&*self.store, STREAM, at).await.unwrap_or_else(|e| fail("sources", e));

        // The target, filled from the same state (not timed).
        let target = Arc::new(MemoryCatalog::new(ACCOUNT));
        if filled {
            let (mut rx, merging) = state_at(&*self.store, &sources, select, BUDGET, None, BATCH)
                .await
                .unwrap_or_else(|e| fail("state", e));
            while let Some(batch) = rx.recv().await {
                for e in batch {
                    if let Some(state) = e.record.state {
                        target.put(state);
                    }
                }
            }
            merging.await.unwrap_or_else(|e| fail("merge", e)).unwrap_or_else(|e| fail("merge", e));
        }

        let config = TargetConfig {
            name: "dr".into(),
            region: "us-west-2".into(),
            catalog_id: Some(ACCOUNT.into()),
            endpoint: None,
            endpoints: Default::default(),
            include: Vec::new(),
            exclude: Vec::new(),
            location_rewrite: Vec::new(),
            skip_archive: true,
            assume_role: None,
            principals: None,
        };
        let env = BenchEnv(Origin { account: ACCOUNT.into(), region: "us-east-1".into(), catalog_id: ACCOUNT.into() });
        let passes: &[bool] = if filled { &[true, false] } else { &[true] };
        for &dry_run in passes {
            let transform =
                Transform::new(&config, ACCOUNT, "us-east-1", ACCOUNT).unwrap_or_else(|e| fail("transform", e));
            let store = DeadLetterStore::new(self.store.clone());
            let catalog = target.clone() as Arc<dyn Catalog>;
            let applier = Applier::new("dr", catalog, transform, store, ApplyConfig::default(), dry_run);
            let opts = RestoreOptions {
                at: At::Time(at),
                into: RestoreInto::Target("dr".into()),
                databases: (0..chunks).map(|c| format!("b{c:04}_*")).collect(),
                rename: None,
                dry_run,
                show: 20,
                progress: false,
            };
            let into = IntoTarget {
                env: &env,
                store: &*self.store,
                sources: &sources,
                applier: &applier,
                lake_formation: None,
                budget: BUDGET,
                work: None,
            };
            let mut report = RestoreReport::default();
            let calls_before = target.calls_of("BatchGetPartition") + target.calls_of("GetPartitions");
            let clock = Clock::new();
            into_target(into, &opts, &mut report).await.unwrap_or_else(|e| fail("restore", e));
            let mut clock = clock;
            clock.pause();
            let t = report.stats.total();
            let calls = target.calls_of("BatchGetPartition") + target.calls_of("GetPartitions") - calls_before;
            println!(
                "archive restore{} ({} objects of {} databases, into {}): {} unchanged, \
                 {} changed, {} plan lines; {calls} partition reads; {}; {}",
                if dry_run { " --dry-run (the plan)" } else { "" },
                thousands(report.objects as f64),
                chunks,
                if filled { "a MemoryCatalog holding them" } else { "an empty MemoryCatalog" },
                thousands(t.unchanged as f64),
                t.changed(),
                report.plan.len() as u64 + report.plan_more,
                clock.rates(report.objects),
                peak_rss()
            );
        }
    }
}

/// The restore's surroundings: the source it restores, and no S3 to probe.
struct BenchEnv(Origin);

#[async_trait]
impl RestoreEnv for BenchEnv {
    fn origin(&self) -> &Origin {
        &self.0
    }

    async fn object_exists(&self, _location: &str) -> Option<bool> {
        None
    }
}

#[tokio::main]
async fn main() {
    let records = env_or("BENCH_RECORDS", 1_000_000);
    let dir = std::env::var("BENCH_DIR").map(PathBuf::from).unwrap_or_else(|_| {
        let d = std::env::temp_dir().join(format!("lakelog-bench-archive-{records}"));
        let _ = std::fs::remove_dir_all(&d);
        d
    });
    let phase = std::env::var("BENCH_PHASE").unwrap_or_else(|_| "all".into());
    let store: SharedStore = Arc::new(DirStore { root: dir.clone() });
    let bench = Bench { store, records, restore: env_or("BENCH_RESTORE", 1_000_000) };
    let all = phase == "all";
    if all || phase == "write" {
        bench.write().await;
    }
    if all || phase == "state-raw" {
        bench.state("raw segments only").await;
    }
    if all || phase == "compact" {
        bench.compact().await;
    }
    if all || phase == "heads" {
        bench.heads().await;
    }
    if all || phase == "state" {
        bench.state("after compaction").await;
    }
    if all || phase == "restore" {
        bench.restore(true).await;
    }
    if all || phase == "plan-empty" {
        bench.restore(false).await;
    }
    let phases = ["all", "write", "state-raw", "compact", "heads", "state", "restore", "plan-empty"];
    if !phases.contains(&phase.as_str()) {
        fail("BENCH_PHASE", format!("{phase}: one of {}", phases.join(", ")));
    }
    if all && std::env::var("BENCH_DIR").is_err() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
