//! Change records: the unit of the change log.
//!
//! A record carries the *whole* state of one object after a change (or a delete), never a delta,
//! so the latest record for a key is enough to rebuild that object. That is what makes apply
//! idempotent and compaction and restore simple.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::catalog::CatalogObject;

/// The identity of one catalog object in the source.
///
/// `catalog` is the source catalog id (the account id for the default catalog).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ObjectKey {
    Database { catalog: String, database: String },
    Table { catalog: String, database: String, table: String },
    Partition { catalog: String, database: String, table: String, values: Vec<String> },
}

/// Coarse object type, for counting and reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Database,
    Table,
    Partition,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Database => "database",
            ObjectKind::Table => "table",
            ObjectKind::Partition => "partition",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ObjectKey {
    pub fn kind(&self) -> ObjectKind {
        match self {
            ObjectKey::Database { .. } => ObjectKind::Database,
            ObjectKey::Table { .. } => ObjectKind::Table,
            ObjectKey::Partition { .. } => ObjectKind::Partition,
        }
    }

    pub fn catalog(&self) -> &str {
        match self {
            ObjectKey::Database { catalog, .. }
            | ObjectKey::Table { catalog, .. }
            | ObjectKey::Partition { catalog, .. } => catalog,
        }
    }

    pub fn database(&self) -> &str {
        match self {
            ObjectKey::Database { database, .. }
            | ObjectKey::Table { database, .. }
            | ObjectKey::Partition { database, .. } => database,
        }
    }

    /// The table this key belongs to (itself for a table, its table for a partition).
    pub fn table(&self) -> Option<&str> {
        match self {
            ObjectKey::Database { .. } => None,
            ObjectKey::Table { table, .. } | ObjectKey::Partition { table, .. } => Some(table),
        }
    }

    /// The Kinesis partition key: the table identity for a table and its partitions, the
    /// database identity for a database. Order is kept per partition key, hence per table.
    pub fn stream_partition_key(&self) -> String {
        match self.table() {
            Some(table) => format!("{}/{}/{}", self.catalog(), self.database(), table),
            None => format!("{}/{}", self.catalog(), self.database()),
        }
    }

    /// The key of the object in `state`, as it lives in `catalog`.
    pub fn of(catalog: &str, state: &CatalogObject) -> ObjectKey {
        let catalog = catalog.to_string();
        match state {
            CatalogObject::Database(d) => ObjectKey::Database { catalog, database: d.name.clone() },
            CatalogObject::Table(t) => {
                ObjectKey::Table { catalog, database: t.database_name.clone(), table: t.name.clone() }
            }
            CatalogObject::Partition(p) => ObjectKey::Partition {
                catalog,
                database: p.database_name.clone(),
                table: p.table_name.clone(),
                values: p.values.clone(),
            },
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectKey::Database { catalog, database } => write!(f, "{catalog}/{database}"),
            ObjectKey::Table { catalog, database, table } => write!(f, "{catalog}/{database}/{table}"),
            ObjectKey::Partition { catalog, database, table, values } => {
                write!(f, "{catalog}/{database}/{table}/[{}]", values.join(","))
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Upsert,
    Delete,
}

/// Where a record came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Origin {
    pub account: String,
    pub region: String,
    pub catalog_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CauseKind {
    Event,
    Cloudtrail,
    Reconcile,
    Snapshot,
    /// Re-read for `lakelog dlq replay` (applied directly, never written to the change log).
    Replay,
}

/// Why a record was captured, with the source event id when there was one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cause {
    pub kind: CauseKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

/// One captured change: the full state of one object after it changed, or its deletion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRecord {
    pub key: ObjectKey,
    pub op: Op,
    /// The whole object after the change; `None` for a delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<CatalogObject>,
    pub origin: Origin,
    /// When lakelog read the state (epoch ms).
    pub captured_at: i64,
    /// When the source says the object changed, if it says (epoch ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_at: Option<i64>,
    pub cause: Cause,
    /// xxh3 of the writable state's encoding; 0 for a delete. Lets consumers skip unchanged states.
    pub content_hash: u64,
}

impl ChangeRecord {
    /// A full-state upsert for `state`, keyed in the origin's catalog.
    pub fn upsert(state: CatalogObject, origin: &Origin, cause: Cause, captured_at: i64) -> ChangeRecord {
        let content_hash = content_hash(&state);
        ChangeRecord {
            key: ObjectKey::of(&origin.catalog_id, &state),
            op: Op::Upsert,
            state: Some(state),
            origin: origin.clone(),
            captured_at,
            changed_at: None,
            cause,
            content_hash,
        }
    }

    /// A deletion of `key`.
    pub fn delete(key: ObjectKey, origin: &Origin, cause: Cause, captured_at: i64) -> ChangeRecord {
        ChangeRecord {
            key,
            op: Op::Delete,
            state: None,
            origin: origin.clone(),
            captured_at,
            changed_at: None,
            cause,
            content_hash: 0,
        }
    }
}

/// A stable hash of an object's writable content (independent of read-only metadata).
pub fn content_hash(state: &CatalogObject) -> u64 {
    // Encoding cannot fail for these types (string keys, no non-serialisable values); fall back
    // to hashing the debug form rather than panicking if it ever did.
    match rmp_serde::to_vec_named(&state.writable()) {
        Ok(bytes) => xxhash_rust::xxh3::xxh3_64(&bytes),
        Err(_) => xxhash_rust::xxh3::xxh3_64(format!("{state:?}").as_bytes()),
    }
}

/// Now, in epoch milliseconds.
pub fn now_millis() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}
