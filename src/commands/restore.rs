//! `lakelog restore`: the catalog as it was at a time, from the archive alone — into a target
//! (planned first: `--dry-run` prints what would change and writes nothing), or into a file.
//!
//! The state at `--at` (the newest snapshot at or before it plus the raw segments up to it) is
//! streamed in key order: a database, then each of its tables followed by its partitions. Each
//! object is applied through the target's applier (compare first, create or update, batched,
//! throttle-aware); after each table, the target's partitions that the state lacks are deleted;
//! after each database, its tables that the state lacks; at the end, the selected databases that
//! did not exist at `--at`. The target then equals the state for the selected databases.
//! The Kinesis stream is never read: a restore works with the stream gone (the disaster case).
//!
//! Lake Formation objects (grants, LF-tags and their assignments, filters, locations...) are in
//! the state like Glue objects, and go through the same applier: principals mapped, S3 ARNs
//! rewritten, compared first. What the target has and the state lacks is removed too: after
//! each table and database, its LF-tags when the state had none on it; at the end, every grant
//! and catalog object of the target in the selection whose key the state lacks (listed once).
//! Such a removal is a delete record under the source key the target's object came from
//! ([`Transform::lf_source_key`](crate::apply::transform::Transform::lf_source_key)): under
//! `account_map`, a role of the target account is the source's role of that name, so its grants
//! the state lacks are revoked; an object no source key maps to (a principal no rule reaches,
//! such as another account's) is left and named in the report. The data lake settings are one
//! per catalog: restored, never removed; their record is also how a restore knows Lake Formation
//! was captured at the time: without it nothing is removed. Catalog-level objects (LF-tags, expressions, settings,
//! locations, grants on the catalog, a location or a tag) belong to no database: they are
//! restored only with the whole catalog (no `--databases`, no `--rename-database`); a renamed
//! database takes the grants and tags on it to its new name.
//!
//! Must never: touch a database outside the selection, or write during a dry run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use thiserror::Error;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::apply::applier::{comparable, Applier};
use crate::apply::dry_run::{describe, Planned};
use crate::apply::permissions::settings_for_target;
use crate::apply::stats::{ApplyStats, Outcome};
use crate::apply::ApplyError;
use crate::archive::manifest::ManifestStore;
use crate::archive::replay::{state_at, Sources};
use crate::archive::segment::{Entry, Reader};
use crate::archive::writer::root;
use crate::archive::ArchiveError;
use crate::backend::state::StateStore;
use crate::catalog::lakeformation::LfReader;
use crate::catalog::reader::values_hash;
use crate::catalog::ReadError;
use crate::connect::{Pipeline, PipelineError};
use crate::model::fields::{self, FieldChange};
use crate::model::filter::Filter;
use crate::model::lakeformation::{LfKey, LfObject, LfResource, OptIn, Permission};
use crate::model::{
    lf_identity, object_identity, CatalogObject, Cause, CauseKind, ChangeRecord, ObjectKey, Op, Origin,
};
use crate::progress::Progress;

/// Records applied per call to the applier.
const BATCH: usize = 500;

#[derive(Debug, Error)]
pub enum RestoreError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Apply(#[from] Box<ApplyError>),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("--at {0}")]
    At(String),
    #[error("{0}")]
    Options(String),
    #[error("writing {path}: {source}")]
    File { path: String, source: std::io::Error },
}

/// A point in time to restore: a time, or a position in the stream (`shardId-…:sequence`: the
/// time that record was captured).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum At {
    Time(i64),
    Position { shard: String, sequence: String },
}

impl At {
    /// An RFC 3339 time (`2026-12-01T09:41:00Z`) or `shard:sequence`.
    pub fn parse(text: &str) -> Result<At, String> {
        if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
            return Ok(At::Time((t.unix_timestamp_nanos() / 1_000_000) as i64));
        }
        match text.rsplit_once(':') {
            Some((shard, seq)) if !shard.is_empty() && !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(At::Position { shard: shard.to_string(), sequence: seq.to_string() })
            }
            _ => Err(format!(
                "`{text}` is neither an RFC 3339 time (2026-12-01T09:41:00Z) nor a stream position (shardId-000000000000:49650...)"
            )),
        }
    }
}

/// Where the state goes.
#[derive(Debug, Clone)]
pub enum Into {
    Target(String),
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub at: At,
    pub into: Into,
    /// Databases restored (globs); all when empty (or the renamed one, with `rename`).
    pub databases: Vec<String>,
    /// Restore database `.0` under the name `.1`.
    pub rename: Option<(String, String)>,
    pub dry_run: bool,
    /// Plan lines shown (the counts cover everything).
    pub show: usize,
    pub progress: bool,
}

/// One planned change: `create`, `update` (with the fields), `delete`; for a Lake Formation
/// object also `unmapped` (its principal maps to none in the target: parked, not granted) or
/// `skip` (the target does not apply Lake Formation objects: parked).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanLine {
    pub action: &'static str,
    pub object: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
}

