//! A dry run as a catalog: [`DryRunCatalog`] stands in front of the real target, passes reads
//! through and records writes instead of sending them. The applier runs exactly as in a real run;
//! what it would have written is [`DryRunCatalog::planned`], and that is what a dry-run report
//! prints.
//!
//! Writes answer as Glue would, from reads of the target: a delete of a missing object fails
//! NotFound (so it counts as unchanged, as a real delete would). Databases and tables the run
//! would write are remembered and answer later reads (a table planned in a database planned
//! earlier in the run finds its parent; a planned table has no partitions yet). Partition writes
//! are counted, not remembered, so a dry run's memory stays flat however many it would write.
//! List pages show the target as it is.
//!
//! Must never: send a write to the target.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use serde::Serialize;

use crate::backend::catalog::{BatchGet, Catalog, ItemError, Page, Segment};
use crate::backend::{AwsError, ErrorClass};
use crate::model::{Database, Partition, Table};

/// Write calls a dry run would have sent for one operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Planned {
    /// API calls (a batch call counts once).
    pub calls: u64,
    /// Objects written by them (a batch call's partitions each count).
    pub objects: u64,
}

/// One line for people: `would send 1 CreateTable, 2 BatchCreatePartition (150 objects)`.
pub fn describe(planned: &BTreeMap<String, Planned>) -> String {
    if planned.is_empty() {
        return "would send no writes".into();
    }
    let calls: Vec<String> = planned
        .iter()
        .map(|(op, p)| match p.objects == p.calls {
            true => format!("{} {op}", p.calls),
            false => format!("{} {op} ({} objects)", p.calls, p.objects),
        })
        .collect();
    format!("would send {}", calls.join(", "))
}

/// The real target behind a recorder of writes.
#[derive(Debug)]
pub struct DryRunCatalog {
    target: Arc<dyn Catalog>,
    state: Mutex<Recorded>,
}

#[derive(Debug, Default)]
struct Recorded {
    planned: BTreeMap<&'static str, Planned>,
    /// Databases as the planned writes leave them: `None` = deleted.
    databases: HashMap<String, Option<Database>>,
    /// Tables (database, name) as the planned writes leave them: `None` = deleted.
    tables: HashMap<(String, String), Option<Table>>,
}

impl Recorded {
    fn plan(&mut self, operation: &'static str, objects: usize) {
        let p = self.planned.entry(operation).or_default();
        p.calls += 1;
        p.objects += objects as u64;
    }

    /// What the plan says of a table: `Some(None)` deleted (itself or its database), `Some(Some)`
    /// written, `None` untouched.
    fn table(&self, database: &str, name: &str) -> Option<Option<&Table>> {
        if let Some(None) = self.databases.get(database) {
            return Some(None);
        }
        self.tables.get(&(database.to_string(), name.to_string())).map(Option::as_ref)
    }
}

fn not_found(operation: &'static str, what: String) -> AwsError {
    AwsError {
        service: "glue",
        operation,
        class: ErrorClass::NotFound,
        code: None,
        message: format!("{what} not found"),
    }
}

impl DryRunCatalog {
    pub fn new(target: Arc<dyn Catalog>) -> DryRunCatalog {
        DryRunCatalog { target, state: Mutex::default() }
    }

    fn lock(&self) -> MutexGuard<'_, Recorded> {
        // Maps and counters that every call leaves consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The writes the run would have sent so far, per operation.
    pub fn planned(&self) -> BTreeMap<String, Planned> {
        self.lock().planned.iter().map(|(op, p)| (op.to_string(), *p)).collect()
    }
}

#[async_trait]
impl Catalog for DryRunCatalog {
    fn catalog_id(&self) -> &str {
        self.target.catalog_id()
    }

    async fn get_database(&self, name: &str) -> Result<Option<Database>, AwsError> {
        if let Some(planned) = self.lock().databases.get(name) {
            return Ok(planned.clone());
        }
        self.target.get_database(name).await
    }

    async fn databases_page(&self, token: Option<&str>) -> Result<Page<Database>, AwsError> {
        self.target.databases_page(token).await
    }

    async fn create_database(&self, db: &Database) -> Result<(), AwsError> {
        let mut s = self.lock();
        s.plan("CreateDatabase", 1);
        s.databases.insert(db.name.clone(), Some(db.clone()));
        Ok(())
    }

    async fn update_database(&self, db: &Database) -> Result<(), AwsError> {
        let mut s = self.lock();
        s.plan("UpdateDatabase", 1);
        s.databases.insert(db.name.clone(), Some(db.clone()));
        Ok(())
    }

