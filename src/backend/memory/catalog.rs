//! [`MemoryCatalog`]: a Glue Data Catalog in memory, with Glue's semantics, scripted faults and a
//! call log, for tests and benches of everything that reads or writes a catalog.
//!
//! Semantics kept from Glue (see [`Catalog`]'s guarantees): AlreadyExists on creating an existing
//! object; NotFound on updating or deleting a missing one, on creating a table in a missing
//! database, and on listing or batch-writing under a missing parent; per-item errors in batch
//! calls, which store each partition in the table the call names; Glue's chunk limits (a chunk over them is rejected as invalid); deletes cascade
//! (a database takes its tables, a table its partitions); pages of [`MemoryCatalog::page_size`]
//! objects continued by a token; segments that split a table's partitions disjointly (or, with
//! [`MemoryCatalog::ignoring_segments`], are ignored the way the local emulator ignores them).
//!
//! Faults are scripted per operation name (`"CreateTable"`, `"BatchCreatePartition"`, ...), the
//! names Glue and the call log use. Every call is logged, faulted ones included, before it runs.
//!
//! Must never: sleep, retry, or fail a call the test did not script to fail (other than the
//! failures Glue itself would answer).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::backend::catalog::{
    BatchGet, Catalog, ItemError, Page, Segment, PARTITION_DELETE_CHUNK, PARTITION_GET_CHUNK, PARTITION_WRITE_CHUNK,
};
use crate::backend::{AwsError, ErrorClass};
use crate::model::{identity_hash, CatalogObject, Database, Partition, Table};

/// Objects per page of every list call, unless [`MemoryCatalog::page_size`] says otherwise.
pub const DEFAULT_PAGE_SIZE: usize = 100;

type TableKey = (String, String);

/// An in-memory Glue Data Catalog.
#[derive(Debug)]
pub struct MemoryCatalog {
    catalog_id: String,
    page_size: usize,
    ignore_segments: bool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    databases: BTreeMap<String, Database>,
    tables: BTreeMap<TableKey, Table>,
    partitions: BTreeMap<TableKey, BTreeMap<Vec<String>, Partition>>,
    call_faults: Vec<CallFault>,
    item_faults: Vec<(Vec<String>, ErrorClass)>,
    /// Databases whose create fails with the class, every time.
    database_faults: Vec<(String, ErrorClass)>,
    /// Databases created, in order.
    created_databases: Vec<String>,
    races: Vec<(&'static str, CatalogObject)>,
    calls: Vec<&'static str>,
    writes: u64,
}

/// The next `remaining` calls of `operation` fail with `class`.
#[derive(Debug)]
struct CallFault {
    operation: &'static str,
    remaining: u64,
    class: ErrorClass,
}

/// The code Glue answers for a class, so that messages read like Glue's.
fn glue_code(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::Throttled => "ThrottlingException",
        ErrorClass::Retryable => "InternalServiceException",
        ErrorClass::NotFound => "EntityNotFoundException",
        ErrorClass::AlreadyExists => "AlreadyExistsException",
        ErrorClass::Conflict => "ConcurrentModificationException",
        ErrorClass::Permanent => "InvalidInputException",
    }
}

fn error(operation: &'static str, class: ErrorClass, message: String) -> AwsError {
    AwsError { service: "glue", operation, class, code: Some(glue_code(class).to_string()), message }
}

fn is_write(operation: &str) -> bool {
    !operation.starts_with("Get") && operation != "BatchGetPartition"
}

/// One page of `items` from `token` (an offset; the fake's tokens mean nothing else). Only the
/// page is copied: copying what it skips made listing a table of 100,000 partitions quadratic.
fn page<'a, T: Clone + 'a>(items: impl Iterator<Item = &'a T>, token: Option<&str>, size: usize) -> Page<T> {
    let start: usize = token.and_then(|t| t.parse().ok()).unwrap_or(0);
    let mut rest = items.skip(start);
    let items: Vec<T> = rest.by_ref().take(size).cloned().collect();
    let next_token = rest.next().map(|_| (start + items.len()).to_string());
    Page { items, next_token }
}

