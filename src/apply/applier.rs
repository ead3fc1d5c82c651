//! Applying a batch of change records to one target.
//!
//! Records carry full states, so within a batch only the last record per key matters; the batch
//! is collapsed to that, then applied in dependency order: database upserts, table upserts,
//! partition upserts, partition deletes, table deletes, database deletes. Every write is preceded
//! by a read of the target and skipped when the target already equals the transformed source, so
//! replays and repeated syncs write nothing.
//!
//! Failure policy (see `aws::error`):
//! - retryable (throttling, 5xx, timeouts): every target call is retried by the target's
//!   [`RetryPolicy`] (full jitter, `apply.max_attempts` attempts in all, within the target's
//!   adaptive concurrency, which throttling halves); after that the batch fails with
//!   [`ApplyError::Unavailable`] and is not checkpointed, so a later run resumes it;
//! - a missing parent (table before its database, partition before its table): the parent is
//!   checked with a read before any create, and the child waits, spending no writes, while the
//!   parent may still arrive: until every shard of the group is read past the child's capture
//!   time ([`Watermark`]); only then, with the parent still missing, is it dead-lettered;
//! - anything else (validation, access denied): dead-lettered with its reason; the rest continue.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use tracing::{debug, warn};

use super::dry_run::DryRunCatalog;
use super::stats::{ApplyStats, Outcome};
use super::transform::Transform;
use super::watermark::{Verdict, Watermark};
use super::ApplyError;
use crate::backend::catalog::{
    Catalog, ItemError, RetryingCatalog, PARTITION_DELETE_CHUNK, PARTITION_GET_CHUNK, PARTITION_WRITE_CHUNK,
};
use crate::backend::lakeformation::LakeFormation;
use crate::backend::retry::{Aimd, RetryPolicy};
use crate::backend::{AwsError, ErrorClass};
use crate::catalog::reader::{values_hash, CatalogReader};
use crate::config::ApplyConfig;
use crate::metrics as m;
use crate::model::{CatalogObject, ChangeRecord, Database, ObjectKey, ObjectKind, Op, Partition, Table};
use crate::state::deadletter::{DeadLetter, DeadLetterStore};

/// Applies records to one target.
#[derive(Debug, Clone)]
pub struct Applier {
    pub(super) name: String,
    /// The target behind its retry policy (and, in a dry run, behind the recorder).
    target: Arc<dyn Catalog>,
    /// Reads of the same catalog, through the same retries.
    reader: CatalogReader,
    pub(super) retry: RetryPolicy,
    pub(super) transform: Transform,
    pub(super) dead_letters: DeadLetterStore,
    pub(super) cfg: ApplyConfig,
    /// Set in a dry run: where the writes went instead of the target.
    pub(super) dry_run: Option<Arc<DryRunCatalog>>,
    /// The target's Lake Formation (`source.lakeformation`); one attempt per call, retried by
    /// `retry`. `None`: Lake Formation records are parked.
    pub(super) lake_formation: Option<Arc<dyn LakeFormation>>,
    /// Read progress of the consumer group feeding this applier.
    watermark: Arc<Watermark>,
    /// Target databases seen to exist, so a table's parent is read once, not before every create.
    known_databases: Arc<Mutex<HashSet<String>>>,
}

#[derive(Clone, Copy)]
enum PartitionWrite {
    Create,
    Update,
    Delete,
}

/// A batch's records sorted by what they ask of the target (states already transformed),
/// partitions grouped by their table.
#[derive(Default)]
struct Writes {
    database_upserts: Vec<(ChangeRecord, Database)>,
    table_upserts: Vec<(ChangeRecord, Table)>,
    partition_upserts: Groups<PartitionUpsert>,
    partition_deletes: Groups<ChangeRecord>,
    table_deletes: Vec<ChangeRecord>,
    database_deletes: Vec<ChangeRecord>,
    /// Upserts whose state is missing or of another kind than their key: they are dead-lettered.
    malformed: Vec<ChangeRecord>,
    /// Lake Formation records (upserts and deletes), applied after the Glue upserts.
    lake_formation: Vec<ChangeRecord>,
}

/// Items grouped by table (database, table), in the order each table first came. A batch's
/// partitions mostly come table by table, so the last group is looked at first, without
/// allocating its names.
struct Groups<T> {
    groups: Vec<((String, String), Vec<T>)>,
    index: HashMap<(String, String), usize>,
}

impl<T> Default for Groups<T> {
    fn default() -> Self {
        Groups { groups: Vec::new(), index: HashMap::new() }
    }
}

impl<T> Groups<T> {
    /// Adds `item` to the group of the table `names` gives of it.
    fn push(&mut self, item: T, names: impl Fn(&T) -> (&str, &str)) {
        let (database, table) = names(&item);
        let i = match self.groups.last() {
            Some(((d, t), _)) if d == database && t == table => self.groups.len() - 1,
            _ => {
                let key = (database.to_string(), table.to_string());
                *self.index.entry(key.clone()).or_insert_with(|| {
                    self.groups.push((key, Vec::new()));
                    self.groups.len() - 1
                })
            }
        };
        self.groups[i].1.push(item);
    }
}

