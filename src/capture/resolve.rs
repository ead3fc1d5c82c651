//! Turning hints into records: re-read the source now and emit the object's current full state,
//! or a delete when it is gone. Reads are batched (BatchGetPartition, up to 1,000 keys a call).
//!
//! `captured_at` of every record is the time its read *started* (the publisher's ordering rule
//! depends on it).

use std::collections::{BTreeMap, BTreeSet};

use super::hint::Hint;
use super::reader::CatalogReader;
use super::CaptureError;
use crate::apply::filter::Filter;
use crate::apply::target::{GlueTarget, PARTITION_GET_CHUNK};
use crate::aws::ErrorClass;
use crate::model::{now_millis, CatalogObject, Cause, ChangeRecord, ObjectKey, Origin};

/// Re-reads the source for hints.
#[derive(Debug, Clone)]
pub struct Resolver {
    reader: CatalogReader,
    /// Batched partition reads (same catalog, read-only use).
    batch: GlueTarget,
    filter: Filter,
    origin: Origin,
}

impl Resolver {
    pub fn new(glue: aws_sdk_glue::Client, origin: Origin, filter: Filter) -> Resolver {
        Resolver {
            reader: CatalogReader::new(glue.clone(), &origin.catalog_id, 1),
            batch: GlueTarget::new(glue, &origin.catalog_id, true),
            filter,
            origin,
        }
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

    /// Records for a set of hints (merged: each object is read once).
    pub async fn resolve(&self, hints: &[Hint], cause: &Cause) -> Result<Vec<ChangeRecord>, CaptureError> {
        let mut databases = BTreeSet::new();
        let mut tables = BTreeSet::new();
        let mut deep = BTreeSet::new();
        let mut partitions: BTreeMap<(String, String), BTreeSet<Vec<String>>> = BTreeMap::new();
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
            }
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
        for (db, t) in deep.iter().filter(|k| present.contains(*k)) {
            let at = now_millis();
            match self.reader.all_partitions(db, t).await {
                Ok(found) => out.extend(found.into_iter().map(|p| upsert(CatalogObject::Partition(p), at))),
                // Dropped between the two reads: the delete read later supersedes the upsert.
                Err(CaptureError::Aws { source, .. }) if source.class == ErrorClass::NotFound => {
                    out.push(delete(self.key(db, Some(t), None), at));
                }
                Err(e) => return Err(e),
            }
        }
        for ((db, t), values) in partitions.into_iter().filter(|((d, t), _)| self.filter.allows_table(d, t)) {
            let values: Vec<Vec<String>> = values.into_iter().collect();
            for chunk in values.chunks(PARTITION_GET_CHUNK) {
                let at = now_millis();
                let found = match self.batch.get_partitions(&db, &t, chunk).await {
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
        Ok(out)
    }
}
