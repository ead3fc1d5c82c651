//! lakelog's own model of Lake Formation objects: permissions, LF-tags and their assignments,
//! LF-tag expressions, data cells filters, data lake settings, registered data locations and
//! hybrid access opt-ins.
//!
//! Each is a keyed record ([`LfKey`] inside [`ObjectKey::LakeFormation`](super::ObjectKey)) whose
//! state is the whole object ([`LfObject`] inside
//! [`CatalogObject::LakeFormation`](super::CatalogObject)), so they travel the stream, the
//! archive and the dead-letter store exactly like Glue objects.
//!
//! - A **permission** is keyed by principal + resource; its state is the permissions, the
//!   grantable permissions (sorted sets) and the condition. A revoke of everything is a delete of
//!   the key; a partial revoke is an upsert with fewer permissions.
//! - Resources are normalized ([`LfResource`]): catalog ids are not kept inside them (every
//!   resource is read as the source catalog's and written as the target's), lists are sorted and
//!   de-duplicated, and `ALL_TABLES` is [`LfResource::TableWildcard`].
//! - An **LF-tag assignment** is one record per database or table ([`LfKey::ResourceTags`]):
//!   the tags on it and, for a table, the tags on each of its columns.
//!
//! Which database and table a key belongs to (see `ObjectKey::database` / `table`): a
//! permission, assignment, filter or opt-in on a table belongs to that table, on a database or
//! `ALL_TABLES` to that database; everything else (LF-tags, expressions, settings, locations,
//! grants on the catalog, a location, an LF-tag or a tag policy) belongs to the catalog alone
//! (database `""`, which no Glue database can be named). That is what lets the archive's merge
//! drop a dropped table's grants with it, as Lake Formation itself does.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::catalog::{Params, PrincipalPermissions};

fn is_false(b: &bool) -> bool {
    !*b
}

/// Sorted, de-duplicated: the one form of a set of names, so equal sets compare and hash equal.
pub fn sorted_set(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items.dedup();
    items
}

/// Which columns of a table a resource or filter covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ColumnSelection {
    /// These columns (sorted).
    Names { names: Vec<String> },
    /// Every column but these (sorted; empty: every column).
    Wildcard {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        excluded: Vec<String>,
    },
}

impl ColumnSelection {
    /// The normal form: names sorted and de-duplicated.
    pub fn normalized(self) -> ColumnSelection {
        match self {
            ColumnSelection::Names { names } => ColumnSelection::Names { names: sorted_set(names) },
            ColumnSelection::Wildcard { excluded } => ColumnSelection::Wildcard { excluded: sorted_set(excluded) },
        }
    }
}

/// An LF-tag key with values: a tag's definition, a tag on a resource (one value), or one
/// condition of a tag expression.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub struct LfTagPair {
    pub key: String,
    /// Sorted.
    pub values: Vec<String>,
}

impl LfTagPair {
    pub fn new(key: impl Into<String>, values: Vec<String>) -> LfTagPair {
        LfTagPair { key: key.into(), values: sorted_set(values) }
    }
}

/// Sorted by key, each pair's values sorted: the one form of a tag list or expression.
pub fn sorted_pairs(pairs: Vec<LfTagPair>) -> Vec<LfTagPair> {
    let mut pairs: Vec<LfTagPair> = pairs.into_iter().map(|p| LfTagPair::new(p.key, p.values)).collect();
    pairs.sort();
    pairs.dedup();
    pairs
}

/// A Lake Formation resource (`Resource` of GrantPermissions), normalized (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LfResource {
    /// The Data Catalog itself (CREATE_DATABASE, data lake admin rights...).
    Catalog,
    Database {
        database: String,
    },
    Table {
        database: String,
        table: String,
    },
    /// Every table of a database (`TableWildcard`; the console's `ALL_TABLES`).
    TableWildcard {
        database: String,
    },
    TableWithColumns {
        database: String,
        table: String,
        columns: ColumnSelection,
    },
    /// A registered S3 location (its ARN).
    DataLocation {
        arn: String,
    },
    DataCellsFilter {
        database: String,
        table: String,
        name: String,
    },
    /// An LF-tag with some of its values (grants on the tag itself: DESCRIBE, ASSOCIATE).
    LfTag {
        key: String,
        values: Vec<String>,
    },
    /// Every database or table (`resource_type` `DATABASE` / `TABLE`) matching an expression.
    LfTagPolicy {
        resource_type: String,
        expression: Vec<LfTagPair>,
    },
    /// A saved LF-tag expression, by name (`resource_type` as for a policy).
    LfTagExpression {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resource_type: Option<String>,
        name: String,
    },
}

