//! Change records: the unit of the change log.
//!
//! A record carries the *whole* state of one object after a change (or a delete), never a delta,
//! so the latest record for a key is enough to rebuild that object. That is what makes apply
//! idempotent and compaction and restore simple.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::catalog::CatalogObject;
use super::lakeformation::LfKey;

// Encoded `{"kind": "table", ...}`; `kind_tagged!` decodes it without buffering (a variant added
// here needs nothing else).
super::tagged::kind_tagged! {
/// The identity of one catalog object in the source.
///
/// `catalog` is the source catalog id (the account id for the default catalog).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKey {
    Database {
        catalog: String,
        database: String,
    },
    Table {
        catalog: String,
        database: String,
        table: String,
    },
    Partition {
        catalog: String,
        database: String,
        table: String,
        values: Vec<String>,
    },
    /// A Lake Formation object of the catalog (see `model::lakeformation`).
    LakeFormation {
        catalog: String,
        lf: LfKey,
    },
}
}

/// The longest stream partition key lakelog writes, in UTF-8 bytes. Kinesis allows 256
/// characters; bounding bytes bounds characters (and UTF-16 units) too, and the bytes are what
/// count in a record's 1 MiB.
pub const MAX_STREAM_KEY_BYTES: usize = 256;

/// Coarse object type, for counting and reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Database,
    Table,
    Partition,
    /// Lake Formation: the grants of one principal on one resource.
    Permission,
    LfTag,
    LfTagAssignment,
    LfTagExpression,
    DataCellsFilter,
    DataLakeSettings,
    DataLocation,
    LfOptIn,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Database => "database",
            ObjectKind::Table => "table",
            ObjectKind::Partition => "partition",
            ObjectKind::Permission => "permission",
            ObjectKind::LfTag => "lf_tag",
            ObjectKind::LfTagAssignment => "lf_tag_assignment",
            ObjectKind::LfTagExpression => "lf_tag_expression",
            ObjectKind::DataCellsFilter => "data_cells_filter",
            ObjectKind::DataLakeSettings => "data_lake_settings",
            ObjectKind::DataLocation => "data_location",
            ObjectKind::LfOptIn => "lf_opt_in",
        }
    }
}

