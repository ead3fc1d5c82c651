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
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tracing::info;

use crate::apply::applier::Applier;
use crate::apply::stats::{ApplyStats, Outcome};
use crate::apply::target::PARTITION_DELETE_CHUNK;
use crate::apply::ApplyError;
use crate::aws::AwsError;
use crate::capture::snapshot::{snapshot, ScanStats};
use crate::capture::CaptureError;
use crate::model::{CatalogObject, ChangeRecord, ObjectKind};
use crate::pipeline::{Pipeline, PipelineError};
use crate::progress::Progress;
use crate::replicate::{ConsumerGroup, ShardReport, StopWhen};
use crate::stream::admin::ensure_stream;
use crate::stream::producer::Producer;
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

/// The source's objects by name, to find what only a target has.
#[derive(Debug, Default)]
struct SourceKeys {
    databases: HashSet<String>,
    tables: HashSet<(String, String)>,
    partitions: HashMap<(String, String), HashSet<Vec<String>>>,
}

impl SourceKeys {
    fn note(&mut self, state: &CatalogObject) {
        match state {
            CatalogObject::Database(d) => {
                self.databases.insert(d.name.clone());
            }
            CatalogObject::Table(t) => {
                self.tables.insert((t.database_name.clone(), t.name.clone()));
            }
            CatalogObject::Partition(p) => {
                self.partitions
                    .entry((p.database_name.clone(), p.table_name.clone()))
                    .or_default()
                    .insert(p.values.clone());
            }
        }
    }
}

