//! lakelog's own model of Glue Data Catalog objects.
//!
//! These types mirror Glue's `DatabaseInput`, `TableInput` and `PartitionInput` field for field,
//! so a state read from one catalog can be written to another without loss. They are *not* the SDK
//! types: the change log outlives SDK releases, so its format is ours, serialised with serde and
//! pinned by golden files (`tests/fixtures/`).
//!
//! Conventions that make comparisons exact:
//! - maps are `BTreeMap` (deterministic encoding and hashing);
//! - an absent list or map and an empty one are the same thing (`Vec`/`BTreeMap`, empty = absent);
//! - read-only fields that Glue sets (create time, version id, ...) live in a `meta` struct that is
//!   recorded for inspection but never written back and never compared ([`Database::writable`], ...).
//! - times are epoch milliseconds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// String-to-string parameters as Glue stores them.
pub type Params = BTreeMap<String, String>;

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}

/// A Glue database (`DatabaseInput` plus read-only metadata).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Database {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_uri: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: Params,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub create_table_default_permissions: Vec<PrincipalPermissions>,
    /// Set when this database is a resource link to another catalog's database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_database: Option<DatabaseIdentifier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federated_database: Option<FederatedDatabase>,
    #[serde(default, skip_serializing_if = "DatabaseMeta::is_empty")]
    pub meta: DatabaseMeta,
}

/// Read-only database fields set by Glue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DatabaseMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<i64>,
}

impl DatabaseMeta {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PrincipalPermissions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DatabaseIdentifier {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FederatedDatabase {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_type: Option<String>,
}

/// A Glue table (`TableInput` plus the database it lives in and read-only metadata).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Table {
    pub database_name: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_access_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_analyzed_time: Option<i64>,
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub retention: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_descriptor: Option<StorageDescriptor>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition_keys: Vec<Column>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_original_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_expanded_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: Params,
    /// Set when this table is a resource link to another catalog's table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_table: Option<TableIdentifier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federated_table: Option<FederatedTable>,
    /// Multi-dialect (Data Catalog) view definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_definition: Option<ViewDefinition>,
    #[serde(default, skip_serializing_if = "TableMeta::is_empty")]
    pub meta: TableMeta,
}

/// Read-only table fields set by Glue. Recorded, never written back, never compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TableMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_registered_with_lake_formation: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_multi_dialect_view: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_materialized_view: Option<bool>,
}

impl TableMeta {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TableIdentifier {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FederatedTable {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_type: Option<String>,
}

/// The writable part of a multi-dialect view definition (`ViewDefinitionInput`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ViewDefinition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_protected: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definer: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub representations: Vec<ViewRepresentation>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sub_objects: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ViewRepresentation {
    /// `ATHENA`, `REDSHIFT`, `SPARK`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialect: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialect_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_original_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_expanded_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_connection: Option<String>,
}

/// A table or partition storage descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StorageDescriptor {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<Column>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_locations: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_format: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub compressed: bool,
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub number_of_buckets: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serde_info: Option<SerDeInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bucket_columns: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sort_columns: Vec<Order>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: Params,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skewed_info: Option<SkewedInfo>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub stored_as_sub_directories: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_reference: Option<SchemaReference>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: Params,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SerDeInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serialization_library: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: Params,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Order {
    pub column: String,
    /// 1 ascending, 0 descending (Hive convention).
    pub sort_order: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SkewedInfo {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skewed_column_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skewed_column_values: Vec<String>,
    /// Skewed value → S3 location; rewritten like any other location.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub skewed_column_value_location_maps: Params,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SchemaReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_id: Option<SchemaId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version_number: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SchemaId {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_name: Option<String>,
}

/// A Glue partition (`PartitionInput` plus its table and read-only metadata).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Partition {
    pub database_name: String,
    pub table_name: String,
    pub values: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_access_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_descriptor: Option<StorageDescriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: Params,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_analyzed_time: Option<i64>,
    #[serde(default, skip_serializing_if = "PartitionMeta::is_empty")]
    pub meta: PartitionMeta,
}

/// Read-only partition fields set by Glue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PartitionMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<i64>,
}

