//! Applying a batch of change records to one target.
//!
//! Records carry full states, so within a batch only the last record per key matters; the batch
//! is collapsed to that, then applied in dependency order: database upserts, table upserts,
//! partition upserts, partition deletes, table deletes, database deletes. Every write is preceded
//! by a read of the target and skipped when the target already equals the transformed source, so
//! replays and repeated syncs write nothing.
//!
//! Failure policy (see `aws::error`):
//! - retryable (throttling, 5xx, timeouts): retried with exponential backoff up to
//!   `apply.max_attempts`, then the batch fails with [`ApplyError::Unavailable`] and is not
//!   checkpointed, so a later run resumes it;
//! - a missing parent (table before its database, partition before its table): waited for up to
//!   `apply.dependency_wait_seconds` (it may be on another shard), then dead-lettered;
//! - anything else (validation, access denied): dead-lettered with its reason; the rest continue.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use tracing::{debug, warn};

use super::stats::{ApplyStats, Outcome};
use super::target::{GlueTarget, ItemError, PARTITION_DELETE_CHUNK, PARTITION_GET_CHUNK, PARTITION_WRITE_CHUNK};
use super::transform::Transform;
use super::ApplyError;
use crate::aws::{AwsError, ErrorClass};
use crate::config::ApplyConfig;
use crate::deadletter::{DeadLetter, DeadLetterStore};
use crate::metrics as m;
use crate::model::{CatalogObject, ChangeRecord, Database, ObjectKey, ObjectKind, Op, Partition, Table};

/// Applies records to one target.
#[derive(Debug, Clone)]
pub struct Applier {
    name: String,
    target: GlueTarget,
    transform: Transform,
    dead_letters: DeadLetterStore,
    cfg: ApplyConfig,
    dry_run: bool,
}

#[derive(Clone, Copy)]
enum PartitionWrite {
    Create,
    Update,
    Delete,
}

