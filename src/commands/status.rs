//! `lakelog status`: per target and shard, where its checkpoint is, how much of the change log is
//! waiting behind it and how old that is, and how many records are parked; and how the consumer
//! groups are coordinated ([`coordination`]: each lease, or each single-writer lock). Read-only;
//! works while `lakelog run` is running or stopped, from any machine with read access to the
//! stream, the state bucket and (under leases) the lease table.

pub mod coordination;

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::archive::manifest::ManifestStore;
use crate::archive::writer::root;
use crate::commands::restore::rfc3339;
use crate::connect::{Pipeline, PipelineError};
use crate::model::{codec, now_millis};
use crate::state::checkpoint::CheckpointStore;
use crate::state::deadletter::{DeadLetter, CAPTURE_EVENTS, UNMAPPED_PRINCIPAL};
use crate::stream::admin::list_shards;
use crate::stream::consumer::ShardReader;
use crate::stream::StreamError;
use coordination::{CoordinationStatus, LeaseRows};

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// Glue events waiting for capture (when `source.events` is configured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<QueueStatus>,
    pub stream: String,
    /// `state.coordination`: each lease (owner, checkpoint, counter, age, parents), or each
    /// group's single-writer lock.
    pub coordination: CoordinationStatus,
    pub targets: Vec<TargetStatus>,
    /// Events capture could not parse, parked.
    pub capture_dead_letters: usize,
    /// The change log's archive (restorable window, what compaction waits for).
    pub archive: ArchiveStatus,
    /// When this report was made (epoch ms).
    pub at: i64,
}

/// The archive, as its manifest says.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ArchiveStatus {
    /// The earliest time a restore is exact for (RFC 3339); `None` while nothing is archived.
    pub earliest_restorable: Option<String>,
    /// The newest change archived.
    pub latest_archived: Option<String>,
    pub snapshots: usize,
    pub tail_segments: usize,
    pub tail_bytes: u64,
}

/// The events queue capture reads.
#[derive(Debug, Clone, Serialize)]
pub struct QueueStatus {
    pub queue_url: String,
    /// Events waiting to be received.
    pub waiting: u64,
    /// Events received and being resolved (invisible until deleted or their timeout).
    pub in_flight: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetStatus {
    pub name: String,
    /// How far behind the source the target is: the age of its oldest unapplied change (0 when
    /// every shard is caught up).
    pub lag_seconds: f64,
    /// Change records in the stream not yet applied (a lower bound when `backlog_complete` is false).
    pub backlog_records: u64,
    pub backlog_complete: bool,
    pub dead_letters: usize,
    /// Source principals no mapping rule maps into this target, from the dead-letter store
    /// (entries of class `unmapped_principal`): their grants were not made.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unmapped_principals: Vec<UnmappedPrincipal>,
    pub shards: Vec<ShardStatus>,
}

/// One source principal whose grants wait for a mapping rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnmappedPrincipal {
    pub principal: String,
    /// Parked grants naming it.
    pub grants: usize,
    /// The newest entry's reason: which config key would map it.
    pub reason: String,
}

/// The unmapped principals among a target's dead letters, by principal, with the newest reason.
pub fn unmapped_principals(letters: &[DeadLetter]) -> Vec<UnmappedPrincipal> {
    let mut by: BTreeMap<&str, UnmappedPrincipal> = BTreeMap::new();
    for l in letters.iter().filter(|l| l.class == UNMAPPED_PRINCIPAL) {
        let principal = l.principal.as_deref().unwrap_or(&l.key);
        let entry = by.entry(principal).or_insert_with(|| UnmappedPrincipal {
            principal: principal.to_string(),
            grants: 0,
            reason: String::new(),
        });
        entry.grants += 1;
        // Listed oldest first: the last one seen is the newest.
        entry.reason = l.reason.clone();
    }
    by.into_values().collect()
}