impl LfResource {
    /// The normal form: every list sorted and de-duplicated.
    pub fn normalized(self) -> LfResource {
        match self {
            LfResource::TableWithColumns { database, table, columns } => {
                LfResource::TableWithColumns { database, table, columns: columns.normalized() }
            }
            LfResource::LfTag { key, values } => LfResource::LfTag { key, values: sorted_set(values) },
            LfResource::LfTagPolicy { resource_type, expression } => {
                LfResource::LfTagPolicy { resource_type, expression: sorted_pairs(expression) }
            }
            other => other,
        }
    }

    /// The database the resource is in (`None`: a catalog-level resource).
    pub fn database(&self) -> Option<&str> {
        match self {
            LfResource::Database { database }
            | LfResource::Table { database, .. }
            | LfResource::TableWildcard { database }
            | LfResource::TableWithColumns { database, .. }
            | LfResource::DataCellsFilter { database, .. } => Some(database),
            _ => None,
        }
    }

    /// The table the resource is (or is in): `None` for a database, `ALL_TABLES` and
    /// catalog-level resources.
    pub fn table(&self) -> Option<&str> {
        match self {
            LfResource::Table { table, .. }
            | LfResource::TableWithColumns { table, .. }
            | LfResource::DataCellsFilter { table, .. } => Some(table),
            _ => None,
        }
    }
}

impl fmt::Display for LfResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LfResource::Catalog => write!(f, "catalog"),
            LfResource::Database { database } => write!(f, "database {database}"),
            LfResource::Table { database, table } => write!(f, "table {database}.{table}"),
            LfResource::TableWildcard { database } => write!(f, "all tables of {database}"),
            LfResource::TableWithColumns { database, table, columns } => match columns {
                ColumnSelection::Names { names } => write!(f, "columns {database}.{table}({})", names.join(",")),
                ColumnSelection::Wildcard { excluded } => {
                    write!(f, "columns {database}.{table}(* except {})", excluded.join(","))
                }
            },
            LfResource::DataLocation { arn } => write!(f, "location {arn}"),
            LfResource::DataCellsFilter { database, table, name } => write!(f, "filter {database}.{table}.{name}"),
            LfResource::LfTag { key, values } => write!(f, "LF-tag {key}={}", values.join("|")),
            LfResource::LfTagPolicy { resource_type, expression } => {
                let e: Vec<String> = expression.iter().map(|p| format!("{}={}", p.key, p.values.join("|"))).collect();
                write!(f, "LF-tag policy {resource_type} {}", e.join(" AND "))
            }
            LfResource::LfTagExpression { name, .. } => write!(f, "LF-tag expression {name}"),
        }
    }
}

/// The identity of one Lake Formation object in the source catalog.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LfKey {
    /// The grants of one principal on one resource.
    Permission {
        principal: String,
        resource: LfResource,
    },
    /// An LF-tag definition.
    LfTag {
        key: String,
    },
    /// The LF-tags on a database (`table` none) or a table and its columns.
    ResourceTags {
        database: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        table: Option<String>,
    },
    LfTagExpression {
        name: String,
    },
    DataCellsFilter {
        database: String,
        table: String,
        name: String,
    },
    /// The catalog's data lake settings (one per catalog).
    DataLakeSettings,
    /// A registered S3 location.
    DataLocation {
        arn: String,
    },
    /// A hybrid access opt-in of a principal on a resource.
    OptIn {
        principal: String,
        resource: LfResource,
    },
}