impl MemoryCatalog {
    /// An empty catalog named `catalog_id`.
    pub fn new(catalog_id: &str) -> MemoryCatalog {
        MemoryCatalog {
            catalog_id: catalog_id.to_string(),
            page_size: DEFAULT_PAGE_SIZE,
            ignore_segments: false,
            state: Mutex::default(),
        }
    }

    /// Pages of `n` objects (at least one), to exercise paging with few objects.
    pub fn page_size(self, n: usize) -> MemoryCatalog {
        MemoryCatalog { page_size: n.max(1), ..self }
    }

    /// Every segment returns every partition, as the local emulator does.
    pub fn ignoring_segments(self) -> MemoryCatalog {
        MemoryCatalog { ignore_segments: true, ..self }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Plain maps and counters that every call leaves consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ----- what the test (or "someone else") does, outside the log -----

    /// Writes `object` as another writer would: created or replaced, parents not checked, not
    /// logged.
    pub fn put(&self, object: CatalogObject) {
        let mut s = self.lock();
        s.put(&self.catalog_id, object);
    }

    /// A database as stored, without a logged call.
    pub fn database(&self, name: &str) -> Option<Database> {
        self.lock().databases.get(name).cloned()
    }

    /// A table as stored, without a logged call.
    pub fn table(&self, database: &str, name: &str) -> Option<Table> {
        self.lock().tables.get(&(database.to_string(), name.to_string())).cloned()
    }

    /// A table's partitions as stored (by values), without a logged call.
    pub fn partitions(&self, database: &str, table: &str) -> Vec<Partition> {
        let key = (database.to_string(), table.to_string());
        self.lock().partitions.get(&key).map(|p| p.values().cloned().collect()).unwrap_or_default()
    }

    // ----- scripted faults -----

    /// The next `n` calls of `operation` fail with `class` (before doing anything).
    pub fn fail_next(&self, operation: &'static str, n: u64, class: ErrorClass) {
        self.lock().call_faults.push(CallFault { operation, remaining: n, class });
    }

    /// The next `n` calls of `operation` are throttled.
    pub fn throttle_next(&self, operation: &'static str, n: u64) {
        self.fail_next(operation, n, ErrorClass::Throttled);
    }

    /// Every call of `operation` from now on is throttled.
    pub fn throttle_always(&self, operation: &'static str) {
        self.fail_next(operation, u64::MAX, ErrorClass::Throttled);
    }

    /// Every batch write of the partition with `values` reports an item error of `class` for it
    /// (the rest of its chunk is applied).
    pub fn fail_item(&self, values: &[&str], class: ErrorClass) {
        self.lock().item_faults.push((values.iter().map(|v| v.to_string()).collect(), class));
    }

    /// Every CreateDatabase of `name` fails with `class` (the rest are created).
    pub fn fail_database(&self, name: &str, class: ErrorClass) {
        self.lock().database_faults.push((name.to_string(), class));
    }

    /// The databases created through the trait, in order.
    pub fn created_databases(&self) -> Vec<String> {
        self.lock().created_databases.clone()
    }

    /// Just before the next call of `operation` runs, another writer writes `object` (the race a
    /// read-then-create loses).
    pub fn write_before_next(&self, operation: &'static str, object: CatalogObject) {
        self.lock().races.push((operation, object));
    }

    // ----- the call log -----

    /// Every call so far, by operation name, in order (failed ones included).
    pub fn calls(&self) -> Vec<&'static str> {
        self.lock().calls.clone()
    }

    /// Calls of `operation` so far.
    pub fn calls_of(&self, operation: &str) -> usize {
        self.lock().calls.iter().filter(|c| **c == operation).count()
    }

    /// Write calls so far (every call but Get* and BatchGetPartition), failed ones included.
    pub fn writes(&self) -> u64 {
        self.lock().writes
    }
}

