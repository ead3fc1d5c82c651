//! `lakelog sync`: the on-demand full replication.
//!
//! 1. Scan the source (paginated) into full-state snapshot records.
//! 2. Publish them to the change log (ordered per table), while
//! 3. each target's consumer group reads the stream from its checkpoint and applies it, until it
//!    has applied everything this run published (and whatever an interrupted earlier run left).
//!    With the archive on, the archive's live objects are remembered first, and those the scan
//!    did not see are published as deletes after it: gone from the source, so the archive records
//!    the drop and the targets apply it.
//! 4. Compare the target with the source key set: objects only in the target are listed, or
//!    deleted with `--prune`.
//!
//! `--dry-run` publishes nothing and writes nothing: the scan is compared with each target and
//! the counts say what a real run would do.
//!
//! Each step is a component that owns its job: [`SourceScan`] (1), [`Replication`] (2 and 3; in
//! a dry run [`Plan`]), [`TargetKeys`] and [`DriftSettler`] (4). [`sync`] only builds them from
//! the [`Pipeline`], joins them and assembles the report.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::apply::applier::Applier;
use crate::apply::coordination::Coordinator;
use crate::apply::dry_run::Planned;
use crate::apply::group::{ConsumerGroup, ShardReport, StopWhen};
use crate::apply::stats::{ApplyStats, Outcome};
use crate::apply::transform::Transform;
use crate::apply::ApplyError;
use crate::archive::consumer::GROUP;
use crate::archive::rebuild::rebuild;
use crate::backend::catalog::PARTITION_DELETE_CHUNK;
use crate::backend::AwsError;
use crate::capture::scan::lakeformation::target_deletes;
use crate::capture::scan::snapshot::{snapshot, ScanStats};
use crate::capture::CaptureError;
use crate::catalog::lakeformation::LfReader;
use crate::catalog::reader::CatalogReader;
use crate::catalog::ReadError;
use crate::connect::{Pipeline, PipelineError, TargetHandle};
use crate::model::filter::Filter;
use crate::model::{now_millis, object_identity, Cause, CauseKind, ChangeRecord, ObjectKey, ObjectKind, Origin};
use crate::progress::Progress;
use crate::stream::publisher::{PublishOutcome, Publisher};
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
    /// Records the archive wrote to raw segments (`None`: a dry run, or archiving is off).
    pub archived: Option<u64>,
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
            if let Some(n) = self.archived {
                writeln!(f, "archive: {n} records kept in raw segments (lakelog restore, lakelog history)")?;
            }
        }
        for (name, t) in &self.targets {
            t.write(f, name, self.dry_run)?;
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

impl TargetReport {
    /// Counts an object only the target has, naming the first 1,000.
    fn note_extra(&mut self, e: Extra) {
        self.extra_total += 1;
        if self.extra.len() < 1000 {
            self.extra.push(e.to_string());
        }
    }

    /// One target's part of the human report: what changed, then where it resumed, its drift
    /// and the requests sent to it.
    fn write(&self, f: &mut fmt::Formatter<'_>, name: &str, dry_run: bool) -> fmt::Result {
        let verb = if dry_run { "would be" } else { "were" };
        writeln!(f, "target {name}: (objects that {verb} created / updated / deleted / unchanged / dead-lettered)")?;
        for (kind, c) in &self.stats.0 {
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
        if dry_run {
            writeln!(f, "  {}", crate::apply::dry_run::describe(&self.planned_writes))?;
        }
        let resumed: Vec<_> =
            self.shards.iter().filter(|s| s.resumed_after.is_some()).map(|s| s.shard.as_str()).collect();
        if !resumed.is_empty() {
            writeln!(f, "  resumed from checkpoints on {}", resumed.join(", "))?;
        }
        if self.extra_total > 0 {
            let pruned = self.pruned.total().deleted;
            if pruned > 0 {
                writeln!(f, "  pruned {pruned} objects absent from the source")?;
            } else {
                writeln!(f, "  {} objects exist only in the target (use --prune to delete them):", self.extra_total)?;
                for e in self.extra.iter().take(20) {
                    writeln!(f, "    {e}")?;
                }
                if self.extra_total > 20 {
                    writeln!(f, "    ... and {} more", self.extra_total - 20)?;
                }
            }
        }
        writeln!(f, "  target API calls: {} ({} writes)", self.api_calls.values().sum::<u64>(), self.write_calls)?;
        Ok(())
    }
}

#[derive(Debug, Error)]
pub enum SyncError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("{0}")]
    Lock(#[from] crate::state::lock::LockError),
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

/// The identities of the objects the source scan emitted.
#[derive(Debug, Default)]
struct SourceKeys(HashSet<u128>);

impl SourceKeys {
    fn note(&mut self, key: &ObjectKey) {
        self.0.insert(key.identity());
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
            keys.databases.insert(object_identity(&db.name, None, None));
            for table in reader.tables(&db.name).await? {
                if !in_scope(&db.name, Some(&table.name)) {
                    continue;
                }
                let table_id = object_identity(&db.name, Some(&table.name), None);
                keys.tables.insert(table_id);
                let mut parts = HashSet::new();
                reader
                    .each_partition_values_page(&db.name, &table.name, |page| {
                        parts.extend(page.iter().map(|v| object_identity(&db.name, Some(&table.name), Some(v))));
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

/// Runs a sync: the source scan feeds the replication (in a dry run, the plan) while each target's
/// drift listing runs; then each target is compared with what the scan saw.
pub async fn sync(pipeline: &Pipeline, opts: &SyncOptions) -> Result<SyncReport, SyncError> {
    let started = Instant::now();
    let targets = pipeline.select_targets(opts.target.as_deref())?;
    let progress = Progress::new(opts.progress);
    let mut appliers = Vec::new();
    for t in &targets {
        appliers.push((*t, pipeline.applier(t, opts.dry_run)?));
    }

    let (records_tx, records) = mpsc::channel::<ChangeRecord>(256);
    let (reader, filter, origin) = (&pipeline.source, &pipeline.source_filter, &pipeline.origin);
    // A grant only in a target is revoked with --prune, as other objects only in a target are
    // deleted: a grant the source revoked is already a delete (the archive remembers it).
    let lf_targets = match opts.prune {
        true => appliers
            .iter()
            .filter_map(|(t, a)| t.lake_formation.clone().map(|lf| (LfReader::new(lf), a.transform().clone())))
            .collect(),
        false => Vec::new(),
    };
    let scan = SourceScan { reader, filter, origin, progress: &progress, lf_targets }.run(records_tx);
    let replicate = async {
        if opts.dry_run {
            Plan { appliers: &appliers }.run(scan, records).await
        } else {
            Replication::new(pipeline, &appliers, &progress).await?.run(scan, records).await
        }
    };
    // The drift listing runs while the copy does, over each target as it is before apply writes
    // to it (a cold copy lists an empty target), keeping identities only. What apply creates
    // comes from the source, so it is never drift.
    let listings = futures::future::join_all(appliers.iter().map(|(t, applier)| list_target(pipeline, t, applier)));
    // Boxed: the joined future is too large for a worker thread's stack in debug builds.
    let (replicated, listed) = tokio::join!(Box::pin(replicate), Box::pin(listings));
    let Replicated { scanned, published, mut reports, archived } = replicated?;
    progress.finish();
    let replicate_seconds = started.elapsed().as_secs_f64();

    for ((t, applier), listed) in appliers.iter().zip(listed) {
        let report = reports.entry(t.config.name.clone()).or_default();
        compare(pipeline, t, applier, listed?, &scanned.keys, opts, report).await?;
    }
    Ok(SyncReport {
        dry_run: opts.dry_run,
        source: scanned.stats,
        published_records: published.published,
        published_frames: published.frames,
        put_calls: published.put_calls,
        targets: reports,
        archived,
        seconds: started.elapsed().as_secs_f64(),
        replicate_seconds,
        compare_seconds: started.elapsed().as_secs_f64() - replicate_seconds,
        peak_rss_bytes: crate::resources::peak_rss_bytes(),
    })
}

/// The source scan: every object in scope as a full-state snapshot record, passed on in scan
/// order. It keeps each object's identity for the drift comparison.
struct SourceScan<'a> {
    reader: &'a CatalogReader,
    filter: &'a Filter,
    origin: &'a Origin,
    progress: &'a Progress,
    /// The Lake Formation of each target synced (`source.lakeformation`) with its transform:
    /// what it holds that the scan did not see, as the target names it, becomes a delete record
    /// (see `capture::scan::lakeformation`).
    lf_targets: Vec<(LfReader, Transform)>,
}

/// What the scan saw.
struct Scanned {
    stats: ScanStats,
    keys: SourceKeys,
}

impl SourceScan<'_> {
    /// Scans into `out`, which closes when the scan ends. A consumer that stops taking records
    /// stops the scan too (`CaptureError::Closed`).
    async fn run(self, out: mpsc::Sender<ChangeRecord>) -> Result<Scanned, CaptureError> {
        let (tx, mut rx) = mpsc::channel::<ChangeRecord>(256);
        let scan = async move { snapshot(self.reader, self.filter, self.origin, &tx, self.progress).await };
        let (filter, origin, lf_targets) = (self.filter, self.origin, self.lf_targets);
        let note = async move {
            let mut keys = SourceKeys::default();
            // The databases and tables seen, whose LF-tags are compared on each target.
            let mut tagged = Vec::new();
            while let Some(r) = rx.recv().await {
                keys.note(&r.key);
                // Also as each target names it (principal mapped, S3 ARNs rewritten): a target's
                // copy of a source object is not "only in the target".
                if let ObjectKey::LakeFormation { catalog, lf } = &r.key {
                    for lf in lf_targets.iter().filter_map(|(_, t)| t.lf_target_key(lf)).filter(|k| k != lf) {
                        keys.note(&ObjectKey::LakeFormation { catalog: catalog.clone(), lf });
                    }
                }
                if !lf_targets.is_empty() {
                    match &r.key {
                        ObjectKey::Database { database, .. } => tagged.push((database.clone(), None)),
                        ObjectKey::Table { database, table, .. } => {
                            tagged.push((database.clone(), Some(table.clone())))
                        }
                        _ => {}
                    }
                }
                if out.send(r).await.is_err() {
                    return (keys, Ok(0));
                }
            }
            // The scan is complete here (its sender is gone): every key it saw is noted.
            let cause = Cause { kind: CauseKind::Snapshot, event_id: None };
            let mut deletes = 0;
            for (target, _) in &lf_targets {
                let seen = |k: &ObjectKey| keys.has(k.identity());
                match target_deletes(target, filter, origin, &cause, &tagged, seen, &out).await {
                    Ok(n) => deletes += n,
                    Err(e) => return (keys, Err(e)),
                }
            }
            (keys, Ok(deletes))
        };
        let (stats, (keys, deletes)) = tokio::join!(scan, note);
        let mut stats = stats?;
        stats.lake_formation += deletes?;
        Ok(Scanned { stats, keys })
    }
}

/// The scan's result with its consumer's. A consumer that fails stops taking records, and the
/// scan then fails only for that (`CaptureError::Closed`): the consumer's error is the one to report.
// The error is the one every step of a sync returns (and its async steps return unboxed too).
#[allow(clippy::result_large_err)]
fn first_cause<T>(
    scanned: Result<Scanned, CaptureError>,
    consumed: Result<T, SyncError>,
) -> Result<(Scanned, T), SyncError> {
    match (scanned, consumed) {
        (Err(CaptureError::Closed), Err(e)) => Err(e),
        (scanned, consumed) => Ok((scanned?, consumed?)),
    }
}

/// What the copy (or the plan) did: the scan, the change log's counts and each target's report.
struct Replicated {
    scanned: Scanned,
    published: PublishOutcome,
    reports: BTreeMap<String, TargetReport>,
    /// Records the archive's group wrote to raw segments (`None`: not archived).
    archived: Option<u64>,
}

/// The copy: the scan published through the [`Publisher`] while each target's consumer group
/// applies the stream from its checkpoint, until it has applied everything this run published
/// (and whatever an interrupted earlier run left).
struct Replication<'a> {
    publisher: Arc<Publisher>,
    consumers: Vec<(String, Arc<ConsumerGroup>)>,
    /// With the archive on: what earlier runs published is rebuilt from it, so objects gone from
    /// the source since are published as deletes (the archive, and every target, learn of them).
    archive: Option<&'a Pipeline>,
    /// The groups' single-writer locks (or leases), released once they are drained.
    coordinator: Coordinator,
}

impl<'a> Replication<'a> {
    async fn new(
        pipeline: &'a Pipeline,
        appliers: &[(&TargetHandle, Applier)],
        progress: &Progress,
    ) -> Result<Replication<'a>, SyncError> {
        let mut groups: Vec<(String, ConsumerGroup)> = appliers
            .iter()
            .map(|(t, applier)| {
                (t.config.name.clone(), pipeline.consumer_group(applier.clone(), progress.clone(), None, false))
            })
            .collect();
        // The archive drains beside the targets, so what sync publishes is kept too.
        let mut archive = None;
        if let Some(group) = pipeline.archive_group(Progress::hidden()) {
            groups.push((GROUP.to_string(), group));
            archive = Some(pipeline);
        }
        // Before publishing: a sync beside a running `run` is refused, not interleaved with it.
        let names: Vec<String> = groups.iter().map(|(n, _)| n.clone()).collect();
        let coordinator = pipeline.coordinate(&names).await?;
        let publisher = pipeline.publisher().await?;
        let consumers = groups
            .into_iter()
            .map(|(name, mut group)| {
                coordinator.coordinate(&mut group);
                (name, Arc::new(group))
            })
            .collect();
        Ok(Replication { publisher, consumers, coordinator, archive })
    }

    /// Publishes the scan, then, with the archive on, a delete for every object the archive
    /// holds as live and the scan did not see: gone from the source since it was recorded.
    async fn publish(&self, records: mpsc::Receiver<ChangeRecord>) -> Result<PublishOutcome, SyncError> {
        let Some(pipeline) = self.archive else { return Ok(self.publisher.publish_all(records).await?) };
        let a = &pipeline.config.archive;
        let (budget, work) = ((a.merge_memory_mib as usize) << 20, a.work_dir.as_deref().map(std::path::Path::new));
        match rebuild(&*pipeline.state, &pipeline.config.stream.name, &self.publisher, budget, work).await {
            Ok(r) => info!(objects = r.objects, seconds = r.seconds, "remembered the archive's live objects"),
            Err(e) => {
                warn!(error = %e, "cannot read the archive: objects gone from the source since earlier runs are not recorded as deleted by this sync");
                return Ok(self.publisher.publish_all(records).await?);
            }
        }
        // Everything the scan reads is recorded after this, and so counts as seen.
        let started = now_millis();
        let pass = self.publisher.begin_pass().await;
        let mut outcome = self.publisher.publish_all(records).await?;
        let filter = &pipeline.source_filter;
        let cause = Cause { kind: CauseKind::Snapshot, event_id: None };
        let deletes: Vec<ChangeRecord> = pass
            .unseen(started)
            .into_iter()
            // An object the scan could not see (excluded since) is not gone. Catalog-level Lake
            // Formation objects (LF-tags, settings) belong to no database: always in scope.
            .filter(|k| match (k.database(), k.table()) {
                ("", _) => k.lake_formation().is_some(),
                (db, Some(t)) => filter.allows_table(db, t),
                (db, None) => filter.allows_database(db),
            })
            .map(|k| ChangeRecord::delete(k, &pipeline.origin, cause.clone(), started))
            .collect();
        drop(pass);
        if !deletes.is_empty() {
            info!(deletes = deletes.len(), "objects the archive holds are gone from the source");
        }
        for chunk in deletes.chunks(STREAM_DELETE_BATCH) {
            outcome.published += self.publisher.publish(chunk.to_vec()).await?.published;
        }
        Ok(outcome)
    }

    async fn run(
        self,
        scan: impl Future<Output = Result<Scanned, CaptureError>>,
        records: mpsc::Receiver<ChangeRecord>,
    ) -> Result<Replicated, SyncError> {
        // The futures borrow `self`; they end before the locks are released, also on failure.
        let outcome: Result<_, SyncError> = async {
            let (end_tx, end) = watch::channel(None);
            let publish = async {
                let published = self.publish(records).await;
                if published.is_ok() {
                    let _ = end_tx.send(Some(self.publisher.last_sequence().await));
                }
                published
            };
            let producing = async {
                let (scanned, published) = tokio::join!(scan, publish);
                first_cause(scanned, published)
            };
            let draining = futures::future::join_all(self.consumers.iter().map(|(name, group)| {
                let stop = StopWhen::Drained(end.clone());
                async move { (name.clone(), group.clone().run(stop).await) }
            }));
            tokio::pin!(producing);
            tokio::pin!(draining);
            // Consumers stop only once the producer says where the end is; if capture or publish
            // fails first, returning here drops (cancels) them. Consumers can only finish earlier by
            // failing, and then their error is the one to report.
            tokio::select! {
                produced = &mut producing => Ok((produced?, draining.await)),
                drained = &mut draining => Ok((producing.await?, drained)),
            }
        }
        .await;
        self.coordinator.release().await;
        let ((scanned, published), drained) = outcome?;
        info!(records = published.published, frames = published.frames, calls = published.put_calls, "published");
        let (mut reports, mut archived) = (BTreeMap::new(), None);
        for (name, result) in drained {
            let g = result.map_err(|source| SyncError::Apply { target: name.clone(), source })?;
            if name == GROUP {
                archived = Some(g.shards.iter().map(|s| s.records).sum());
                continue;
            }
            reports.insert(name, TargetReport { stats: g.stats, shards: g.shards, ..Default::default() });
        }
        Ok(Replicated { scanned, published, reports, archived })
    }
}

/// Deletes published per publisher call.
const STREAM_DELETE_BATCH: usize = 2000;

/// Records a dry run compares with the targets at a time.
const PLAN_BATCH: usize = 5000;

/// The dry run's copy: the scan compared directly with each target through its recording
/// applier, in batches (records are full states, and one sequence keeps per-key order).
struct Plan<'a> {
    appliers: &'a [(&'a TargetHandle, Applier)],
}