/// What a restore did (or, with `--dry-run`, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreReport {
    pub at: String,
    pub into: String,
    pub dry_run: bool,
    /// The snapshot the state was built from (`None`: from the first archived record).
    pub snapshot: Option<String>,
    pub segments: usize,
    /// Objects in the restored state (selected, live at `at`).
    pub objects: u64,
    pub stats: ApplyStats,
    /// Dry run: the write calls it would send.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub planned_writes: BTreeMap<String, Planned>,
    pub plan: Vec<PlanLine>,
    /// Plan lines beyond those shown.
    pub plan_more: u64,
    /// Iceberg tables whose restored `metadata_location` no longer exists (they would not open).
    pub iceberg_missing: Vec<String>,
    /// Lake Formation objects only the target has that no source key maps to (a principal no
    /// rule reaches): left as they are.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lf_left: Vec<String>,
    /// The state at `at` holds no Lake Formation record (it was not captured then:
    /// `source.lakeformation` was off), so the target's Lake Formation was left as it is.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub lf_not_archived: bool,
    /// Requests sent to the target's Glue and Lake Formation, by operation (a dry run's reads).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub api_calls: BTreeMap<String, u64>,
    /// The newest change the archive holds, when `at` is after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive_ends: Option<String>,
    pub seconds: f64,
}

pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// The capture time of the record at a stream position.
async fn time_of(pipeline: &Pipeline, shard: &str, sequence: &str) -> Result<i64, RestoreError> {
    let seq = crate::stream::seqno::SeqNo::parse(sequence).ok_or_else(|| RestoreError::At(sequence.into()))?;
    let store = &*pipeline.state;
    let (manifest, _) = ManifestStore::new(&root(&pipeline.config.stream.name)).load(store).await?;
    for s in crate::archive::history::retained_segments(store, &manifest).await? {
        if s.shard == shard && s.first_sequence <= seq && seq <= s.last_sequence {
            let bytes = crate::archive::compact::fetch(store, &s.key).await?;
            for e in Reader::new(&bytes).map_err(|source| ArchiveError::Segment { key: s.key.clone(), source })? {
                let e = e.map_err(|source| ArchiveError::Segment { key: s.key.clone(), source })?;
                if e.sequence == seq {
                    return Ok(e.record.captured_at);
                }
            }
        }
    }
    Err(RestoreError::At(format!(
        "{shard}:{sequence} is not in the archive's raw segments (compacted, or never archived)"
    )))
}

/// The record with its database renamed.
fn renamed(mut record: ChangeRecord, rename: &Option<(String, String)>) -> ChangeRecord {
    let Some((from, to)) = rename else { return record };
    let set = |db: &mut String| {
        if db == from {
            *db = to.clone();
        }
    };
    match &mut record.key {
        ObjectKey::Database { database, .. }
        | ObjectKey::Table { database, .. }
        | ObjectKey::Partition { database, .. } => set(database),
        // A grant or tag on the renamed database goes with it: left on the old name, it would
        // change the live database's.
        ObjectKey::LakeFormation { lf, .. } => match lf {
            LfKey::Permission { resource, .. } | LfKey::OptIn { resource, .. } => rename_resource(resource, &set),
            LfKey::ResourceTags { database, .. } | LfKey::DataCellsFilter { database, .. } => set(database),
            _ => {}
        },
    }
    match &mut record.state {
        Some(CatalogObject::Database(d)) => set(&mut d.name),
        Some(CatalogObject::Table(t)) => set(&mut t.database_name),
        Some(CatalogObject::Partition(p)) => set(&mut p.database_name),
        Some(CatalogObject::LakeFormation { lf }) => match lf {
            LfObject::Permission(Permission { resource, .. }) | LfObject::OptIn(OptIn { resource, .. }) => {
                rename_resource(resource, &set)
            }
            LfObject::ResourceTags(t) => set(&mut t.database),
            LfObject::DataCellsFilter(d) => set(&mut d.database),
            _ => {}
        },
        None => {}
    }
    record
}

fn rename_resource(resource: &mut LfResource, set: &impl Fn(&mut String)) {
    match resource {
        LfResource::Database { database }
        | LfResource::Table { database, .. }
        | LfResource::TableWildcard { database }
        | LfResource::TableWithColumns { database, .. }
        | LfResource::DataCellsFilter { database, .. } => set(database),
        _ => {}
    }
}

fn restore_cause() -> Cause {
    Cause { kind: CauseKind::Replay, event_id: None }
}

/// Which databases are restored.
#[derive(Clone)]
struct Selection {
    filter: Filter,
    /// The database restored under a new name (source name, target name).
    rename: Option<(String, String)>,
    /// Whether catalog-level Lake Formation objects are restored: only with the whole catalog.
    catalog_level: bool,
}

impl Selection {
    fn new(opts: &RestoreOptions) -> Result<Selection, RestoreError> {
        let globs = match (&opts.rename, opts.databases.is_empty()) {
            (Some((from, _)), true) => vec![from.clone()],
            _ => opts.databases.clone(),
        };
        let filter = Filter::new(&globs, &[]).map_err(|e| RestoreError::Options(format!("--databases: {e}")))?;
        let catalog_level = opts.databases.is_empty() && opts.rename.is_none();
        Ok(Selection { filter, rename: opts.rename.clone(), catalog_level })
    }