impl<T> IntoIterator for Groups<T> {
    type Item = ((String, String), Vec<T>);
    type IntoIter = std::vec::IntoIter<Self::Item>;
    fn into_iter(self) -> Self::IntoIter {
        self.groups.into_iter()
    }
}

/// One partition upsert: its record and the partition as the target must have it.
struct PartitionUpsert {
    /// Its state moved to `want` when the transform leaves partitions as they are (no copy):
    /// [`PartitionUpsert::record`] puts it back for a dead letter.
    rec: ChangeRecord,
    want: Partition,
}

impl PartitionUpsert {
    fn new(mut rec: ChangeRecord, transform: &Transform) -> Result<PartitionUpsert, ChangeRecord> {
        let state = if transform.keeps_partitions() {
            rec.state.take()
        } else {
            rec.state.as_ref().map(|s| transform.apply(s))
        };
        match state {
            Some(CatalogObject::Partition(want)) => Ok(PartitionUpsert { rec, want }),
            // Malformed: dead-lettered as it came.
            other => {
                if transform.keeps_partitions() {
                    rec.state = other;
                }
                Err(rec)
            }
        }
    }

    /// The record as it came (what a dead letter holds).
    fn record(&self) -> Cow<'_, ChangeRecord> {
        if self.rec.state.is_some() {
            return Cow::Borrowed(&self.rec);
        }
        let mut rec = self.rec.clone();
        rec.state = Some(CatalogObject::Partition(self.want.clone()));
        Cow::Owned(rec)
    }
}

impl Writes {
    fn sort(latest: Vec<ChangeRecord>, transform: &Transform) -> Writes {
        let mut w = Writes::default();
        for rec in latest {
            if rec.key.lake_formation().is_some() {
                w.lake_formation.push(rec);
                continue;
            }
            let kind = rec.key.kind();
            if rec.op == Op::Delete {
                match &rec.key {
                    ObjectKey::Database { .. } => w.database_deletes.push(rec),
                    ObjectKey::Table { .. } => w.table_deletes.push(rec),
                    ObjectKey::Partition { .. } => {
                        w.partition_deletes.push(rec, |r| (r.key.database(), r.key.table().unwrap_or_default()))
                    }
                    ObjectKey::LakeFormation { .. } => w.malformed.push(rec),
                }
                continue;
            }
            if kind == ObjectKind::Partition {
                match PartitionUpsert::new(rec, transform) {
                    Ok(u) => w.partition_upserts.push(u, |u| (&u.want.database_name, &u.want.table_name)),
                    Err(rec) => w.malformed.push(rec),
                }
                continue;
            }
            match rec.state.as_ref().map(|s| transform.apply(s)) {
                Some(CatalogObject::Database(d)) if kind == ObjectKind::Database => w.database_upserts.push((rec, d)),
                Some(CatalogObject::Table(t)) if kind == ObjectKind::Table => w.table_upserts.push((rec, t)),
                _ => w.malformed.push(rec),
            }
        }
        w
    }
}

impl Applier {
    /// The applier of target `name`: every call to `target` goes through the target's retry
    /// policy (`apply.max_attempts`, within an adaptive concurrency of `apply.concurrency`); in a
    /// dry run, writes are recorded instead of sent.
    pub fn new(
        name: &str,
        target: Arc<dyn Catalog>,
        transform: Transform,
        dead_letters: DeadLetterStore,
        cfg: ApplyConfig,
        dry_run: bool,
    ) -> Applier {
        let retry = RetryPolicy::for_target(cfg.max_attempts, Aimd::new(name, cfg.concurrency));
        let live: Arc<dyn Catalog> = Arc::new(RetryingCatalog::new(target, retry.clone()));
        let dry_run = dry_run.then(|| Arc::new(DryRunCatalog::new(live.clone())));
        let target = match &dry_run {
            Some(recorder) => recorder.clone() as Arc<dyn Catalog>,
            None => live,
        };
        Applier {
            name: name.to_string(),
            reader: CatalogReader::new(target.clone(), 1),
            target,
            retry,
            transform,
            dead_letters,
            cfg,
            dry_run,
            watermark: Arc::default(),
            known_databases: Arc::default(),
            lake_formation: None,
        }
    }

    /// Applies Lake Formation records to `lf` (see `apply::permissions`).
    pub fn with_lake_formation(self, lf: Arc<dyn LakeFormation>) -> Applier {
        Applier { lake_formation: Some(lf), ..self }
    }

