//! Every metric lakelog emits: names, labels and descriptions live here and nowhere else.
//!
//! Names follow `lakelog_<what>_<unit>`; counters end in `_total`. Labels are low-cardinality
//! (stage, target, shard, kind, operation, outcome) and never carry table names.
//! Emit per batch, not per record. `grafana/` queries these names; a test checks that a running
//! pipeline renders every one of them.
//!
//! Ages that must keep growing while nothing happens (the oldest unapplied change, the checkpoint)
//! are kept as timestamps in [`ShardClocks`] and turned into seconds by [`refresh_ages`], which
//! the metrics server calls before every scrape and on a timer.

pub mod serve;

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};

use crate::model::now_millis;

pub const RECORDS_CAPTURED: &str = "lakelog_records_captured_total";
pub const RECORDS_PUBLISHED: &str = "lakelog_records_published_total";
pub const KINESIS_PUT_RETRIES: &str = "lakelog_kinesis_put_retries_total";
pub const RECORDS_APPLIED: &str = "lakelog_records_applied_total";
pub const TARGET_API_CALLS: &str = "lakelog_target_api_calls_total";
pub const SOURCE_API_CALLS: &str = "lakelog_source_api_calls_total";
pub const THROTTLES: &str = "lakelog_throttles_total";
pub const DEAD_LETTERS: &str = "lakelog_dead_letters_total";
pub const DEAD_LETTER_DEPTH: &str = "lakelog_dead_letter_depth";
pub const UNMAPPED_PRINCIPALS: &str = "lakelog_unmapped_principals_total";
pub const APPLY_RETRIES: &str = "lakelog_apply_retries_total";
pub const APPLY_CONCURRENCY_LIMIT: &str = "lakelog_apply_concurrency_limit";
pub const DEPENDENCY_WAITS: &str = "lakelog_apply_dependency_waits";
pub const REPLICATION_LAG: &str = "lakelog_replication_lag_seconds";
pub const OLDEST_UNAPPLIED_AGE: &str = "lakelog_oldest_unapplied_age_seconds";
pub const KINESIS_BEHIND_LATEST: &str = "lakelog_kinesis_behind_latest_seconds";
pub const CHECKPOINT_WRITES: &str = "lakelog_checkpoint_writes_total";
pub const CHECKPOINT_AGE: &str = "lakelog_checkpoint_age_seconds";
pub const APPLY_BATCH_DURATION: &str = "lakelog_apply_batch_duration_seconds";
pub const RECONCILE_RUNS: &str = "lakelog_reconcile_runs_total";
pub const RECONCILE_DRIFT: &str = "lakelog_reconcile_drift_total";
pub const EVENTS_RECEIVED: &str = "lakelog_events_received_total";
pub const BUILD_INFO: &str = "lakelog_build_info";
pub const ARCHIVE_SEGMENTS: &str = "lakelog_archive_segments_written_total";
pub const ARCHIVE_BYTES: &str = "lakelog_archive_bytes_written_total";
pub const ARCHIVE_RECORDS: &str = "lakelog_archive_records_total";
pub const ARCHIVE_TAIL_BYTES: &str = "lakelog_archive_tail_bytes";
pub const ARCHIVE_EARLIEST_RESTORABLE: &str = "lakelog_archive_earliest_restorable_timestamp_seconds";
pub const ARCHIVE_COMPACTIONS: &str = "lakelog_archive_compactions_total";
pub const LEASES_HELD: &str = "lakelog_leases_held";
pub const LEASE_TAKEOVERS: &str = "lakelog_lease_takeovers_total";
pub const LEASE_RENEW_FAILURES: &str = "lakelog_lease_renew_failures_total";