impl State {
    fn put(&mut self, catalog_id: &str, object: CatalogObject) {
        match object {
            CatalogObject::Database(mut d) => {
                d.meta.catalog_id = Some(catalog_id.to_string());
                self.databases.insert(d.name.clone(), d);
            }
            CatalogObject::Table(t) => {
                self.tables.insert((t.database_name.clone(), t.name.clone()), t);
            }
            CatalogObject::Partition(p) => {
                let key = (p.database_name.clone(), p.table_name.clone());
                self.partitions.entry(key).or_default().insert(p.values.clone(), p);
            }
            // Lake Formation objects live in the Lake Formation fake (`memory::lakeformation`).
            CatalogObject::LakeFormation { .. } => {}
        }
    }

    /// Logs a call, lets a scripted race happen, and answers a scripted fault.
    fn enter(&mut self, catalog_id: &str, operation: &'static str) -> Result<(), AwsError> {
        self.calls.push(operation);
        if is_write(operation) {
            self.writes += 1;
        }
        if let Some(i) = self.races.iter().position(|(op, _)| *op == operation) {
            let (_, object) = self.races.remove(i);
            self.put(catalog_id, object);
        }
        if let Some(f) = self.call_faults.iter_mut().find(|f| f.operation == operation && f.remaining > 0) {
            f.remaining -= 1;
            return Err(error(operation, f.class, "injected by the test".into()));
        }
        Ok(())
    }

    fn has_table(&self, database: &str, table: &str) -> bool {
        self.tables.contains_key(&(database.to_string(), table.to_string()))
    }

    fn table_missing(operation: &'static str, database: &str, table: &str) -> AwsError {
        error(operation, ErrorClass::NotFound, format!("Table {table} not found in database {database}."))
    }

    fn item_fault(&self, operation: &'static str, values: &[String]) -> Option<ItemError> {
        let (_, class) = self.item_faults.iter().find(|(v, _)| v == values)?;
        Some(ItemError { values: values.to_vec(), error: error(operation, *class, "injected by the test".into()) })
    }
}

/// A partition as a batch write stores it: under the table the call names (Glue's
/// PartitionInput carries no database or table), read-only fields cleared.
fn placed(p: &Partition, database: &str, table: &str) -> Partition {
    Partition { database_name: database.to_string(), table_name: table.to_string(), ..p.writable() }
}

fn over_limit(operation: &'static str, n: usize, limit: usize) -> Result<(), AwsError> {
    if n > limit {
        return Err(error(operation, ErrorClass::Permanent, format!("{n} entries, at most {limit} are allowed")));
    }
    Ok(())
}

impl MemoryCatalog {
    /// One GetPartitions page of a table (of one `segment`, or all of it): `pick` chooses what of
    /// each partition it holds (all of it, or its values as with `ExcludeColumnSchema`).
    fn partition_page<T: Clone>(
        &self,
        database: &str,
        table: &str,
        segment: Option<Segment>,
        token: Option<&str>,
        pick: impl Fn(&Partition) -> &T,
    ) -> Result<Page<T>, AwsError> {
        const OP: &str = "GetPartitions";
        let mut s = self.lock();
        s.enter(&self.catalog_id, OP)?;
        if !s.has_table(database, table) {
            return Err(State::table_missing(OP, database, table));
        }
        let in_segment = |p: &&Partition| match segment {
            Some(seg) if !self.ignore_segments && seg.total > 1 => {
                let h = identity_hash(p.values.iter().map(String::as_str));
                h % seg.total as u128 == seg.number as u128
            }
            _ => true,
        };
        let key = (database.to_string(), table.to_string());
        let all = s.partitions.get(&key).into_iter().flat_map(|p| p.values()).filter(in_segment).map(pick);
        Ok(page(all, token, self.page_size))
    }
}

#[async_trait]
impl Catalog for MemoryCatalog {
    fn catalog_id(&self) -> &str {
        &self.catalog_id
    }

    async fn get_database(&self, name: &str) -> Result<Option<Database>, AwsError> {
        let mut s = self.lock();
        s.enter(&self.catalog_id, "GetDatabase")?;
        Ok(s.databases.get(name).cloned())
    }