impl LfKey {
    pub fn kind(&self) -> super::ObjectKind {
        use super::ObjectKind as K;
        match self {
            LfKey::Permission { .. } => K::Permission,
            LfKey::LfTag { .. } => K::LfTag,
            LfKey::ResourceTags { .. } => K::LfTagAssignment,
            LfKey::LfTagExpression { .. } => K::LfTagExpression,
            LfKey::DataCellsFilter { .. } => K::DataCellsFilter,
            LfKey::DataLakeSettings => K::DataLakeSettings,
            LfKey::DataLocation { .. } => K::DataLocation,
            LfKey::OptIn { .. } => K::LfOptIn,
        }
    }

    /// The database the object belongs to; `""` for a catalog-level object (see the module doc).
    pub fn database(&self) -> &str {
        match self {
            LfKey::Permission { resource, .. } | LfKey::OptIn { resource, .. } => resource.database().unwrap_or(""),
            LfKey::ResourceTags { database, .. } | LfKey::DataCellsFilter { database, .. } => database,
            _ => "",
        }
    }

    /// The table the object belongs to (`None`: a database- or catalog-level object).
    pub fn table(&self) -> Option<&str> {
        match self {
            LfKey::Permission { resource, .. } | LfKey::OptIn { resource, .. } => resource.table(),
            LfKey::ResourceTags { table, .. } => table.as_deref(),
            LfKey::DataCellsFilter { table, .. } => Some(table),
            _ => None,
        }
    }
}

impl fmt::Display for LfKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LfKey::Permission { principal, resource } => write!(f, "permission of {principal} on {resource}"),
            LfKey::LfTag { key } => write!(f, "LF-tag {key}"),
            LfKey::ResourceTags { database, table: None } => write!(f, "LF-tags on database {database}"),
            LfKey::ResourceTags { database, table: Some(t) } => write!(f, "LF-tags on table {database}.{t}"),
            LfKey::LfTagExpression { name } => write!(f, "LF-tag expression {name}"),
            LfKey::DataCellsFilter { database, table, name } => {
                write!(f, "data cells filter {database}.{table}.{name}")
            }
            LfKey::DataLakeSettings => write!(f, "data lake settings"),
            LfKey::DataLocation { arn } => write!(f, "data location {arn}"),
            LfKey::OptIn { principal, resource } => write!(f, "opt-in of {principal} on {resource}"),
        }
    }
}

/// The grants of one principal on one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission {
    pub principal: String,
    pub resource: LfResource,
    /// Sorted, de-duplicated (`SELECT`, `ALTER`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
    /// The permissions the principal may grant on (sorted, de-duplicated).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grantable: Vec<String>,
    /// The grant's condition expression, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

impl Permission {
    /// The normal form of a grant read from a service.
    pub fn new(
        principal: String,
        resource: LfResource,
        permissions: Vec<String>,
        grantable: Vec<String>,
        condition: Option<String>,
    ) -> Permission {
        Permission {
            principal,
            resource: resource.normalized(),
            permissions: sorted_set(permissions),
            grantable: sorted_set(grantable),
            condition,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.permissions.is_empty() && self.grantable.is_empty()
    }
}

/// An LF-tag: its key and allowed values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LfTag {
    pub key: String,
    /// Sorted.
    pub values: Vec<String>,
}

/// The LF-tags on one database, or on one table and its columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ResourceTags {
    pub database: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// The tags on the database or table itself (each one value), sorted by key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<LfTagPair>,
    /// Column name → the tags assigned on that column (not the ones it inherits).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, Vec<LfTagPair>>,
}

impl ResourceTags {
    /// No tag anywhere: the same as no record.
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.columns.values().all(Vec::is_empty)
    }
}

/// A saved LF-tag expression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LfTagExpression {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Sorted by key.
    pub expression: Vec<LfTagPair>,
}

