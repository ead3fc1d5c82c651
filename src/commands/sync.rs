//! `lakelog sync`: the on-demand full replication.
//!
//! 1. Scan the source (paginated) into full-state snapshot records.
//! 2. Publish them to the change log (ordered per table), while
//! 3. each target's consumer group reads the stream from its checkpoint and applies it, until it
//!    has applied everything this run published (and whatever an interrupted earlier run left).
//! 4. Compare the target with the source key set: objects only in the target are listed, or
//!    deleted with `--prune`.
//!
//! `--dry-run` publishes nothing and writes nothing: the scan is compared with each target and
//! the counts say what a real run would do.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tracing::info;

use crate::apply::applier::Applier;
use crate::apply::dry_run::Planned;
use crate::apply::group::{ShardReport, StopWhen};
use crate::apply::stats::{ApplyStats, Outcome};
use crate::apply::ApplyError;
use crate::backend::catalog::PARTITION_DELETE_CHUNK;
use crate::backend::AwsError;
use crate::capture::scan::snapshot::{snapshot, ScanStats};
use crate::capture::CaptureError;
use crate::catalog::reader::CatalogReader;
use crate::catalog::ReadError;
use crate::connect::{Pipeline, PipelineError};
use crate::model::{identity_hash, ChangeRecord, ObjectKey, ObjectKind};
use crate::progress::Progress;
use crate::stream::StreamError;

#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Only this target (default: all).
    pub target: Option<String>,
    pub dry_run: bool,
    /// Delete target objects that the source does not have.
    pub prune: bool,
    /// Show progress bars on a terminal.
    pub progress: bool,
}

/// What a sync did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub dry_run: bool,
    pub source: ScanStats,
    pub published_records: u64,
    pub published_frames: u64,
    pub put_calls: u64,
    pub targets: BTreeMap<String, TargetReport>,
    /// Wall time of the whole run.
    pub seconds: f64,
    /// Until every target had applied everything published (capture, publish and apply overlap).
    pub replicate_seconds: f64,
    /// Comparing targets with the source afterwards (and pruning).
    pub compare_seconds: f64,
    /// The process's peak resident memory (Linux), for sizing the machine that runs it.
    pub peak_rss_bytes: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TargetReport {
    pub stats: ApplyStats,
    pub shards: Vec<ShardReport>,
    /// Objects in the target that the source does not have (first 1,000).
    pub extra: Vec<String>,
    pub extra_total: usize,
    /// What `--prune` deleted.
    pub pruned: ApplyStats,
    /// Requests sent to the target's Glue, per operation.
    pub api_calls: BTreeMap<String, u64>,
    /// Write requests among them.
    pub write_calls: u64,
    /// In a dry run: the writes a real run would send, per operation (none were sent).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub planned_writes: BTreeMap<String, Planned>,
}

/// The human report: source counts, then per target what changed, then the timings.
impl fmt::Display for SyncReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run { "would be" } else { "were" };
        writeln!(
            f,
            "source: {} databases, {} tables, {} partitions scanned",
            self.source.databases, self.source.tables, self.source.partitions
        )?;
        if !self.dry_run {
            writeln!(
                f,
                "change log: {} records in {} Kinesis records ({} PutRecords calls)",
                self.published_records, self.published_frames, self.put_calls
            )?;
        }
        for (name, t) in &self.targets {
            writeln!(
                f,
                "target {name}: (objects that {verb} created / updated / deleted / unchanged / dead-lettered)"
            )?;
            for (kind, c) in &t.stats.0 {
                writeln!(
                    f,
                    "  {:<10} {:>8} created {:>8} updated {:>8} deleted {:>8} unchanged {:>6} dead-lettered",
                    kind.as_str(),
                    c.created,
                    c.updated,
                    c.deleted,
                    c.unchanged,
                    c.dead_lettered
                )?;
            }
            if self.dry_run {
                writeln!(f, "  {}", crate::apply::dry_run::describe(&t.planned_writes))?;
            }
            let resumed: Vec<_> =
                t.shards.iter().filter(|s| s.resumed_after.is_some()).map(|s| s.shard.as_str()).collect();
            if !resumed.is_empty() {
                writeln!(f, "  resumed from checkpoints on {}", resumed.join(", "))?;
            }
            if t.extra_total > 0 {
                let pruned = t.pruned.total().deleted;
                if pruned > 0 {
                    writeln!(f, "  pruned {pruned} objects absent from the source")?;
                } else {
                    writeln!(f, "  {} objects exist only in the target (use --prune to delete them):", t.extra_total)?;
                    for e in t.extra.iter().take(20) {
                        writeln!(f, "    {e}")?;
                    }
                    if t.extra_total > 20 {
                        writeln!(f, "    ... and {} more", t.extra_total - 20)?;
                    }
                }
            }
            writeln!(f, "  target API calls: {} ({} writes)", t.api_calls.values().sum::<u64>(), t.write_calls)?;
        }
        let memory = self.peak_rss_bytes.map(|b| format!(", peak memory {} MB", b / (1024 * 1024))).unwrap_or_default();
        writeln!(
            f,
            "done in {:.1}s ({:.1}s to replicate, {:.1}s to compare targets with the source{memory})",
            self.seconds, self.replicate_seconds, self.compare_seconds
        )?;
        Ok(())
    }
}

