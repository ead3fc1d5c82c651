//! What `diff` lists but does not compare: the source's objects lakelog does not replicate, so
//! that none is skipped silently. lakelog replicates databases, tables (resource links and
//! federated ones as their Glue metadata) and partitions; it replicates none of these:
//! - the catalogs under the account's default one (S3 Tables and other multi-level catalogs, GetCatalogs);
//! - the connections behind federated databases and tables (the target needs its own);
//! - partition indexes, column statistics and user-defined functions.
//!
//! Reading them costs one GetCatalogs pass, one call per database and two per table (on top of
//! the comparison's). A read the catalog does not answer makes its kind "not checked", with the
//! error, and is not tried again for the other objects; it never fails the diff.

use std::collections::BTreeMap;
use std::fmt;

use futures::StreamExt;
use serde::Serialize;

use crate::backend::extras::CatalogExtras;
use crate::model::{Database, Table};

/// Objects read at once.
const CONCURRENCY: usize = 8;

pub const CATALOG: &str = "catalog";
pub const FEDERATION: &str = "federation connection";
pub const PARTITION_INDEX: &str = "partition index";
pub const COLUMN_STATISTICS: &str = "column statistics";
pub const FUNCTION: &str = "user-defined function";
/// A source grant (or opt-in) whose principal the target's rules map to none: never granted
/// there (`lakelog status` lists it, `lakelog dlq replay` applies it once a rule maps it).
pub const UNMAPPED_PRINCIPAL: &str = "unmapped principal";

/// One object lakelog does not replicate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Unreplicated {
    pub kind: &'static str,
    /// `db`, `db.table`, a catalog id.
    pub object: String,
    /// What exactly: the index name, the columns, the connection.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// The source's objects lakelog does not replicate, within the target's scope.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NotReplicated {
    /// Per kind, how many were found.
    pub counts: BTreeMap<&'static str, u64>,
    /// The first `limit` found, sorted.
    pub objects: Vec<Unreplicated>,
    /// Kinds that could not be read, with why.
    pub not_checked: BTreeMap<&'static str, String>,
}

impl NotReplicated {
    fn found(&mut self, kind: &'static str, object: String, detail: String) {
        *self.counts.entry(kind).or_default() += 1;
        self.objects.push(Unreplicated { kind, object, detail });
    }

    /// Adds objects of `kind` (object, detail) found elsewhere; keeps the first `limit`, sorted.
    pub fn extend(&mut self, kind: &'static str, found: Vec<(String, String)>, limit: usize) {
        for (object, detail) in found {
            self.found(kind, object, detail);
        }
        self.objects.sort();
        self.objects.truncate(limit);
    }
}

impl fmt::Display for NotReplicated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.counts.is_empty() && self.not_checked.is_empty() {
            return Ok(());
        }
        let counts: Vec<String> = self.counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
        writeln!(f, "not replicated by lakelog (listed, not compared): {}", counts.join(", "))?;
        for o in &self.objects {
            let detail = if o.detail.is_empty() { String::new() } else { format!(": {}", o.detail) };
            writeln!(f, "  {:<22} {}{detail}", o.kind, o.object)?;
        }
        for (kind, why) in &self.not_checked {
            writeln!(f, "  not checked: {kind} ({why})")?;
        }
        Ok(())
    }
}

/// Collects the source objects of one diff, then reads what they hold beside.
#[derive(Debug, Default)]
pub struct Scope {
    databases: Vec<String>,
    /// (database, table, column names) of the tables whose extras are read.
    tables: Vec<(String, String, Vec<String>)>,
    report: NotReplicated,
}

impl Scope {
    /// A source database the target receives.
    pub fn database(&mut self, db: &Database) {
        if let Some(f) = &db.federated_database {
            let detail = f.connection_name.clone().unwrap_or_default();
            self.report.found(FEDERATION, db.name.clone(), detail);
        }
        self.databases.push(db.name.clone());
    }

    /// A source table the target receives.
    pub fn table(&mut self, t: &Table) {
        let object = format!("{}.{}", t.database_name, t.name);
        if let Some(f) = &t.federated_table {
            self.report.found(FEDERATION, object, f.connection_name.clone().unwrap_or_default());
            return;
        }
        // A resource link holds no data of its own: its target's extras are the target's.
        if t.target_table.is_some() {
            return;
        }
        let columns = t.storage_descriptor.iter().flat_map(|sd| &sd.columns).chain(&t.partition_keys);
        self.tables.push((t.database_name.clone(), t.name.clone(), columns.map(|c| c.name.clone()).collect()));
    }