/// Bucket bounds of [`APPLY_BATCH_DURATION`] (seconds).
pub const APPLY_BATCH_BUCKETS: [f64; 12] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Every metric name a `lakelog run` renders in either coordination mode, for tests and
/// documentation (with [`LEASE_ONLY`]: every name).
pub const ALL: [&str; 30] = [
    RECORDS_CAPTURED,
    RECORDS_PUBLISHED,
    KINESIS_PUT_RETRIES,
    RECORDS_APPLIED,
    TARGET_API_CALLS,
    SOURCE_API_CALLS,
    THROTTLES,
    DEAD_LETTERS,
    DEAD_LETTER_DEPTH,
    UNMAPPED_PRINCIPALS,
    APPLY_RETRIES,
    APPLY_CONCURRENCY_LIMIT,
    DEPENDENCY_WAITS,
    REPLICATION_LAG,
    OLDEST_UNAPPLIED_AGE,
    KINESIS_BEHIND_LATEST,
    CHECKPOINT_WRITES,
    CHECKPOINT_AGE,
    APPLY_BATCH_DURATION,
    RECONCILE_RUNS,
    RECONCILE_DRIFT,
    EVENTS_RECEIVED,
    BUILD_INFO,
    ARCHIVE_SEGMENTS,
    ARCHIVE_BYTES,
    ARCHIVE_RECORDS,
    ARCHIVE_TAIL_BYTES,
    ARCHIVE_EARLIEST_RESTORABLE,
    ARCHIVE_COMPACTIONS,
    LEASE_RENEW_FAILURES,
];

/// The metrics only a process in `state.coordination.mode: leases` renders (a single process
/// renders [`LEASE_RENEW_FAILURES`] too: its lock's renewals).
pub const LEASE_ONLY: [&str; 2] = [LEASES_HELD, LEASE_TAKEOVERS];