#[derive(Debug, Error)]
pub enum SyncError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("scanning the source: {0}")]
    Capture(#[from] CaptureError),
    #[error("publishing to the change log: {0}")]
    Stream(#[from] StreamError),
    #[error("applying to target {target}: {source}")]
    Apply { target: String, source: ApplyError },
    #[error("comparing target {target} with the source: {source}")]
    Compare { target: String, source: CaptureError },
    #[error("pruning target {target}: {source}")]
    Prune { target: String, source: AwsError },
}

/// A 128-bit hash of an object's identity in a catalog (names and partition values, each length
/// prefixed). Sync remembers objects by it — 16 bytes an object, whatever its names — so that its
/// memory stays flat as the catalog grows.
fn identity(database: &str, table: Option<&str>, values: Option<&[String]>) -> u128 {
    // A marker keeps a partition apart from a table whose name equals a value.
    let values =
        values.into_iter().flat_map(|vs| std::iter::once("\u{0}partition").chain(vs.iter().map(String::as_str)));
    identity_hash(std::iter::once(database).chain(table).chain(values))
}

fn key_identity(key: &ObjectKey) -> u128 {
    match key {
        ObjectKey::Database { database, .. } => identity(database, None, None),
        ObjectKey::Table { database, table, .. } => identity(database, Some(table), None),
        ObjectKey::Partition { database, table, values, .. } => identity(database, Some(table), Some(values)),
    }
}

/// The identities of the objects the source scan emitted.
#[derive(Debug, Default)]
struct SourceKeys(HashSet<u128>);

impl SourceKeys {
    fn note(&mut self, key: &ObjectKey) {
        self.0.insert(key_identity(key));
    }

    fn has(&self, id: u128) -> bool {
        self.0.contains(&id)
    }
}

/// The identities of a target's objects in scope, listed when the sync starts: whatever the
/// source does not have among them is drift (what apply creates comes from the source, so it can
/// never be). Partitions are grouped by their table so the naming pass lists only tables with drift.
#[derive(Debug, Default)]
struct TargetKeys {
    databases: HashSet<u128>,
    tables: HashSet<u128>,
    partitions: HashMap<u128, HashSet<u128>>,
}

impl TargetKeys {
    /// Lists the target a page at a time, keeping identities only.
    async fn list(
        reader: &CatalogReader,
        in_scope: impl Fn(&str, Option<&str>) -> bool,
    ) -> Result<TargetKeys, CaptureError> {
        let mut keys = TargetKeys::default();
        for db in reader.databases().await? {
            if !in_scope(&db.name, None) {
                continue;
            }
            keys.databases.insert(identity(&db.name, None, None));
            for table in reader.tables(&db.name).await? {
                if !in_scope(&db.name, Some(&table.name)) {
                    continue;
                }
                let table_id = identity(&db.name, Some(&table.name), None);
                keys.tables.insert(table_id);
                let mut parts = HashSet::new();
                reader
                    .each_partition_page(&db.name, &table.name, |page| {
                        parts.extend(page.iter().map(|p| identity(&db.name, Some(&table.name), Some(&p.values))));
                    })
                    .await?;
                if !parts.is_empty() {
                    keys.partitions.insert(table_id, parts);
                }
            }
        }
        Ok(keys)
    }

    /// Drops what the source has; what is left is drift. A database or table the source lacks is
    /// drift once, not with everything inside it.
    fn drift(mut self, source: &SourceKeys) -> TargetKeys {
        self.databases.retain(|id| !source.has(*id));
        self.tables.retain(|id| !source.has(*id));
        let tables = &self.tables;
        self.partitions.retain(|table, parts| {
            parts.retain(|id| !source.has(*id));
            !parts.is_empty() && !tables.contains(table)
        });
        self
    }

    fn is_empty(&self) -> bool {
        self.databases.is_empty() && self.tables.is_empty() && self.partitions.is_empty()
    }
}

/// Runs a sync.
pub async fn sync(pipeline: &Pipeline, opts: &SyncOptions) -> Result<SyncReport, SyncError> {
    let started = Instant::now();
    let targets = pipeline.select_targets(opts.target.as_deref())?;
    let progress = Progress::new(opts.progress);
    let (scan_tx, mut scan_rx) = mpsc::channel::<ChangeRecord>(256);
    let keys = Arc::new(std::sync::Mutex::new(SourceKeys::default()));

    let mut appliers = Vec::new();
    for t in &targets {
        appliers.push((*t, pipeline.applier(t, opts.dry_run)?));
    }

    let scan = async {
        let r = snapshot(&pipeline.source, &pipeline.source_filter, &pipeline.origin, &scan_tx, &progress).await;
        drop(scan_tx);
        r
    };

    // The drift listing runs while the copy does, over each target as it is before apply writes
    // to it (a cold copy lists an empty target), keeping identities only. What apply creates
    // comes from the source, so it is never drift.
    let listings = futures::future::join_all(appliers.iter().map(|(t, applier)| async move {
        TargetKeys::list(applier.reader(), |db, table| pipeline.replicates(applier, db, table))
            .await
            .map_err(|source| SyncError::Compare { target: t.config.name.clone(), source })
    }));

    let mut reports: BTreeMap<String, TargetReport> = BTreeMap::new();
    let replicate = async {
        let (source, published) = if opts.dry_run {
            // Compare the scan directly with each target, in batches (records are full states, and
            // one sequence keeps per-key order).
            let plan = async {
                let mut stats: Vec<ApplyStats> = vec![ApplyStats::default(); appliers.len()];
                let mut batch = Vec::with_capacity(5000);
                loop {
                    let rec = scan_rx.recv().await;
                    let done = rec.is_none();
                    if let Some(r) = rec {
                        if let Ok(mut k) = keys.lock() {
                            k.note(&r.key);
                        }
                        batch.push(r);
                    }
                    if batch.len() >= 5000 || (done && !batch.is_empty()) {
                        let records = std::mem::take(&mut batch);
                        for (i, (t, applier)) in appliers.iter().enumerate() {
                            let s = applier
                                .apply(records.clone())
                                .await
                                .map_err(|source| SyncError::Apply { target: t.config.name.clone(), source })?;
                            stats[i].merge(&s);
                        }
                    }
                    if done {
                        return Ok::<_, SyncError>(stats);
                    }
                }
            };
            let (scanned, planned) = tokio::join!(scan, plan);
            let scanned = scanned?;
            for ((t, _), stats) in appliers.iter().zip(planned?) {
                reports.insert(t.config.name.clone(), TargetReport { stats, ..Default::default() });
            }
            (scanned, Default::default())
        } else {
            let publisher = pipeline.publisher().await?;
            let (end_tx, end_rx) = watch::channel(None);
            let (pub_tx, pub_rx) = mpsc::channel::<ChangeRecord>(256);
            let forward = async {
                while let Some(r) = scan_rx.recv().await {
                    if let Ok(mut k) = keys.lock() {
                        k.note(&r.key);
                    }
                    if pub_tx.send(r).await.is_err() {
                        break;
                    }
                }
                drop(pub_tx);
            };
            let publish = async {
                let p = publisher.publish_all(pub_rx).await;
                if p.is_ok() {
                    let _ = end_tx.send(Some(publisher.last_sequence().await));
                }
                p
            };
            let groups = futures::future::join_all(appliers.iter().map(|(t, applier)| {
                let group = Arc::new(pipeline.consumer_group(applier.clone(), progress.clone(), None, false));
                let stop = StopWhen::Drained(end_rx.clone());
                async move { (t.config.name.clone(), group.run(stop).await) }
            }));
            let capture_and_publish = async {
                let (scanned, (), published) = tokio::join!(scan, forward, publish);
                (scanned, published)
            };
            tokio::pin!(groups);
            tokio::pin!(capture_and_publish);
            // Consumers stop only once the producer says where the end is; if capture or publish
            // fails first, returning here drops (cancels) them. Consumers can only finish earlier by
            // failing, and then their error is the one to report.
            let (scanned, published, results) = tokio::select! {
                (scanned, published) = &mut capture_and_publish => {
                    let scanned = scanned?;
                    let published = published?;
                    (scanned, published, groups.await)
                }
                results = &mut groups => {
                    let (scanned, published) = capture_and_publish.await;
                    (scanned?, published?, results)
                }
            };
            info!(records = published.published, frames = published.frames, calls = published.put_calls, "published");
            for (name, result) in results {
                let g = result.map_err(|source| SyncError::Apply { target: name.clone(), source })?;
                reports.insert(name, TargetReport { stats: g.stats, shards: g.shards, ..Default::default() });
            }
            (scanned, published)
        };
        Ok::<_, SyncError>((source, published))
    };
    // Boxed: the joined future is too large for a worker thread's stack in debug builds.
    let (replicated, listed) = tokio::join!(Box::pin(replicate), Box::pin(listings));
    let (source, published) = replicated?;
    progress.finish();
    let replicate_seconds = started.elapsed().as_secs_f64();

    let keys = match Arc::try_unwrap(keys) {
        Ok(m) => m.into_inner().unwrap_or_default(),
        Err(shared) => std::mem::take(&mut *shared.lock().unwrap_or_else(|e| e.into_inner())),
    };
    for ((t, applier), listed) in appliers.iter().zip(listed) {
        let drift = listed?.drift(&keys);
        let report = reports.entry(t.config.name.clone()).or_default();
        if !drift.is_empty() {
            settle_drift(pipeline, applier, &drift, opts, report).await?;
        }
        report.api_calls = t.counter.snapshot();
        report.write_calls = t.counter.writes();
        report.planned_writes = applier.dry_run().map(|d| d.planned()).unwrap_or_default();
    }
    Ok(SyncReport {
        dry_run: opts.dry_run,
        source,
        published_records: published.published,
        published_frames: published.frames,
        put_calls: published.put_calls,
        targets: reports,
        seconds: started.elapsed().as_secs_f64(),
        replicate_seconds,
        compare_seconds: started.elapsed().as_secs_f64() - replicate_seconds,
        peak_rss_bytes: crate::resources::peak_rss_bytes(),
    })
}

/// An object that a target has and the source does not.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Extra {
    Database(String),
    Table(String, String),
    Partition(String, String, Vec<String>),
}

