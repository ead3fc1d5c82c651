//! Writes a generated catalog into a (source) Glue catalog, with batched partition writes, the way
//! a crawler's first run would.

use futures::{StreamExt, TryStreamExt};

use super::catalog::GeneratedCatalog;
use crate::backend::catalog::{Catalog, PARTITION_WRITE_CHUNK};
use crate::backend::{AwsError, ErrorClass};

/// How many objects were written.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Seeded {
    pub databases: u64,
    pub tables: u64,
    pub partitions: u64,
}

/// Creates every database, table and partition of `catalog` in `target` (existing ones are left
/// as they are). Retries are `target`'s (e.g. `GlueCatalog::retrying`).
pub async fn write_catalog(target: &dyn Catalog, catalog: &GeneratedCatalog) -> Result<Seeded, AwsError> {
    let ignore_exists = |r: Result<(), AwsError>| match r {
        Err(e) if e.class == ErrorClass::AlreadyExists => Ok(()),
        other => other,
    };
    for db in &catalog.databases {
        ignore_exists(target.create_database(db).await)?;
    }
    futures::stream::iter(catalog.tables.iter().map(|t| async move { ignore_exists(target.create_table(t).await) }))
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await?;
    let mut by_table: std::collections::BTreeMap<(&str, &str), Vec<_>> = Default::default();
    for p in &catalog.partitions {
        by_table.entry((p.database_name.as_str(), p.table_name.as_str())).or_default().push(p.clone());
    }
    let chunks: Vec<_> = by_table
        .iter()
        .flat_map(|((db, t), parts)| parts.chunks(PARTITION_WRITE_CHUNK).map(move |c| (*db, *t, c)))
        .collect();
    futures::stream::iter(chunks.into_iter().map(|(db, t, c)| async move {
        let errors = target.create_partitions(db, t, c).await?;
        match errors.into_iter().find(|e| e.error.class != ErrorClass::AlreadyExists) {
            Some(e) => Err(e.error),
            None => Ok(()),
        }
    }))
    .buffer_unordered(4)
    .try_collect::<Vec<_>>()
    .await?;
    Ok(Seeded {
        databases: catalog.databases.len() as u64,
        tables: catalog.tables.len() as u64,
        partitions: catalog.partitions.len() as u64,
    })
}