    /// Whether what is in source database `database` is restored (`""`: catalog-level).
    fn has(&self, database: &str) -> bool {
        if database.is_empty() {
            return self.catalog_level;
        }
        self.filter.allows_database(database)
    }

    /// Whether the state's record of `key` is read: what [`Selection::has`] restores, and the data
    /// lake settings always (their record says Lake Formation was captured at the time, which a
    /// restore must know before it removes anything), so the catalog-level part of a snapshot is
    /// read too (`state_at` asks about it as the database `""`).
    fn reads(&self, key: &ObjectKey) -> bool {
        match key {
            ObjectKey::Database { database, .. } if database.is_empty() => true,
            ObjectKey::LakeFormation { lf: LfKey::DataLakeSettings, .. } => true,
            _ => self.has(key.database()),
        }
    }

    /// Whether what the target has in its database `database` is restored (`""`: catalog-level).
    fn has_in_target(&self, database: &str) -> bool {
        match &self.rename {
            // Under a new name, only that database is restored.
            Some((_, to)) => database == to,
            None => self.has(database),
        }
    }
}

/// Restores per the options.
pub async fn restore(pipeline: &Pipeline, opts: &RestoreOptions) -> Result<RestoreReport, RestoreError> {
    let started = Instant::now();
    if let (Some((from, to)), Into::Target(_)) = (&opts.rename, &opts.into) {
        if from == to || to.is_empty() {
            return Err(RestoreError::Options(format!("--rename-database {from}={to}: give a new, different name")));
        }
    }
    let at = match &opts.at {
        At::Time(t) => *t,
        At::Position { shard, sequence } => time_of(pipeline, shard, sequence).await?,
    };
    let store = &*pipeline.state;
    let src = crate::archive::replay::sources_of(store, &pipeline.config.stream.name, at).await?;
    let selection = Selection::new(opts)?;
    let mut report = RestoreReport {
        at: rfc3339(at),
        dry_run: opts.dry_run,
        snapshot: src.base.as_ref().map(|b| b.id.clone()),
        segments: src.segments.len(),
        archive_ends: src.latest.filter(|l| *l < at).map(rfc3339),
        ..Default::default()
    };
    let budget = (pipeline.config.archive.merge_memory_mib as usize) << 20;
    let work = pipeline.config.archive.work_dir.as_deref().map(std::path::Path::new);
    match &opts.into {
        Into::File(path) => {
            let select = {
                let selection = selection.clone();
                move |k: &ObjectKey| selection.reads(k)
            };
            let (mut rx, merging) = state_at(store, &src, select, budget, work, BATCH).await?;
            report.into = path.display().to_string();
            let file_error = |source| RestoreError::File { path: path.display().to_string(), source };
            let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(file_error)?);
            while let Some(batch) = rx.recv().await {
                for e in batch {
                    report.objects += 1;
                    let line = serde_json::json!({
                        "key": renamed(e.record.clone(), &opts.rename).key,
                        "captured_at": rfc3339(e.record.captured_at),
                        "sequence": e.sequence.as_str(),
                        "state": renamed(e.record, &opts.rename).state,
                    });
                    writeln!(out, "{line}").map_err(file_error)?;
                }
            }
            out.flush().map_err(file_error)?;
            merging.await.map_err(|e| ArchiveError::Worker(e.to_string()))??;
        }
        Into::Target(name) => {
            report.into = format!("target {name}");
            let handle = pipeline.select_targets(Some(name))?[0];
            let applier = pipeline.applier(handle, opts.dry_run)?;
            let lake_formation = handle.lake_formation.clone().map(LfReader::new);
            let target =
                IntoTarget { env: pipeline, store, sources: &src, applier: &applier, lake_formation, budget, work };
            into_target(target, opts, &mut report).await?;
            report.api_calls = handle.counter.snapshot();
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// What a restore into a target needs besides the archive and the target's applier: the
/// source's identity and whether an S3 object exists. [`restore`] takes them from the pipeline;
/// the restore benchmark gives its own.
#[async_trait::async_trait]
pub trait RestoreEnv: Send + Sync {
    /// The source whose records are restored (what the target lacks is removed under its keys).
    fn origin(&self) -> &Origin;
    /// Whether the S3 object at `location` exists; `None` when it cannot be told.
    async fn object_exists(&self, location: &str) -> Option<bool>;
}

#[async_trait::async_trait]
impl RestoreEnv for Pipeline {
    fn origin(&self) -> &Origin {
        &self.origin
    }

    async fn object_exists(&self, location: &str) -> Option<bool> {
        Pipeline::object_exists(self, location).await
    }
}

/// A restore into one target, its options resolved (see [`into_target`]).
pub struct IntoTarget<'a> {
    pub env: &'a dyn RestoreEnv,
    /// The state store the archive is in, and what of it the state at the time is built from.
    pub store: &'a dyn StateStore,
    pub sources: &'a Sources,
    /// The target's applier (in a dry run, one that records its writes instead).
    pub applier: &'a Applier,
    /// The target's Lake Formation; `None`: it applies no Lake Formation objects.
    pub lake_formation: Option<LfReader>,
    /// The merge's memory budget (bytes) and where it spills (`archive.merge_memory_mib`, `archive.work_dir`).
    pub budget: usize,
    pub work: Option<&'a std::path::Path>,
}

/// The state at `target.sources.at`, streamed into the target: what [`restore`] does once it has
/// found the sources and the target. The counts, plan and planned writes go to `report`.
pub async fn into_target(
    target: IntoTarget<'_>,
    opts: &RestoreOptions,
    report: &mut RestoreReport,
) -> Result<(), RestoreError> {
    let selection = Selection::new(opts)?;
    let select = {
        let selection = selection.clone();
        move |k: &ObjectKey| selection.reads(k)
    };
    let (mut rx, merging) = state_at(target.store, target.sources, select, target.budget, target.work, BATCH).await?;
    // A target without any LF-tag has no assignment a restore could have to remove.
    let target_tags = match &target.lake_formation {
        Some(lf) => !lf.lf_tags().await?.is_empty(),
        None => false,
    };
    let applier = target.applier;
    let mut run = TargetRestore::new(target.env, applier, opts, &selection, report);
    run.lf = target.lake_formation.map(|reader| TargetLf {
        reader,
        tags: target_tags,
        seen: HashSet::new(),
        archived: false,
    });
    while let Some(batch) = rx.recv().await {
        for e in batch {
            run.entry(e).await?;
        }
    }
    run.finish().await?;
    if let Some(dry) = applier.dry_run() {
        report.planned_writes = dry.planned();
    }
    merging.await.map_err(|e| ArchiveError::Worker(e.to_string()))??;
    Ok(())
}

/// The streamed restore into one target.
struct TargetRestore<'a> {
    env: &'a dyn RestoreEnv,
    applier: &'a Applier,
    opts: &'a RestoreOptions,
    selection: &'a Selection,
    report: &'a mut RestoreReport,
    progress: Progress,
    pending: Vec<ChangeRecord>,
    /// The database in progress (target name) and the tables of it the state holds.
    database: Option<(String, HashSet<String>)>,
    /// The table in progress (target names) and its partitions' value hashes.
    table: Option<(String, String, HashSet<u128>)>,
    /// Target databases the state holds.
    databases: HashSet<String>,
    /// The target's Lake Formation (`None`: it applies no Lake Formation objects).
    lf: Option<TargetLf>,
}