impl Plan<'_> {
    async fn run(
        self,
        scan: impl Future<Output = Result<Scanned, CaptureError>>,
        records: mpsc::Receiver<ChangeRecord>,
    ) -> Result<Replicated, SyncError> {
        let (scanned, planned) = tokio::join!(scan, self.plan(records));
        let (scanned, planned) = first_cause(scanned, planned)?;
        let reports = self
            .appliers
            .iter()
            .zip(planned)
            .map(|((t, _), stats)| (t.config.name.clone(), TargetReport { stats, ..Default::default() }))
            .collect();
        Ok(Replicated { scanned, published: PublishOutcome::default(), reports, archived: None })
    }

    /// What each target would do with the records, in the order of `self.appliers`.
    async fn plan(&self, mut records: mpsc::Receiver<ChangeRecord>) -> Result<Vec<ApplyStats>, SyncError> {
        let mut stats = vec![ApplyStats::default(); self.appliers.len()];
        let mut batch = Vec::with_capacity(PLAN_BATCH);
        loop {
            let next = records.recv().await;
            let done = next.is_none();
            batch.extend(next);
            if batch.len() >= PLAN_BATCH || (done && !batch.is_empty()) {
                self.apply(std::mem::take(&mut batch), &mut stats).await?;
            }
            if done {
                return Ok(stats);
            }
        }
    }

    /// One batch, to every target.
    async fn apply(&self, records: Vec<ChangeRecord>, stats: &mut [ApplyStats]) -> Result<(), SyncError> {
        for ((t, applier), stats) in self.appliers.iter().zip(stats) {
            let applied = applier
                .apply(records.clone())
                .await
                .map_err(|source| SyncError::Apply { target: t.config.name.clone(), source })?;
            stats.merge(&applied);
        }
        Ok(())
    }
}