/// A data cells filter: row filter, columns, and the version Lake Formation gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataCellsFilter {
    pub database: String,
    pub table: String,
    pub name: String,
    /// The row filter expression; `None`: every row (`AllRowsWildcard`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_filter: Option<String>,
    pub columns: ColumnSelection,
    /// Set by Lake Formation on each update; recorded, never compared or written as such (an
    /// update carries the target's own version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// The catalog's data lake settings (GetDataLakeSettings), the fields PutDataLakeSettings takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DataLakeSettings {
    /// Sorted principals.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admins: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read_only_admins: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub create_database_default_permissions: Vec<PrincipalPermissions>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub create_table_default_permissions: Vec<PrincipalPermissions>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_resource_owners: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_external_data_filtering: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_data_filtering_allow_list: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorized_session_tag_value_list: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_full_table_external_data_access: bool,
    /// `CROSS_ACCOUNT_VERSION`, `SET_CONTEXT`, ... (see the README on `CROSS_ACCOUNT_VERSION`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: Params,
}

/// A registered S3 location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DataLocation {
    pub arn: String,
    /// The role Lake Formation reads the location with; `None`: the service-linked role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub with_federation: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub hybrid_access_enabled: bool,
}

/// A hybrid access mode opt-in: `principal` uses Lake Formation permissions on `resource`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptIn {
    pub principal: String,
    pub resource: LfResource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

/// Any replicated Lake Formation object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LfObject {
    Permission(Permission),
    LfTag(LfTag),
    ResourceTags(ResourceTags),
    LfTagExpression(LfTagExpression),
    DataCellsFilter(DataCellsFilter),
    DataLakeSettings(DataLakeSettings),
    DataLocation(DataLocation),
    OptIn(OptIn),
}

impl LfObject {
    /// The key of this object.
    pub fn key(&self) -> LfKey {
        match self {
            LfObject::Permission(p) => {
                LfKey::Permission { principal: p.principal.clone(), resource: p.resource.clone() }
            }
            LfObject::LfTag(t) => LfKey::LfTag { key: t.key.clone() },
            LfObject::ResourceTags(r) => LfKey::ResourceTags { database: r.database.clone(), table: r.table.clone() },
            LfObject::LfTagExpression(e) => LfKey::LfTagExpression { name: e.name.clone() },
            LfObject::DataCellsFilter(d) => {
                LfKey::DataCellsFilter { database: d.database.clone(), table: d.table.clone(), name: d.name.clone() }
            }
            LfObject::DataLakeSettings(_) => LfKey::DataLakeSettings,
            LfObject::DataLocation(l) => LfKey::DataLocation { arn: l.arn.clone() },
            LfObject::OptIn(o) => LfKey::OptIn { principal: o.principal.clone(), resource: o.resource.clone() },
        }
    }

    /// The object without what the service sets by itself (a filter's version).
    pub fn writable(&self) -> LfObject {
        match self {
            LfObject::DataCellsFilter(d) => LfObject::DataCellsFilter(DataCellsFilter { version: None, ..d.clone() }),
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_forms_make_equal_grants_equal() {
        let a = Permission::new(
            "p".into(),
            LfResource::TableWithColumns {
                database: "d".into(),
                table: "t".into(),
                columns: ColumnSelection::Names { names: vec!["b".into(), "a".into(), "b".into()] },
            },
            vec!["SELECT".into(), "ALTER".into()],
            vec![],
            None,
        );
        let b = Permission::new(
            "p".into(),
            LfResource::TableWithColumns {
                database: "d".into(),
                table: "t".into(),
                columns: ColumnSelection::Names { names: vec!["a".into(), "b".into()] },
            },
            vec!["ALTER".into(), "SELECT".into(), "SELECT".into()],
            vec![],
            None,
        );
        assert_eq!(a, b);
        assert_eq!(LfObject::Permission(a).key(), LfObject::Permission(b).key());
    }

    #[test]
    fn grants_on_a_table_belong_to_it_and_catalog_objects_to_no_database() {
        let on = |resource| LfKey::Permission { principal: "p".into(), resource };
        let t = on(LfResource::Table { database: "d".into(), table: "t".into() });
        assert_eq!((t.database(), t.table()), ("d", Some("t")));
        let w = on(LfResource::TableWildcard { database: "d".into() });
        assert_eq!((w.database(), w.table()), ("d", None));
        let c = on(LfResource::Catalog);
        assert_eq!((c.database(), c.table()), ("", None));
        assert_eq!((LfKey::LfTag { key: "k".into() }.database(), LfKey::DataLakeSettings.table()), ("", None));
    }
}