    /// Where the consumer group reports how far it has read each shard.
    pub fn watermark(&self) -> &Arc<Watermark> {
        &self.watermark
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The target as this applier writes it: through its retries (and in a dry run, recorded).
    pub fn target(&self) -> &Arc<dyn Catalog> {
        &self.target
    }

    /// Reads of the target, through the same retries.
    pub fn reader(&self) -> &CatalogReader {
        &self.reader
    }

    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// In a dry run, the writes it would have sent so far.
    pub fn dry_run(&self) -> Option<&DryRunCatalog> {
        self.dry_run.as_deref()
    }

    pub fn transform(&self) -> &Transform {
        &self.transform
    }

    /// Applies one batch of records (in stream order) that no consumer group tracks.
    pub async fn apply(&self, records: Vec<ChangeRecord>) -> Result<ApplyStats, ApplyError> {
        self.apply_from(None, records).await
    }

    /// Applies one batch read from `shard`, telling the watermark as each kind of parent is settled.
    pub async fn apply_from(&self, shard: Option<&str>, records: Vec<ChangeRecord>) -> Result<ApplyStats, ApplyError> {
        let mut stats = ApplyStats::default();
        let latest = self.latest_in_scope(records, &mut stats);
        let writes = Writes::sort(latest, &self.transform);
        for rec in &writes.malformed {
            let reason =
                "malformed record: an upsert whose state is missing or of another kind than its key".to_string();
            self.park(rec, reason, None).await?;
            stats.add(rec.key.kind(), Outcome::DeadLettered, 1);
        }
        self.write(writes, shard, &mut stats).await?;
        self.record_applied(&stats);
        Ok(stats)
    }

    /// The last record per key among those the target's filter accepts (records are full states,
    /// so the last one is all that matters), in stream order; the others are counted as filtered.
    fn latest_in_scope(&self, records: Vec<ChangeRecord>, stats: &mut ApplyStats) -> Vec<ChangeRecord> {
        let mut keep = vec![false; records.len()];
        {
            // By reference: keys are not copied.
            let mut last: HashMap<&ObjectKey, usize> = HashMap::with_capacity(records.len());
            for (i, r) in records.iter().enumerate() {
                // Catalog-level Lake Formation objects (LF-tags, settings...) are in no database: in
                // every target's scope.
                let catalog_level = r.key.lake_formation().is_some() && r.key.database().is_empty();
                if catalog_level || self.transform.allows(r.key.database(), r.key.table()) {
                    if let Some(before) = last.insert(&r.key, i) {
                        keep[before] = false;
                    }
                    keep[i] = true;
                } else {
                    stats.add(r.key.kind(), Outcome::Filtered, 1);
                }
            }
        }
        records.into_iter().zip(keep).filter_map(|(r, keep)| keep.then_some(r)).collect()
    }

    /// Writes in dependency order: database, table, partition upserts (a parent before its
    /// children), then partition, table, database deletes (children before their parent).
    async fn write(&self, writes: Writes, shard: Option<&str>, stats: &mut ApplyStats) -> Result<(), ApplyError> {
        let settled = |kind| {
            if let Some(s) = shard {
                self.watermark.settled(s, kind);
            }
        };
        let upserts = writes.database_upserts.into_iter().map(|(r, d)| self.upsert_database(r, d));
        self.count(stats, ObjectKind::Database, self.concurrently(upserts).await?);
        settled(ObjectKind::Database);
        let upserts = writes.table_upserts.into_iter().map(|(r, t)| self.upsert_table(r, t));
        self.count(stats, ObjectKind::Table, self.concurrently(upserts).await?);
        settled(ObjectKind::Table);
        let upserts = writes.partition_upserts.into_iter().map(|((db, t), items)| self.upsert_partitions(db, t, items));
        let upserted = self.concurrently(upserts).await?;
        // After the Glue upserts (a grant's table exists by then), before the Glue deletes.
        self.apply_lake_formation(writes.lake_formation, stats).await?;
        let deletes = writes.partition_deletes.into_iter().map(|((db, t), items)| self.delete_partitions(db, t, items));
        let deleted = self.concurrently(deletes).await?;
        for s in upserted.iter().chain(deleted.iter()) {
            stats.merge(s);
        }
        let deletes = writes.table_deletes.into_iter().map(|r| self.delete_table(r));
        self.count(stats, ObjectKind::Table, self.concurrently(deletes).await?);
        let mut outcomes = Vec::new();
        for r in writes.database_deletes {
            outcomes.push(self.delete_database(r).await?);
        }
        self.count(stats, ObjectKind::Database, outcomes);
        Ok(())
    }

    /// Runs `calls` with up to `apply.concurrency` of them in flight; the first error ends them all.
    async fn concurrently<T, F>(&self, calls: impl Iterator<Item = F>) -> Result<Vec<T>, ApplyError>
    where
        F: Future<Output = Result<T, ApplyError>>,
    {
        futures::stream::iter(calls).buffer_unordered(self.cfg.concurrency.max(1)).try_collect().await
    }

    /// `lakelog_records_applied_total` and `lakelog_dead_letters_total`, once per batch.
    fn record_applied(&self, stats: &ApplyStats) {
        for (kind, c) in &stats.0 {
            let k = kind.as_str();
            m::records_applied(&self.name, k, "created", c.created);
            m::records_applied(&self.name, k, "updated", c.updated);
            m::records_applied(&self.name, k, "deleted", c.deleted);
            m::records_applied(&self.name, k, "unchanged", c.unchanged);
            m::records_applied(&self.name, k, "dead_lettered", c.dead_lettered);
            m::dead_letters(&self.name, k, c.dead_lettered);
        }
    }

    fn count(&self, stats: &mut ApplyStats, kind: ObjectKind, outcomes: Vec<Outcome>) {
        for o in outcomes {
            stats.add(kind, o, 1);
        }
    }

    pub(super) fn unavailable(&self, err: AwsError) -> ApplyError {
        ApplyError::Unavailable { target: self.name.clone(), attempts: self.cfg.max_attempts, source: err }
    }

    pub(super) async fn park(
        &self,
        rec: &ChangeRecord,
        reason: String,
        err: Option<&AwsError>,
    ) -> Result<(), ApplyError> {
        warn!(target = %self.name, key = %rec.key, reason = %reason, "dead-lettering record");
        // A dry run changes nothing, the dead-letter store included; the count says what would be parked.
        if self.dry_run.is_some() {
            return Ok(());
        }
        let dl = DeadLetter::for_record(&self.name, rec, reason, err);
        self.dead_letters
            .park(&dl)
            .await
            .map(|_| ())
            .map_err(|source| ApplyError::DeadLetter { target: self.name.clone(), source })
    }

    /// Turns a final error into an outcome: retryable → the batch fails; else dead-letter.
    pub(super) async fn settle(&self, rec: &ChangeRecord, err: AwsError) -> Result<Outcome, ApplyError> {
        if err.class.is_retryable() {
            return Err(self.unavailable(err));
        }
        let reason = format!("target {} rejected it: {err}", self.name);
        self.park(rec, reason, Some(&err)).await?;
        Ok(Outcome::DeadLettered)
    }

    /// Dead-letters a child whose parent will not come.
    pub(super) async fn orphan(&self, rec: &ChangeRecord, parent: &Parent<'_>) -> Result<Outcome, ApplyError> {
        let why = match self.watermark.verdict(&parent.key, rec.captured_at, self.grace()) {
            Verdict::Detached => format!("after waiting {}s", self.cfg.dependency_wait_seconds),
            _ => "and every shard of the change log has been read past the time it was captured".to_string(),
        };
        let reason = format!(
            "its parent does not exist in target {} ({}) {why}; apply the parent, then replay",
            self.name,
            parent.describe()
        );
        self.park(rec, reason, None).await?;
        Ok(Outcome::DeadLettered)
    }

    /// How late a record may reach the stream after its capture (`apply.dependency_wait_seconds`).
    fn grace(&self) -> Duration {
        Duration::from_secs(self.cfg.dependency_wait_seconds)
    }

    /// Whether `parent` exists in the target now (one read).
    async fn parent_exists(&self, parent: &Parent<'_>) -> Result<bool, AwsError> {
        match parent.table {
            None => {
                let found = self.target.get_database(parent.database).await?.is_some();
                if found {
                    self.note_database(parent.database, true);
                }
                Ok(found)
            }
            Some(table) => Ok(self.target.get_table(parent.database, table).await?.is_some()),
        }
    }

    fn note_database(&self, name: &str, exists: bool) {
        if let Ok(mut known) = self.known_databases.lock() {
            if exists {
                known.insert(name.to_string());
            } else {
                known.remove(name);
            }
        }
    }

    fn database_known(&self, name: &str) -> bool {
        self.known_databases.lock().map(|k| k.contains(name)).unwrap_or(false)
    }

    /// Waits until `parent` of `rec` exists (`true`) or can no longer arrive (`false`). Spends
    /// reads only: the parent is checked after each change of the group's progress, at most a few
    /// times a second.
    pub(super) async fn await_parent(&self, rec: &ChangeRecord, parent: &Parent<'_>) -> Result<bool, AwsError> {
        // Nothing writes during a dry run: a parent neither in the target nor planned cannot come.
        let detached_wait = if self.dry_run.is_some() { Duration::ZERO } else { self.grace() };
        let started = Instant::now();
        let mut waiting = None;
        loop {
            // The verdict is taken before the read: a parent written just before every shard
            // passed the child's time is then seen by the read.
            let verdict = self.watermark.verdict(&parent.key, rec.captured_at, self.grace());
            if self.parent_exists(parent).await? {
                return Ok(true);
            }
            match verdict {
                Verdict::Passed => return Ok(false),
                Verdict::Detached if started.elapsed() >= detached_wait => return Ok(false),
                _ => {}
            }
            if waiting.is_none() {
                debug!(target = %self.name, key = %rec.key, parent = %parent.describe(), "waiting for the parent");
                waiting = Some(WaitGauge::new(&self.name));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            self.watermark.changed(Duration::from_secs(1)).await;
        }
    }

    /// Creates an object under `parent`: the parent is checked with a read first (a create whose
    /// parent is missing is a wasted write), and waited for while it may still arrive.
    async fn create_under<C, CF>(
        &self,
        rec: &ChangeRecord,
        parent: Option<&Parent<'_>>,
        create: C,
    ) -> Result<Created, ApplyError>
    where
        C: Fn() -> CF,
        CF: Future<Output = Result<(), AwsError>>,
    {
        let Some(parent) = parent else {
            return Ok(create().await.map_or_else(Created::Failed, |()| Created::Done));
        };
        let mut rechecked = false;
        loop {
            let known = parent.table.is_none() && self.database_known(parent.database);
            if !known {
                match self.await_parent(rec, parent).await {
                    Ok(true) => {}
                    Ok(false) => {
                        self.orphan(rec, parent).await?;
                        return Ok(Created::Parked);
                    }
                    Err(e) => return Ok(Created::Failed(e)),
                }
            }
            match create().await {
                Ok(()) => return Ok(Created::Done),
                // The parent went away since it was seen (deleted meanwhile): look again, once.
                Err(e) if e.class == ErrorClass::NotFound && !rechecked => {
                    rechecked = true;
                    if parent.table.is_none() {
                        self.note_database(parent.database, false);
                    }
                }
                Err(e) => return Ok(Created::Failed(e)),
            }
        }
    }

    /// Compare-then-create-or-update for one object.
    async fn upsert_one<T, G, GF, C, CF, U, UF>(
        &self,
        rec: ChangeRecord,
        in_sync: impl Fn(&T) -> bool,
        parent: Option<Parent<'_>>,
        get: G,
        create: C,
        update: U,
    ) -> Result<Outcome, ApplyError>
    where
        G: Fn() -> GF,
        GF: Future<Output = Result<Option<T>, AwsError>>,
        C: Fn() -> CF,
        CF: Future<Output = Result<(), AwsError>>,
        U: Fn() -> UF,
        UF: Future<Output = Result<(), AwsError>>,
    {
        let current = match get().await {
            Ok(c) => c,
            Err(e) => return self.settle(&rec, e).await,
        };
        match current {
            Some(cur) if in_sync(&cur) => Ok(Outcome::Unchanged),
            Some(_) => match update().await {
                Ok(()) => Ok(Outcome::Updated),
                Err(e) => self.settle(&rec, e).await,
            },
            None => match self.create_under(&rec, parent.as_ref(), &create).await? {
                Created::Done => Ok(Outcome::Created),
                Created::Parked => Ok(Outcome::DeadLettered),
                // Someone created it between our read and our write: update instead.
                Created::Failed(e) if e.class == ErrorClass::AlreadyExists => match update().await {
                    Ok(()) => Ok(Outcome::Updated),
                    Err(e) => self.settle(&rec, e).await,
                },
                Created::Failed(e) => self.settle(&rec, e).await,
            },
        }
    }

    async fn upsert_database(&self, rec: ChangeRecord, desired: Database) -> Result<Outcome, ApplyError> {
        let t = &self.target;
        let outcome = self
            .upsert_one(
                rec,
                |cur: &Database| same_database(cur, &desired),
                None,
                || t.get_database(&desired.name),
                || t.create_database(&desired),
                || t.update_database(&desired),
            )
            .await?;
        if outcome != Outcome::DeadLettered {
            self.note_database(&desired.name, true);
        }
        Ok(outcome)
    }

    async fn upsert_table(&self, rec: ChangeRecord, desired: Table) -> Result<Outcome, ApplyError> {
        let t = &self.target;
        let parent = Parent::of(&rec.key, &desired.database_name, None);
        self.upsert_one(
            rec,
            |cur: &Table| cur.writable() == desired,
            parent,
            || t.get_table(&desired.database_name, &desired.name),
            || t.create_table(&desired),
            || t.update_table(&desired),
        )
        .await
    }

    /// One partition write call (a chunk, retried by the target's policy); call-level failures
    /// that are not retryable become item errors for every partition of the chunk.
    async fn partition_call(
        &self,
        op: PartitionWrite,
        db: &str,
        table: &str,
        chunk: &[Partition],
    ) -> Result<Vec<ItemError>, ApplyError> {
        let t = &self.target;
        let values: Vec<Vec<String>> = chunk.iter().map(|p| p.values.clone()).collect();
        let result = match op {
            PartitionWrite::Create => t.create_partitions(db, table, chunk).await,
            PartitionWrite::Update => t.update_partitions(db, table, chunk).await,
            PartitionWrite::Delete => t.delete_partitions(db, table, &values).await,
        };
        match result {
            Ok(items) => Ok(items),
            Err(e) if e.class.is_retryable() => Err(self.unavailable(e)),
            Err(e) => Ok(values.into_iter().map(|v| ItemError { values: v, error: e.clone() }).collect()),
        }
    }

    /// Writes `parts` in chunks; items that failed retryably (Glue reports throttling per item
    /// too) are re-sent on the same policy's backoff, `apply.max_attempts` rounds in all.
    /// Returns the item errors that remain.
    ///
    /// Chunks go out concurrently (the target's AIMD limit bounds what is in flight): a batch holds
    /// each partition once, so no two calls carry the same key. Only retried items are copied.
    async fn partition_writes(
        &self,
        op: PartitionWrite,
        db: &str,
        table: &str,
        parts: &[Partition],
    ) -> Result<Vec<ItemError>, ApplyError> {
        let chunk = match op {
            PartitionWrite::Delete => PARTITION_DELETE_CHUNK,
            _ => PARTITION_WRITE_CHUNK,
        };
        let mut final_errors = Vec::new();
        let policy = &self.retry;
        let mut pending: std::borrow::Cow<'_, [Partition]> = std::borrow::Cow::Borrowed(parts);
        for attempt in 1..=policy.max_attempts() {
            let mut retry = Vec::new();
            {
                let index: HashMap<&[String], usize> =
                    pending.iter().enumerate().map(|(i, p)| (p.values.as_slice(), i)).collect();
                // Collected first: a lazy iterator of borrowing futures trips the compiler's Send check.
                let calls: Vec<_> = pending.chunks(chunk).map(|c| self.partition_call(op, db, table, c)).collect();
                let mut calls = futures::stream::iter(calls).buffer_unordered(self.cfg.concurrency.max(1));
                while let Some(items) = calls.next().await {
                    for item in items? {
                        match index.get(item.values.as_slice()) {
                            Some(&i) if item.error.class.is_retryable() && attempt < policy.max_attempts() => {
                                retry.push(pending[i].clone())
                            }
                            Some(_) if item.error.class.is_retryable() => return Err(self.unavailable(item.error)),
                            _ => final_errors.push(item),
                        }
                    }
                }
            }
            if retry.is_empty() {
                break;
            }
            m::apply_retry(&self.name);
            tokio::time::sleep(policy.backoff(attempt)).await;
            pending = std::borrow::Cow::Owned(retry);
        }
        Ok(final_errors)
    }

    /// Existing target partitions among `values`. `Ok(None)`: the table does not exist.
    async fn existing_partitions(
        &self,
        db: &str,
        table: &str,
        values: &[Vec<String>],
    ) -> Result<Option<HashMap<u128, Partition>>, AwsError> {
        let mut out = HashMap::with_capacity(values.len());
        for chunk in values.chunks(PARTITION_GET_CHUNK) {
            match self.reader.batch_partitions(db, table, chunk).await {
                Ok(found) => out.extend(found.into_iter().map(|p| (values_hash(&p.values), p))),
                Err(e) if e.class == ErrorClass::NotFound => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Ok(Some(out))
    }

    /// Upserts one table's partitions: reads which exist (waiting for the table while it may
    /// still arrive), creates the missing ones, updates the changed ones.
    async fn upsert_partitions(
        &self,
        db: String,
        table: String,
        items: Vec<PartitionUpsert>,
    ) -> Result<ApplyStats, ApplyError> {
        let stats = ApplyStats::default();
        // Partitions of one table share its parent; any of their records names it.
        // The newest capture among them: the parent must be waited for until all shards pass it.
        let Some(newest) = items.iter().max_by_key(|u| u.rec.captured_at).map(|u| u.rec.clone()) else {
            return Ok(stats);
        };
        let Some(parent) = Parent::of(&newest.key, &db, Some(&table)) else {
            let err =
                AwsError::invalid_response("glue", "BatchCreatePartition", "a partition upsert keyed as a database");
            return self.settle_all(stats, items.iter().map(PartitionUpsert::record), err).await;
        };
        let values: Vec<Vec<String>> = items.iter().map(|u| u.want.values.clone()).collect();
        let current = match self.current_partitions(&db, &table, &values, &newest, &parent).await {
            Ok(Some(current)) => current,
            Ok(None) => return self.orphan_all(stats, items.iter().map(PartitionUpsert::record), &parent).await,
            Err(e) => return self.settle_all(stats, items.iter().map(PartitionUpsert::record), e).await,
        };
        drop(values);
        let mut upserts = PartitionUpserts { db: &db, table: &table, newest, parent, records: HashMap::new(), stats };
        let (create, mut update) = upserts.sort(items, &current);
        let (created, existed) = self.create_partitions(&mut upserts, &create).await?;
        upserts.stats.add(ObjectKind::Partition, Outcome::Created, created);
        update.extend(existed);
        self.update_partitions(&mut upserts, &update).await?;
        Ok(upserts.stats)
    }

    /// The table's partitions among `values` as they are in the target, once the table exists;
    /// `Ok(None)`: the table will not come.
    async fn current_partitions(
        &self,
        db: &str,
        table: &str,
        values: &[Vec<String>],
        newest: &ChangeRecord,
        parent: &Parent<'_>,
    ) -> Result<Option<HashMap<u128, Partition>>, AwsError> {
        loop {
            if let Some(current) = self.existing_partitions(db, table, values).await? {
                return Ok(Some(current));
            }
            if !self.await_parent(newest, parent).await? {
                return Ok(None);
            }
        }
    }

    /// Creates `create`; returns how many were created, and those found to exist already
    /// (created meanwhile: they are updated instead). A create that finds the table gone (dropped
    /// since it was read) waits for the table, and tries once more.
    async fn create_partitions(
        &self,
        upserts: &mut PartitionUpserts<'_>,
        create: &[Partition],
    ) -> Result<(u64, Vec<Partition>), ApplyError> {
        let first = self.create_round(upserts, create, true).await?;
        let (mut failed, mut existed) = (first.failed, first.existed);
        if !first.missing_parent.is_empty() {
            let arrived = self.await_parent(&upserts.newest, &upserts.parent).await;
            if matches!(arrived, Ok(true)) {
                let again = self.create_round(upserts, &first.missing_parent, false).await?;
                failed += again.failed;
                existed.extend(again.existed);
            } else {
                for p in &first.missing_parent {
                    failed += 1;
                    if let Some(r) = upserts.records.get(&values_hash(&p.values)).map(PartitionUpsert::record) {
                        let o = match &arrived {
                            Err(e) => self.settle(&r, e.clone()).await?,
                            Ok(_) => self.orphan(&r, &upserts.parent).await?,
                        };
                        upserts.stats.add(ObjectKind::Partition, o, 1);
                    }
                }
            }
        }
        Ok((create.len() as u64 - failed, existed))
    }

    /// One create of `pending`: item errors are settled, except an existing partition and (when
    /// `recheck`) a missing table, which are handed back.
    async fn create_round(
        &self,
        upserts: &mut PartitionUpserts<'_>,
        pending: &[Partition],
        recheck: bool,
    ) -> Result<CreateRound, ApplyError> {
        let by_values: HashMap<&[String], &Partition> = pending.iter().map(|p| (p.values.as_slice(), p)).collect();
        let errors = self.partition_writes(PartitionWrite::Create, upserts.db, upserts.table, pending).await?;
        let mut round = CreateRound::default();
        for item in errors {
            match (item.error.class, by_values.get(item.values.as_slice())) {
                (ErrorClass::AlreadyExists, Some(&p)) => {
                    round.failed += 1;
                    round.existed.push(p.clone());
                }
                (ErrorClass::NotFound, Some(&p)) if recheck => round.missing_parent.push(p.clone()),
                (_, _) => {
                    round.failed += 1;
                    self.settle_item(upserts, item).await?;
                }
            }
        }
        Ok(round)
    }

    async fn update_partitions(
        &self,
        upserts: &mut PartitionUpserts<'_>,
        update: &[Partition],
    ) -> Result<(), ApplyError> {
        let errors = self.partition_writes(PartitionWrite::Update, upserts.db, upserts.table, update).await?;
        upserts.stats.add(ObjectKind::Partition, Outcome::Updated, (update.len() - errors.len()) as u64);
        for item in errors {
            self.settle_item(upserts, item).await?;
        }
        Ok(())
    }

    /// Settles a partition's item error against its record.
    async fn settle_item(&self, upserts: &mut PartitionUpserts<'_>, item: ItemError) -> Result<(), ApplyError> {
        if let Some(r) = upserts.records.get(&values_hash(&item.values)).map(PartitionUpsert::record) {
            let o = self.settle(&r, item.error).await?;
            upserts.stats.add(ObjectKind::Partition, o, 1);
        }
        Ok(())
    }

    async fn delete_partitions(
        &self,
        db: String,
        table: String,
        items: Vec<ChangeRecord>,
    ) -> Result<ApplyStats, ApplyError> {
        let mut stats = ApplyStats::default();
        let k = ObjectKind::Partition;
        let mut records = HashMap::new();
        let mut parts = Vec::new();
        for r in items {
            if let ObjectKey::Partition { values, .. } = &r.key {
                parts.push(Partition {
                    database_name: db.clone(),
                    table_name: table.clone(),
                    values: values.clone(),
                    ..Default::default()
                });
                records.insert(values.clone(), r);
            }
        }
        let attempted = parts.len() as u64;
        let errors = self.partition_writes(PartitionWrite::Delete, &db, &table, &parts).await?;
        let mut not_deleted = 0;
        for item in errors {
            not_deleted += 1;
            if item.error.class == ErrorClass::NotFound {
                stats.add(k, Outcome::Unchanged, 1);
            } else if let Some(r) = records.get(&item.values) {
                let o = self.settle(r, item.error).await?;
                stats.add(k, o, 1);
            }
        }
        stats.add(k, Outcome::Deleted, attempted - not_deleted);
        Ok(stats)
    }

    async fn delete_one(
        &self,
        rec: ChangeRecord,
        delete: impl Future<Output = Result<(), AwsError>>,
    ) -> Result<Outcome, ApplyError> {
        match delete.await {
            Ok(()) => Ok(Outcome::Deleted),
            Err(e) if e.class == ErrorClass::NotFound => Ok(Outcome::Unchanged),
            Err(e) => self.settle(&rec, e).await,
        }
    }

    async fn delete_table(&self, rec: ChangeRecord) -> Result<Outcome, ApplyError> {
        let (db, name) = (rec.key.database().to_string(), rec.key.table().unwrap_or_default().to_string());
        self.delete_one(rec, self.target.delete_table(&db, &name)).await
    }

    async fn delete_database(&self, rec: ChangeRecord) -> Result<Outcome, ApplyError> {
        let db = rec.key.database().to_string();
        let outcome = self.delete_one(rec, self.target.delete_database(&db)).await?;
        self.note_database(&db, false);
        Ok(outcome)
    }

    /// Settles every record of a group of partitions with the same call error.
    async fn settle_all<'r>(
        &self,
        mut stats: ApplyStats,
        records: impl Iterator<Item = Cow<'r, ChangeRecord>>,
        err: AwsError,
    ) -> Result<ApplyStats, ApplyError> {
        for r in records {
            let o = self.settle(&r, err.clone()).await?;
            stats.add(ObjectKind::Partition, o, 1);
        }
        Ok(stats)
    }

    /// Dead-letters every record of a group of partitions whose table will not come.
    async fn orphan_all<'r>(
        &self,
        mut stats: ApplyStats,
        records: impl Iterator<Item = Cow<'r, ChangeRecord>>,
        parent: &Parent<'_>,
    ) -> Result<ApplyStats, ApplyError> {
        for r in records {
            stats.add(ObjectKind::Partition, self.orphan(&r, parent).await?, 1);
        }
        Ok(stats)
    }
}

/// One table's partition upserts while they are written (its table seen to exist).
struct PartitionUpserts<'a> {
    db: &'a str,
    table: &'a str,
    /// The newest record among them: the table is waited for until every shard passes its capture.
    newest: ChangeRecord,
    parent: Parent<'a>,
    /// Each partition written, by the hash of its values ([`values_hash`]): what a failure parks.
    records: HashMap<u128, PartitionUpsert>,
    stats: ApplyStats,
}

impl PartitionUpserts<'_> {
    /// Counts the partitions already in sync (compared as they are: nothing is copied for them);
    /// returns those to create and those to update, whose records are kept for their failures.
    fn sort(
        &mut self,
        items: Vec<PartitionUpsert>,
        current: &HashMap<u128, Partition>,
    ) -> (Vec<Partition>, Vec<Partition>) {
        let (mut create, mut update) = (Vec::new(), Vec::new());
        for u in items {
            let hash = values_hash(&u.want.values);
            match current.get(&hash) {
                Some(cur) if cur.writable_eq(&u.want) => {
                    self.stats.add(ObjectKind::Partition, Outcome::Unchanged, 1);
                    continue;
                }
                Some(_) => update.push(u.want.writable()),
                None => create.push(u.want.writable()),
            }
            self.records.insert(hash, u);
        }
        (create, update)
    }
}