/// The target's objects in scope (identities only).
async fn list_target(pipeline: &Pipeline, t: &TargetHandle, applier: &Applier) -> Result<TargetKeys, SyncError> {
    TargetKeys::list(applier.reader(), |db, table| pipeline.replicates(applier, db, table))
        .await
        .map_err(|source| SyncError::Compare { target: t.config.name.clone(), source })
}

/// After the copy: settles the target's drift (what its listing holds and the scan did not see)
/// and notes the requests sent to it.
async fn compare(
    pipeline: &Pipeline,
    t: &TargetHandle,
    applier: &Applier,
    listed: TargetKeys,
    source: &SourceKeys,
    opts: &SyncOptions,
    report: &mut TargetReport,
) -> Result<(), SyncError> {
    let drift = listed.drift(source);
    if !drift.is_empty() {
        settle_drift(pipeline, applier, &drift, opts, report).await?;
    }
    report.api_calls = t.counter.snapshot();
    report.write_calls = t.counter.writes();
    report.planned_writes = applier.dry_run().map(|d| d.planned()).unwrap_or_default();
    Ok(())
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
    let settle = DriftSettler { pipeline, applier, drift, prune: opts.prune };
    let inside = !drift.tables.is_empty() || !drift.partitions.is_empty();
    for db in applier.reader().databases().await.map_err(|e| settle.compare_error(e))? {
        if !pipeline.replicates(applier, &db.name, None) {
            continue;
        }
        if drift.databases.contains(&object_identity(&db.name, None, None)) {
            settle.database(db.name, report).await?;
        } else if inside {
            settle.tables(&db.name, report).await?;
        }
    }
    Ok(())
}

