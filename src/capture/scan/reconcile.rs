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
//! A pass stops promptly at shutdown ([`Reconciler::pass_until`]): the scan (read-only) is
//! dropped, a publish call in flight finishes (it is never cut between Kinesis' acknowledgement
//! and the publisher's memory), and nothing after it is published: above all not the deletes,
//! which are right only after a complete scan (an unfinished one has not seen most keys).
//!
//! A pass never copies the publisher's memory nor keeps a set of the keys it scanned (at a million
//! partitions either would double the memory): it looks each scanned key up in place, marking it
//! seen, and asks for the unseen keys at the end.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::snapshot::{scan, ScanStats};
use crate::capture::CaptureError;
use crate::catalog::reader::CatalogReader;
use crate::metrics as m;
use crate::metrics::serve::Health;
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
    #[error("the pass was stopped by shutdown before it finished; it published no deletes")]
    Interrupted,
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

/// Resolves once `stop` turns true; never, if its sender is gone without stopping.
async fn stopped(mut stop: watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

impl Reconciler {
    /// One pass that runs to its end. `kind` is `Snapshot` for the initial pass, `Reconcile`
    /// afterwards.
    pub async fn pass(&self, kind: CauseKind) -> Result<PassStats, ReconcileError> {
        let (_never, stop) = watch::channel(false);
        self.pass_until(kind, stop).await
    }

    /// One pass that stops when `stop` turns true ([`ReconcileError::Interrupted`]; see the
    /// module docs for what it leaves published).
    pub async fn pass_until(&self, kind: CauseKind, stop: watch::Receiver<bool>) -> Result<PassStats, ReconcileError> {
        let started = now_millis();
        // The publisher's memory is read in place, never copied: each scanned key is looked up
        // (and marked seen) as it arrives, and the keys left unseen are listed at the end.
        let pass = self.publisher.begin_pass().await;
        let mut stats = PassStats::default();
        let (tx, mut rx) = mpsc::channel::<ChangeRecord>(4096);
        let progress = Progress::hidden();
        let scanning = async {
            // Reads only: dropping it anywhere is safe.
            let r = tokio::select! {
                r = scan(&self.reader, &self.filter, &self.origin, kind, &tx, &progress) => r,
                () = stopped(stop.clone()) => Ok(ScanStats::default()),
            };
            drop(tx);
            r
        };
        let diffing = async {
            let (mut batch, mut pending) = (Vec::with_capacity(LOOKUP_BATCH), Vec::new());
            let (mut changed, mut stale) = (0u64, 0u64);
            loop {
                // Checked between publish calls, never during one.
                let received = tokio::select! {
                    biased;
                    () = stopped(stop.clone()) => return Err(ReconcileError::Interrupted),
                    n = rx.recv_many(&mut batch, LOOKUP_BATCH) => n,
                };
                if received == 0 {
                    break;
                }
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
            if *stop.borrow() {
                return Err(ReconcileError::Interrupted);
            }
            if !pending.is_empty() {
                stale += self.publisher.publish(pending).await?.stale;
            }
            Ok::<_, ReconcileError>((changed, stale))
        };
        let (scanned, diffed) = tokio::join!(scanning, diffing);
        let (changed, stale) = diffed?;
        stats.scanned = scanned?;
        stats.changed = changed;
        stats.stale = stale;
        if *stop.borrow() {
            return Err(ReconcileError::Interrupted);
        }

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

/// What the reconciliation loop did.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReconcileReport {
    /// Passes that ran to their end (the initial snapshot included).
    pub passes: u64,
    pub last: PassStats,
}

/// The initial snapshot, then a pass every `interval`, until shutdown (which stops a pass in
/// progress). Reports `/readyz` component `reconcile`: not ready until the snapshot is done.
pub struct Reconciliation {
    pub reconciler: Reconciler,
    pub interval: Duration,
}

#[async_trait::async_trait]
impl crate::capture::Source for Reconciliation {
    type Report = ReconcileReport;
    type Error = std::convert::Infallible;

    fn name(&self) -> &'static str {
        "reconcile"
    }

    /// Never fails: a failed pass is logged, reported on `/readyz` and retried at the interval.
    async fn run(&self, mut stop: watch::Receiver<bool>) -> Result<ReconcileReport, Self::Error> {
        let health = Health::global();
        let (mut report, mut kind) = (ReconcileReport::default(), CauseKind::Snapshot);
        while !*stop.borrow() {
            match self.reconciler.pass_until(kind, stop.clone()).await {
                Ok(stats) => {
                    report.passes += 1;
                    m::reconcile_run(true);
                    health.ready("reconcile");
                    info!(
                        pass = report.passes,
                        changed = stats.changed,
                        deleted = stats.deleted,
                        stale = stats.stale,
                        "reconciliation pass done"
                    );
                    report.last = stats;
                    kind = CauseKind::Reconcile;
                }
                Err(ReconcileError::Interrupted) => {
                    info!("reconciliation pass stopped by shutdown; the next run starts a new one");
                    break;
                }
                Err(e) => {
                    m::reconcile_run(false);
                    health.not_ready("reconcile", format!("the last pass failed: {e}"));
                    warn!(error = %e, "reconciliation pass failed; retrying at the next interval")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = stop.changed() => {}
            }
        }
        Ok(report)
    }
}