#[derive(Debug, Clone, Serialize)]
pub struct ShardStatus {
    pub shard: String,
    /// The last sequence number applied (`None`: never consumed; starts at the trim horizon).
    pub checkpoint: Option<String>,
    /// Seconds since the checkpoint moved.
    pub checkpoint_age_seconds: Option<f64>,
    /// Change records applied through this shard, all runs together.
    pub applied_records: u64,
    /// Age of the newest applied change when it was captured (how current the target was at the
    /// last checkpoint).
    pub newest_applied_age_seconds: Option<f64>,
    /// Kinesis records (frames) and change records after the checkpoint.
    pub backlog_frames: u64,
    pub backlog_records: u64,
    /// Age of the oldest change after the checkpoint (0: nothing pending).
    pub oldest_unapplied_age_seconds: f64,
    /// The backlog was read to the end (otherwise `scan_limit` stopped it).
    pub backlog_complete: bool,
    /// The shard is closed (resharded) and read to its end.
    pub closed: bool,
}

impl ShardStatus {
    /// A shard its lease says was read to its end (its checkpoint is `SHARD_END`).
    fn ended(shard: &str, applied_records: u64) -> ShardStatus {
        ShardStatus {
            shard: shard.to_string(),
            checkpoint: Some(crate::backend::lease::SHARD_END.to_string()),
            checkpoint_age_seconds: None,
            applied_records,
            newest_applied_age_seconds: None,
            backlog_frames: 0,
            backlog_records: 0,
            oldest_unapplied_age_seconds: 0.0,
            backlog_complete: true,
            closed: true,
        }
    }
}