/// Describes every metric (call once at start-up, after installing a recorder).
pub fn describe() {
    describe_gauge!(
        LEASES_HELD,
        "Shard leases this worker holds, by consumer group (state.coordination.mode: leases)."
    );
    describe_counter!(LEASE_TAKEOVERS, "Leases this worker took from another worker (expired or balanced), by group.");
    describe_counter!(
        LEASE_RENEW_FAILURES,
        "Lease or single-writer lock renewals that failed or found the lease taken, by group."
    );
    describe_counter!(RECORDS_CAPTURED, "Change records read from the source, by kind and cause.");
    describe_counter!(RECORDS_PUBLISHED, "Change records acknowledged by Kinesis, by kind.");
    describe_counter!(KINESIS_PUT_RETRIES, "Kinesis entries re-sent after a partial PutRecords failure.");
    describe_counter!(RECORDS_APPLIED, "Change records applied to a target, by kind and result.");
    describe_counter!(TARGET_API_CALLS, "Requests sent to a target catalog, by operation and outcome.");
    describe_counter!(SOURCE_API_CALLS, "Requests sent to the source catalog by capture, by operation and outcome.");
    describe_counter!(THROTTLES, "Requests AWS throttled, by stage (capture, publish, consume, apply) and service.");
    describe_counter!(DEAD_LETTERS, "Records parked in the dead-letter store, by target and kind.");
    describe_gauge!(DEAD_LETTER_DEPTH, "Records currently parked in the dead-letter store, by target.");
    describe_counter!(
        UNMAPPED_PRINCIPALS,
        "Grants not made because no principal mapping rule maps their source principal (parked as unmapped principal), by target."
    );
    describe_counter!(APPLY_RETRIES, "Retries of target calls after retryable errors, by target.");
    describe_gauge!(
        APPLY_CONCURRENCY_LIMIT,
        "Concurrent calls allowed to a target now: halved on throttling, grown back by one after a run of successes."
    );
    describe_gauge!(
        DEPENDENCY_WAITS,
        "Records waiting for their parent (a table for its database, partitions for their table), per target."
    );
    describe_gauge!(
        REPLICATION_LAG,
        Unit::Seconds,
        "Capture-to-apply age of the newest change applied, per target and shard; 0 when the shard is caught up."
    );
    describe_gauge!(
        OLDEST_UNAPPLIED_AGE,
        Unit::Seconds,
        "Age of the oldest change in the stream not yet applied, per target and shard; 0 when none is pending."
    );
    describe_gauge!(
        KINESIS_BEHIND_LATEST,
        Unit::Seconds,
        "Kinesis MillisBehindLatest of the last GetRecords, in seconds, per target and shard."
    );
    describe_counter!(CHECKPOINT_WRITES, "Checkpoints written, per target.");
    describe_counter!(ARCHIVE_SEGMENTS, "Raw segments the archive wrote to the state store.");
    describe_counter!(ARCHIVE_BYTES, Unit::Bytes, "Compressed bytes of raw segments the archive wrote.");
    describe_counter!(ARCHIVE_RECORDS, "Change records archived in raw segments.");
    describe_gauge!(
        ARCHIVE_TAIL_BYTES,
        Unit::Bytes,
        "Raw segments not yet folded into a snapshot (what compaction waits for)."
    );
    describe_gauge!(
        ARCHIVE_EARLIEST_RESTORABLE,
        Unit::Seconds,
        "The earliest time `lakelog restore --at` can restore exactly (Unix seconds; 0 while the archive is empty)."
    );
    describe_counter!(ARCHIVE_COMPACTIONS, "Archive compactions, by result (ok, failed).");
    describe_gauge!(
        CHECKPOINT_AGE,
        Unit::Seconds,
        "Seconds since the shard's checkpoint last moved, per target and shard."
    );
    describe_histogram!(APPLY_BATCH_DURATION, Unit::Seconds, "Time to apply one shard batch to a target.");
    describe_counter!(RECONCILE_RUNS, "Reconciliation passes over the source, by outcome (ok, error).");
    describe_counter!(
        RECONCILE_DRIFT,
        "Differences reconciliation found between the source and what lakelog recorded (lost events), by change."
    );
    describe_counter!(EVENTS_RECEIVED, "Events received from the queue, by outcome (ok, duplicate, malformed, failed: parked after a failure of its own, retried: left for SQS to redeliver).");
    describe_gauge!(BUILD_INFO, "Always 1; the version label says which lakelog is running.");
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// Creates the series that only move on trouble at zero, so dashboards and alerts (`rate`,
/// `increase`) see them from the first scrape rather than from the first failure.
pub fn init_series(targets: &[String]) {
    counter!(KINESIS_PUT_RETRIES).absolute(0);
    for stage in ["capture", "publish", "consume", "apply"] {
        let service = if matches!(stage, "publish" | "consume") { "kinesis" } else { "glue" };
        counter!(THROTTLES, "stage" => stage, "service" => service).absolute(0);
    }
    for outcome in ["ok", "error"] {
        counter!(RECONCILE_RUNS, "outcome" => outcome).absolute(0);
    }
    for change in ["changed", "deleted"] {
        counter!(RECONCILE_DRIFT, "change" => change).absolute(0);
    }
    for outcome in ["ok", "duplicate", "malformed", "failed", "retried"] {
        counter!(EVENTS_RECEIVED, "outcome" => outcome).absolute(0);
    }
    for t in targets {
        counter!(APPLY_RETRIES, "target" => t.clone()).absolute(0);
        gauge!(DEPENDENCY_WAITS, "target" => t.clone()).set(0.0);
        counter!(CHECKPOINT_WRITES, "target" => t.clone()).absolute(0);
        counter!(UNMAPPED_PRINCIPALS, "target" => t.clone()).absolute(0);
        for kind in ["database", "table", "partition", "frame"] {
            counter!(DEAD_LETTERS, "target" => t.clone(), "kind" => kind).absolute(0);
        }
    }
    counter!(DEAD_LETTERS, "target" => CAPTURE_EVENTS, "kind" => "event").absolute(0);
    counter!(ARCHIVE_SEGMENTS).absolute(0);
    // 0 until the archive is read (and while it is empty).
    gauge!(ARCHIVE_TAIL_BYTES).set(0.0);
    gauge!(ARCHIVE_EARLIEST_RESTORABLE).set(0.0);
    counter!(ARCHIVE_BYTES).absolute(0);
    counter!(ARCHIVE_RECORDS).absolute(0);
    for result in ["ok", "failed"] {
        counter!(ARCHIVE_COMPACTIONS, "result" => result).absolute(0);
    }
}

/// The dead-letter store (and `target` label) of events capture could not use: not a valid
/// target name, so it never collides with one.
pub const CAPTURE_EVENTS: &str = "capture.events";

pub fn records_captured(kind: &'static str, cause: &'static str, n: u64) {
    if n > 0 {
        counter!(RECORDS_CAPTURED, "kind" => kind, "cause" => cause).increment(n);
    }
}

/// Counts records a capture resolved, by kind and cause.
pub fn records_captured_of(records: &[crate::model::ChangeRecord]) {
    use crate::model::CauseKind;
    let mut counts: BTreeMap<(&'static str, &'static str), u64> = BTreeMap::new();
    for r in records {
        let cause = match r.cause.kind {
            CauseKind::Event => "event",
            CauseKind::Cloudtrail => "cloudtrail",
            CauseKind::Reconcile => "reconcile",
            CauseKind::Snapshot => "snapshot",
            CauseKind::Replay => "replay",
        };
        *counts.entry((r.key.kind().as_str(), cause)).or_default() += 1;
    }
    for ((kind, cause), n) in counts {
        records_captured(kind, cause, n);
    }
}

pub fn records_published(kind: &'static str, n: u64) {
    if n > 0 {
        counter!(RECORDS_PUBLISHED, "kind" => kind).increment(n);
    }
}

pub fn kinesis_put_retries(n: u64) {
    counter!(KINESIS_PUT_RETRIES).increment(n);
}

pub fn records_applied(target: &str, kind: &'static str, result: &'static str, n: u64) {
    if n > 0 {
        counter!(RECORDS_APPLIED, "target" => target.to_string(), "kind" => kind, "result" => result).increment(n);
    }
}

pub fn target_api_call(target: &str, operation: &str, outcome: &'static str) {
    counter!(TARGET_API_CALLS, "target" => target.to_string(), "operation" => operation.to_string(), "outcome" => outcome)
        .increment(1);
}

pub fn source_api_call(operation: &str, outcome: &'static str) {
    counter!(SOURCE_API_CALLS, "operation" => operation.to_string(), "outcome" => outcome).increment(1);
}

/// `stage`: capture, publish, consume or apply; `service`: glue or kinesis.
pub fn throttled(stage: &'static str, service: &'static str, n: u64) {
    if n > 0 {
        counter!(THROTTLES, "stage" => stage, "service" => service).increment(n);
    }
}

/// Records parked: counted, and added to the target's depth.
pub fn dead_letters(target: &str, kind: &'static str, n: u64) {
    if n > 0 {
        counter!(DEAD_LETTERS, "target" => target.to_string(), "kind" => kind).increment(n);
        gauge!(DEAD_LETTER_DEPTH, "target" => target.to_string()).increment(n as f64);
    }
}

/// The depth as listed in the store (at start-up, periodically, after a replay).
pub fn dead_letter_depth(target: &str, depth: usize) {
    gauge!(DEAD_LETTER_DEPTH, "target" => target.to_string()).set(depth as f64);
}

/// Grants parked because their principal is unmapped in `target`.
pub fn unmapped_principals(target: &str, n: u64) {
    if n > 0 {
        counter!(UNMAPPED_PRINCIPALS, "target" => target.to_string()).increment(n);
    }
}

pub fn apply_retry(target: &str) {
    counter!(APPLY_RETRIES, "target" => target.to_string()).increment(1);
}

pub fn apply_concurrency_limit(target: &str, limit: usize) {
    gauge!(APPLY_CONCURRENCY_LIMIT, "target" => target.to_string()).set(limit as f64);
}

/// `delta`: +1 when a record starts waiting for its parent, -1 when it stops.
pub fn dependency_waits(target: &str, delta: f64) {
    gauge!(DEPENDENCY_WAITS, "target" => target.to_string()).increment(delta);
}

pub fn replication_lag(target: &str, shard: &str, seconds: f64) {
    gauge!(REPLICATION_LAG, "target" => target.to_string(), "shard" => shard.to_string()).set(seconds);
}

pub fn behind_latest(target: &str, shard: &str, millis: i64) {
    gauge!(KINESIS_BEHIND_LATEST, "target" => target.to_string(), "shard" => shard.to_string())
        .set(millis.max(0) as f64 / 1000.0);
}

/// Shard leases this worker holds for `group`.
pub fn leases_held(group: &str, n: usize) {
    gauge!(LEASES_HELD, "group" => group.to_string()).set(n as f64);
}

/// A lease of `group` taken from another worker.
pub fn lease_taken_over(group: &str) {
    counter!(LEASE_TAKEOVERS, "group" => group.to_string()).increment(1);
}

/// The lease and lock series of `group` born at 0 (`leases: true` adds the lease workers' own:
/// takeovers), so `increase()` sees their first event. `lakelog_leases_held` is set by each
/// round of the worker instead.
pub fn init_lease_series(group: &str, leases: bool) {
    counter!(LEASE_RENEW_FAILURES, "group" => group.to_string()).increment(0);
    if leases {
        counter!(LEASE_TAKEOVERS, "group" => group.to_string()).increment(0);
    }
}

/// A renewal (lease or lock) of `group` that failed or was lost.
pub fn lease_renew_failed(group: &str) {
    counter!(LEASE_RENEW_FAILURES, "group" => group.to_string()).increment(1);
}

pub fn checkpoint_written(target: &str) {
    counter!(CHECKPOINT_WRITES, "target" => target.to_string()).increment(1);
}

pub fn apply_batch_duration(target: &str, seconds: f64) {
    histogram!(APPLY_BATCH_DURATION, "target" => target.to_string()).record(seconds);
}

pub fn reconcile_run(ok: bool) {
    counter!(RECONCILE_RUNS, "outcome" => if ok { "ok" } else { "error" }).increment(1);
}

pub fn reconcile_drift(changed: u64, deleted: u64) {
    counter!(RECONCILE_DRIFT, "change" => "changed").increment(changed);
    counter!(RECONCILE_DRIFT, "change" => "deleted").increment(deleted);
}

pub fn events_received(outcome: &'static str, n: u64) {
    if n > 0 {
        counter!(EVENTS_RECEIVED, "outcome" => outcome).increment(n);
    }
}

/// Per target and shard: when the oldest pending change was captured and when the checkpoint
/// last moved (epoch ms).
#[derive(Debug, Clone, Copy, Default)]
struct ShardTimes {
    pending_since: Option<i64>,
    checkpoint_at: i64,
}

/// The timestamps behind the age gauges, shared by every consumer in the process.
#[derive(Debug, Default)]
pub struct ShardClocks {
    shards: Mutex<BTreeMap<(String, String), ShardTimes>>,
}

impl ShardClocks {
    /// The process-wide clocks.
    pub fn global() -> &'static ShardClocks {
        static CLOCKS: OnceLock<ShardClocks> = OnceLock::new();
        CLOCKS.get_or_init(ShardClocks::default)
    }

    fn update(&self, target: &str, shard: &str, f: impl FnOnce(&mut ShardTimes)) {
        if let Ok(mut shards) = self.shards.lock() {
            let times = shards
                .entry((target.to_string(), shard.to_string()))
                .or_insert_with(|| ShardTimes { pending_since: None, checkpoint_at: now_millis() });
            f(times);
        }
    }

    /// A consumer started on the shard; `checkpoint_at` is when its checkpoint was written, if any.
    pub fn opened(&self, target: &str, shard: &str, checkpoint_at: Option<i64>) {
        self.update(target, shard, |t| {
            if let Some(at) = checkpoint_at {
                t.checkpoint_at = at;
            }
        });
    }

    /// The oldest change read or known to be waiting in the stream (`None`: nothing pending).
    pub fn pending_since(&self, target: &str, shard: &str, since: Option<i64>) {
        self.update(target, shard, |t| t.pending_since = since);
    }

    pub fn checkpoint_moved(&self, target: &str, shard: &str, at: i64) {
        self.update(target, shard, |t| t.checkpoint_at = at);
    }

    /// (oldest unapplied age, checkpoint age) in seconds, per (target, shard), at `now`.
    fn ages(&self, now: i64) -> Vec<((String, String), f64, f64)> {
        let secs = |ms: i64| (ms.max(0) as f64) / 1000.0;
        self.shards
            .lock()
            .map(|s| {
                s.iter()
                    .map(|(k, t)| {
                        (k.clone(), t.pending_since.map_or(0.0, |p| secs(now - p)), secs(now - t.checkpoint_at))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Sets the age gauges from [`ShardClocks`].
pub fn refresh_ages() {
    for ((target, shard), unapplied, checkpoint) in ShardClocks::global().ages(now_millis()) {
        gauge!(OLDEST_UNAPPLIED_AGE, "target" => target.clone(), "shard" => shard.clone()).set(unapplied);
        gauge!(CHECKPOINT_AGE, "target" => target, "shard" => shard).set(checkpoint);
    }
}

/// A raw segment written by the archive.
pub fn archive_written(records: u64, bytes: u64) {
    counter!(ARCHIVE_SEGMENTS).increment(1);
    counter!(ARCHIVE_BYTES).increment(bytes);
    counter!(ARCHIVE_RECORDS).increment(records);
}

/// What the archive's manifest says now.
pub fn archive_state(tail_bytes: u64, earliest_restorable_ms: Option<i64>) {
    gauge!(ARCHIVE_TAIL_BYTES).set(tail_bytes as f64);
    if let Some(ms) = earliest_restorable_ms {
        gauge!(ARCHIVE_EARLIEST_RESTORABLE).set(ms as f64 / 1000.0);
    }
}

pub fn archive_compacted(ok: bool) {
    counter!(ARCHIVE_COMPACTIONS, "result" => if ok { "ok" } else { "failed" }).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_grow_while_nothing_moves_and_reset_when_caught_up() {
        let clocks = ShardClocks::default();
        clocks.opened("dr", "shard-0", Some(1_000));
        clocks.pending_since("dr", "shard-0", Some(5_000));
        let ages = clocks.ages(65_000);
        assert_eq!(ages, vec![(("dr".to_string(), "shard-0".to_string()), 60.0, 64.0)]);
        clocks.pending_since("dr", "shard-0", None);
        clocks.checkpoint_moved("dr", "shard-0", 64_000);
        assert_eq!(clocks.ages(65_000)[0].1, 0.0);
        assert_eq!(clocks.ages(65_000)[0].2, 1.0);
    }

    #[test]
    fn every_name_follows_the_conventions() {
        for name in ALL.iter().chain(&LEASE_ONLY) {
            assert!(name.starts_with("lakelog_"), "{name}");
            assert!(name.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{name}");
            assert!(!name.contains("millis"), "{name}: use base units (seconds)");
        }
        let unique: std::collections::BTreeSet<_> = ALL.iter().chain(&LEASE_ONLY).collect();
        assert_eq!(unique.len(), ALL.len() + LEASE_ONLY.len());
    }

    /// Every outcome of an event starts at zero, so an alert on parked or retried events sees
    /// the series before the first one happens.
    #[test]
    fn every_event_outcome_is_rendered_at_zero_from_the_start() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || init_series(&[]));
        let text = handle.render();
        for outcome in ["ok", "duplicate", "malformed", "failed", "retried"] {
            let line = format!("{EVENTS_RECEIVED}{{outcome=\"{outcome}\"}} 0");
            assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
        }
    }
}
