//! `lakelog archive`: the archive's consumer group on its own (normally it runs inside `lakelog
//! run`, beside the targets): every shard of the change log into raw segments, with periodic
//! compaction, until SIGTERM. Useful to archive a stream another process replicates, or to catch
//! the archive up.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tracing::warn;

use crate::apply::group::StopWhen;
use crate::archive::compact::{compact, CompactOptions};
use crate::connect::Pipeline;
use crate::metrics as m;
use crate::progress::Progress;

/// Compacts the archive when its raw tail is large, checking every `archive.compact_check`,
/// until stopped; never during a pass already running (a stop waits for it to finish).
pub struct Compaction {
    store: crate::backend::state::SharedStore,
    stream: String,
    opts: Option<CompactOptions>,
    every: Duration,
}

impl Compaction {
    pub fn of(pipeline: &Pipeline) -> Compaction {
        let a = &pipeline.config.archive;
        Compaction {
            store: pipeline.state.clone(),
            stream: pipeline.config.stream.name.clone(),
            opts: a.enabled.then(|| CompactOptions::from_config(a)),
            every: a.compact_check(),
        }
    }

    /// How many compactions wrote a snapshot.
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> u64 {
        let Some(opts) = self.opts else { return 0 };
        let mut done = 0;
        while !*stop.borrow() {
            tokio::select! {
                _ = tokio::time::sleep(self.every) => {}
                _ = stop.changed() => break,
            }
            match compact(&self.store, &self.stream, crate::model::now_millis(), &opts, false).await {
                Ok(r) => {
                    m::archive_state(r.tail_bytes, r.earliest_restorable);
                    if r.snapshot.is_some() {
                        done += 1;
                        m::archive_compacted(true);
                    }
                }
                Err(e) => {
                    m::archive_compacted(false);
                    warn!(error = %e, "archive compaction failed; retrying at the next check");
                }
            }
        }
        done
    }
}

/// What `lakelog archive` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ArchiveReport {
    /// Change records written to raw segments.
    pub archived: u64,
    pub compactions: u64,
}

impl fmt::Display for ArchiveReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "stopped: {} records archived, {} compactions", self.archived, self.compactions)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveRunError {
    #[error("archive.enabled is false in the config; set it to true to archive the change log")]
    Disabled,
    #[error("{0}")]
    Lock(#[from] crate::state::lock::LockError),
    #[error("{0}; the archive stopped")]
    Lost(String),
}

/// Archives until `shutdown` turns true (the batch in hand is written and checkpointed first).
pub async fn archive(pipeline: &Pipeline, shutdown: watch::Receiver<bool>) -> Result<ArchiveReport, ArchiveRunError> {
    let mut group = pipeline.archive_group(Progress::hidden()).ok_or(ArchiveRunError::Disabled)?;
    let coordinator = pipeline.coordinate(&[crate::archive::consumer::GROUP.to_string()]).await?;
    coordinator.coordinate(&mut group);
    let group = Arc::new(group);
    // Lost to another process for good: stop as on SIGTERM, and say so.
    let (stop_tx, stop) = watch::channel(false);
    let mut lost = coordinator.lost();
    let mut outer = shutdown.clone();
    let forward = tokio::spawn(async move {
        let reason = tokio::select! {
            _ = outer.wait_for(|s| *s) => None,
            l = lost.wait_for(|l| l.is_some()) => l.ok().and_then(|l| l.clone()),
        };
        let _ = stop_tx.send(true);
        reason
    });
    let shutdown = stop;
    let compacting = tokio::spawn(Compaction::of(pipeline).run(shutdown.clone()));
    let mut archived = 0;
    loop {
        match group.clone().run(StopWhen::Signal(shutdown.clone())).await {
            Ok(report) => {
                archived += report.shards.iter().map(|s| s.records).sum::<u64>();
                break;
            }
            Err(e) => {
                warn!(error = %e, "archive consumer failed; restarting from its checkpoint");
                if *shutdown.borrow() {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
    let compactions = compacting.await.unwrap_or_default();
    forward.abort();
    if let Ok(Some(reason)) = forward.await {
        return Err(ArchiveRunError::Lost(reason));
    }
    coordinator.release().await;
    Ok(ArchiveReport { archived, compactions })
}