/// The human report: the events queue, the coordination, then per target its lag and one line
/// per shard.
impl fmt::Display for StatusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = |s: Option<f64>| s.map_or("-".to_string(), |s| format!("{s:.1}s"));
        if let Some(q) = &self.events {
            writeln!(f, "events queue: {} waiting, {} being captured ({})", q.waiting, q.in_flight, q.queue_url)?;
        }
        writeln!(f, "change log: {}", self.stream)?;
        write!(f, "{}", self.coordination)?;
        let a = &self.archive;
        match &a.earliest_restorable {
            Some(from) => writeln!(
                f,
                "archive: restorable from {from} to {}; {} snapshots, {} raw segments ({} bytes) waiting for compaction",
                a.latest_archived.as_deref().unwrap_or("-"),
                a.snapshots,
                a.tail_segments,
                a.tail_bytes
            )?,
            None => writeln!(f, "archive: empty (lakelog run archives the change log)")?,
        }
        for t in &self.targets {
            let more = if t.backlog_complete { "" } else { "+" };
            writeln!(
                f,
                "target {}: lag {:.1}s, backlog {}{more} records, {} dead letters",
                t.name, t.lag_seconds, t.backlog_records, t.dead_letters
            )?;
            for u in &t.unmapped_principals {
                writeln!(
                    f,
                    "  unmapped principal {}: {} grant(s) not made; {} (then `lakelog dlq replay --target {}`)",
                    u.principal, u.grants, u.reason, t.name
                )?;
            }
            writeln!(
                f,
                "  {:<24} {:>12} {:>10} {:>9} {:>12} {:>10}  checkpoint",
                "shard", "applied", "backlog", "oldest", "ckpt age", "newest"
            )?;
            for s in &t.shards {
                let backlog = format!("{}{}", s.backlog_records, if s.backlog_complete { "" } else { "+" });
                writeln!(
                    f,
                    "  {:<24} {:>12} {:>10} {:>9} {:>12} {:>10}  {}{}",
                    s.shard,
                    s.applied_records,
                    backlog,
                    format!("{:.1}s", s.oldest_unapplied_age_seconds),
                    secs(s.checkpoint_age_seconds),
                    secs(s.newest_applied_age_seconds),
                    s.checkpoint.as_deref().unwrap_or("(none: starts at the trim horizon)"),
                    if s.closed { " (closed)" } else { "" }
                )?;
            }
        }
        if self.capture_dead_letters > 0 {
            writeln!(f, "capture: {} unparseable events parked (lakelog dlq list)", self.capture_dead_letters)?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error("reading checkpoints: {0}")]
    Checkpoint(#[from] crate::state::checkpoint::CheckpointError),
    #[error("counting dead letters: {0}")]
    DeadLetters(#[from] crate::backend::AwsError),
    #[error("reading the events queue: {0}")]
    Queue(#[from] crate::capture::events::queue::QueueError),
    #[error("reading the archive: {0}")]
    Archive(#[from] crate::archive::ArchiveError),
    #[error("reading the lease table {location}: {source}")]
    Leases { location: String, source: crate::backend::AwsError },
    #[error("reading a single-writer lock: {0}")]
    Lock(#[from] crate::state::lock::LockError),
}

/// Kinesis records read per shard at most when measuring a backlog.
pub const DEFAULT_SCAN_LIMIT: u64 = 10_000;

const MAX_CALLS: usize = 200;

fn age(now: i64, at: i64) -> f64 {
    ((now - at).max(0) as f64) / 1000.0
}

/// The status of every selected target.
pub async fn status(pipeline: &Pipeline, target: Option<&str>, scan_limit: u64) -> Result<StatusReport, StatusError> {
    let stream = &pipeline.config.stream.name;
    let shards = list_shards(pipeline.log.as_ref()).await?;
    let selected = pipeline.select_targets(target)?;
    let names: Vec<String> = selected.iter().map(|t| t.config.name.clone()).collect();
    let groups = coordination::groups(pipeline, &names, target);
    // Under leases the checkpoints are in the lease rows, not the state bucket.
    let leases = LeaseRows::read(pipeline, &groups).await?;
    let mut targets = Vec::new();
    for t in selected {
        let name = t.config.name.as_str();
        let mut out = Vec::new();
        for shard in &shards {
            let id = &shard.shard_id;
            let cp = match &leases {
                Some(rows) => {
                    if let Some(records) = rows.ended(name, id) {
                        out.push(ShardStatus::ended(id, records));
                        continue;
                    }
                    rows.checkpoint(name, id)
                }
                None => pipeline.checkpoints.load(name, id).await?,
            };
            out.push(shard_status(pipeline, id, cp, scan_limit).await?);
        }
        let lag = out.iter().map(|s| s.oldest_unapplied_age_seconds).fold(0.0, f64::max);
        targets.push(TargetStatus {
            name: name.to_string(),
            lag_seconds: lag,
            backlog_records: out.iter().map(|s| s.backlog_records).sum(),
            backlog_complete: out.iter().all(|s| s.backlog_complete),
            dead_letters: pipeline.dead_letters.keys(name).await?.len(),
            unmapped_principals: unmapped_principals(
                &pipeline.dead_letters.list(name).await?.into_iter().map(|(_, l)| l).collect::<Vec<_>>(),
            ),
            shards: out,
        });
    }
    let coordination = match leases {
        Some(rows) => rows.finish(pipeline.config.state.coordination.renew_interval()).await?,
        None => coordination::locks(pipeline, &groups).await?,
    };
    Ok(StatusReport {
        events: queue_status(pipeline).await?,
        stream: stream.clone(),
        coordination,
        targets,
        capture_dead_letters: pipeline.dead_letters.keys(CAPTURE_EVENTS).await?.len(),
        archive: archive_status(pipeline).await?,
        at: now_millis(),
    })
}

async fn archive_status(pipeline: &Pipeline) -> Result<ArchiveStatus, StatusError> {
    let manifests = ManifestStore::new(&root(&pipeline.config.stream.name));
    let (m, _) = manifests.load(&*pipeline.state).await?;
    Ok(ArchiveStatus {
        earliest_restorable: m.earliest_restorable().map(rfc3339),
        latest_archived: m.latest_captured_at().map(rfc3339),
        snapshots: m.snapshots.len(),
        tail_segments: m.tail.len(),
        tail_bytes: m.tail_bytes(),
    })
}

async fn queue_status(pipeline: &Pipeline) -> Result<Option<QueueStatus>, StatusError> {
    let Some(queue) = pipeline.events_queue().await? else { return Ok(None) };
    let depth = crate::backend::retry::RetryPolicy::default().run(|| queue.queue.depth(&queue.url)).await?;
    Ok(Some(QueueStatus { waiting: depth.waiting, in_flight: depth.in_flight, queue_url: queue.url }))
}

async fn shard_status(
    pipeline: &Pipeline,
    shard: &str,
    checkpoint: Option<crate::state::checkpoint::Checkpoint>,
    scan_limit: u64,
) -> Result<ShardStatus, StatusError> {
    let now = now_millis();
    let after = checkpoint.as_ref().map(|c| c.sequence.clone());
    let mut reader = ShardReader::open(pipeline.log.clone(), shard, after, scan_limit.clamp(1, 10_000) as i32).await?;
    let (mut frames, mut records, mut oldest, mut complete, mut closed) = (0u64, 0u64, None::<i64>, false, false);
    // Real Kinesis can return empty batches before the tip of a sparse shard; bound the calls.
    for _ in 0..MAX_CALLS {
        if frames >= scan_limit {
            break;
        }
        let batch = reader.next_batch().await?;
        if batch.end_of_shard {
            (complete, closed) = (true, true);
            break;
        }
        for r in &batch.records {
            frames += 1;
            // A frame that does not decode still counts as one pending Kinesis record.
            if let Ok(rs) = codec::decode(&r.data) {
                records += rs.len() as u64;
                let first = rs.iter().map(|x| x.captured_at).min();
                oldest = match (oldest, first) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        if batch.records.is_empty() && batch.millis_behind.unwrap_or(0) == 0 {
            complete = true;
            break;
        }
    }
    Ok(ShardStatus {
        shard: shard.to_string(),
        checkpoint_age_seconds: checkpoint.as_ref().map(|c| age(now, c.updated_at)),
        applied_records: checkpoint.as_ref().map_or(0, |c| c.records),
        newest_applied_age_seconds: checkpoint.as_ref().and_then(|c| c.newest_captured_at).map(|t| age(now, t)),
        checkpoint: checkpoint.map(|c| c.sequence.to_string()),
        backlog_frames: frames,
        backlog_records: records,
        oldest_unapplied_age_seconds: oldest.map_or(0.0, |t| age(now, t)),
        backlog_complete: complete,
        closed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CatalogObject, Cause, CauseKind, ChangeRecord, Database, Origin};

    #[test]
    fn unmapped_principals_are_grouped_by_principal_with_the_newest_reason() {
        let origin =
            Origin { account: "111111111111".into(), region: "us-east-1".into(), catalog_id: "111111111111".into() };
        let db = CatalogObject::Database(Database { name: "db".into(), ..Default::default() });
        let record = ChangeRecord::upsert(db, &origin, Cause { kind: CauseKind::Snapshot, event_id: None }, 1);
        let role = "arn:aws:iam::111111111111:role/a";
        let mut letters = vec![
            DeadLetter::unmapped_principal("dr", &record, role, "old reason".into()),
            DeadLetter::for_record("dr", &record, "a rejected write".into(), None),
            DeadLetter::unmapped_principal("dr", &record, "111111111111", "account".into()),
            DeadLetter::unmapped_principal("dr", &record, role, "new reason".into()),
        ];
        letters[1].principal = None;
        let got = unmapped_principals(&letters);
        assert_eq!(
            got,
            vec![
                UnmappedPrincipal { principal: "111111111111".into(), grants: 1, reason: "account".into() },
                UnmappedPrincipal { principal: role.into(), grants: 2, reason: "new reason".into() },
            ]
        );
    }
}
