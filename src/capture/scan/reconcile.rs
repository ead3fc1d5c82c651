//! Reconciliation (anti-entropy): a full scan of the source compared with the last state lakelog
//! recorded for every object (the publisher's memory); the differences are published, deletes
//! included. This is what makes a lost event harmless. The initial snapshot of `lakelog run` is
//! the first pass (nothing recorded yet, so everything is published).
//!
//! A key recorded but not seen by the scan is deleted only if it was last recorded before the
//! scan started (a key recorded during the pass, by an event or by the pass, counts as seen): an
//! object created during the scan is not mistaken for a deleted one, and a delete that loses a
//! race with a newer event is dropped by the publisher's ordering rule.
//!
//! A pass never copies the publisher's memory nor keeps a set of the keys it scanned (at a million
//! partitions either would double the memory): it looks each scanned key up in place, marking it
//! seen, and asks for the unseen keys at the end.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::mpsc;

use super::snapshot::{scan, ScanStats};
use crate::capture::CaptureError;
use crate::catalog::reader::CatalogReader;
use crate::metrics as m;
use crate::model::filter::Filter;
use crate::model::{now_millis, Cause, CauseKind, ChangeRecord, ObjectKind, Origin};
use crate::progress::Progress;
use crate::stream::publisher::Publisher;
use crate::stream::StreamError;

/// Records published per publisher call during a pass.
const PUBLISH_BATCH: usize = 2000;
/// Scanned records looked up in the publisher's memory per hold of its lock.
const LOOKUP_BATCH: usize = 256;

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
        // The publisher's memory is read in place, never copied: each scanned key is looked up
        // (and marked seen) as it arrives, and the keys left unseen are listed at the end.
        let pass = self.publisher.begin_pass().await;
        let mut stats = PassStats::default();
        let (tx, mut rx) = mpsc::channel::<ChangeRecord>(4096);
        let progress = Progress::hidden();
        let scanning = async {
            let r = scan(&self.reader, &self.filter, &self.origin, kind, &tx, &progress).await;
            drop(tx);
            r
        };
        let diffing = async {
            let (mut batch, mut pending) = (Vec::with_capacity(LOOKUP_BATCH), Vec::new());
            let (mut changed, mut stale) = (0u64, 0u64);
            while rx.recv_many(&mut batch, LOOKUP_BATCH).await > 0 {
                // One short hold of the memory per batch, not per record.
                let recorded = pass.see(&batch);
                for (r, was) in batch.drain(..).zip(recorded) {
                    if was.is_some_and(|x| x.hash == Some(r.content_hash)) {
                        continue;
                    }
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
            Ok::<_, StreamError>((changed, stale))
        };
        let (scanned, diffed) = tokio::join!(scanning, diffing);
        stats.scanned = scanned?;
        let (changed, stale) = diffed?;
        stats.changed = changed;
        stats.stale = stale;

        // Recorded before the pass started, not seen by it: gone from the source (a dropped
        // table's or database's delete stands for its children; the publisher forgets them once
        // it is recorded).
        let cause = Cause { kind, event_id: None };
        let deletes: Vec<ChangeRecord> = pass
            .unseen(started)
            .into_iter()
            .map(|k| ChangeRecord::delete(k, &self.origin, cause.clone(), started))
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