    /// Reads the catalogs, then each database's functions and each table's indexes and
    /// statistics; keeps the first `limit` objects found.
    pub async fn read(mut self, extras: &dyn CatalogExtras, limit: usize) -> NotReplicated {
        let (databases, tables) = (std::mem::take(&mut self.databases), std::mem::take(&mut self.tables));
        match extras.catalogs().await {
            Ok(ids) => ids.into_iter().for_each(|id| self.report.found(CATALOG, id, String::new())),
            Err(e) => {
                self.report.not_checked.insert(CATALOG, e.to_string());
            }
        }
        let functions =
            futures::stream::iter(databases.iter().map(|db| async move { (db, extras.functions(db).await) }))
                .buffered(CONCURRENCY);
        let found: Vec<_> = functions.collect().await;
        for (db, answer) in found {
            self.take(FUNCTION, answer, |r, names| {
                names.into_iter().for_each(|n| r.found(FUNCTION, db.clone(), n));
            });
        }
        let tables = futures::stream::iter(tables.iter().map(|(db, t, columns)| async move {
            let indexes = extras.partition_indexes(db, t).await;
            let statistics = match columns.is_empty() {
                true => Ok(Vec::new()),
                false => extras.column_statistics(db, t, columns).await,
            };
            (format!("{db}.{t}"), indexes, statistics)
        }))
        .buffered(CONCURRENCY);
        let found: Vec<_> = tables.collect().await;
        for (object, indexes, statistics) in found {
            self.take(PARTITION_INDEX, indexes, |r, names| {
                names.into_iter().for_each(|n| r.found(PARTITION_INDEX, object.clone(), n));
            });
            self.take(COLUMN_STATISTICS, statistics, |r, columns| {
                if !columns.is_empty() {
                    r.found(COLUMN_STATISTICS, object.clone(), columns.join(", "));
                }
            });
        }
        self.report.objects.sort();
        self.report.objects.truncate(limit);
        self.report
    }

    /// One answer of `kind`: its objects, or the kind marked not checked (by its first failure).
    fn take(
        &mut self,
        kind: &'static str,
        answer: Result<Vec<String>, crate::backend::AwsError>,
        found: impl FnOnce(&mut NotReplicated, Vec<String>),
    ) {
        if self.report.not_checked.contains_key(kind) {
            return;
        }
        match answer {
            Ok(names) => found(&mut self.report, names),
            Err(e) => {
                self.report.not_checked.insert(kind, e.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::backend::AwsError;
    use crate::model::{Column, FederatedDatabase, StorageDescriptor, TableIdentifier};

    /// A catalog with one of each, whose column statistics read fails (as on an emulator).
    #[derive(Debug)]
    struct Fake;

    #[async_trait]
    impl CatalogExtras for Fake {
        async fn catalogs(&self) -> Result<Vec<String>, AwsError> {
            Ok(vec!["111111111111:s3tablescatalog".into()])
        }
        async fn partition_indexes(&self, _: &str, table: &str) -> Result<Vec<String>, AwsError> {
            Ok(if table == "events" { vec!["by_dt".into()] } else { Vec::new() })
        }
        async fn column_statistics(&self, _: &str, _: &str, _: &[String]) -> Result<Vec<String>, AwsError> {
            Err(AwsError::invalid_response("glue", "GetColumnStatisticsForTable", "not implemented"))
        }
        async fn functions(&self, db: &str) -> Result<Vec<String>, AwsError> {
            Ok(if db == "db" { vec!["to_eur".into()] } else { Vec::new() })
        }
    }

    #[tokio::test]
    async fn everything_not_replicated_is_listed_and_an_unanswered_read_is_said() {
        let mut scope = Scope::default();
        scope.database(&Database { name: "db".into(), ..Default::default() });
        let fed = FederatedDatabase { connection_name: Some("hive-metastore".into()), ..Default::default() };
        scope.database(&Database { name: "fed".into(), federated_database: Some(fed), ..Default::default() });
        let column = Column { name: "id".into(), ..Default::default() };
        let sd = StorageDescriptor { columns: vec![column], ..Default::default() };
        for name in ["events", "other"] {
            let t = Table {
                database_name: "db".into(),
                name: name.into(),
                storage_descriptor: Some(sd.clone()),
                ..Default::default()
            };
            scope.table(&t);
        }
        let link = TableIdentifier { name: Some("x".into()), ..Default::default() };
        scope.table(&Table {
            database_name: "db".into(),
            name: "link".into(),
            target_table: Some(link),
            ..Default::default()
        });
        let report = scope.read(&Fake, 10).await;
        let listed: Vec<(&str, &str, &str)> =
            report.objects.iter().map(|o| (o.kind, o.object.as_str(), o.detail.as_str())).collect();
        assert_eq!(
            listed,
            [
                (CATALOG, "111111111111:s3tablescatalog", ""),
                (FEDERATION, "fed", "hive-metastore"),
                (PARTITION_INDEX, "db.events", "by_dt"),
                (FUNCTION, "db", "to_eur"),
            ]
        );
        assert_eq!(report.not_checked.keys().copied().collect::<Vec<_>>(), [COLUMN_STATISTICS]);
        let text = report.to_string();
        assert!(text.starts_with("not replicated by lakelog (listed, not compared): 1 catalog, 1 federation connection, 1 partition index, 1 user-defined function\n"), "{text}");
        assert!(text.contains("not checked: column statistics"), "{text}");
    }
}
