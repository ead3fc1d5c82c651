//! The full scan: one full-state upsert record per database, table and partition in scope, then
//! (with `source.lakeformation`) per Lake Formation object (`scan::lakeformation`).
//!
//! Records of one table are emitted in order (the table before its partitions) on one channel,
//! so the producer keeps that order per stream partition key. Tables are scanned concurrently.

use futures::{StreamExt, TryStreamExt};
use tokio::sync::mpsc;

use crate::capture::CaptureError;
use crate::catalog::reader::CatalogReader;
use crate::metrics as m;
use crate::model::filter::Filter;
use crate::model::{now_millis, CatalogObject, Cause, CauseKind, ChangeRecord, Origin};
use crate::progress::Progress;

/// How many objects a scan emitted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScanStats {
    pub databases: u64,
    pub tables: u64,
    pub partitions: u64,
    /// Lake Formation objects (`source.lakeformation`).
    #[serde(skip_serializing_if = "is_zero")]
    pub lake_formation: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Tables whose partitions are read at the same time.
const TABLE_CONCURRENCY: usize = 2;

/// Scans the catalog and sends a snapshot record for every object that `filter` allows.
pub async fn snapshot(
    reader: &CatalogReader,
    filter: &Filter,
    origin: &Origin,
    out: &mpsc::Sender<ChangeRecord>,
    progress: &Progress,
) -> Result<ScanStats, CaptureError> {
    scan(reader, filter, origin, CauseKind::Snapshot, out, progress).await
}

/// The scan behind [`snapshot`] and reconciliation. Every record's `captured_at` is the time the
/// read that returned it started (the publisher's ordering rule relies on it).
pub async fn scan(
    reader: &CatalogReader,
    filter: &Filter,
    origin: &Origin,
    kind: CauseKind,
    out: &mpsc::Sender<ChangeRecord>,
    progress: &Progress,
) -> Result<ScanStats, CaptureError> {
    let cause = Cause { kind, event_id: None };
    let record = |state, at| ChangeRecord::upsert(state, origin, cause.clone(), at);
    let mut stats = ScanStats::default();
    // The databases and tables whose Lake Formation tags are read after the Glue part.
    let mut tagged: Vec<(String, Option<String>)> = Vec::new();
    let listed_at = now_millis();
    for db in reader.databases().await? {
        if !filter.allows_database(&db.name) {
            continue;
        }
        let db_name = db.name.clone();
        out.send(record(CatalogObject::Database(db), listed_at)).await.map_err(|_| CaptureError::Closed)?;
        stats.databases += 1;
        progress.inc_scanned(1);
        let tables_at = now_millis();
        let tables: Vec<_> = reader
            .tables(&db_name)
            .await?
            .into_iter()
            .filter(|t| filter.allows_table(&t.database_name, &t.name))
            .collect();
        stats.tables += tables.len() as u64;
        if reader.lake_formation().is_some() {
            tagged.push((db_name.clone(), None));
            tagged.extend(tables.iter().map(|t| (t.database_name.clone(), Some(t.name.clone()))));
        }
        let partitions: u64 = futures::stream::iter(tables.into_iter().map(|table| {
            let record = &record;
            async move {
                let (db, name) = (table.database_name.clone(), table.name.clone());
                let reader = reader.clone();
                out.send(record(CatalogObject::Table(table), tables_at)).await.map_err(|_| CaptureError::Closed)?;
                let parts_at = now_millis();
                progress.inc_scanned(1);
                let (tx, mut rx) = mpsc::channel(1);
                let read = async move { reader.partitions(&db, &name, &tx).await };
                let forward = async {
                    let mut n = 0u64;
                    while let Some(page) = rx.recv().await {
                        n += page.len() as u64;
                        progress.inc_scanned(page.len() as u64);
                        for p in page {
                            out.send(record(CatalogObject::Partition(p), parts_at))
                                .await
                                .map_err(|_| CaptureError::Closed)?;
                        }
                    }
                    Ok::<u64, CaptureError>(n)
                };
                let (read, n) = tokio::join!(read, forward);
                read?;
                n
            }
        }))
        .buffer_unordered(TABLE_CONCURRENCY)
        .try_fold(0u64, |acc, n| async move { Ok(acc + n) })
        .await?;
        stats.partitions += partitions;
    }
    if let Some(lf) = reader.lake_formation() {
        stats.lake_formation = super::lakeformation::scan(lf, filter, origin, &cause, &tagged, out).await?;
        progress.inc_scanned(stats.lake_formation);
    }
    let cause_label = match kind {
        CauseKind::Reconcile => "reconcile",
        _ => "snapshot",
    };
    m::records_captured("database", cause_label, stats.databases);
    m::records_captured("table", cause_label, stats.tables);
    m::records_captured("partition", cause_label, stats.partitions);
    m::records_captured("lakeformation", cause_label, stats.lake_formation);
    Ok(stats)
}
