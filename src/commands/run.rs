//! `lakelog run`: the long-running pipeline.
//!
//! Start order is the gap-free start: event capture (SQS, and CloudTrail log files when
//! configured) starts first, then the initial snapshot (the
//! first reconciliation pass), so a change made while the snapshot runs arrives as an event and
//! is never missed; the publisher's ordering rule keeps the snapshot's older reads from
//! overwriting newer event states. Reconciliation then repeats every
//! `source.reconcile_interval_seconds`. Every target's consumer group applies the stream as it
//! grows.
//!
//! Shutdown (SIGTERM/SIGINT): capture stops taking work and finishes the batch in hand (its SQS
//! messages are deleted only once published; a reconciliation pass in progress stops publishing
//! and publishes no deletes), then the consumers drain the stream up to the last published record
//! and write their final checkpoints, then the process exits. A restart resumes from those
//! checkpoints.
//!
//! Each part is a component that owns its loop (`run(.., stop)`): [`Capture`] (the event
//! sources), [`Reconciliation`](crate::capture::scan::reconcile::Reconciliation),
//! [`TargetConsumer`] per target, [`DeadLetterDepth`]. `connect` builds them; [`run`] only starts
//! them in that order and joins them. It never builds a client.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::apply::group::{ConsumerGroup, GroupReport, StopWhen};
use crate::archive::consumer::GROUP;
use crate::archive::rebuild::rebuild;
use crate::capture::events::cloudtrail::{CloudTrailCapture, PollStats};
use crate::capture::events::lookup::LookupCapture;
use crate::capture::events::queue::{QueueCapture, QueueStats};
use crate::capture::scan::reconcile::{PassStats, ReconcileReport};
use crate::capture::Source;
use crate::commands::archive::Compaction;
use crate::connect::{Pipeline, PipelineError};
use crate::metrics as m;
use crate::metrics::serve::Health;
use crate::progress::Progress;
use crate::state::deadletter::{DeadLetterStore, CAPTURE_EVENTS};
use crate::stream::publisher::Publisher;
use crate::stream::seqno::SeqNo;
use crate::stream::StreamError;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error(transparent)]
    Queue(#[from] crate::capture::events::queue::QueueError),
    #[error(transparent)]
    CloudTrail(#[from] crate::capture::events::cloudtrail::CloudTrailError),
    #[error("{0}")]
    Lock(#[from] crate::state::lock::LockError),
    #[error("{0}; the run stopped")]
    Lost(String),
}

/// What a run did, reported at shutdown.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    pub published: u64,
    pub stale_dropped: u64,
    pub reconcile_passes: u64,
    pub last_pass: PassStats,
    pub events: EventCounts,
    pub cloudtrail: PollStats,
    /// Requests capture sent to the source catalog, per operation (reconciliation scans excluded).
    pub source_api_calls: BTreeMap<String, u64>,
    /// Requests sent to each target's catalog, per operation.
    pub target_api_calls: BTreeMap<String, BTreeMap<String, u64>>,
    pub targets: BTreeMap<String, GroupReport>,
    /// Change records the archive wrote to raw segments (`None`: archiving is off).
    pub archived: Option<u64>,
    pub compactions: u64,
}

/// The human report: one line for capture, one per target.
impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "stopped: {} records published ({} stale reads dropped), {} reconciliation passes, {} events ({} duplicate, {} malformed, {} parked after failing, {} retried)",
            self.published,
            self.stale_dropped,
            self.reconcile_passes,
            self.events.messages,
            self.events.duplicates,
            self.events.malformed,
            self.events.failed,
            self.events.retried
        )?;
        for (name, g) in &self.targets {
            let t = g.stats.total();
            writeln!(
                f,
                "target {name}: {} created, {} updated, {} deleted, {} unchanged, {} dead-lettered",
                t.created, t.updated, t.deleted, t.unchanged, t.dead_lettered
            )?;
        }
        if let Some(n) = self.archived {
            writeln!(f, "archive: {n} records written to raw segments, {} compactions", self.compactions)?;
        }
        Ok(())
    }
}