    async fn databases_page(&self, token: Option<&str>) -> Result<Page<Database>, AwsError> {
        let mut s = self.lock();
        s.enter(&self.catalog_id, "GetDatabases")?;
        Ok(page(s.databases.values(), token, self.page_size))
    }

    async fn create_database(&self, db: &Database) -> Result<(), AwsError> {
        const OP: &str = "CreateDatabase";
        let mut s = self.lock();
        s.enter(&self.catalog_id, OP)?;
        if s.databases.contains_key(&db.name) {
            return Err(error(OP, ErrorClass::AlreadyExists, format!("Database {} already exists.", db.name)));
        }
        if let Some((_, class)) = s.database_faults.iter().find(|(n, _)| *n == db.name) {
            return Err(error(OP, *class, format!("scripted failure for database {}", db.name)));
        }
        s.put(&self.catalog_id, CatalogObject::Database(db.writable()));
        s.created_databases.push(db.name.clone());
        Ok(())
    }

    async fn update_database(&self, db: &Database) -> Result<(), AwsError> {
        const OP: &str = "UpdateDatabase";
        let mut s = self.lock();
        s.enter(&self.catalog_id, OP)?;
        if !s.databases.contains_key(&db.name) {
            return Err(error(OP, ErrorClass::NotFound, format!("Database {} not found.", db.name)));
        }
        s.put(&self.catalog_id, CatalogObject::Database(db.writable()));
        Ok(())
    }

    async fn delete_database(&self, name: &str) -> Result<(), AwsError> {
        const OP: &str = "DeleteDatabase";
        let mut s = self.lock();
        s.enter(&self.catalog_id, OP)?;
        if s.databases.remove(name).is_none() {
            return Err(error(OP, ErrorClass::NotFound, format!("Database {name} not found.")));
        }
        s.tables.retain(|(d, _), _| d != name);
        s.partitions.retain(|(d, _), _| d != name);
        Ok(())
    }

    async fn get_table(&self, database: &str, name: &str) -> Result<Option<Table>, AwsError> {
        let mut s = self.lock();
        s.enter(&self.catalog_id, "GetTable")?;
        Ok(s.tables.get(&(database.to_string(), name.to_string())).cloned())
    }

    async fn tables_page(&self, database: &str, token: Option<&str>) -> Result<Page<Table>, AwsError> {
        const OP: &str = "GetTables";
        let mut s = self.lock();
        s.enter(&self.catalog_id, OP)?;
        if !s.databases.contains_key(database) {
            return Err(error(OP, ErrorClass::NotFound, format!("Database {database} not found.")));
        }
        let tables = s.tables.iter().filter(|((d, _), _)| d == database).map(|(_, t)| t);
        Ok(page(tables, token, self.page_size))
    }

    async fn create_table(&self, table: &Table) -> Result<(), AwsError> {
        const OP: &str = "CreateTable";
        let mut s = self.lock();
        s.enter(&self.catalog_id, OP)?;
        if !s.databases.contains_key(&table.database_name) {
            return Err(error(OP, ErrorClass::NotFound, format!("Database {} not found.", table.database_name)));
        }
        if s.has_table(&table.database_name, &table.name) {
            return Err(error(OP, ErrorClass::AlreadyExists, format!("Table {} already exists.", table.name)));
        }
        s.put(&self.catalog_id, CatalogObject::Table(table.writable()));
        Ok(())
    }

    async fn update_table(&self, table: &Table) -> Result<(), AwsError> {
        const OP: &str = "UpdateTable";
        let mut s = self.lock();
        s.enter(&self.catalog_id, OP)?;
        if !s.has_table(&table.database_name, &table.name) {
            return Err(State::table_missing(OP, &table.database_name, &table.name));
        }
        s.put(&self.catalog_id, CatalogObject::Table(table.writable()));
        Ok(())
    }

