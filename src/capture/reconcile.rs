//! Reconciliation (anti-entropy): a full scan of the source compared with the last state lakelog
//! recorded for every object (the publisher's memory); the differences are published, deletes
//! included. This is what makes a lost event harmless. The initial snapshot of `lakelog run` is
//! the first pass (nothing recorded yet, so everything is published).
//!
//! A key recorded but not seen by the scan is deleted only if it was recorded before the scan
//! started: an object created during the scan is not mistaken for a deleted one, and a delete
//! that loses a race with a newer event is dropped by the publisher's ordering rule.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::mpsc;

use super::reader::CatalogReader;
use super::snapshot::{scan, ScanStats};
use super::CaptureError;
use crate::apply::filter::Filter;
use crate::metrics as m;
use crate::model::{now_millis, Cause, CauseKind, ChangeRecord, ObjectKey, ObjectKind, Origin};
use crate::progress::Progress;
use crate::stream::publisher::Publisher;
use crate::stream::StreamError;

/// Records published per publisher call during a pass.
const PUBLISH_BATCH: usize = 2000;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Stream(#[from] StreamError),
}

/// What one pass found.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PassStats {
    pub scanned: ScanStats,
    /// Objects whose source state differed from the last recorded one (or were unknown).
    pub changed: u64,
    /// Objects recorded but gone from the source.
    pub deleted: u64,
    /// Records the publisher dropped because a newer read was already published.
    pub stale: u64,
}

pub struct Reconciler {
    pub reader: CatalogReader,
    pub filter: Filter,
    pub origin: Origin,
    pub publisher: Arc<Publisher>,
}

impl Reconciler {
    /// One pass. `kind` is `Snapshot` for the initial pass, `Reconcile` afterwards.
    pub async fn pass(&self, kind: CauseKind) -> Result<PassStats, ReconcileError> {
        let started = now_millis();
        let recorded = self.publisher.recorded().await;
        let mut stats = PassStats::default();
        let (tx, mut rx) = mpsc::channel::<ChangeRecord>(4096);
        let progress = Progress::hidden();
        let scanning = async {
            let r = scan(&self.reader, &self.filter, &self.origin, kind, &tx, &progress).await;
            drop(tx);
            r
        };
        let diffing = async {
            let mut seen: HashSet<ObjectKey> = HashSet::new();
            let mut pending = Vec::new();
            let (mut changed, mut stale) = (0u64, 0u64);
            while let Some(r) = rx.recv().await {
                let same = recorded.get(&r.key).is_some_and(|x| x.hash == Some(r.content_hash));
                seen.insert(r.key.clone());
                if !same {
                    changed += 1;
                    // A database goes out at once: event records for its tables may already be in
                    // the stream, waiting (bounded) for it at apply time.
                    let urgent = r.key.kind() == ObjectKind::Database;
                    pending.push(r);
                    if urgent || pending.len() >= PUBLISH_BATCH {
                        stale += self.publisher.publish(std::mem::take(&mut pending)).await?.stale;
                    }
                }
            }
            if !pending.is_empty() {
                stale += self.publisher.publish(pending).await?.stale;
            }
            Ok::<_, StreamError>((seen, changed, stale))
        };
        let (scanned, diffed) = tokio::join!(scanning, diffing);
        stats.scanned = scanned?;
        let (seen, changed, stale) = diffed?;
        stats.changed = changed;
        stats.stale = stale;

        let gone: Vec<&ObjectKey> = recorded
            .iter()
            .filter(|(k, r)| r.hash.is_some() && r.captured_at < started && !seen.contains(*k))
            .map(|(k, _)| k)
            .collect();
        // A dropped table takes its partitions with it, a dropped database its tables: one
        // delete says it all (and the publisher forgets the rest once it is recorded).
        let gone_databases: HashSet<(&str, &str)> =
            gone.iter().filter(|k| k.kind() == ObjectKind::Database).map(|k| (k.catalog(), k.database())).collect();
        let gone_tables: HashSet<(&str, &str, &str)> = gone
            .iter()
            .filter(|k| k.kind() == ObjectKind::Table)
            .filter_map(|k| k.table().map(|t| (k.catalog(), k.database(), t)))
            .collect();
        let inside_gone = |k: &ObjectKey| match (k.kind(), k.table()) {
            (ObjectKind::Database, _) => false,
            (ObjectKind::Table, _) => gone_databases.contains(&(k.catalog(), k.database())),
            (ObjectKind::Partition, Some(t)) => {
                gone_databases.contains(&(k.catalog(), k.database()))
                    || gone_tables.contains(&(k.catalog(), k.database(), t))
            }
            (ObjectKind::Partition, None) => false,
        };
        let cause = Cause { kind, event_id: None };
        let deletes: Vec<ChangeRecord> = gone
            .into_iter()
            .filter(|k| !inside_gone(k))
            .map(|k| ChangeRecord::delete(k.clone(), &self.origin, cause.clone(), started))
            .collect();
        stats.deleted = deletes.len() as u64;
        for chunk in deletes.chunks(PUBLISH_BATCH) {
            stats.stale += self.publisher.publish(chunk.to_vec()).await?.stale;
        }
        if kind == CauseKind::Reconcile {
            m::reconcile_drift(stats.changed, stats.deleted);
        }
        Ok(stats)
    }
}