/// One target's drift being named and (with `--prune`) deleted. In a dry run the applier's
/// target records the deletes instead of sending them.
struct DriftSettler<'a> {
    pipeline: &'a Pipeline,
    applier: &'a Applier,
    drift: &'a TargetKeys,
    prune: bool,
}

impl DriftSettler<'_> {
    async fn database(&self, db: String, report: &mut TargetReport) -> Result<(), SyncError> {
        if self.prune {
            self.applier.target().delete_database(&db).await.map_err(|e| self.prune_error(e))?;
            report.pruned.add(ObjectKind::Database, Outcome::Deleted, 1);
        }
        report.note_extra(Extra::Database(db));
        Ok(())
    }

    /// The drift inside a database the source has: its drifted tables, and drifted partitions
    /// of the others.
    async fn tables(&self, db: &str, report: &mut TargetReport) -> Result<(), SyncError> {
        let (target, reader) = (self.applier.target(), self.applier.reader());
        for table in reader.tables(db).await.map_err(|e| self.compare_error(e))? {
            if !self.pipeline.replicates(self.applier, db, Some(&table.name)) {
                continue;
            }
            let table_id = object_identity(db, Some(&table.name), None);
            if self.drift.tables.contains(&table_id) {
                if self.prune {
                    target.delete_table(db, &table.name).await.map_err(|e| self.prune_error(e))?;
                    report.pruned.add(ObjectKind::Table, Outcome::Deleted, 1);
                }
                report.note_extra(Extra::Table(db.to_string(), table.name));
            } else if let Some(parts) = self.drift.partitions.get(&table_id) {
                self.partitions(db, &table.name, parts, report).await?;
            }
        }
        Ok(())
    }

    /// The drifted partitions of a table the source has, `parts` by identity.
    async fn partitions(
        &self,
        db: &str,
        table: &str,
        parts: &HashSet<u128>,
        report: &mut TargetReport,
    ) -> Result<(), SyncError> {
        let mut values = Vec::new();
        self.applier
            .reader()
            .each_partition_values_page(db, table, |page| {
                values.extend(page.into_iter().filter(|v| parts.contains(&object_identity(db, Some(table), Some(v)))));
            })
            .await
            .map_err(|e| self.compare_error(e))?;
        if self.prune {
            for chunk in values.chunks(PARTITION_DELETE_CHUNK) {
                let deletes = self.applier.target().delete_partitions(db, table, chunk);
                let failed = deletes.await.map_err(|e| self.prune_error(e))?.len();
                report.pruned.add(ObjectKind::Partition, Outcome::Deleted, (chunk.len() - failed) as u64);
            }
        }
        for v in values {
            report.note_extra(Extra::Partition(db.to_string(), table.to_string(), v));
        }
        Ok(())
    }

    fn compare_error(&self, e: ReadError) -> SyncError {
        SyncError::Compare { target: self.applier.name().to_string(), source: e.into() }
    }

    fn prune_error(&self, source: AwsError) -> SyncError {
        SyncError::Prune { target: self.applier.name().to_string(), source }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::backend::memory::catalog::MemoryCatalog;
    use crate::backend::memory::changelog::{MemoryLog, PutFault};
    use crate::backend::memory::state::MemoryStore;
    use crate::backend::ErrorClass;
    use crate::config::{ApplyConfig, TargetConfig};
    use crate::model::{CatalogObject, Database};
    use crate::state::checkpoint::StoredCheckpoints;
    use crate::state::deadletter::DeadLetterStore;
    use crate::stream::producer::Producer;

    /// More than the publisher gathers into one call and the two channels hold together: the
    /// scan still has records to send when the first put fails.
    const DATABASES: usize = 6000;

    fn source() -> CatalogReader {
        let catalog = MemoryCatalog::new("1");
        for i in 0..DATABASES {
            catalog.put(CatalogObject::Database(Database { name: format!("db{i}"), ..Default::default() }));
        }
        CatalogReader::new(Arc::new(catalog), 1)
    }

    fn consumer(log: Arc<MemoryLog>) -> ConsumerGroup {
        let config: TargetConfig = serde_yaml_ng::from_str("{name: dr, region: us-east-1}").expect("target");
        let transform = Transform::new(&config, "1", "us-east-1", "2").expect("transform");
        let store = Arc::new(MemoryStore::new());
        let dead_letters = DeadLetterStore::new(store.clone());
        let target = Arc::new(MemoryCatalog::new("2"));
        let applier = Applier::new("dr", target, transform, dead_letters.clone(), ApplyConfig::default(), false);
        ConsumerGroup {
            log,
            sink: Arc::new(applier),
            checkpoints: Arc::new(StoredCheckpoints::new(store, "s")),
            dead_letters,
            batch_limit: 100,
            progress: Progress::hidden(),
            log_batches: false,
            health: None,
            coordination: Default::default(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_publish_that_fails_ends_the_copy_with_its_own_error() {
        let log = Arc::new(MemoryLog::new("s", 1));
        log.push_put_fault(PutFault::Call(AwsError {
            service: "kinesis",
            operation: "PutRecords",
            class: ErrorClass::Permanent,
            code: Some("AccessDeniedException".into()),
            message: "not allowed (scripted)".into(),
        }));
        let replication = Replication {
            publisher: Arc::new(Publisher::new(Producer::new(log.clone(), 100_000))),
            consumers: vec![("dr".to_string(), Arc::new(consumer(log.clone())))],
            archive: None,
            coordinator: Coordinator::Single(crate::state::lock::GroupLocks::none()),
        };
        let (reader, filter, origin) = (source(), Filter::new(&[], &[]).expect("filter"), Origin::default());
        let progress = Progress::hidden();
        let (tx, rx) = mpsc::channel(256);
        let scan = SourceScan {
            reader: &reader,
            filter: &filter,
            origin: &origin,
            progress: &progress,
            lf_targets: Vec::new(),
        }
        .run(tx);

        let copied = tokio::time::timeout(Duration::from_secs(3600), replication.run(scan, rx)).await;
        match copied {
            Err(_) => panic!("the copy still waits an hour after its publish failed"),
            Ok(Ok(_)) => panic!("the copy succeeded although nothing could be published"),
            Ok(Err(e)) => assert!(matches!(e, SyncError::Stream(_)), "the publish error is reported: {e}"),
        }
        assert_eq!(log.put_calls(), 1, "a permanent error is not retried");
    }
}
