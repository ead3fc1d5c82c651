//! The Lake Formation part of a scan: one full-state upsert record per grant, LF-tag, tagged
//! database or table, expression, filter, location and opt-in in scope, and the settings.
//!
//! It runs after the Glue part of the scan, so on a table's stream partition key the table goes
//! before its grants and tags. Objects on a database or table the source filter excludes are
//! skipped; catalog-level objects (LF-tags, settings, grants on the catalog or a location) are
//! always in scope. Deletes come from reconciliation (`run`) and from each target's listing
//! ([`target_deletes`], `sync`).

use tokio::sync::mpsc;

use crate::capture::CaptureError;
use crate::catalog::lakeformation::LfReader;
use crate::model::filter::Filter;
use crate::model::lakeformation::{LfKey, LfObject};
use crate::model::{now_millis, CatalogObject, Cause, ChangeRecord, ObjectKey, Origin};

/// Whether the source filter lets an object of key `lf` be replicated.
pub fn in_scope(filter: &Filter, lf: &LfKey) -> bool {
    match (lf.database(), lf.table()) {
        ("", _) => true,
        (d, None) => filter.allows_database(d),
        (d, Some(t)) => filter.allows_table(d, t),
    }
}

/// Sends the records of every Lake Formation object of the source in scope; `tagged` are the
/// databases and tables (in scope) whose LF-tags are read. Returns how many were sent.
pub async fn scan(
    lf: &LfReader,
    filter: &Filter,
    origin: &Origin,
    cause: &Cause,
    tagged: &[(String, Option<String>)],
    out: &mpsc::Sender<ChangeRecord>,
) -> Result<u64, CaptureError> {
    let mut sent = 0u64;
    let mut send = async |lf_object: LfObject, at: i64| {
        if !in_scope(filter, &lf_object.key()) {
            return Ok(());
        }
        let state = CatalogObject::LakeFormation { lf: lf_object };
        out.send(ChangeRecord::upsert(state, origin, cause.clone(), at)).await.map_err(|_| CaptureError::Closed)?;
        sent += 1;
        Ok::<(), CaptureError>(())
    };
    let at = now_millis();
    let objects = lf.catalog_objects().await?;
    let any_tag = objects.iter().any(|o| matches!(o, LfObject::LfTag(_)));
    for o in objects {
        send(o, at).await?;
    }
    // Without any LF-tag defined, nothing can be tagged: no per-resource reads.
    if any_tag {
        for (database, table) in tagged {
            let at = now_millis();
            if let Some(o) = lf.resource_tags(database, table.as_deref()).await? {
                send(o, at).await?;
            }
        }
    }
    let at = now_millis();
    for p in lf.permissions().await? {
        send(LfObject::Permission(p), at).await?;
    }
    Ok(sent)
}

/// Sends a delete record for every object of a target's Lake Formation in scope whose key the
/// source scan did not see (`seen`): a grant revoked, a tag deleted or unassigned at the source
/// while nothing recorded it. Keys are the target's as the source names them (same-account
/// targets; a mapped principal is not reversed, so its grants are left alone). Returns how many.
pub async fn target_deletes(
    target: &LfReader,
    filter: &Filter,
    origin: &Origin,
    cause: &Cause,
    tagged: &[(String, Option<String>)],
    seen: impl Fn(&ObjectKey) -> bool,
    out: &mpsc::Sender<ChangeRecord>,
) -> Result<u64, CaptureError> {
    let mut keys: Vec<LfKey> = target.permissions().await?.into_iter().map(|p| LfObject::Permission(p).key()).collect();
    let objects = target.catalog_objects().await?;
    let any_tag = objects.iter().any(|o| matches!(o, LfObject::LfTag(_)));
    // The settings are one per catalog: never deleted.
    keys.extend(objects.iter().map(LfObject::key).filter(|k| *k != LfKey::DataLakeSettings));
    if any_tag {
        for (database, table) in tagged {
            if let Some(o) = target.resource_tags(database, table.as_deref()).await? {
                keys.push(o.key());
            }
        }
    }
    let mut sent = 0;
    for lf in keys.into_iter().filter(|k| in_scope(filter, k)) {
        let key = ObjectKey::LakeFormation { catalog: origin.catalog_id.clone(), lf };
        if seen(&key) {
            continue;
        }
        out.send(ChangeRecord::delete(key, origin, cause.clone(), now_millis()))
            .await
            .map_err(|_| CaptureError::Closed)?;
        sent += 1;
    }
    Ok(sent)
}
