//! `lakelog history <db>[.<table>[/<partition values>]]`: what happened to one object, and when,
//! from the archive: every recorded change with its time, what changed (old → new) and why.
//!
//! Lake Formation objects are shown with what they are on (`archive::history::related`): the
//! history of a database or table lists, after its own changes, those of the grants and LF-tags
//! on it. Catalog-level objects belong to no database: `--lf-tag KEY` shows an LF-tag with the
//! grants on it, `--catalog` the data lake settings with every catalog-level object (LF-tags,
//! expressions, registered locations, grants on the catalog, a location or a tag).

use std::fmt;

use crate::archive::history::{history, Change, History, What};
use crate::archive::ArchiveError;
use crate::commands::restore::rfc3339;
use crate::connect::Pipeline;
use crate::model::fields;
use crate::model::lakeformation::LfKey;
use crate::model::ObjectKey;

/// The object named `sales`, `sales.orders` or `sales.orders/2024-01-01/eu` in the source catalog.
pub fn parse_object(catalog: &str, text: &str) -> Result<ObjectKey, String> {
    let (database, rest) = match text.split_once('.') {
        Some((d, rest)) => (d, Some(rest)),
        None => (text, None),
    };
    if database.is_empty() {
        return Err(format!("`{text}`: name an object as db, db.table or db.table/value1/value2"));
    }
    let catalog = catalog.to_string();
    let database = database.to_string();
    let Some(rest) = rest else { return Ok(ObjectKey::Database { catalog, database }) };
    let mut parts = rest.split('/');
    let table = parts.next().filter(|t| !t.is_empty()).ok_or_else(|| format!("`{text}`: the table name is empty"))?;
    let values: Vec<String> = parts.map(str::to_string).collect();
    if values.is_empty() {
        return Ok(ObjectKey::Table { catalog, database, table: table.to_string() });
    }
    Ok(ObjectKey::Partition { catalog, database, table: table.to_string(), values })
}

/// What `lakelog history` is asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// `db`, `db.table` or `db.table/values` (see [`parse_object`]).
    Object(String),
    /// An LF-tag by its key (`--lf-tag`).
    LfTag(String),
    /// The catalog's own Lake Formation objects (`--catalog`).
    Catalog,
}

impl Subject {
    /// The key whose history is shown, in the source catalog `catalog`.
    pub fn key(&self, catalog: &str) -> Result<ObjectKey, String> {
        let lf = |lf| Ok(ObjectKey::LakeFormation { catalog: catalog.to_string(), lf });
        match self {
            Subject::Object(text) => parse_object(catalog, text),
            Subject::LfTag(key) if key.is_empty() => Err("--lf-tag: name the LF-tag's key".into()),
            Subject::LfTag(key) => lf(LfKey::LfTag { key: key.clone() }),
            Subject::Catalog => lf(LfKey::DataLakeSettings),
        }
    }
}

pub async fn object_history(
    pipeline: &Pipeline,
    subject: &Subject,
    since: Option<i64>,
    until: Option<i64>,
) -> Result<History, HistoryError> {
    let key = subject.key(&pipeline.origin.catalog_id).map_err(HistoryError::Object)?;
    Ok(history(&*pipeline.state, &pipeline.config.stream.name, &key, since, until).await?)
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{0}")]
    Object(String),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
}

impl fmt::Display for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_changes(f, &self.key.to_string(), &self.changes)?;
        if !self.lake_formation.is_empty() {
            writeln!(f, "Lake Formation objects on it:")?;
        }
        for r in &self.lake_formation {
            write_changes(f, &r.object, &r.changes)?;
        }
        if let Some(e) = self.earliest_restorable {
            writeln!(f, "restorable from {} (changes before it show as expired)", rfc3339(e))?;
        }
        Ok(())
    }
}

/// One object's heading and changes.
fn write_changes(f: &mut fmt::Formatter<'_>, object: &str, changes: &[Change]) -> fmt::Result {
    writeln!(f, "{object}: {} recorded changes", changes.len())?;
    for c in changes {
        let why = match &c.cause.event_id {
            Some(id) => format!("{:?} {id}", c.cause.kind).to_lowercase(),
            None => format!("{:?}", c.cause.kind).to_lowercase(),
        };
        let what = match c.what {
            What::Created => "created",
            What::Updated => "updated",
            What::Unchanged => "unchanged",
            What::Deleted => "deleted",
            What::Expired => "expired",
        };
        writeln!(f, "{}  {what:<9}  {why}", rfc3339(c.captured_at))?;
        if c.what == What::Expired {
            writeln!(
                f,
                "    its state at this time is kept; what changed before is compacted away (archive.retention)"
            )?;
        }
        for fc in &c.fields {
            writeln!(f, "    {}: {} → {}", fc.path, fields::short(&fc.old, 60), fields::short(&fc.new, 60))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_named_db_db_table_or_db_table_values() {
        assert_eq!(
            parse_object("1", "sales"),
            Ok(ObjectKey::Database { catalog: "1".into(), database: "sales".into() })
        );
        assert_eq!(
            parse_object("1", "sales.orders"),
            Ok(ObjectKey::Table { catalog: "1".into(), database: "sales".into(), table: "orders".into() })
        );
        assert_eq!(
            parse_object("1", "sales.orders/2024-01-01/eu"),
            Ok(ObjectKey::Partition {
                catalog: "1".into(),
                database: "sales".into(),
                table: "orders".into(),
                values: vec!["2024-01-01".into(), "eu".into()]
            })
        );
        assert!(parse_object("1", ".x").is_err() && parse_object("1", "db./v").is_err());
    }

    #[test]
    fn catalog_level_objects_are_asked_for_by_flag() {
        let lf = |lf| ObjectKey::LakeFormation { catalog: "1".into(), lf };
        assert_eq!(Subject::LfTag("team".into()).key("1"), Ok(lf(LfKey::LfTag { key: "team".into() })));
        assert_eq!(Subject::Catalog.key("1"), Ok(lf(LfKey::DataLakeSettings)));
        assert!(Subject::LfTag(String::new()).key("1").is_err());
        assert_eq!(Subject::Object("sales".into()).key("1"), parse_object("1", "sales"));
    }
}