    async fn delete_table(&self, database: &str, name: &str) -> Result<(), AwsError> {
        const OP: &str = "DeleteTable";
        let mut s = self.lock();
        s.enter(&self.catalog_id, OP)?;
        let key = (database.to_string(), name.to_string());
        if s.tables.remove(&key).is_none() {
            return Err(State::table_missing(OP, database, name));
        }
        s.partitions.remove(&key);
        Ok(())
    }

    async fn partitions_page(
        &self,
        database: &str,
        table: &str,
        segment: Option<Segment>,
        token: Option<&str>,
    ) -> Result<Page<Partition>, AwsError> {
        self.partition_page(database, table, segment, token, |p| p)
    }

    async fn partition_values_page(
        &self,
        database: &str,
        table: &str,
        token: Option<&str>,
    ) -> Result<Page<Vec<String>>, AwsError> {
        self.partition_page(database, table, None, token, |p| &p.values)
    }

    async fn get_partitions(&self, database: &str, table: &str, values: &[Vec<String>]) -> Result<BatchGet, AwsError> {
        const OP: &str = "BatchGetPartition";
        let mut s = self.lock();
        s.enter(&self.catalog_id, OP)?;
        over_limit(OP, values.len(), PARTITION_GET_CHUNK)?;
        if !s.has_table(database, table) {
            return Err(State::table_missing(OP, database, table));
        }
        let stored = s.partitions.get(&(database.to_string(), table.to_string()));
        let found = values.iter().filter_map(|v| stored.and_then(|p| p.get(v)).cloned()).collect();
        Ok(BatchGet { found, unprocessed: Vec::new() })
    }

    async fn create_partitions(
        &self,
        database: &str,
        table: &str,
        parts: &[Partition],
    ) -> Result<Vec<ItemError>, AwsError> {
        const OP: &str = "BatchCreatePartition";
        let mut s = self.lock();
        s.enter(&self.catalog_id, OP)?;
        over_limit(OP, parts.len(), PARTITION_WRITE_CHUNK)?;
        if !s.has_table(database, table) {
            return Err(State::table_missing(OP, database, table));
        }
        let mut errors = Vec::new();
        for p in parts {
            let exists =
                s.partitions.get(&(database.to_string(), table.to_string())).is_some_and(|t| t.contains_key(&p.values));
            if let Some(e) = s.item_fault(OP, &p.values) {
                errors.push(e);
            } else if exists {
                let e = error(OP, ErrorClass::AlreadyExists, "Partition already exists.".into());
                errors.push(ItemError { values: p.values.clone(), error: e });
            } else {
                s.put(&self.catalog_id, CatalogObject::Partition(placed(p, database, table)));
            }
        }
        Ok(errors)
    }

    async fn update_partitions(
        &self,
        database: &str,
        table: &str,
        parts: &[Partition],
    ) -> Result<Vec<ItemError>, AwsError> {
        const OP: &str = "BatchUpdatePartition";
        let mut s = self.lock();
        s.enter(&self.catalog_id, OP)?;
        over_limit(OP, parts.len(), PARTITION_WRITE_CHUNK)?;
        if !s.has_table(database, table) {
            return Err(State::table_missing(OP, database, table));
        }
        let mut errors = Vec::new();
        for p in parts {
            let exists =
                s.partitions.get(&(database.to_string(), table.to_string())).is_some_and(|t| t.contains_key(&p.values));
            if let Some(e) = s.item_fault(OP, &p.values) {
                errors.push(e);
            } else if !exists {
                let e = error(OP, ErrorClass::NotFound, "Partition not found.".into());
                errors.push(ItemError { values: p.values.clone(), error: e });
            } else {
                s.put(&self.catalog_id, CatalogObject::Partition(placed(p, database, table)));
            }
        }
        Ok(errors)
    }