/// What one create call of partitions came to, besides what it created and settled.
#[derive(Default)]
struct CreateRound {
    /// Partitions not created (existing ones and settled failures).
    failed: u64,
    /// Partitions that exist already.
    existed: Vec<Partition>,
    /// Partitions whose table was not found.
    missing_parent: Vec<Partition>,
}

/// The parent a child is created under: its key in the change log (source names, for the
/// watermark) and its names in the target (after the transform).
pub(super) struct Parent<'a> {
    pub(super) key: ObjectKey,
    pub(super) database: &'a str,
    pub(super) table: Option<&'a str>,
}

impl<'a> Parent<'a> {
    /// The parent of the child keyed `child` (a table's database, a partition's table), named
    /// `database` / `table` in the target; `None` for a database, which has no parent.
    pub(super) fn of(child: &ObjectKey, database: &'a str, table: Option<&'a str>) -> Option<Parent<'a>> {
        let key = match child {
            ObjectKey::Database { .. } => return None,
            ObjectKey::Table { catalog, database, .. } => {
                ObjectKey::Database { catalog: catalog.clone(), database: database.clone() }
            }
            ObjectKey::Partition { catalog, database, table, .. } => {
                ObjectKey::Table { catalog: catalog.clone(), database: database.clone(), table: table.clone() }
            }
            // The table or database a Lake Formation object is on; none at catalog level.
            ObjectKey::LakeFormation { catalog, lf } => match (lf.database(), lf.table()) {
                ("", _) => return None,
                (d, Some(t)) => {
                    ObjectKey::Table { catalog: catalog.clone(), database: d.to_string(), table: t.to_string() }
                }
                (d, None) => ObjectKey::Database { catalog: catalog.clone(), database: d.to_string() },
            },
        };
        Some(Parent { key, database, table })
    }

    fn describe(&self) -> String {
        match self.table {
            None => format!("database {}", self.database),
            Some(t) => format!("table {}.{t}", self.database),
        }
    }
}