/// Runs a sync.
pub async fn sync(pipeline: &Pipeline, opts: &SyncOptions) -> Result<SyncReport, SyncError> {
    let started = Instant::now();
    let targets = pipeline.select_targets(opts.target.as_deref())?;
    let progress = Progress::new(opts.progress);
    let cfg = &pipeline.config;
    let (scan_tx, mut scan_rx) = mpsc::channel::<ChangeRecord>(4096);
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

    let mut reports: BTreeMap<String, TargetReport> = BTreeMap::new();
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
                    if let (Some(s), Ok(mut k)) = (&r.state, keys.lock()) {
                        k.note(s);
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
        ensure_stream(&pipeline.kinesis, &cfg.stream.name, cfg.stream.shards, cfg.stream.create_if_missing).await?;
        let (end_tx, end_rx) = watch::channel(None);
        let (pub_tx, pub_rx) = mpsc::channel::<ChangeRecord>(4096);
        let forward = async {
            while let Some(r) = scan_rx.recv().await {
                if let (Some(s), Ok(mut k)) = (&r.state, keys.lock()) {
                    k.note(s);
                }
                if pub_tx.send(r).await.is_err() {
                    break;
                }
            }
            drop(pub_tx);
        };
        let producer = Producer::new(pipeline.kinesis.clone(), &cfg.stream.name, cfg.stream.frame_bytes);
        let publish = async {
            let p = producer.publish_all(pub_rx).await;
            if let Ok(p) = &p {
                let _ = end_tx.send(Some(p.last_sequence.clone()));
            }
            p
        };
        let groups = futures::future::join_all(appliers.iter().map(|(t, applier)| {
            let group = Arc::new(ConsumerGroup {
                kinesis: pipeline.kinesis.clone(),
                stream: cfg.stream.name.clone(),
                applier: applier.clone(),
                checkpoints: pipeline.checkpoints.clone(),
                dead_letters: pipeline.dead_letters.clone(),
                batch_limit: cfg.apply.batch_records,
                progress: progress.clone(),
                log_batches: false,
                health: None,
            });
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
        info!(records = published.records, frames = published.frames, calls = published.put_calls, "published");
        for (name, result) in results {
            let g = result.map_err(|source| SyncError::Apply { target: name.clone(), source })?;
            reports.insert(name, TargetReport { stats: g.stats, shards: g.shards, ..Default::default() });
        }
        (scanned, published)
    };
    progress.finish();
    let replicate_seconds = started.elapsed().as_secs_f64();

    let keys = match Arc::try_unwrap(keys) {
        Ok(m) => m.into_inner().unwrap_or_default(),
        Err(shared) => std::mem::take(&mut *shared.lock().unwrap_or_else(|e| e.into_inner())),
    };
    for t in &targets {
        let applier = pipeline.applier(t, opts.dry_run)?;
        let report = reports.entry(t.config.name.clone()).or_default();
        let extra = find_extra(pipeline, &applier, &keys)
            .await
            .map_err(|source| SyncError::Compare { target: t.config.name.clone(), source })?;
        report.extra_total = extra.len();
        if opts.prune {
            report.pruned = prune(&applier, &extra, opts.dry_run)
                .await
                .map_err(|source| SyncError::Prune { target: t.config.name.clone(), source })?;
        }
        report.extra = extra.iter().take(1000).map(|e| e.to_string()).collect();
        report.api_calls = t.counter.snapshot();
        report.write_calls = t.counter.writes();
    }
    Ok(SyncReport {
        dry_run: opts.dry_run,
        source,
        published_records: published.records,
        published_frames: published.frames,
        put_calls: published.put_calls,
        targets: reports,
        seconds: started.elapsed().as_secs_f64(),
        replicate_seconds,
        compare_seconds: started.elapsed().as_secs_f64() - replicate_seconds,
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

/// Target objects in scope (source capture scope and target filter) that the source lacks.
/// A missing database or table is reported once, not with everything inside it.
async fn find_extra(pipeline: &Pipeline, applier: &Applier, keys: &SourceKeys) -> Result<Vec<Extra>, CaptureError> {
    let reader = applier.target().reader();
    let in_scope = |db: &str, table: Option<&str>| pipeline.replicates(applier, db, table);
    let mut extra = Vec::new();
    for db in reader.databases().await? {
        if !in_scope(&db.name, None) {
            continue;
        }
        if !keys.databases.contains(&db.name) {
            extra.push(Extra::Database(db.name));
            continue;
        }
        for table in reader.tables(&db.name).await? {
            if !in_scope(&db.name, Some(&table.name)) {
                continue;
            }
            let id = (db.name.clone(), table.name.clone());
            if !keys.tables.contains(&id) {
                extra.push(Extra::Table(id.0, id.1));
                continue;
            }
            let source_parts = keys.partitions.get(&id);
            for p in reader.all_partitions(&id.0, &id.1).await? {
                if !source_parts.is_some_and(|s| s.contains(&p.values)) {
                    extra.push(Extra::Partition(id.0.clone(), id.1.clone(), p.values));
                }
            }
        }
    }
    extra.sort();
    Ok(extra)
}

/// Deletes the extra objects (or, in a dry run, counts them).
async fn prune(applier: &Applier, extra: &[Extra], dry_run: bool) -> Result<ApplyStats, AwsError> {
    let mut stats = ApplyStats::default();
    let target = applier.target();
    let mut partitions: BTreeMap<(String, String), Vec<Vec<String>>> = BTreeMap::new();
    for e in extra {
        match e {
            Extra::Database(d) => {
                if !dry_run {
                    target.delete_database(d).await?;
                }
                stats.add(ObjectKind::Database, Outcome::Deleted, 1);
            }
            Extra::Table(d, t) => {
                if !dry_run {
                    target.delete_table(d, t).await?;
                }
                stats.add(ObjectKind::Table, Outcome::Deleted, 1);
            }
            Extra::Partition(d, t, v) => partitions.entry((d.clone(), t.clone())).or_default().push(v.clone()),
        }
    }
    for ((d, t), values) in partitions {
        for chunk in values.chunks(PARTITION_DELETE_CHUNK) {
            let failed = if dry_run { 0 } else { target.delete_partitions(&d, &t, chunk).await?.len() };
            stats.add(ObjectKind::Partition, Outcome::Deleted, (chunk.len() - failed) as u64);
        }
    }
    Ok(stats)
}