impl ObjectKind {
    /// A Lake Formation kind (replicated only with `source.lakeformation`).
    pub fn is_lake_formation(self) -> bool {
        !matches!(self, ObjectKind::Database | ObjectKind::Table | ObjectKind::Partition)
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ObjectKey {
    /// The object's identity ([`object_identity`], [`lf_identity`]), whatever its catalog.
    pub fn identity(&self) -> u128 {
        match self {
            ObjectKey::Database { database, .. } => object_identity(database, None, None),
            ObjectKey::Table { database, table, .. } => object_identity(database, Some(table), None),
            ObjectKey::Partition { database, table, values, .. } => {
                object_identity(database, Some(table), Some(values))
            }
            ObjectKey::LakeFormation { lf, .. } => lf_identity(lf),
        }
    }

    pub fn kind(&self) -> ObjectKind {
        match self {
            ObjectKey::Database { .. } => ObjectKind::Database,
            ObjectKey::Table { .. } => ObjectKind::Table,
            ObjectKey::Partition { .. } => ObjectKind::Partition,
            ObjectKey::LakeFormation { lf, .. } => lf.kind(),
        }
    }

    pub fn catalog(&self) -> &str {
        match self {
            ObjectKey::Database { catalog, .. }
            | ObjectKey::Table { catalog, .. }
            | ObjectKey::Partition { catalog, .. }
            | ObjectKey::LakeFormation { catalog, .. } => catalog,
        }
    }

    /// The database this key belongs to; `""` for a catalog-level Lake Formation object (LF-tags,
    /// settings, ...: no Glue database has an empty name).
    pub fn database(&self) -> &str {
        match self {
            ObjectKey::Database { database, .. }
            | ObjectKey::Table { database, .. }
            | ObjectKey::Partition { database, .. } => database,
            ObjectKey::LakeFormation { lf, .. } => lf.database(),
        }
    }

    /// The table this key belongs to (itself for a table, its table for a partition, the table a
    /// Lake Formation object is on).
    pub fn table(&self) -> Option<&str> {
        match self {
            ObjectKey::Database { .. } => None,
            ObjectKey::Table { table, .. } | ObjectKey::Partition { table, .. } => Some(table),
            ObjectKey::LakeFormation { lf, .. } => lf.table(),
        }
    }

    /// The Lake Formation key, for a Lake Formation object.
    pub fn lake_formation(&self) -> Option<&LfKey> {
        match self {
            ObjectKey::LakeFormation { lf, .. } => Some(lf),
            _ => None,
        }
    }

    /// The Kinesis partition key: the table identity for a table and its partitions, the
    /// database identity for a database. Order is kept per partition key, hence per table.
    ///
    /// The key only picks the shard (and so the order); the identity itself travels inside the
    /// record. It is the readable `catalog/db[/table]` whenever that fits in
    /// [`MAX_STREAM_KEY_BYTES`], which keeps every key written before hashed keys existed (a
    /// table changing its key across an upgrade could be read out of order from two shards),
    /// and keeps keys readable in logs. Glue names (255 characters each, up to 4 bytes a
    /// character) can make it far longer: then the key is as much of the readable form as fits,
    /// cut on a character boundary, then `~` and the XXH3-128 of the identity in 32 hex digits.
    /// Deterministic, so one table keeps one key; a collision would only share a shard.
    ///
    /// A Lake Formation object on a table or database rides with that table's or database's key,
    /// so a grant is read after the object it is on, from the same shard. Catalog-level ones
    /// (LF-tags, expressions, settings, locations, and grants on them) share one key per catalog,
    /// `catalog//lakeformation` (no Glue database is named `""`): a tag is read before the
    /// grants on it and the expressions naming it, and a location before its grants.
    pub fn stream_partition_key(&self) -> String {
        let lf_catalog_level = matches!(self, ObjectKey::LakeFormation { lf, .. } if lf.database().is_empty());
        let parts: Vec<&str> = if lf_catalog_level {
            vec![self.catalog(), "", "lakeformation"]
        } else {
            [Some(self.catalog()), Some(self.database()), self.table()].into_iter().flatten().collect()
        };
        let readable = parts.join("/");
        if readable.len() <= MAX_STREAM_KEY_BYTES {
            return readable;
        }
        let suffix = format!("~{:032x}", identity_hash(parts));
        let mut cut = MAX_STREAM_KEY_BYTES - suffix.len();
        while !readable.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}{suffix}", &readable[..cut])
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
            CatalogObject::LakeFormation { lf } => ObjectKey::LakeFormation { catalog, lf: lf.key() },
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
            ObjectKey::LakeFormation { catalog, lf } => write!(f, "{catalog}: {lf}"),
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

/// The XXH3-128 of a sequence of names, each prefixed with its length, so that no choice of names
/// (they may contain `/` or any other character) makes two sequences hash the same input. The one
/// identity hash: stream keys past Kinesis' limit, and what sync, diff and the reader remember of
/// an object instead of its names.
pub fn identity_hash<'a>(parts: impl IntoIterator<Item = &'a str>) -> u128 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for part in parts {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.digest128()
}

/// A 128-bit hash of an object's identity in a catalog (names and partition values, each length
/// prefixed). Sync and restore remember objects by it — 16 bytes an object, whatever its names —
/// so that their memory stays flat as the catalog grows.
pub fn object_identity(database: &str, table: Option<&str>, values: Option<&[String]>) -> u128 {
    // A marker keeps a partition apart from a table whose name equals a value.
    let values =
        values.into_iter().flat_map(|vs| std::iter::once("\u{0}partition").chain(vs.iter().map(String::as_str)));
    identity_hash(std::iter::once(database).chain(table).chain(values))
}

/// A Lake Formation key's identity: its JSON, behind a marker that keeps it apart from every
/// Glue name.
pub fn lf_identity(lf: &LfKey) -> u128 {
    identity_hash(["\u{0}lakeformation", serde_json::to_string(lf).unwrap_or_default().as_str()])
}

/// Now, in epoch milliseconds.
pub fn now_millis() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The most Kinesis accepts in a partition key, in characters (its documented limit).
    const KINESIS_KEY_CHARS: usize = 256;

    fn db(catalog: &str, database: &str) -> ObjectKey {
        ObjectKey::Database { catalog: catalog.into(), database: database.into() }
    }

    fn table(catalog: &str, database: &str, table: &str) -> ObjectKey {
        ObjectKey::Table { catalog: catalog.into(), database: database.into(), table: table.into() }
    }

    fn partition(catalog: &str, database: &str, table: &str, values: &[&str]) -> ObjectKey {
        ObjectKey::Partition {
            catalog: catalog.into(),
            database: database.into(),
            table: table.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    /// Names Glue accepts: up to 255 characters, of 1 to 4 UTF-8 bytes each.
    fn names_at_the_limit() -> Vec<String> {
        ["a", "é", "売", "📈"].iter().map(|c| c.repeat(255)).collect()
    }

    fn assert_fits(key: &ObjectKey) {
        let k = key.stream_partition_key();
        assert!(!k.is_empty(), "{key}");
        assert!(k.chars().count() <= KINESIS_KEY_CHARS, "{} characters for {key}", k.chars().count());
        // Kinesis counts the key's UTF-8 bytes in the record's size; UTF-16 units (how a
        // JavaScript or Java service may count characters) are at most that many.
        assert!(k.len() <= MAX_STREAM_KEY_BYTES, "{} bytes for {key}", k.len());
        assert!(k.encode_utf16().count() <= KINESIS_KEY_CHARS, "{key}");
    }

    #[test]
    fn keys_of_names_at_glue_limits_fit_kinesis() {
        let catalog = "123456789012";
        let names = names_at_the_limit();
        for d in &names {
            assert_fits(&db(catalog, d));
            assert_fits(&db(&"c".repeat(255), d));
            for t in &names {
                assert_fits(&table(catalog, d, t));
                assert_fits(&partition(catalog, d, t, &["2026-01-01", &"v".repeat(255)]));
            }
        }
        // The case an outside tester hit: a 120-character database and a 130-character table.
        assert_fits(&table(catalog, &"d".repeat(120), &"t".repeat(130)));
    }

    #[test]
    fn a_table_and_its_partitions_share_one_key_and_a_database_has_its_own() {
        let catalog = "123456789012";
        let long = names_at_the_limit();
        for (d, t) in [("sales", "orders"), (long[0].as_str(), long[3].as_str()), (long[2].as_str(), "orders")] {
            let k = table(catalog, d, t).stream_partition_key();
            for values in [&[][..], &["2026-01-01"][..], &["2026-01-01", "île-de-france"][..]] {
                assert_eq!(partition(catalog, d, t, values).stream_partition_key(), k, "{d}/{t} {values:?}");
            }
            assert_ne!(db(catalog, d).stream_partition_key(), k, "{d}/{t}");
        }
    }

    #[test]
    fn different_tables_and_databases_get_different_keys() {
        let catalog = "123456789012";
        let base = "x".repeat(254);
        // Names that differ only in their last character, where a truncated key would cut.
        let mut keys = std::collections::BTreeSet::new();
        let mut count = 0;
        for d in [format!("{base}a"), format!("{base}b"), "sales".into()] {
            for t in [format!("{base}a"), format!("{base}b"), "orders".into()] {
                keys.insert(table(catalog, &d, &t).stream_partition_key());
                keys.insert(table("210987654321", &d, &t).stream_partition_key());
                count += 2;
            }
            keys.insert(db(catalog, &d).stream_partition_key());
            count += 1;
        }
        assert_eq!(keys.len(), count, "{keys:#?}");
    }

    /// The keys are a contract with every release writing to the same stream: a table's records
    /// must keep their key (and so their shard and order) across an upgrade. The hashed values
    /// were checked against the Python binding of the reference xxHash (`xxh3_128_intdigest`).
    #[test]
    fn key_values_are_pinned() {
        let catalog = "123456789012";
        // Readable whenever it fits, as before hashed keys existed.
        assert_eq!(table(catalog, "sales", "orders").stream_partition_key(), "123456789012/sales/orders");
        assert_eq!(db(catalog, "sales").stream_partition_key(), "123456789012/sales");
        let exactly = "t".repeat(MAX_STREAM_KEY_BYTES - "123456789012/sales/".len());
        assert_eq!(table(catalog, "sales", &exactly).stream_partition_key(), format!("123456789012/sales/{exactly}"));
        // One byte more: hashed, with as much of the readable form as fits in front.
        let over = format!("{exactly}t");
        let hashed = table(catalog, "sales", &over).stream_partition_key();
        assert_eq!(hashed.len(), MAX_STREAM_KEY_BYTES);
        assert_eq!(hashed, format!("123456789012/sales/{}~4e5199f0a6d7e150f714025dfe634123", "t".repeat(204)),);
        assert_eq!(
            table(catalog, &"d".repeat(120), &"t".repeat(130)).stream_partition_key(),
            format!("123456789012/{}/{}~09078bbff5efb03fd8d5c76365309cb1", "d".repeat(120), "t".repeat(89)),
        );
        // A multi-byte name is cut on a character boundary.
        let key = db(catalog, &"📈".repeat(255)).stream_partition_key();
        assert_eq!(key, format!("123456789012/{}~c10b45c16e704ebfe54c9f1d37b533c6", "📈".repeat(52)));
    }
}