/// What event capture did (the queue's counts), as the run reports it.
pub type EventCounts = QueueStats;

/// The run's stop signal: the caller's shutdown, or a fatal error of a capture source.
#[derive(Clone)]
struct Stop {
    tx: Arc<watch::Sender<bool>>,
    rx: watch::Receiver<bool>,
}

impl Stop {
    /// Follows `shutdown` until the returned task is aborted.
    fn following(mut shutdown: watch::Receiver<bool>) -> (Stop, tokio::task::JoinHandle<()>) {
        let (tx, rx) = watch::channel(false);
        let stop = Stop { tx: Arc::new(tx), rx };
        let tx = stop.tx.clone();
        let forward = tokio::spawn(async move {
            let _ = shutdown.wait_for(|s| *s).await;
            let _ = tx.send(true);
        });
        (stop, forward)
    }

    fn receiver(&self) -> watch::Receiver<bool> {
        self.rx.clone()
    }

    /// A capture source's fatal error stops the whole run (after logging it).
    fn on_error<T, E: std::fmt::Display>(&self, result: Result<T, E>, what: &str) -> Result<T, E> {
        if let Err(e) = &result {
            error!(error = %e, "{what} failed; shutting down");
            let _ = self.tx.send(true);
        }
        result
    }
}

/// Runs an optional capture source (`None`: not configured, a default report); its fatal error
/// stops the run.
async fn run_source<S: Source>(source: Option<&S>, stop: &Stop) -> Result<S::Report, S::Error>
where
    S::Report: Default,
{
    match source {
        Some(s) => stop.on_error(s.run(stop.receiver()).await, s.name()),
        None => Ok(S::Report::default()),
    }
}

/// Event capture: the SQS queue, the CloudTrail trail's files and LookupEvents, each optional and
/// each its own loop; a fatal error of one stops the run.
struct Capture {
    queue: Option<QueueCapture>,
    trail: Option<CloudTrailCapture>,
    lookup: Option<LookupCapture>,
}

/// What capture did: the queue's counts, and the trail's and LookupEvents' together.
struct CaptureReport {
    events: Result<EventCounts, RunError>,
    cloudtrail: Result<PollStats, RunError>,
}

