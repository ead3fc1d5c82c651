//! `lakelog history <db>[.<table>[/<partition values>]]`: what happened to one object, and when,
//! from the archive: every recorded change with its time, what changed (old → new) and why.

use std::fmt;

use crate::archive::history::{history, History, What};
use crate::archive::ArchiveError;
use crate::commands::restore::rfc3339;
use crate::connect::Pipeline;
use crate::model::fields;
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

pub async fn object_history(
    pipeline: &Pipeline,
    object: &str,
    since: Option<i64>,
    until: Option<i64>,
) -> Result<History, HistoryError> {
    let key = parse_object(&pipeline.origin.catalog_id, object).map_err(HistoryError::Object)?;
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
        writeln!(f, "{}: {} recorded changes", self.key, self.changes.len())?;
        for c in &self.changes {
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
        if let Some(e) = self.earliest_restorable {
            writeln!(f, "restorable from {} (changes before it show as expired)", rfc3339(e))?;
        }
        Ok(())
    }
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
}
