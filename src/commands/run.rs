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
//! messages are deleted only once published), then the consumers drain the stream up to the last
//! published record and write their final checkpoints, then the process exits. A restart resumes
//! from those checkpoints.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::apply::group::{ConsumerGroup, GroupReport, StopWhen};
use crate::aws::client::Endpoint;
use crate::aws::cloudtrail::CloudTrailHistory;
use crate::aws::sqs::SqsQueue;
use crate::backend::queue::EventQueue;
use crate::capture::events::cloudtrail::{CloudTrailCapture, PollStats};
use crate::capture::events::lookup::{LookupCapture, LookupReader};
use crate::capture::events::queue::{QueueCapture, QueueStats};
use crate::capture::resolve::Resolver;
use crate::capture::scan::reconcile::{PassStats, Reconciler};
use crate::connect::{Pipeline, PipelineError};
use crate::metrics as m;
use crate::metrics::serve::Health;
use crate::model::CauseKind;
use crate::progress::Progress;
use crate::state::deadletter::CAPTURE_EVENTS;
use crate::stream::admin::ensure_stream;
use crate::stream::producer::Producer;
use crate::stream::publisher::Publisher;
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
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct EventCounts {
    pub messages: u64,
    pub duplicates: u64,
    pub malformed: u64,
    /// Parked after a failure of their own (their messages deleted).
    pub failed: u64,
    /// Left in the queue after a transient failure (SQS redelivers them).
    pub retried: u64,
    pub records: u64,
}

impl From<QueueStats> for EventCounts {
    fn from(s: QueueStats) -> Self {
        EventCounts {
            messages: s.messages,
            duplicates: s.duplicates,
            malformed: s.malformed,
            failed: s.failed,
            retried: s.retried,
            records: s.records,
        }
    }
}

/// A capture task's fatal error stops the whole run (after logging it).
fn stop_on_error<T, E: std::fmt::Display>(
    result: Result<T, E>,
    stop: &watch::Sender<bool>,
    what: &str,
) -> Result<T, E> {
    if let Err(e) = &result {
        error!(error = %e, "{what} failed; shutting down");
        let _ = stop.send(true);
    }
    result
}

/// Runs an optional capture task (`None`: not configured, a default report); a fatal error stops
/// the whole run.
async fn optional_capture<T: Default, E: std::fmt::Display>(
    task: Option<impl std::future::Future<Output = Result<T, E>>>,
    stop: &watch::Sender<bool>,
    what: &str,
) -> Result<T, E> {
    let result = match task {
        Some(t) => t.await,
        None => Ok(T::default()),
    };
    stop_on_error(result, stop, what)
}

/// Keeps `lakelog_dead_letter_depth` true to the store (another process may replay or add).
async fn refresh_dead_letter_depth(store: &crate::state::deadletter::DeadLetterStore, names: &[String]) {
    for name in names {
        match store.keys(name).await {
            Ok(keys) => crate::metrics::dead_letter_depth(name, keys.len()),
            Err(e) => warn!(target = %name, error = %e, "cannot count dead letters"),
        }
    }
}