    async fn delete_partitions(
        &self,
        database: &str,
        table: &str,
        values: &[Vec<String>],
    ) -> Result<Vec<ItemError>, AwsError> {
        const OP: &str = "BatchDeletePartition";
        let mut s = self.lock();
        s.enter(&self.catalog_id, OP)?;
        over_limit(OP, values.len(), PARTITION_DELETE_CHUNK)?;
        if !s.has_table(database, table) {
            return Err(State::table_missing(OP, database, table));
        }
        let mut errors = Vec::new();
        for v in values {
            if let Some(e) = s.item_fault(OP, v) {
                errors.push(e);
                continue;
            }
            let removed = s.partitions.get_mut(&(database.to_string(), table.to_string())).and_then(|t| t.remove(v));
            if removed.is_none() {
                let e = error(OP, ErrorClass::NotFound, "Partition not found.".into());
                errors.push(ItemError { values: v.clone(), error: e });
            }
        }
        Ok(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(name: &str) -> Database {
        Database { name: name.into(), ..Default::default() }
    }

    fn table(db: &str, name: &str) -> Table {
        Table { database_name: db.into(), name: name.into(), ..Default::default() }
    }

    fn part(v: &str) -> Partition {
        Partition { database_name: "d".into(), table_name: "t".into(), values: vec![v.into()], ..Default::default() }
    }

    #[tokio::test]
    async fn creates_updates_and_deletes_answer_as_glue_does() {
        let c = MemoryCatalog::new("123");
        let e = c.create_table(&table("d", "t")).await.expect_err("no database");
        assert_eq!(e.class, ErrorClass::NotFound);
        c.create_database(&db("d")).await.expect("create");
        assert_eq!(c.create_database(&db("d")).await.expect_err("twice").class, ErrorClass::AlreadyExists);
        assert_eq!(c.update_table(&table("d", "t")).await.expect_err("missing").class, ErrorClass::NotFound);
        c.create_table(&table("d", "t")).await.expect("table");
        assert_eq!(c.get_table("d", "t").await.expect("get").map(|t| t.name), Some("t".into()));
        assert_eq!(c.get_table("nope", "t").await.expect("get"), None);
        c.create_partitions("d", "t", &[part("1")]).await.expect("parts");
        c.delete_database("d").await.expect("delete");
        assert_eq!((c.table("d", "t"), c.partitions("d", "t")), (None, vec![]), "deletes cascade");
        assert_eq!(c.delete_database("d").await.expect_err("gone").class, ErrorClass::NotFound);
        assert_eq!(c.writes(), 8, "failed writes count too");
        assert_eq!(c.calls_of("GetTable"), 2);
    }

    #[tokio::test]
    async fn batch_writes_fail_per_item_and_keep_the_rest() {
        let c = MemoryCatalog::new("123");
        c.put(CatalogObject::Database(db("d")));
        c.put(CatalogObject::Table(table("d", "t")));
        c.put(CatalogObject::Partition(part("0")));
        c.fail_item(&["2"], ErrorClass::Permanent);
        let errors = c.create_partitions("d", "t", &[part("0"), part("1"), part("2")]).await.expect("call");
        let classes: Vec<_> = errors.iter().map(|e| (e.values[0].as_str(), e.error.class)).collect();
        assert_eq!(classes, vec![("0", ErrorClass::AlreadyExists), ("2", ErrorClass::Permanent)]);
        assert_eq!(c.partitions("d", "t").len(), 2);
        let errors = c.delete_partitions("d", "t", &[vec!["1".into()], vec!["9".into()]]).await.expect("call");
        assert_eq!(errors.iter().map(|e| e.values[0].as_str()).collect::<Vec<_>>(), vec!["9"]);
        let too_many: Vec<Vec<String>> = (0..26).map(|i| vec![i.to_string()]).collect();
        let e = c.delete_partitions("d", "t", &too_many).await.expect_err("over the limit");
        assert_eq!(e.class, ErrorClass::Permanent);
    }

    #[tokio::test]
    async fn a_batch_write_lands_in_the_table_the_call_names_and_updates_keep_partitions() {
        let c = MemoryCatalog::new("123");
        c.put(CatalogObject::Database(db("d")));
        c.put(CatalogObject::Table(table("d", "t")));
        // Glue's PartitionInput has no database or table: the call's names place it.
        let elsewhere = Partition { database_name: "x".into(), table_name: "y".into(), ..part("1") };
        assert!(c.create_partitions("d", "t", std::slice::from_ref(&elsewhere)).await.expect("call").is_empty());
        let updated = Partition { parameters: [("k".into(), "v".into())].into(), ..elsewhere };
        assert!(c.update_partitions("d", "t", &[updated]).await.expect("call").is_empty());
        let stored = c.get_partitions("d", "t", &[vec!["1".into()]]).await.expect("get").found;
        assert_eq!(stored.len(), 1);
        assert_eq!((stored[0].database_name.as_str(), stored[0].table_name.as_str()), ("d", "t"));
        assert_eq!(stored[0].parameters.get("k").map(String::as_str), Some("v"));
        assert_eq!(c.partitions("x", "y"), vec![]);

        // In place: a table update keeps the table's partitions.
        c.update_table(&Table { description: Some("new".into()), ..table("d", "t") }).await.expect("update");
        assert_eq!(c.partitions("d", "t").len(), 1);
    }

    #[tokio::test]
    async fn every_call_under_a_missing_parent_is_not_found() {
        let c = MemoryCatalog::new("123");
        c.put(CatalogObject::Database(db("d")));
        let keys = [vec!["1".to_string()]];
        let classes = [
            c.tables_page("nope", None).await.map(|_| ()),
            c.update_database(&db("nope")).await,
            c.delete_table("d", "nope").await,
            c.partitions_page("d", "nope", None, None).await.map(|_| ()),
            c.get_partitions("d", "nope", &keys).await.map(|_| ()),
            c.create_partitions("d", "nope", &[part("1")]).await.map(|_| ()),
            c.update_partitions("d", "nope", &[part("1")]).await.map(|_| ()),
            c.delete_partitions("d", "nope", &keys).await.map(|_| ()),
        ]
        .map(|r| r.expect_err("missing parent").class);
        assert_eq!(classes, [ErrorClass::NotFound; 8]);
        assert_eq!(c.get_database("nope").await.expect("get"), None);
    }

    #[tokio::test]
    async fn faults_and_races_happen_when_scripted_and_only_then() {
        let c = MemoryCatalog::new("123");
        c.put(CatalogObject::Database(db("d")));
        c.throttle_next("CreateTable", 2);
        for _ in 0..2 {
            assert_eq!(c.create_table(&table("d", "t")).await.expect_err("throttled").class, ErrorClass::Throttled);
        }
        c.write_before_next("CreateTable", CatalogObject::Table(table("d", "t")));
        let e = c.create_table(&table("d", "t")).await.expect_err("lost the race");
        assert_eq!(e.class, ErrorClass::AlreadyExists);
        c.update_table(&table("d", "t")).await.expect("update");
        assert_eq!(c.calls(), vec!["CreateTable", "CreateTable", "CreateTable", "UpdateTable"]);
    }

    #[tokio::test]
    async fn pages_and_segments_cover_every_partition_once() {
        let c = MemoryCatalog::new("123").page_size(3);
        c.put(CatalogObject::Database(db("d")));
        c.put(CatalogObject::Table(table("d", "t")));
        for i in 0..10 {
            c.put(CatalogObject::Partition(part(&i.to_string())));
        }
        let mut seen = Vec::new();
        for number in 0..3 {
            let mut token = None;
            loop {
                let segment = Some(Segment { number, total: 3 });
                let p = c.partitions_page("d", "t", segment, token.as_deref()).await.expect("page");
                assert!(p.items.len() <= 3);
                seen.extend(p.items.into_iter().map(|p| p.values[0].clone()));
                match p.next_token {
                    Some(t) => token = Some(t),
                    None => break,
                }
            }
        }
        seen.sort_by_key(|v| v.parse::<u32>().unwrap_or(0));
        assert_eq!(seen, (0..10).map(|i| i.to_string()).collect::<Vec<_>>());
    }
}
