//! Turning hints into records: re-read the source now and emit the object's current full state,
//! or a delete when it is gone. Reads are batched (BatchGetPartition, up to 1,000 keys a call).
//!
//! `captured_at` of every record is the time its read *started* (the publisher's ordering rule
//! depends on it).
//!
//! A whole-table re-read (a table named without usable partitions) is never collected: its
//! partitions are streamed to the publisher a page (≤ 1,000) at a time, after the records of the
//! hints (the table's own record first), so memory does not grow with the table.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::events::hint::Hint;
use super::CaptureError;
use crate::backend::catalog::{Catalog, PARTITION_GET_CHUNK};
use crate::backend::ErrorClass;
use crate::capture::scan::lakeformation::in_scope;
use crate::catalog::lakeformation::LfReader;
use crate::catalog::reader::{CatalogReader, PartitionPage};
use crate::catalog::ReadError;
use crate::model::filter::Filter;
use crate::model::lakeformation::LfKey;
use crate::model::{now_millis, CatalogObject, Cause, ChangeRecord, ObjectKey, Origin};
use crate::stream::publisher::Publisher;
use crate::stream::StreamError;

/// What hints resolve to, the partitions of whole-table re-reads aside: publish `records` first,
/// then stream each of `whole_tables` with [`Resolver::publish_whole_table`].
#[derive(Debug, Default)]
pub struct Resolution {
    pub records: Vec<ChangeRecord>,
    /// Tables (database, table), found present, whose every partition is to be re-read.
    pub whole_tables: Vec<(String, String)>,
}

/// Why streaming a whole table's partitions stopped.
#[derive(Debug, thiserror::Error)]
pub enum WholeTableError {
    #[error(transparent)]
    Read(CaptureError),
    #[error(transparent)]
    Stream(StreamError),
}

/// Re-reads the source for hints.
#[derive(Debug, Clone)]
pub struct Resolver {
    reader: CatalogReader,
    filter: Filter,
    origin: Origin,
}

impl Resolver {
    /// Re-reads `source` (the catalog of `origin`), through its retries.
    pub fn new(source: Arc<dyn Catalog>, origin: Origin, filter: Filter) -> Resolver {
        Resolver { reader: CatalogReader::new(source, 1), filter, origin }
    }

    /// Lake Formation hints are re-read from `lf` (`source.lakeformation`).
    pub fn with_lake_formation(self, lf: LfReader) -> Resolver {
        Resolver { reader: self.reader.with_lake_formation(lf), ..self }
    }

    fn key(&self, database: &str, table: Option<&str>, values: Option<&[String]>) -> ObjectKey {
        let catalog = self.origin.catalog_id.clone();
        let database = database.to_string();
        match (table, values) {
            (None, _) => ObjectKey::Database { catalog, database },
            (Some(t), None) => ObjectKey::Table { catalog, database, table: t.to_string() },
            (Some(t), Some(v)) => ObjectKey::Partition { catalog, database, table: t.to_string(), values: v.to_vec() },
        }
    }

    /// Every record for a set of hints, collected (whole tables included: for small uses, such
    /// as a dead-letter replay; capture streams them instead).
    pub async fn resolve(&self, hints: &[Hint], cause: &Cause) -> Result<Vec<ChangeRecord>, CaptureError> {
        let Resolution { mut records, whole_tables } = self.resolve_split(hints, cause, None).await?;
        let (tx, mut rx) = mpsc::channel(1);
        let read = async move {
            for (db, t) in &whole_tables {
                self.whole_table(db, t, cause, &tx).await?;
            }
            Ok(())
        };
        let collect = async {
            while let Some(page) = rx.recv().await {
                records.extend(page);
            }
        };
        let (read, ()) = tokio::join!(read, collect);
        read.map(|()| records)
    }