/// What creating under a parent came to.
enum Created {
    Done,
    Failed(AwsError),
    /// The parent will not come; the record is dead-lettered.
    Parked,
}

/// Counts one record in `lakelog_apply_dependency_waits` while it waits.
struct WaitGauge(String);

impl WaitGauge {
    fn new(target: &str) -> WaitGauge {
        m::dependency_waits(target, 1.0);
        WaitGauge(target.to_string())
    }
}

impl Drop for WaitGauge {
    fn drop(&mut self) {
        m::dependency_waits(&self.0, -1.0);
    }
}

/// Databases are equal when their writable fields are, once Glue's own defaults are accepted.
fn same_database(current: &Database, desired: &Database) -> bool {
    let mut cur = current.writable();
    accept_database_defaults(&mut cur, desired);
    cur == *desired
}

/// Glue fills in default table permissions (`IAM_ALLOWED_PRINCIPALS`) when none are given, so an
/// empty desired list accepts those.
fn accept_database_defaults(current: &mut Database, desired: &Database) {
    if desired.create_table_default_permissions.is_empty() {
        current.create_table_default_permissions.clear();
    }
}

/// A target object as apply compares it with `desired` (a transformed source object): its
/// writable fields, with what Glue fills in by itself accepted. Equal means in sync.
pub fn comparable(current: &CatalogObject, desired: &CatalogObject) -> CatalogObject {
    let mut cur = current.writable();
    if let (CatalogObject::Database(c), CatalogObject::Database(d)) = (&mut cur, desired) {
        accept_database_defaults(c, d);
    }
    cur
}