/// A restore's view of the target's Lake Formation.
struct TargetLf {
    reader: LfReader,
    /// Whether the target defined any LF-tag when the restore began.
    tags: bool,
    /// The Lake Formation keys the state holds, as the target names them ([`lf_identity`]).
    seen: HashSet<u128>,
    /// Whether the state holds the data lake settings: Lake Formation was captured at the time.
    /// Catalog-level records come first in key order, so this is known before any removal.
    archived: bool,
}

impl<'a> TargetRestore<'a> {
    fn new(
        env: &'a dyn RestoreEnv,
        applier: &'a Applier,
        opts: &'a RestoreOptions,
        selection: &'a Selection,
        report: &'a mut RestoreReport,
    ) -> TargetRestore<'a> {
        TargetRestore {
            env,
            applier,
            opts,
            selection,
            report,
            progress: Progress::new(opts.progress),
            pending: Vec::new(),
            database: None,
            table: None,
            databases: HashSet::new(),
            lf: None,
        }
    }

    async fn entry(&mut self, e: Entry) -> Result<(), RestoreError> {
        if e.record.key.lake_formation() == Some(&LfKey::DataLakeSettings) {
            if let Some(lf) = &mut self.lf {
                lf.archived = true;
            }
            // Read only to know that (see `Selection::reads`) when not restored itself.
            if !self.selection.catalog_level {
                return Ok(());
            }
        }
        let record = renamed(e.record, &self.opts.rename);
        self.report.objects += 1;
        self.progress.inc_scanned(1);
        match &record.key {
            ObjectKey::Database { database, .. } => {
                self.end_table().await?;
                self.end_database().await?;
                self.databases.insert(database.clone());
                self.database = Some((database.clone(), HashSet::new()));
            }
            ObjectKey::Table { database, table, .. } => {
                self.end_table().await?;
                if self.database.as_ref().is_none_or(|(d, _)| d != database) {
                    // A table whose database record is missing from the state (filtered, or
                    // an orphan): its tables are still restored, and the database kept.
                    self.end_database().await?;
                    self.databases.insert(database.clone());
                    self.database = Some((database.clone(), HashSet::new()));
                }
                if let Some((_, tables)) = &mut self.database {
                    tables.insert(table.clone());
                }
                self.table = Some((database.clone(), table.clone(), HashSet::new()));
            }
            ObjectKey::Partition { database, table, values, .. } => match &mut self.table {
                Some((d, t, parts)) if d == database && t == table => {
                    parts.insert(values_hash(values));
                }
                _ => {
                    self.end_table().await?;
                    self.table = Some((database.clone(), table.clone(), HashSet::from([values_hash(values)])));
                }
            },
            // Grants and tags ride along with their table; what the target holds of them beyond
            // the state is found from its keys, as the target names them.
            ObjectKey::LakeFormation { lf, .. } => {
                if let (Some(t), Some(key)) = (&mut self.lf, self.applier.transform().lf_target_key(lf)) {
                    t.seen.insert(lf_identity(&key));
                }
            }
        }
        self.check_iceberg(&record).await;
        self.pending.push(record);
        if self.pending.len() >= BATCH {
            self.apply().await?;
        }
        Ok(())
    }

    /// An Iceberg table's restored metadata file must still exist, or the table will not open.
    async fn check_iceberg(&mut self, record: &ChangeRecord) {
        let Some(CatalogObject::Table(t)) = &record.state else { return };
        let iceberg = t.parameters.get("table_type").is_some_and(|v| v.eq_ignore_ascii_case("ICEBERG"));
        let Some(location) = t.parameters.get("metadata_location").filter(|_| iceberg) else { return };
        let location = self.applier.transform().rewrite_location(location);
        if let Some(false) = self.env.object_exists(&location).await {
            self.report.iceberg_missing.push(format!("{}.{}: {location}", t.database_name, t.name));
        }
    }

    async fn apply(&mut self) -> Result<(), RestoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut records = std::mem::take(&mut self.pending);
        let n = records.len() as u64;
        if self.opts.dry_run {
            // What the plan found in sync is counted so, and not compared a second time.
            let in_sync = self.plan(&records).await?;
            let mut i = 0;
            records.retain(|r| {
                i += 1;
                if !in_sync[i - 1] {
                    return true;
                }
                self.report.stats.add(r.key.kind(), Outcome::Unchanged, 1);
                false
            });
        }
        let stats = self.applier.apply(records).await.map_err(Box::new)?;
        self.report.stats.merge(&stats);
        self.progress.inc_applied(n);
        Ok(())
    }

    fn line(&mut self, action: &'static str, object: String, fields: Vec<FieldChange>) {
        if self.report.plan.len() < self.opts.show {
            self.report.plan.push(PlanLine { action, object, fields });
        } else {
            self.report.plan_more += 1;
        }
    }

    /// What each record would change, read from the target (dry runs only); returns, per
    /// record, whether it is in sync with the target (a Glue object the target's filter takes,
    /// equal as the applier compares it).
    async fn plan(&mut self, all: &[ChangeRecord]) -> Result<Vec<bool>, RestoreError> {
        let reader = self.applier.reader();
        let mut in_sync = vec![false; all.len()];
        let (lake_formation, records): (Vec<&ChangeRecord>, Vec<&ChangeRecord>) =
            all.iter().partition(|r| r.key.lake_formation().is_some());
        self.plan_lake_formation(&lake_formation).await?;
        let mut partitions = self.current_partitions(&records).await?;
        let transform = self.applier.transform();
        // Only a key's last record can be in sync (the applier keeps the last one per key).
        let last: HashMap<&ObjectKey, usize> = all.iter().enumerate().map(|(i, r)| (&r.key, i)).collect();
        let glue = all.iter().enumerate().filter(|(_, r)| r.key.lake_formation().is_none()).map(|(i, _)| i);
        for (i, r) in glue.zip(records) {
            let skippable =
                r.op == Op::Upsert && last.get(&r.key) == Some(&i) && transform.allows(r.key.database(), r.key.table());
            let Some(state) = &r.state else {
                self.line("delete", r.key.to_string(), Vec::new());
                continue;
            };
            let current = match &r.key {
                ObjectKey::Database { database, .. } => reader
                    .database(database)
                    .await
                    .map_err(|e| ReadError::new(database.clone(), e))?
                    .map(CatalogObject::Database),
                ObjectKey::Table { database, table, .. } => reader
                    .table(database, table)
                    .await
                    .map_err(|e| ReadError::new(format!("{database}.{table}"), e))?
                    .map(CatalogObject::Table),
                ObjectKey::Partition { database, table, values, .. } => partitions
                    .remove(&object_identity(database, Some(table), Some(values)))
                    .map(CatalogObject::Partition),
                ObjectKey::LakeFormation { .. } => continue,
            };
            let Some(current) = current else {
                self.line("create", r.key.to_string(), Vec::new());
                continue;
            };
            // Most partitions of a restore are unchanged: compared as they are, without copies
            // or the field-by-field diff that only a change needs.
            if let (CatalogObject::Partition(c), CatalogObject::Partition(want)) = (&current, state) {
                if transform.keeps_partitions() && c.writable_eq(want) {
                    in_sync[i] = skippable;
                    continue;
                }
            }
            let desired = transform.apply(state);
            let current = comparable(&current, &desired);
            if current == desired {
                in_sync[i] = skippable;
            } else {
                let changed = fields::changes(&fields::json(&current), &fields::json(&desired));
                if !changed.is_empty() {
                    self.line("update", r.key.to_string(), changed);
                }
            }
        }
        Ok(in_sync)
    }

    /// The target's partitions among `records`' keys, by [`object_identity`]: read a table at a
    /// time (BatchGetPartition, up to 1,000 keys a call), not one call per partition, so planning
    /// costs no more reads than applying. Its table or database may not exist in the target (a
    /// dropped one comes back): none then.
    async fn current_partitions(
        &self,
        records: &[&ChangeRecord],
    ) -> Result<HashMap<u128, crate::model::Partition>, RestoreError> {
        let mut tables: Vec<(&str, &str, Vec<Vec<String>>)> = Vec::new();
        let transform = self.applier.transform();
        for r in records {
            let ObjectKey::Partition { database, table, values, .. } = &r.key else { continue };
            // A delete needs no read; nor does a partition the target does not take.
            if r.state.is_none() || !transform.allows(database, Some(table)) {
                continue;
            }
            match tables.last_mut() {
                Some((d, t, keys)) if d == database && t == table => keys.push(values.clone()),
                _ => tables.push((database, table, vec![values.clone()])),
            }
        }
        let mut out = HashMap::new();
        for (database, table, keys) in tables {
            let found = self.applier.reader().partitions_by_values(database, table, &keys).await;
            out.extend(
                found
                    .or_else(not_found_is_empty)?
                    .into_iter()
                    .map(|p| (object_identity(database, Some(table), Some(&p.values)), p)),
            );
        }
        Ok(out)
    }

    /// What each Lake Formation record would change: the target's objects read in one go (one
    /// grant listing for the batch), compared as the applier compares them — principal mapped,
    /// ARNs rewritten, the service's own fields (a filter's version, the target's admins) aside.
    async fn plan_lake_formation(&mut self, records: &[&ChangeRecord]) -> Result<(), RestoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let Some(lf) = &self.lf else {
            for r in records {
                self.line("skip", r.key.to_string(), Vec::new());
            }
            return Ok(());
        };
        let transform = self.applier.transform();
        let keys: Vec<Option<LfKey>> =
            records.iter().map(|r| r.key.lake_formation().and_then(|k| transform.lf_target_key(k))).collect();
        let wanted: Vec<LfKey> = keys.iter().flatten().cloned().collect();
        let current = lf.reader.objects(&wanted).await?;
        for (r, key) in records.iter().zip(keys) {
            let Some(key) = key else {
                self.line("unmapped", r.key.to_string(), Vec::new());
                continue;
            };
            let have = current.get(&key);
            let Some(CatalogObject::LakeFormation { lf: want }) = r.state.as_ref().map(|s| transform.apply(s)) else {
                if have.is_some() {
                    self.line("delete", r.key.to_string(), Vec::new());
                }
                continue;
            };
            let Some(have) = have else {
                self.line("create", r.key.to_string(), Vec::new());
                continue;
            };
            let want = match (want, have) {
                (LfObject::Permission(p), _) => LfObject::Permission(Permission { principal: principal_of(&key), ..p }),
                (LfObject::OptIn(o), _) => LfObject::OptIn(OptIn { principal: principal_of(&key), ..o }),
                (LfObject::DataLakeSettings(s), LfObject::DataLakeSettings(h)) => {
                    LfObject::DataLakeSettings(settings_for_target(&s, h))
                }
                (w, _) => w,
            };
            let json = |o: &LfObject| fields::json(&CatalogObject::LakeFormation { lf: o.writable() });
            let changed = fields::changes(&json(have), &json(&want));
            if !changed.is_empty() {
                self.line("update", r.key.to_string(), changed);
            }
        }
        Ok(())
    }

    fn delete(&self, key: ObjectKey) -> ChangeRecord {
        ChangeRecord::delete(key, self.env.origin(), restore_cause(), crate::model::now_millis())
    }

    /// The LF-tags the target has on a database or table the state has none on are removed.
    async fn untag(&mut self, database: &str, table: Option<&str>) -> Result<(), RestoreError> {
        let Some(lf) = self.lf.as_ref().filter(|lf| lf.tags && lf.archived) else { return Ok(()) };
        let key = LfKey::ResourceTags { database: database.to_string(), table: table.map(str::to_string) };
        if lf.seen.contains(&lf_identity(&key)) || lf.reader.resource_tags(database, table).await?.is_none() {
            return Ok(());
        }
        let catalog = self.env.origin().catalog_id.clone();
        self.pending.push(self.delete(ObjectKey::LakeFormation { catalog, lf: key }));
        Ok(())
    }

    /// The target's grants and catalog-level objects in the selection whose keys the state lacks
    /// are removed, under the source key each came from (see the module doc).
    async fn end_lake_formation(&mut self) -> Result<(), RestoreError> {
        let Some(lf) = &self.lf else { return Ok(()) };
        if !lf.archived {
            self.report.lf_not_archived = true;
            return Ok(());
        }
        let mut keys: Vec<LfKey> =
            lf.reader.permissions().await?.into_iter().map(|p| LfObject::Permission(p).key()).collect();
        let objects = lf.reader.catalog_objects().await?;
        keys.extend(objects.iter().map(LfObject::key).filter(|k| *k != LfKey::DataLakeSettings));
        let extra: Vec<LfKey> = keys
            .into_iter()
            .filter(|k| self.selection.has_in_target(k.database()) && !lf.seen.contains(&lf_identity(k)))
            .collect();
        let catalog = self.env.origin().catalog_id.clone();
        for key in extra {
            match self.applier.transform().lf_source_key(&key) {
                Some(lf) => self.pending.push(self.delete(ObjectKey::LakeFormation { catalog: catalog.clone(), lf })),
                None => self.report.lf_left.push(key.to_string()),
            }
            if self.pending.len() >= BATCH {
                self.apply().await?;
            }
        }
        self.apply().await
    }

    /// The table's partitions the target has and the state lacks are deleted.
    async fn end_table(&mut self) -> Result<(), RestoreError> {
        let Some((database, table, parts)) = self.table.take() else { return Ok(()) };
        self.untag(&database, Some(&table)).await?;
        self.apply().await?;
        let mut extra = Vec::new();
        self.applier
            .reader()
            .each_partition_values_page(&database, &table, |page| {
                extra.extend(page.into_iter().filter(|v| !parts.contains(&values_hash(v))))
            })
            .await
            .or_else(not_found_is_empty)?;
        let catalog = self.env.origin().catalog_id.clone();
        for values in extra {
            let key = ObjectKey::Partition {
                catalog: catalog.clone(),
                database: database.clone(),
                table: table.clone(),
                values,
            };
            self.pending.push(self.delete(key));
            if self.pending.len() >= BATCH {
                self.apply().await?;
            }
        }
        self.apply().await
    }

    /// The database's tables the target has and the state lacks are deleted.
    async fn end_database(&mut self) -> Result<(), RestoreError> {
        self.end_table().await?;
        let Some((database, tables)) = self.database.take() else { return Ok(()) };
        self.untag(&database, None).await?;
        let existing: Vec<crate::model::Table> =
            self.applier.reader().tables(&database).await.or_else(not_found_is_empty)?;
        let catalog = self.env.origin().catalog_id.clone();
        for t in existing.into_iter().filter(|t| !tables.contains(&t.name)) {
            let key = ObjectKey::Table { catalog: catalog.clone(), database: database.clone(), table: t.name };
            self.pending.push(self.delete(key));
        }
        self.apply().await
    }

    /// The selected databases the state lacks are deleted from the target.
    async fn finish(mut self) -> Result<(), RestoreError> {
        self.end_database().await?;
        let catalog = self.env.origin().catalog_id.clone();
        for db in self.applier.reader().databases().await? {
            let selected = self.selection.has_in_target(&db.name);
            if selected && !self.databases.contains(&db.name) && self.applier.transform().allows(&db.name, None) {
                self.pending.push(self.delete(ObjectKey::Database { catalog: catalog.clone(), database: db.name }));
            }
        }
        self.apply().await?;
        self.end_lake_formation().await?;
        self.progress.finish();
        Ok(())
    }
}