    /// Records for a set of hints (merged: each object is read once), except the partitions of
    /// whole-table re-reads.
    ///
    /// With `publisher`, a child is never published ahead of its parent: hints for a table's
    /// partitions re-read the table first when `publisher` has no live record of it, and hints
    /// for a table its database. SQS keeps no order (and with leases another worker may hold the
    /// CreateTable message): a BatchCreatePartition hint resolved alone put the partitions on
    /// their shard before their table's record, and the applier, having read every shard past
    /// the partitions' capture time, dead-lettered them as orphans while their table was still
    /// to come behind them.
    pub async fn resolve_split(
        &self,
        hints: &[Hint],
        cause: &Cause,
        publisher: Option<&Publisher>,
    ) -> Result<Resolution, CaptureError> {
        let mut databases = BTreeSet::new();
        let mut tables = BTreeSet::new();
        let mut deep = BTreeSet::new();
        let mut partitions: BTreeMap<(String, String), BTreeSet<Vec<String>>> = BTreeMap::new();
        let mut lake_formation: Vec<LfKey> = Vec::new();
        for h in hints {
            match h {
                Hint::Database { database } => {
                    databases.insert(database.clone());
                }
                Hint::Table { database, table } => {
                    tables.insert((database.clone(), table.clone()));
                }
                Hint::TableDeep { database, table } => {
                    deep.insert((database.clone(), table.clone()));
                }
                Hint::Partitions { database, table, values } => {
                    partitions.entry((database.clone(), table.clone())).or_default().extend(values.iter().cloned());
                }
                Hint::LakeFormation { lf } => lake_formation.push(lf.clone()),
            }
        }
        if let Some(publisher) = publisher {
            let missing = |db: &str, t: Option<&str>| !publisher.has_live(&self.key(db, t, None));
            let orphans: Vec<(String, String)> = partitions
                .keys()
                .filter(|(d, t)| !deep.contains(&(d.clone(), t.clone())))
                .filter(|(d, t)| missing(d, Some(t)))
                .cloned()
                .collect();
            tables.extend(orphans);
            let without_db: Vec<String> =
                tables.iter().chain(deep.iter()).map(|(d, _)| d).filter(|d| missing(d, None)).cloned().collect();
            databases.extend(without_db);
        }
        let upsert = |state, at| ChangeRecord::upsert(state, &self.origin, cause.clone(), at);
        let delete = |key, at| ChangeRecord::delete(key, &self.origin, cause.clone(), at);
        let aws = |what: String| move |e| CaptureError::aws(what, e);
        let mut out = Vec::new();
        for db in databases.into_iter().filter(|d| self.filter.allows_database(d)) {
            let at = now_millis();
            match self.reader.database(&db).await.map_err(aws(format!("database {db}")))? {
                Some(d) => out.push(upsert(CatalogObject::Database(d), at)),
                None => out.push(delete(self.key(&db, None, None), at)),
            }
        }
        // A re-read that finds the table gone publishes its delete and nothing else: Glue drops
        // a table's partitions with it, so there is nothing left to read.
        let mut present = BTreeSet::new();
        for (db, t) in tables.iter().chain(deep.iter()).filter(|(d, t)| self.filter.allows_table(d, t)) {
            let at = now_millis();
            match self.reader.table(db, t).await.map_err(aws(format!("table {db}.{t}")))? {
                Some(table) => {
                    present.insert((db.clone(), t.clone()));
                    out.push(upsert(CatalogObject::Table(table), at));
                }
                None => out.push(delete(self.key(db, Some(t), None), at)),
            }
        }
        let whole_tables = deep.into_iter().filter(|k| present.contains(k)).collect();
        for ((db, t), values) in partitions.into_iter().filter(|((d, t), _)| self.filter.allows_table(d, t)) {
            let values: Vec<Vec<String>> = values.into_iter().collect();
            for chunk in values.chunks(PARTITION_GET_CHUNK) {
                let at = now_millis();
                let found = match self.reader.batch_partitions(&db, &t, chunk).await {
                    Ok(f) => f,
                    // The table itself is gone: so are its partitions.
                    Err(e) if e.class == ErrorClass::NotFound => Vec::new(),
                    Err(e) => return Err(CaptureError::aws(format!("partitions of {db}.{t}"), e)),
                };
                let present: BTreeSet<&Vec<String>> = found.iter().map(|p| &p.values).collect();
                for v in chunk.iter().filter(|v| !present.contains(v)) {
                    out.push(delete(self.key(&db, Some(&t), Some(v)), at));
                }
                out.extend(found.into_iter().map(|p| upsert(CatalogObject::Partition(p), at)));
            }
        }
        self.resolve_lake_formation(lake_formation, cause, &mut out).await?;
        Ok(Resolution { records: out, whole_tables })
    }

    /// Lake Formation hints: one read of the objects named (grants in one listing), an upsert
    /// for each found, a delete for each gone. Without `source.lakeformation` they are an error,
    /// so a replay keeps the dead letter instead of reporting it done.
    async fn resolve_lake_formation(
        &self,
        keys: Vec<LfKey>,
        cause: &Cause,
        out: &mut Vec<ChangeRecord>,
    ) -> Result<(), CaptureError> {
        let keys: Vec<LfKey> = keys.into_iter().filter(|k| in_scope(&self.filter, k)).collect();
        let Some(first) = keys.first() else { return Ok(()) };
        let Some(lf) = self.reader.lake_formation() else {
            let why = "Lake Formation is not replicated (source.lakeformation is false); set it to true to re-read it";
            return Err(CaptureError::aws(
                first.to_string(),
                crate::backend::AwsError::invalid_response("lakeformation", "re-read", why),
            ));
        };
        let at = now_millis();
        let mut found = lf.objects(&keys).await?;
        for k in keys {
            match found.remove(&k) {
                Some(o) => out.push(ChangeRecord::upsert(
                    CatalogObject::LakeFormation { lf: o },
                    &self.origin,
                    cause.clone(),
                    at,
                )),
                None => out.push(ChangeRecord::delete(
                    ObjectKey::LakeFormation { catalog: self.origin.catalog_id.clone(), lf: k },
                    &self.origin,
                    cause.clone(),
                    at,
                )),
            }
        }
        Ok(())
    }