    async fn delete_database(&self, name: &str) -> Result<(), AwsError> {
        if self.get_database(name).await?.is_none() {
            return Err(not_found("DeleteDatabase", format!("database {name}")));
        }
        let mut s = self.lock();
        s.plan("DeleteDatabase", 1);
        s.databases.insert(name.to_string(), None);
        s.tables.retain(|(d, _), _| d != name);
        Ok(())
    }

    async fn get_table(&self, database: &str, name: &str) -> Result<Option<Table>, AwsError> {
        if let Some(planned) = self.lock().table(database, name) {
            return Ok(planned.cloned());
        }
        self.target.get_table(database, name).await
    }

    async fn tables_page(&self, database: &str, token: Option<&str>) -> Result<Page<Table>, AwsError> {
        self.target.tables_page(database, token).await
    }

    async fn create_table(&self, table: &Table) -> Result<(), AwsError> {
        let mut s = self.lock();
        s.plan("CreateTable", 1);
        s.tables.insert((table.database_name.clone(), table.name.clone()), Some(table.clone()));
        Ok(())
    }

    async fn update_table(&self, table: &Table) -> Result<(), AwsError> {
        let mut s = self.lock();
        s.plan("UpdateTable", 1);
        s.tables.insert((table.database_name.clone(), table.name.clone()), Some(table.clone()));
        Ok(())
    }

    async fn delete_table(&self, database: &str, name: &str) -> Result<(), AwsError> {
        if self.get_table(database, name).await?.is_none() {
            return Err(not_found("DeleteTable", format!("table {database}.{name}")));
        }
        let mut s = self.lock();
        s.plan("DeleteTable", 1);
        s.tables.insert((database.to_string(), name.to_string()), None);
        Ok(())
    }

    async fn partitions_page(
        &self,
        database: &str,
        table: &str,
        segment: Option<Segment>,
        token: Option<&str>,
    ) -> Result<Page<Partition>, AwsError> {
        self.target.partitions_page(database, table, segment, token).await
    }

    async fn partition_values_page(
        &self,
        database: &str,
        table: &str,
        token: Option<&str>,
    ) -> Result<Page<Vec<String>>, AwsError> {
        self.target.partition_values_page(database, table, token).await
    }

    async fn get_partitions(&self, database: &str, table: &str, values: &[Vec<String>]) -> Result<BatchGet, AwsError> {
        let planned = self.lock().table(database, table).map(|t| t.is_some());
        match planned {
            Some(false) => Err(not_found("BatchGetPartition", format!("table {database}.{table}"))),
            // Planned, so not yet in the target, or replaced in place there: what the target has.
            Some(true) => match self.target.get_partitions(database, table, values).await {
                Err(e) if e.class == ErrorClass::NotFound => Ok(BatchGet::default()),
                other => other,
            },
            None => self.target.get_partitions(database, table, values).await,
        }
    }

    async fn create_partitions(
        &self,
        _database: &str,
        _table: &str,
        parts: &[Partition],
    ) -> Result<Vec<ItemError>, AwsError> {
        self.lock().plan("BatchCreatePartition", parts.len());
        Ok(Vec::new())
    }

    async fn update_partitions(
        &self,
        _database: &str,
        _table: &str,
        parts: &[Partition],
    ) -> Result<Vec<ItemError>, AwsError> {
        self.lock().plan("BatchUpdatePartition", parts.len());
        Ok(Vec::new())
    }

    async fn delete_partitions(
        &self,
        database: &str,
        table: &str,
        values: &[Vec<String>],
    ) -> Result<Vec<ItemError>, AwsError> {
        const OP: &str = "BatchDeletePartition";
        let existing = self.get_partitions(database, table, values).await?;
        // Keys the target did not get to are counted as there: the plan may overstate, never omit.
        let found: std::collections::HashSet<&Vec<String>> =
            existing.found.iter().map(|p| &p.values).chain(&existing.unprocessed).collect();
        let missing: Vec<ItemError> = values
            .iter()
            .filter(|v| !found.contains(v))
            .map(|v| ItemError { values: v.clone(), error: not_found(OP, format!("partition [{}]", v.join(", "))) })
            .collect();
        if missing.len() < values.len() {
            self.lock().plan(OP, values.len() - missing.len());
        }
        Ok(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_reads_as_calls_and_objects() {
        let mut planned = BTreeMap::new();
        assert_eq!(describe(&planned), "would send no writes");
        planned.insert("CreateTable".to_string(), Planned { calls: 2, objects: 2 });
        planned.insert("BatchCreatePartition".to_string(), Planned { calls: 2, objects: 150 });
        assert_eq!(describe(&planned), "would send 2 BatchCreatePartition (150 objects), 2 CreateTable");
    }
}