/// Runs until `shutdown` turns true, then drains and returns.
pub async fn run(
    pipeline: &Pipeline,
    target: Option<&str>,
    shutdown: watch::Receiver<bool>,
) -> Result<RunReport, RunError> {
    let cfg = &pipeline.config;
    let targets = pipeline.select_targets(target)?;
    ensure_stream(pipeline.log.as_ref(), cfg.stream.shards, cfg.stream.create_if_missing).await?;
    let publisher = Arc::new(Publisher::new(Producer::new(pipeline.log.clone(), cfg.stream.frame_bytes)));
    let source = Endpoint::new(&cfg.source.region, cfg.source.endpoint.as_deref());
    let source_counter = crate::aws::counter::ApiCounter::source();
    let source_glue = source.glue(Some(&source_counter)).await;
    // Everything below stops on this: the caller's shutdown, or a fatal capture error.
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let forward = {
        let (mut shutdown, stop_tx) = (shutdown, stop_tx.clone());
        tokio::spawn(async move {
            let _ = shutdown.wait_for(|s| *s).await;
            let _ = stop_tx.send(true);
        })
    };
    let shutdown = stop_rx;
    // Not ready until each part has started (and the initial snapshot is done): a copy that is
    // still being made is not current.
    let health = Health::global();
    for t in &targets {
        health.not_ready(&format!("target {}", t.config.name), "starting");
    }
    health.not_ready("reconcile", "the initial snapshot is running");
    health.ready("pipeline");
    let mut dead_letter_stores: Vec<String> = targets.iter().map(|t| t.config.name.clone()).collect();
    m::init_series(&dead_letter_stores);
    dead_letter_stores.push(CAPTURE_EVENTS.to_string());
    let depth = {
        let (store, mut stop) = (pipeline.dead_letters.clone(), shutdown.clone());
        tokio::spawn(async move {
            while !*stop.borrow() {
                refresh_dead_letter_depth(&store, &dead_letter_stores).await;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                    _ = stop.changed() => {}
                }
            }
        })
    };

    // 1. Event capture first (gap-free start).
    let queue = match &cfg.source.events {
        Some(events) => {
            let queue: Arc<dyn EventQueue> = Arc::new(SqsQueue::new(source.sqs().await));
            let queue_url = crate::capture::events::queue::queue_url(queue.as_ref(), events).await?;
            Some(QueueCapture {
                queue,
                queue_url,
                config: events.clone(),
                resolver: Resolver::new(source_glue.clone(), pipeline.origin.clone(), pipeline.source_filter.clone()),
                publisher: publisher.clone(),
                dead_letters: pipeline.dead_letters.clone(),
            })
        }
        None => None,
    };
    let events = optional_capture(
        queue.as_ref().map(|q| {
            let stop = shutdown.clone();
            async move { q.run(stop).await.map(EventCounts::from) }
        }),
        &stop_tx,
        "event capture",
    );
    health.ready("capture");

    let trail = match &cfg.source.cloudtrail {
        Some(ct) => {
            let region = ct.region.clone().unwrap_or_else(|| cfg.source.region.clone());
            Some(CloudTrailCapture {
                s3: Endpoint::new(&region, cfg.source.endpoint.as_deref()).s3().await,
                config: ct.clone(),
                account: pipeline.origin.account.clone(),
                region: cfg.source.region.clone(),
                resolver: Resolver::new(source_glue.clone(), pipeline.origin.clone(), pipeline.source_filter.clone()),
                publisher: publisher.clone(),
                state: pipeline.state.clone(),
                dead_letters: pipeline.dead_letters.clone(),
            })
        }
        None => None,
    };
    let cloudtrail = optional_capture(trail.as_ref().map(|t| t.run(shutdown.clone())), &stop_tx, "CloudTrail capture");

    let lookup = match &cfg.source.cloudtrail_lookup {
        Some(lc) => Some(LookupCapture {
            reader: LookupReader {
                history: Arc::new(CloudTrailHistory::new(source.cloudtrail().await)),
                config: lc.clone(),
            },
            resolver: Resolver::new(source_glue.clone(), pipeline.origin.clone(), pipeline.source_filter.clone()),
            publisher: publisher.clone(),
            state: pipeline.state.clone(),
            dead_letters: pipeline.dead_letters.clone(),
        }),
        None => None,
    };
    let lookup_events =
        optional_capture(lookup.as_ref().map(|l| l.run(shutdown.clone())), &stop_tx, "CloudTrail LookupEvents capture");

    // 2. The initial snapshot, then reconciliation every interval.
    let reconciler = Reconciler {
        reader: pipeline.source.clone(),
        filter: pipeline.source_filter.clone(),
        origin: pipeline.origin.clone(),
        publisher: publisher.clone(),
    };
    let interval = Duration::from_secs(cfg.source.reconcile_interval_seconds);
    let reconciling = {
        let mut stop = shutdown.clone();
        let reconciler = &reconciler;
        async move {
            let (mut passes, mut last, mut kind) = (0u64, PassStats::default(), CauseKind::Snapshot);
            while !*stop.borrow() {
                match reconciler.pass(kind).await {
                    Ok(stats) => {
                        passes += 1;
                        m::reconcile_run(true);
                        health.ready("reconcile");
                        info!(
                            pass = passes,
                            changed = stats.changed,
                            deleted = stats.deleted,
                            stale = stats.stale,
                            "reconciliation pass done"
                        );
                        last = stats;
                        kind = CauseKind::Reconcile;
                    }
                    Err(e) => {
                        m::reconcile_run(false);
                        health.not_ready("reconcile", format!("the last pass failed: {e}"));
                        warn!(error = %e, "reconciliation pass failed; retrying at the next interval")
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stop.changed() => {}
                }
            }
            (passes, last)
        }
    };

    // 3. One consumer group per target, drained to the last published record at shutdown.
    let (end_tx, end_rx) = watch::channel(None);
    let groups = futures::future::join_all(targets.iter().map(|t| {
        let end_rx = end_rx.clone();
        let shutdown = shutdown.clone();
        async move {
            let applier = match pipeline.applier(t, false) {
                Ok(a) => a,
                Err(e) => {
                    error!(target = %t.config.name, error = %e, "cannot build the applier");
                    return (t.config.name.clone(), GroupReport::default());
                }
            };
            let group = Arc::new(ConsumerGroup {
                log: pipeline.log.clone(),
                applier,
                checkpoints: pipeline.checkpoints.clone(),
                dead_letters: pipeline.dead_letters.clone(),
                batch_limit: cfg.apply.batch_records,
                progress: Progress::hidden(),
                log_batches: true,
                health: Some(format!("target {}", t.config.name)),
            });
            // A failing target (unavailable, throttled beyond retries) restarts from its
            // checkpoint after a pause; it never stops the other targets or capture.
            let component = format!("target {}", t.config.name);
            loop {
                match group.clone().run(StopWhen::Drained(end_rx.clone())).await {
                    Ok(report) => return (t.config.name.clone(), report),
                    Err(e) => {
                        health.not_ready(&component, format!("consumer failed, restarting from its checkpoint: {e}"));
                        warn!(target = %t.config.name, error = %e, "consumer group failed; restarting from its checkpoint");
                        if *shutdown.borrow() && end_rx.borrow().is_some() {
                            return (t.config.name.clone(), GroupReport::default());
                        }
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                }
            }
        }
    }));

    let capture = async {
        let (events, trail, looked_up, (passes, last)) =
            tokio::join!(Box::pin(events), Box::pin(cloudtrail), Box::pin(lookup_events), Box::pin(reconciling));
        let trail = match (trail, looked_up) {
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
        // Capture has stopped: the consumers drain to what was published, then stop.
        let _ = end_tx.send(Some(publisher.last_sequence().await));
        (events, trail, passes, last)
    };
    // Boxed: the combined state machine is large, and callers may run it on a small task stack.
    let ((events, trail, passes, last), groups) = tokio::join!(Box::pin(capture), Box::pin(groups));
    forward.abort();
    depth.abort();
    let (published, stale) = publisher.totals().await;
    Ok(RunReport {
        published,
        stale_dropped: stale,
        reconcile_passes: passes,
        last_pass: last,
        events: events?,
        cloudtrail: trail?,
        source_api_calls: source_counter.snapshot(),
        target_api_calls: targets.iter().map(|t| (t.config.name.clone(), t.counter.snapshot())).collect(),
        targets: groups.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_report_carries_parked_and_retried_events() {
        let stats = QueueStats { messages: 9, duplicates: 1, malformed: 1, failed: 2, retried: 3, records: 4 };
        let counts = EventCounts::from(stats);
        assert_eq!((counts.failed, counts.retried), (2, 3));
        let json = serde_json::to_value(counts).expect("json");
        assert_eq!((json["failed"].as_u64(), json["retried"].as_u64()), (Some(2), Some(3)), "{json}");
    }
}