    /// Sends every partition of a table to `out` as upserts, a page at a time; a table dropped
    /// since it was read sends its delete instead (read later, it supersedes any upsert sent).
    async fn whole_table(
        &self,
        db: &str,
        t: &str,
        cause: &Cause,
        out: &mpsc::Sender<Vec<ChangeRecord>>,
    ) -> Result<(), CaptureError> {
        let at = now_millis();
        let (tx, mut rx) = mpsc::channel::<PartitionPage>(1);
        let read = async move { self.reader.partitions(db, t, &tx).await };
        // Owns the receiver: if `out` closes, dropping it stops the read too.
        let forward = async move {
            while let Some(page) = rx.recv().await {
                let records = page
                    .into_iter()
                    .map(|p| ChangeRecord::upsert(CatalogObject::Partition(p), &self.origin, cause.clone(), at))
                    .collect();
                out.send(records).await.map_err(|_| CaptureError::Closed)?;
            }
            Ok(())
        };
        let (read, forwarded) = tokio::join!(read, forward);
        match read {
            Ok(_) => forwarded,
            Err(ReadError::Aws { source, .. }) if source.class == ErrorClass::NotFound => {
                let delete = ChangeRecord::delete(self.key(db, Some(t), None), &self.origin, cause.clone(), at);
                out.send(vec![delete]).await.map_err(|_| CaptureError::Closed)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Publishes every partition of a table re-read whole, a page at a time (`changed_at` set on
    /// each record); how many records were published. Call it after the table's own record is
    /// published: apply then never sees a partition before its table.
    pub async fn publish_whole_table(
        &self,
        db: &str,
        t: &str,
        cause: &Cause,
        changed_at: Option<i64>,
        publisher: &Publisher,
    ) -> Result<u64, WholeTableError> {
        let (tx, mut rx) = mpsc::channel::<Vec<ChangeRecord>>(1);
        let read = async move { self.whole_table(db, t, cause, &tx).await };
        let publish = async move {
            let mut published = 0u64;
            while let Some(mut page) = rx.recv().await {
                for r in &mut page {
                    r.changed_at = changed_at;
                }
                published += page.len() as u64;
                crate::metrics::records_captured_of(&page);
                publisher.publish(page).await?;
            }
            Ok(published)
        };
        let (read, published) = tokio::join!(read, publish);
        // A failed publish closes the channel and so stops the read: the publish error is the cause.
        let published = published.map_err(WholeTableError::Stream)?;
        read.map_err(WholeTableError::Read)?;
        Ok(published)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::memory::catalog::MemoryCatalog;
    use crate::backend::memory::changelog::MemoryLog;
    use crate::model::{CauseKind, Database, Partition, Table};
    use crate::stream::producer::Producer;

    async fn source() -> Arc<MemoryCatalog> {
        let c = Arc::new(MemoryCatalog::new("1"));
        c.create_database(&Database { name: "db".into(), ..Default::default() }).await.expect("db");
        c.create_table(&Table { database_name: "db".into(), name: "t".into(), ..Default::default() }).await.expect("t");
        let p = Partition {
            database_name: "db".into(),
            table_name: "t".into(),
            values: vec!["1".into()],
            ..Default::default()
        };
        c.create_partitions("db", "t", &[p]).await.expect("partition");
        c
    }

    fn kinds(records: &[ChangeRecord]) -> Vec<String> {
        records.iter().map(|r| r.key.to_string()).collect()
    }

    #[tokio::test]
    async fn a_partition_hint_whose_table_was_never_published_re_reads_the_table_and_database_first() {
        let origin = Origin { catalog_id: "1".into(), ..Default::default() };
        let resolver = Resolver::new(source().await, origin, Filter::default());
        let publisher = Publisher::new(Producer::new(Arc::new(MemoryLog::new("s", 1)), 100_000));
        let cause = Cause { kind: CauseKind::Event, event_id: None };
        let hints = [Hint::Partitions { database: "db".into(), table: "t".into(), values: vec![vec!["1".into()]] }];
        let first = resolver.resolve_split(&hints, &cause, Some(&publisher)).await.expect("resolve").records;
        assert_eq!(kinds(&first), ["1/db", "1/db/t", "1/db/t/[1]"], "parents first");
        assert!(first.windows(2).all(|w| w[0].captured_at <= w[1].captured_at), "parents captured no later");
        // Once they are published, the partitions' hint reads the partitions only.
        publisher.publish(first).await.expect("publish");
        let again = resolver.resolve_split(&hints, &cause, Some(&publisher)).await.expect("resolve").records;
        assert_eq!(kinds(&again), ["1/db/t/[1]"]);
        // Without a publisher (a dead-letter replay), only what the hints name.
        let alone = resolver.resolve_split(&hints, &cause, None).await.expect("resolve").records;
        assert_eq!(kinds(&alone), ["1/db/t/[1]"]);
    }
}