impl Applier {
    pub fn new(
        name: &str,
        target: GlueTarget,
        transform: Transform,
        dead_letters: DeadLetterStore,
        cfg: ApplyConfig,
        dry_run: bool,
    ) -> Applier {
        Applier { name: name.to_string(), target, transform, dead_letters, cfg, dry_run }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn target(&self) -> &GlueTarget {
        &self.target
    }

    pub fn transform(&self) -> &Transform {
        &self.transform
    }

    /// Applies one batch (records of one shard, in stream order).
    pub async fn apply(&self, records: Vec<ChangeRecord>) -> Result<ApplyStats, ApplyError> {
        let mut stats = ApplyStats::default();
        let mut latest: HashMap<ObjectKey, ChangeRecord> = HashMap::new();
        for r in records {
            if self.transform.allows(r.key.database(), r.key.table()) {
                latest.insert(r.key.clone(), r);
            } else {
                stats.add(r.key.kind(), Outcome::Filtered, 1);
            }
        }
        let mut db_up = Vec::new();
        let mut table_up = Vec::new();
        let mut part_up: HashMap<(String, String), Vec<(ChangeRecord, Partition)>> = HashMap::new();
        let mut part_del: HashMap<(String, String), Vec<ChangeRecord>> = HashMap::new();
        let mut table_del = Vec::new();
        let mut db_del = Vec::new();
        for (key, rec) in latest {
            match (rec.op, rec.state.as_ref().map(|s| self.transform.apply(s))) {
                (Op::Upsert, Some(CatalogObject::Database(d))) if key.kind() == ObjectKind::Database => {
                    db_up.push((rec, d))
                }
                (Op::Upsert, Some(CatalogObject::Table(t))) if key.kind() == ObjectKind::Table => {
                    table_up.push((rec, t))
                }
                (Op::Upsert, Some(CatalogObject::Partition(p))) if key.kind() == ObjectKind::Partition => {
                    part_up.entry((p.database_name.clone(), p.table_name.clone())).or_default().push((rec, p))
                }
                (Op::Delete, _) => match &key {
                    ObjectKey::Database { .. } => db_del.push(rec),
                    ObjectKey::Table { .. } => table_del.push(rec),
                    ObjectKey::Partition { database, table, .. } => {
                        part_del.entry((database.clone(), table.clone())).or_default().push(rec)
                    }
                },
                _ => {
                    let reason = "malformed record: an upsert whose state is missing or of another kind than its key"
                        .to_string();
                    self.park(&rec, reason, None).await?;
                    stats.add(key.kind(), Outcome::DeadLettered, 1);
                }
            }
        }

        let n = self.cfg.concurrency.max(1);
        let outcomes: Vec<_> = futures::stream::iter(db_up.into_iter().map(|(r, d)| self.upsert_database(r, d)))
            .buffer_unordered(n)
            .try_collect()
            .await?;
        self.count(&mut stats, ObjectKind::Database, outcomes);
        let outcomes: Vec<_> = futures::stream::iter(table_up.into_iter().map(|(r, t)| self.upsert_table(r, t)))
            .buffer_unordered(n)
            .try_collect()
            .await?;
        self.count(&mut stats, ObjectKind::Table, outcomes);
        let part_stats: Vec<ApplyStats> =
            futures::stream::iter(part_up.into_iter().map(|((db, t), items)| self.upsert_partitions(db, t, items)))
                .buffer_unordered(n)
                .try_collect()
                .await?;
        let del_stats: Vec<ApplyStats> =
            futures::stream::iter(part_del.into_iter().map(|((db, t), items)| self.delete_partitions(db, t, items)))
                .buffer_unordered(n)
                .try_collect()
                .await?;
        for s in part_stats.iter().chain(del_stats.iter()) {
            stats.merge(s);
        }
        let outcomes: Vec<_> = futures::stream::iter(table_del.into_iter().map(|r| self.delete_table(r)))
            .buffer_unordered(n)
            .try_collect()
            .await?;
        self.count(&mut stats, ObjectKind::Table, outcomes);
        let mut outcomes = Vec::new();
        for r in db_del {
            outcomes.push(self.delete_database(r).await?);
        }
        self.count(&mut stats, ObjectKind::Database, outcomes);

        for (kind, c) in &stats.0 {
            let k = kind.as_str();
            m::records_applied(&self.name, k, "created", c.created);
            m::records_applied(&self.name, k, "updated", c.updated);
            m::records_applied(&self.name, k, "deleted", c.deleted);
            m::records_applied(&self.name, k, "unchanged", c.unchanged);
            m::records_applied(&self.name, k, "dead_lettered", c.dead_lettered);
            m::dead_letters(&self.name, k, c.dead_lettered);
        }
        Ok(stats)
    }

    fn count(&self, stats: &mut ApplyStats, kind: ObjectKind, outcomes: Vec<Outcome>) {
        for o in outcomes {
            stats.add(kind, o, 1);
        }
    }

    /// Runs one call, retrying retryable failures with exponential backoff.
    async fn retry<T, F, Fut>(&self, call: F) -> Result<T, AwsError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, AwsError>>,
    {
        let mut backoff = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            match call().await {
                Err(e) if e.class.is_retryable() && attempt < self.cfg.max_attempts => {
                    debug!(target = %self.name, error = %e, attempt, "retryable error, backing off");
                    m::apply_retry(&self.name);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Like [`Applier::retry`], and also waits (bounded) while a parent object is missing.
    async fn retry_waiting_for_parent<F, Fut>(&self, call: F) -> Result<(), AwsError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(), AwsError>>,
    {
        let deadline = Instant::now() + Duration::from_secs(self.cfg.dependency_wait_seconds);
        loop {
            match self.retry(&call).await {
                Err(e) if e.class == ErrorClass::NotFound && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                other => return other,
            }
        }
    }

    fn unavailable(&self, err: AwsError) -> ApplyError {
        ApplyError::Unavailable { target: self.name.clone(), attempts: self.cfg.max_attempts, source: err }
    }

    async fn park(&self, rec: &ChangeRecord, reason: String, err: Option<&AwsError>) -> Result<(), ApplyError> {
        warn!(target = %self.name, key = %rec.key, reason = %reason, "dead-lettering record");
        if self.dry_run {
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
    async fn settle(&self, rec: &ChangeRecord, err: AwsError) -> Result<Outcome, ApplyError> {
        if err.class.is_retryable() {
            return Err(self.unavailable(err));
        }
        let reason = match err.class {
            ErrorClass::NotFound => format!(
                "its parent does not exist in target {} after waiting {}s ({err}); apply the parent, then replay",
                self.name, self.cfg.dependency_wait_seconds
            ),
            _ => format!("target {} rejected it: {err}", self.name),
        };
        self.park(rec, reason, Some(&err)).await?;
        Ok(Outcome::DeadLettered)
    }

    /// Compare-then-create-or-update for one object.
    async fn upsert_one<T, G, GF, C, CF, U, UF>(
        &self,
        rec: ChangeRecord,
        desired: &T,
        same: impl Fn(&T, &T) -> bool,
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
        let current = match self.retry(&get).await {
            Ok(c) => c,
            Err(e) => return self.settle(&rec, e).await,
        };
        match current {
            Some(cur) if same(&cur, desired) => Ok(Outcome::Unchanged),
            Some(_) if self.dry_run => Ok(Outcome::Updated),
            None if self.dry_run => Ok(Outcome::Created),
            Some(_) => match self.retry(&update).await {
                Ok(()) => Ok(Outcome::Updated),
                Err(e) => self.settle(&rec, e).await,
            },
            None => match self.retry_waiting_for_parent(&create).await {
                Ok(()) => Ok(Outcome::Created),
                // Someone created it between our read and our write: update instead.
                Err(e) if e.class == ErrorClass::AlreadyExists => match self.retry(&update).await {
                    Ok(()) => Ok(Outcome::Updated),
                    Err(e) => self.settle(&rec, e).await,
                },
                Err(e) => self.settle(&rec, e).await,
            },
        }
    }

    async fn upsert_database(&self, rec: ChangeRecord, desired: Database) -> Result<Outcome, ApplyError> {
        let t = &self.target;
        self.upsert_one(
            rec,
            &desired,
            same_database,
            || t.get_database(&desired.name),
            || t.create_database(&desired),
            || t.update_database(&desired),
        )
        .await
    }

    async fn upsert_table(&self, rec: ChangeRecord, desired: Table) -> Result<Outcome, ApplyError> {
        let t = &self.target;
        self.upsert_one(
            rec,
            &desired,
            |cur: &Table, want: &Table| cur.writable() == *want,
            || t.get_table(&desired.database_name, &desired.name),
            || t.create_table(&desired),
            || t.update_table(&desired),
        )
        .await
    }

    /// One partition write call (a chunk) through the retry policy; call-level failures that are
    /// not retryable become item errors for every partition of the chunk.
    async fn partition_call(
        &self,
        op: PartitionWrite,
        db: &str,
        table: &str,
        chunk: &[Partition],
    ) -> Result<Vec<ItemError>, ApplyError> {
        let t = &self.target;
        let values: Vec<Vec<String>> = chunk.iter().map(|p| p.values.clone()).collect();
        let result = self
            .retry(|| async {
                match op {
                    PartitionWrite::Create => t.create_partitions(db, table, chunk).await,
                    PartitionWrite::Update => t.update_partitions(db, table, chunk).await,
                    PartitionWrite::Delete => t.delete_partitions(db, table, &values).await,
                }
            })
            .await;
        match result {
            Ok(items) => Ok(items),
            Err(e) if e.class.is_retryable() => Err(self.unavailable(e)),
            Err(e) => Ok(values.into_iter().map(|v| ItemError { values: v, error: e.clone() }).collect()),
        }
    }

    /// Writes `parts` in chunks; item errors that are retryable are re-sent (bounded). Returns the
    /// item errors that remain.
    async fn partition_writes(
        &self,
        op: PartitionWrite,
        db: &str,
        table: &str,
        mut parts: Vec<Partition>,
    ) -> Result<Vec<ItemError>, ApplyError> {
        let chunk = match op {
            PartitionWrite::Delete => PARTITION_DELETE_CHUNK,
            _ => PARTITION_WRITE_CHUNK,
        };
        let mut final_errors = Vec::new();
        let mut backoff = Duration::from_millis(200);
        for attempt in 1..=self.cfg.max_attempts {
            let mut retry = Vec::new();
            let by_values: HashMap<Vec<String>, Partition> =
                parts.iter().map(|p| (p.values.clone(), p.clone())).collect();
            for c in parts.chunks(chunk) {
                for item in self.partition_call(op, db, table, c).await? {
                    match by_values.get(&item.values) {
                        Some(p) if item.error.class.is_retryable() && attempt < self.cfg.max_attempts => {
                            retry.push(p.clone())
                        }
                        Some(_) if item.error.class.is_retryable() => return Err(self.unavailable(item.error)),
                        _ => final_errors.push(item),
                    }
                }
            }
            if retry.is_empty() {
                break;
            }
            m::apply_retry(&self.name);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
            parts = retry;
        }
        Ok(final_errors)
    }

    /// Existing target partitions among `values`, waiting (bounded) for the table to exist.
    async fn existing_partitions(
        &self,
        db: &str,
        table: &str,
        values: &[Vec<String>],
    ) -> Result<HashMap<Vec<String>, Partition>, AwsError> {
        // A dry run creates no parents, so there is nothing to wait for.
        let wait = if self.dry_run { 0 } else { self.cfg.dependency_wait_seconds };
        let deadline = Instant::now() + Duration::from_secs(wait);
        let mut out = HashMap::new();
        for chunk in values.chunks(PARTITION_GET_CHUNK) {
            let found = loop {
                match self.retry(|| self.target.get_partitions(db, table, chunk)).await {
                    Err(e) if e.class == ErrorClass::NotFound && Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(250)).await
                    }
                    other => break other?,
                }
            };
            out.extend(found.into_iter().map(|p| (p.values.clone(), p)));
        }
        Ok(out)
    }

    async fn upsert_partitions(
        &self,
        db: String,
        table: String,
        items: Vec<(ChangeRecord, Partition)>,
    ) -> Result<ApplyStats, ApplyError> {
        let mut stats = ApplyStats::default();
        let k = ObjectKind::Partition;
        let values: Vec<Vec<String>> = items.iter().map(|(_, p)| p.values.clone()).collect();
        let records: HashMap<Vec<String>, ChangeRecord> =
            items.iter().map(|(r, p)| (p.values.clone(), r.clone())).collect();
        let current = match self.existing_partitions(&db, &table, &values).await {
            Ok(c) => c,
            // A dry run creates no parents, so a missing table means every partition is new.
            Err(e) if self.dry_run && e.class == ErrorClass::NotFound => HashMap::new(),
            Err(e) => {
                for (r, _) in &items {
                    let o = self.settle(r, e.clone()).await?;
                    stats.add(k, o, 1);
                }
                return Ok(stats);
            }
        };
        let (mut create, mut update) = (Vec::new(), Vec::new());
        for (_, want) in items {
            match current.get(&want.values) {
                Some(cur) if cur.writable() == want => stats.add(k, Outcome::Unchanged, 1),
                Some(_) => update.push(want),
                None => create.push(want),
            }
        }
        if self.dry_run {
            stats.add(k, Outcome::Created, create.len() as u64);
            stats.add(k, Outcome::Updated, update.len() as u64);
            return Ok(stats);
        }
        let by_values: HashMap<Vec<String>, Partition> = create.iter().map(|p| (p.values.clone(), p.clone())).collect();
        let attempted = create.len() as u64;
        let mut failed = 0u64;
        let mut pending = create;
        let deadline = Instant::now() + Duration::from_secs(self.cfg.dependency_wait_seconds);
        loop {
            let errors = self.partition_writes(PartitionWrite::Create, &db, &table, pending).await?;
            let mut waiting = Vec::new();
            for item in errors {
                match (item.error.class, by_values.get(&item.values)) {
                    (ErrorClass::AlreadyExists, Some(p)) => {
                        failed += 1;
                        update.push(p.clone());
                    }
                    (ErrorClass::NotFound, Some(p)) if Instant::now() < deadline => waiting.push(p.clone()),
                    (_, _) => {
                        failed += 1;
                        if let Some(r) = records.get(&item.values) {
                            let o = self.settle(r, item.error).await?;
                            stats.add(k, o, 1);
                        }
                    }
                }
            }
            if waiting.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            pending = waiting;
        }
        stats.add(k, Outcome::Created, attempted - failed);
        let attempted = update.len() as u64;
        let errors = self.partition_writes(PartitionWrite::Update, &db, &table, update).await?;
        stats.add(k, Outcome::Updated, attempted - errors.len() as u64);
        for item in errors {
            if let Some(r) = records.get(&item.values) {
                let o = self.settle(r, item.error).await?;
                stats.add(k, o, 1);
            }
        }
        Ok(stats)
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
        if self.dry_run {
            let values: Vec<Vec<String>> = parts.iter().map(|p| p.values.clone()).collect();
            let existing = self.existing_partitions(&db, &table, &values).await.unwrap_or_default();
            stats.add(k, Outcome::Deleted, existing.len() as u64);
            stats.add(k, Outcome::Unchanged, (values.len() - existing.len()) as u64);
            return Ok(stats);
        }
        let attempted = parts.len() as u64;
        let errors = self.partition_writes(PartitionWrite::Delete, &db, &table, parts).await?;
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

    async fn delete_one<G, GF, D, DF>(&self, rec: ChangeRecord, exists: G, delete: D) -> Result<Outcome, ApplyError>
    where
        G: Fn() -> GF,
        GF: Future<Output = Result<bool, AwsError>>,
        D: Fn() -> DF,
        DF: Future<Output = Result<(), AwsError>>,
    {
        if self.dry_run {
            return match self.retry(&exists).await {
                Ok(true) => Ok(Outcome::Deleted),
                Ok(false) => Ok(Outcome::Unchanged),
                Err(e) => self.settle(&rec, e).await,
            };
        }
        match self.retry(&delete).await {
            Ok(()) => Ok(Outcome::Deleted),
            Err(e) if e.class == ErrorClass::NotFound => Ok(Outcome::Unchanged),
            Err(e) => self.settle(&rec, e).await,
        }
    }

    async fn delete_table(&self, rec: ChangeRecord) -> Result<Outcome, ApplyError> {
        let (db, name) = (rec.key.database().to_string(), rec.key.table().unwrap_or_default().to_string());
        let t = &self.target;
        self.delete_one(rec, || async { Ok(t.get_table(&db, &name).await?.is_some()) }, || t.delete_table(&db, &name))
            .await
    }

    async fn delete_database(&self, rec: ChangeRecord) -> Result<Outcome, ApplyError> {
        let db = rec.key.database().to_string();
        let t = &self.target;
        self.delete_one(rec, || async { Ok(t.get_database(&db).await?.is_some()) }, || t.delete_database(&db)).await
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