impl std::fmt::Display for Extra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Extra::Database(d) => write!(f, "database {d}"),
            Extra::Table(d, t) => write!(f, "table {d}.{t}"),
            Extra::Partition(d, t, v) => write!(f, "partition {d}.{t} [{}]", v.join(", ")),
        }
    }
}

/// Names the drift's objects by listing only what holds some (a database's tables when the
/// drift has tables or partitions; a table's partitions when it has drifted partitions), reports
/// them (the first 1,000 by name, all in the count) and, with `--prune`, deletes them.
async fn settle_drift(
    pipeline: &Pipeline,
    applier: &Applier,
    drift: &TargetKeys,
    opts: &SyncOptions,
    report: &mut TargetReport,
) -> Result<(), SyncError> {
    let name = || applier.name().to_string();
    let compare = |e: ReadError| SyncError::Compare { target: name(), source: e.into() };
    let prune_err = |source| SyncError::Prune { target: name(), source };
    // In a dry run the applier's target records the deletes instead of sending them.
    let (target, reader) = (applier.target(), applier.reader());
    let note = |report: &mut TargetReport, e: Extra| {
        report.extra_total += 1;
        if report.extra.len() < 1000 {
            report.extra.push(e.to_string());
        }
    };
    let inside = !drift.tables.is_empty() || !drift.partitions.is_empty();
    for db in reader.databases().await.map_err(compare)? {
        if !pipeline.replicates(applier, &db.name, None) {
            continue;
        }
        if drift.databases.contains(&identity(&db.name, None, None)) {
            if opts.prune {
                target.delete_database(&db.name).await.map_err(prune_err)?;
                report.pruned.add(ObjectKind::Database, Outcome::Deleted, 1);
            }
            note(report, Extra::Database(db.name));
            continue;
        }
        if !inside {
            continue;
        }
        for table in reader.tables(&db.name).await.map_err(compare)? {
            if !pipeline.replicates(applier, &db.name, Some(&table.name)) {
                continue;
            }
            let table_id = identity(&db.name, Some(&table.name), None);
            if drift.tables.contains(&table_id) {
                if opts.prune {
                    target.delete_table(&db.name, &table.name).await.map_err(prune_err)?;
                    report.pruned.add(ObjectKind::Table, Outcome::Deleted, 1);
                }
                note(report, Extra::Table(db.name.clone(), table.name));
                continue;
            }
            let Some(parts) = drift.partitions.get(&table_id) else { continue };
            let mut values = Vec::new();
            reader
                .each_partition_page(&db.name, &table.name, |page| {
                    let drifted = page.into_iter().map(|p| p.values);
                    values.extend(drifted.filter(|v| parts.contains(&identity(&db.name, Some(&table.name), Some(v)))));
                })
                .await
                .map_err(compare)?;
            if opts.prune {
                for chunk in values.chunks(PARTITION_DELETE_CHUNK) {
                    let failed = target.delete_partitions(&db.name, &table.name, chunk).await.map_err(prune_err)?.len();
                    report.pruned.add(ObjectKind::Partition, Outcome::Deleted, (chunk.len() - failed) as u64);
                }
            }
            for v in values {
                note(report, Extra::Partition(db.name.clone(), table.name.clone(), v));
            }
        }
    }
    Ok(())
}