/// The principal of a grant's or opt-in's key (`""` for other keys).
fn principal_of(key: &LfKey) -> String {
    match key {
        LfKey::Permission { principal, .. } | LfKey::OptIn { principal, .. } => principal.clone(),
        _ => String::new(),
    }
}

/// A read of something that does not exist (yet) reads as empty.
fn not_found_is_empty<T: Default>(e: ReadError) -> Result<T, ReadError> {
    match &e {
        ReadError::Aws { source, .. } if source.class == crate::backend::ErrorClass::NotFound => Ok(T::default()),
        _ => Err(e),
    }
}

impl fmt::Display for RestoreReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run { "would restore" } else { "restored" };
        let from = match &self.snapshot {
            Some(id) => format!("snapshot {id} and {} raw segments", self.segments),
            None => format!("{} raw segments", self.segments),
        };
        writeln!(
            f,
            "{verb} {} objects as of {} into {} (from {from}) in {:.1}s",
            self.objects, self.at, self.into, self.seconds
        )?;
        if let Some(end) = &self.archive_ends {
            writeln!(f, "note: the archive holds changes up to {end}; nothing after it is known")?;
        }
        if !self.into.starts_with("target ") {
            return Ok(());
        }
        let t = self.stats.total();
        let verb = if self.dry_run { "would be" } else { "" };
        writeln!(
            f,
            "  {} created, {} updated, {} deleted, {} unchanged, {} dead-lettered{}",
            t.created,
            t.updated,
            t.deleted,
            t.unchanged,
            t.dead_lettered,
            if verb.is_empty() { String::new() } else { format!(" ({verb})") }
        )?;
        for line in &self.plan {
            writeln!(f, "  {:<6} {}", line.action, line.object)?;
            for c in &line.fields {
                writeln!(f, "           {}: {} → {}", c.path, fields::short(&c.old, 60), fields::short(&c.new, 60))?;
            }
        }
        if self.plan_more > 0 {
            writeln!(f, "  ... and {} more changes", self.plan_more)?;
        }
        if !self.planned_writes.is_empty() {
            write!(f, "{}", describe(&self.planned_writes))?;
        }
        let calls: Vec<String> = self.api_calls.iter().map(|(op, n)| format!("{op} {n}")).collect();
        if !calls.is_empty() {
            writeln!(f, "  target API calls: {} ({})", self.api_calls.values().sum::<u64>(), calls.join(", "))?;
        }
        for m in &self.iceberg_missing {
            writeln!(f, "  warning: Iceberg table {m}: the metadata file no longer exists; the table will not open")?;
        }
        if self.lf_not_archived {
            writeln!(
                f,
                "  note: the archive holds no Lake Formation state at this time (source.lakeformation was off): the target's grants and LF-tags were left as they are"
            )?;
        }
        for l in &self.lf_left {
            writeln!(f, "  left: {l}: only the target has it, and no source principal maps to it")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_takes_a_time_or_a_stream_position_and_names_a_bad_one() {
        assert_eq!(At::parse("2026-12-01T09:41:00Z"), Ok(At::Time(1_796_118_060_000)));
        assert_eq!(At::parse("2026-12-01T10:41:00+01:00"), Ok(At::Time(1_796_118_060_000)));
        assert_eq!(
            At::parse("shardId-000000000001:4965"),
            Ok(At::Position { shard: "shardId-000000000001".into(), sequence: "4965".into() })
        );
        assert!(At::parse("yesterday").unwrap_err().contains("RFC 3339"));
        assert!(At::parse("shard:12x").is_err());
    }

    #[test]
    fn a_rename_changes_the_key_and_the_state() {
        let origin = crate::model::Origin::default();
        let t = crate::model::Table { database_name: "sales".into(), name: "orders".into(), ..Default::default() };
        let r = ChangeRecord::upsert(CatalogObject::Table(t), &origin, restore_cause(), 1);
        let r = renamed(r, &Some(("sales".into(), "sales_restored".into())));
        assert_eq!(r.key.database(), "sales_restored");
        let Some(CatalogObject::Table(t)) = r.state else { panic!("a table") };
        assert_eq!(t.database_name, "sales_restored");
    }

    #[test]
    fn a_rename_takes_the_grants_and_tags_on_the_database_along_and_leaves_the_catalogs() {
        use crate::model::lakeformation::{LfTag, ResourceTags};
        let origin = crate::model::Origin::default();
        let rename = Some(("sales".to_string(), "sales_restored".to_string()));
        let moved = |lf: LfObject| {
            let r = renamed(
                ChangeRecord::upsert(CatalogObject::LakeFormation { lf }, &origin, restore_cause(), 1),
                &rename,
            );
            let Some(CatalogObject::LakeFormation { lf }) = r.state else { panic!("a Lake Formation object") };
            assert_eq!(ObjectKey::LakeFormation { catalog: String::new(), lf: lf.key() }, r.key, "key and state agree");
            r.key
        };
        let grant =
            |resource| LfObject::Permission(Permission::new("p".into(), resource, vec!["SELECT".into()], vec![], None));
        let on_table = moved(grant(LfResource::Table { database: "sales".into(), table: "orders".into() }));
        assert_eq!((on_table.database(), on_table.table()), ("sales_restored", Some("orders")));
        let all_tables = moved(grant(LfResource::TableWildcard { database: "sales".into() }));
        assert_eq!(all_tables.database(), "sales_restored");
        let tags = moved(LfObject::ResourceTags(ResourceTags { database: "sales".into(), ..Default::default() }));
        assert_eq!(tags.database(), "sales_restored");
        // Another database's grant and a catalog-level object keep their names.
        let other = moved(grant(LfResource::Database { database: "salesforce".into() }));
        assert_eq!(other.database(), "salesforce");
        let tag = moved(LfObject::LfTag(LfTag { key: "sales".into(), values: vec![] }));
        assert_eq!(tag.lake_formation(), Some(&LfKey::LfTag { key: "sales".into() }));
    }

    #[test]
    fn catalog_level_objects_are_restored_only_with_the_whole_catalog() {
        let opts = |databases: &[&str], rename: Option<(&str, &str)>| RestoreOptions {
            at: At::Time(0),
            into: Into::Target("dr".into()),
            databases: databases.iter().map(|d| d.to_string()).collect(),
            rename: rename.map(|(f, t)| (f.to_string(), t.to_string())),
            dry_run: false,
            show: 0,
            progress: false,
        };
        let all = Selection::new(&opts(&[], None)).unwrap();
        assert!(all.has("") && all.has("sales") && all.has_in_target("") && all.has_in_target("sales"));
        let some = Selection::new(&opts(&["sa*"], None)).unwrap();
        assert!(!some.has("") && some.has("sales") && !some.has("hr") && !some.has_in_target(""));
        let renamed = Selection::new(&opts(&[], Some(("sales", "sales_restored")))).unwrap();
        assert!(renamed.has("sales") && !renamed.has(""));
        // In the target, only the new name is restored: not the live database, not the catalog.
        assert!(renamed.has_in_target("sales_restored") && !renamed.has_in_target("sales"));
        assert!(!renamed.has_in_target(""));
        // The settings are read whatever the selection: they tell whether Lake Formation was
        // captured at the time. Other catalog-level objects are not.
        let lf = |lf| ObjectKey::LakeFormation { catalog: "1".into(), lf };
        assert!(some.reads(&lf(LfKey::DataLakeSettings)) && renamed.reads(&lf(LfKey::DataLakeSettings)));
        assert!(
            !some.reads(&lf(LfKey::LfTag { key: "team".into() }))
                && all.reads(&lf(LfKey::LfTag { key: "team".into() }))
        );
        let db = |d: &str| ObjectKey::Database { catalog: "1".into(), database: d.into() };
        assert!(some.reads(&db("")) && some.reads(&db("sales")) && !some.reads(&db("hr")));
    }
}