impl Capture {
    async fn run(self, stop: Stop) -> CaptureReport {
        let (queue, trail, lookup) = tokio::join!(
            Box::pin(run_source(self.queue.as_ref(), &stop)),
            Box::pin(run_source(self.trail.as_ref(), &stop)),
            Box::pin(run_source(self.lookup.as_ref(), &stop))
        );
        let events = queue;
        let cloudtrail = match (trail, lookup) {
            (Ok(a), Ok(b)) => Ok(PollStats {
                files: a.files,
                events: a.events + b.events,
                duplicates: a.duplicates + b.duplicates,
                bad_records: a.bad_records + b.bad_records,
                failed: a.failed + b.failed,
                records: a.records + b.records,
            }),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        CaptureReport { events: events.map_err(RunError::from), cloudtrail: cloudtrail.map_err(RunError::from) }
    }
}

/// One target's consumer group, applying the stream until it is drained to `end` (sent once
/// capture has stopped). A failing group (target unavailable, throttled beyond retries) restarts
/// from its checkpoint after a pause; it never stops the other targets or capture.
struct TargetConsumer {
    name: String,
    group: Arc<ConsumerGroup>,
}

impl TargetConsumer {
    async fn run(
        self,
        end: watch::Receiver<Option<BTreeMap<String, SeqNo>>>,
        stop: watch::Receiver<bool>,
    ) -> (String, GroupReport) {
        let component = format!("target {}", self.name);
        loop {
            match self.group.clone().run(StopWhen::Drained(end.clone())).await {
                Ok(report) => return (self.name, report),
                Err(e) => {
                    Health::global()
                        .not_ready(&component, format!("consumer failed, restarting from its checkpoint: {e}"));
                    warn!(target = %self.name, error = %e, "consumer group failed; restarting from its checkpoint");
                    if *stop.borrow() && end.borrow().is_some() {
                        return (self.name, GroupReport::default());
                    }
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        }
    }
}

/// Rebuilds what earlier runs published from the archive, so the first reconciliation pass
/// deletes what disappeared while nothing ran. Without it (archive off, or unreadable) the run
/// goes on with an empty memory, and such deletes wait for `sync --prune`.
async fn remember_from_archive(pipeline: &Pipeline, publisher: &Publisher) {
    let a = &pipeline.config.archive;
    if !a.enabled {
        return;
    }
    let work = a.work_dir.as_deref().map(std::path::Path::new);
    let budget = (a.merge_memory_mib as usize) << 20;
    match rebuild(&*pipeline.state, &pipeline.config.stream.name, publisher, budget, work).await {
        Ok(r) => {
            info!(objects = r.objects, seconds = r.seconds, "remembered what earlier runs published, from the archive")
        }
        Err(e) => {
            warn!(error = %e, "cannot rebuild what earlier runs published from the archive; objects deleted while lakelog was stopped stay in the targets until `sync --prune`")
        }
    }
}

/// Keeps `lakelog_dead_letter_depth` true to the store (another process may replay or add),
/// once a minute until stopped.
struct DeadLetterDepth {
    store: DeadLetterStore,
    names: Vec<String>,
}

impl DeadLetterDepth {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            for name in &self.names {
                match self.store.keys(name).await {
                    Ok(keys) => m::dead_letter_depth(name, keys.len()),
                    Err(e) => warn!(target = %name, error = %e, "cannot count dead letters"),
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

/// Runs until `shutdown` turns true, then drains and returns.
pub async fn run(
    pipeline: &Pipeline,
    target: Option<&str>,
    shutdown: watch::Receiver<bool>,
) -> Result<RunReport, RunError> {
    let targets = pipeline.select_targets(target)?;
    // Before anything starts: a second process with the same config is refused here.
    let mut groups: Vec<String> = targets.iter().map(|t| t.config.name.clone()).collect();
    if pipeline.config.archive.enabled {
        groups.push(GROUP.to_string());
    }
    let coordinator = pipeline.coordinate(&groups).await?;
    let publisher = pipeline.publisher().await?;
    remember_from_archive(pipeline, &publisher).await;
    let (stop, forward) = Stop::following(shutdown);
    // A group lost to another process for good stops the whole run (its capture too).
    let mut lost = coordinator.lost();
    let on_lost = {
        let tx = stop.tx.clone();
        tokio::spawn(async move {
            let reason = lost.wait_for(|l| l.is_some()).await.ok().and_then(|l| l.clone());
            if reason.is_some() {
                let _ = tx.send(true);
            }
            reason
        })
    };
    // Not ready until each part has started (and the initial snapshot is done): a copy that is
    // still being made is not current.
    let health = Health::global();
    for t in &targets {
        health.not_ready(&format!("target {}", t.config.name), "starting");
    }
    health.not_ready("reconcile", "the initial snapshot is running");
    health.ready("pipeline");
    let mut names: Vec<String> = targets.iter().map(|t| t.config.name.clone()).collect();
    m::init_series(&names);
    names.push(CAPTURE_EVENTS.to_string());
    let depth = tokio::spawn(DeadLetterDepth { store: pipeline.dead_letters.clone(), names }.run(stop.receiver()));

    // Built before anything starts, so a part that cannot be built stops nothing half-started.
    let capture = Capture {
        queue: pipeline.queue_capture(&publisher).await?,
        trail: pipeline.trail_capture(&publisher),
        lookup: pipeline.lookup_capture(&publisher),
    };
    let reconciliation = pipeline.reconciliation(&publisher);
    let (mut consumers, mut unbuilt) = (Vec::new(), Vec::new());
    for t in &targets {
        match pipeline.applier(t, false) {
            Ok(applier) => {
                let mut group = pipeline.consumer_group(
                    applier,
                    Progress::hidden(),
                    Some(format!("target {}", t.config.name)),
                    true,
                );
                coordinator.coordinate(&mut group);
                consumers.push(TargetConsumer { name: t.config.name.clone(), group: Arc::new(group) })
            }
            Err(e) => {
                error!(target = %t.config.name, error = %e, "cannot build the applier");
                unbuilt.push((t.config.name.clone(), GroupReport::default()));
            }
        }
    }

    if let Some(mut group) = pipeline.archive_group(Progress::hidden()) {
        coordinator.coordinate(&mut group);
        consumers.push(TargetConsumer { name: GROUP.to_string(), group: Arc::new(group) });
    }
    let compaction = Compaction::of(pipeline);

    // 1. Event capture first, then 2. the initial snapshot and reconciliation (gap-free start:
    // join polls them in this order); 3. the consumers, drained to the last published record
    // once capture has stopped.
    let (end_tx, end_rx) = watch::channel(None);
    let producing = async {
        let (captured, reconciled) =
            tokio::join!(Box::pin(capture.run(stop.clone())), Box::pin(reconciliation.run(stop.receiver())));
        // Draining from here: no new leases; the ones held are drained, then let go.
        coordinator.stopping();
        let Ok(reconciled) = reconciled;
        let _ = end_tx.send(Some(publisher.last_sequence().await));
        (captured, reconciled)
    };
    let consuming = futures::future::join_all(consumers.into_iter().map(|c| c.run(end_rx.clone(), stop.receiver())));
    let compacting = tokio::spawn(compaction.run(stop.receiver()));
    // Boxed: the combined state machine is large, and callers may run it on a small task stack.
    let ((captured, reconciled), mut groups) = tokio::join!(Box::pin(producing), Box::pin(consuming));
    groups.extend(unbuilt);
    forward.abort();
    depth.abort();
    on_lost.abort();
    if let Ok(Some(reason)) = on_lost.await {
        return Err(RunError::Lost(reason));
    }
    coordinator.release().await;
    let compactions = compacting.await.unwrap_or_default();
    report(pipeline, &targets, &publisher, captured, reconciled, groups, compactions).await
}

async fn report(
    pipeline: &Pipeline,
    targets: &[&crate::connect::TargetHandle],
    publisher: &Publisher,
    captured: CaptureReport,
    reconciled: ReconcileReport,
    mut groups: Vec<(String, GroupReport)>,
    compactions: u64,
) -> Result<RunReport, RunError> {
    let archived = groups.iter().position(|(n, _)| n == GROUP).map(|i| groups.remove(i).1);
    let (published, stale) = publisher.totals().await;
    Ok(RunReport {
        published,
        stale_dropped: stale,
        reconcile_passes: reconciled.passes,
        last_pass: reconciled.last,
        events: captured.events?,
        cloudtrail: captured.cloudtrail?,
        source_api_calls: pipeline.source_api_calls(),
        target_api_calls: targets.iter().map(|t| (t.config.name.clone(), t.counter.snapshot())).collect(),
        targets: groups.into_iter().collect(),
        archived: archived.map(|g| g.shards.iter().map(|s| s.records).sum()),
        compactions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_report_carries_parked_and_retried_events() {
        let stats = QueueStats { messages: 9, duplicates: 1, malformed: 1, failed: 2, retried: 3, records: 4 };
        let json = serde_json::to_value(stats).expect("json");
        assert_eq!((json["failed"].as_u64(), json["retried"].as_u64()), (Some(2), Some(3)), "{json}");
    }
}