impl PartitionMeta {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

impl Database {
    /// The part of the database that a write sets: read-only metadata cleared.
    pub fn writable(&self) -> Database {
        Database { meta: DatabaseMeta::default(), ..self.clone() }
    }
}

impl Table {
    /// The part of the table that a write sets: read-only metadata cleared.
    pub fn writable(&self) -> Table {
        Table { meta: TableMeta::default(), ..self.clone() }
    }

    /// A resource link points at a table in another catalog and has no storage of its own.
    pub fn is_resource_link(&self) -> bool {
        self.target_table.is_some()
    }
}

impl Partition {
    /// The part of the partition that a write sets: read-only metadata cleared.
    pub fn writable(&self) -> Partition {
        Partition { meta: PartitionMeta::default(), ..self.clone() }
    }

    /// `self.writable() == other.writable()` without copying either: apply compares every
    /// partition of a batch with the target's (a restore of 1M objects spent a fifth of its CPU
    /// cloning them). Destructured, so a field added to `Partition` must be placed here.
    pub fn writable_eq(&self, other: &Partition) -> bool {
        let Partition {
            database_name,
            table_name,
            values,
            last_access_time,
            storage_descriptor,
            parameters,
            last_analyzed_time,
            meta: _,
        } = self;
        *database_name == other.database_name
            && *table_name == other.table_name
            && *values == other.values
            && *last_access_time == other.last_access_time
            && *storage_descriptor == other.storage_descriptor
            && *parameters == other.parameters
            && *last_analyzed_time == other.last_analyzed_time
    }
}

// Encoded `{"kind": "partition", ...}`; `kind_tagged!` decodes it without buffering (a variant
// added here needs nothing else).
super::tagged::kind_tagged! {
/// Any replicated catalog object.
// Tables are larger than partitions; boxing would cost an allocation per record on the hot path
// for no gain, since records are built once and moved rarely.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogObject {
    Database(Database),
    Table(Table),
    Partition(Partition),
    /// A Lake Formation object (see `model::lakeformation`).
    LakeFormation {
        lf: super::lakeformation::LfObject,
    },
}
}

impl CatalogObject {
    /// The object with read-only metadata cleared: what comparisons and writes use.
    pub fn writable(&self) -> CatalogObject {
        match self {
            CatalogObject::Database(d) => CatalogObject::Database(d.writable()),
            CatalogObject::Table(t) => CatalogObject::Table(t.writable()),
            CatalogObject::Partition(p) => CatalogObject::Partition(p.writable()),
            CatalogObject::LakeFormation { lf } => CatalogObject::LakeFormation { lf: lf.writable() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writable_eq_is_equality_of_the_writable_parts() {
        let base = Partition {
            database_name: "db".into(),
            table_name: "t".into(),
            values: vec!["1".into()],
            parameters: [("k".to_string(), "v".to_string())].into_iter().collect(),
            ..Default::default()
        };
        let with_meta =
            Partition { meta: PartitionMeta { catalog_id: Some("1".into()), creation_time: Some(5) }, ..base.clone() };
        let changes: [fn(&mut Partition); 7] = [
            |p| p.database_name.push('x'),
            |p| p.table_name.push('x'),
            |p| p.values.push("2".into()),
            |p| p.last_access_time = Some(1),
            |p| p.storage_descriptor = Some(StorageDescriptor::default()),
            |p| {
                p.parameters.insert("k2".into(), "v".into());
            },
            |p| p.last_analyzed_time = Some(1),
        ];
        assert!(with_meta.writable_eq(&base) && base.writable_eq(&with_meta));
        assert_eq!(with_meta.writable() == base.writable(), with_meta.writable_eq(&base));
        for change in changes {
            let mut other = base.clone();
            change(&mut other);
            assert!(!other.writable_eq(&base), "{other:?}");
            assert_eq!(other.writable() == base.writable(), other.writable_eq(&base));
        }
    }
}
