//! Every metric lakelog emits: names, labels and descriptions live here and nowhere else.
//!
//! Names follow `lakelog_<what>_<unit>`; counters end in `_total`. Labels are low-cardinality
//! (stage, target, shard, kind, operation, outcome) and never carry table names.
//! Emit per batch, not per record.

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};

pub const RECORDS_CAPTURED: &str = "lakelog_records_captured_total";
pub const RECORDS_PUBLISHED: &str = "lakelog_records_published_total";
pub const KINESIS_PUT_RETRIES: &str = "lakelog_kinesis_put_retries_total";
pub const RECORDS_APPLIED: &str = "lakelog_records_applied_total";
pub const TARGET_API_CALLS: &str = "lakelog_target_api_calls_total";
pub const SOURCE_API_CALLS: &str = "lakelog_source_api_calls_total";
pub const DEAD_LETTERS: &str = "lakelog_dead_letters_total";
pub const APPLY_RETRIES: &str = "lakelog_apply_retries_total";
pub const REPLICATION_LAG: &str = "lakelog_replication_lag_seconds";
pub const MILLIS_BEHIND_LATEST: &str = "lakelog_kinesis_millis_behind_latest";
pub const CHECKPOINT_WRITES: &str = "lakelog_checkpoint_writes_total";
pub const APPLY_BATCH_DURATION: &str = "lakelog_apply_batch_duration_seconds";
pub const RECONCILE_DRIFT: &str = "lakelog_reconcile_drift_total";
pub const EVENTS_RECEIVED: &str = "lakelog_events_received_total";

/// Describes every metric (call once at start-up, after installing a recorder).
pub fn describe() {
    describe_counter!(RECORDS_CAPTURED, "Change records read from the source, by kind and cause.");
    describe_counter!(RECORDS_PUBLISHED, "Change records acknowledged by Kinesis.");
    describe_counter!(KINESIS_PUT_RETRIES, "Kinesis entries re-sent after a partial PutRecords failure.");
    describe_counter!(RECORDS_APPLIED, "Change records applied to a target, by kind and result.");
    describe_counter!(TARGET_API_CALLS, "Requests sent to a target catalog, by operation and outcome.");
    describe_counter!(SOURCE_API_CALLS, "Requests sent to the source catalog by capture, by operation and outcome.");
    describe_counter!(DEAD_LETTERS, "Records parked in the dead-letter store, by target and kind.");
    describe_counter!(APPLY_RETRIES, "Retries of target writes after retryable errors, by target.");
    describe_gauge!(REPLICATION_LAG, Unit::Seconds, "Age of the newest change applied, per target and shard.");
    describe_gauge!(
        MILLIS_BEHIND_LATEST,
        "Kinesis MillisBehindLatest of the last GetRecords, per consumer group and shard."
    );
    describe_counter!(CHECKPOINT_WRITES, "Checkpoints written, per consumer group.");
    describe_counter!(
        RECONCILE_DRIFT,
        "Differences reconciliation found between the source and what lakelog recorded (lost events), by change."
    );
    describe_counter!(EVENTS_RECEIVED, "Events received from the queue, by outcome (ok, duplicate, malformed).");
    describe_histogram!(APPLY_BATCH_DURATION, Unit::Seconds, "Time to apply one shard batch to a target.");
}

pub fn records_captured(kind: &'static str, cause: &'static str, n: u64) {
    counter!(RECORDS_CAPTURED, "kind" => kind, "cause" => cause).increment(n);
}

pub fn records_published(n: u64) {
    counter!(RECORDS_PUBLISHED).increment(n);
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

pub fn dead_letters(target: &str, kind: &'static str, n: u64) {
    counter!(DEAD_LETTERS, "target" => target.to_string(), "kind" => kind).increment(n);
}

pub fn apply_retry(target: &str) {
    counter!(APPLY_RETRIES, "target" => target.to_string()).increment(1);
}

pub fn replication_lag(target: &str, shard: &str, seconds: f64) {
    gauge!(REPLICATION_LAG, "target" => target.to_string(), "shard" => shard.to_string()).set(seconds);
}

pub fn millis_behind_latest(group: &str, shard: &str, millis: i64) {
    gauge!(MILLIS_BEHIND_LATEST, "group" => group.to_string(), "shard" => shard.to_string()).set(millis as f64);
}

pub fn checkpoint_written(group: &str) {
    counter!(CHECKPOINT_WRITES, "group" => group.to_string()).increment(1);
}

pub fn apply_batch_duration(target: &str, seconds: f64) {
    histogram!(APPLY_BATCH_DURATION, "target" => target.to_string()).record(seconds);
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

pub fn source_api_call(operation: &str, outcome: &'static str) {
    counter!(SOURCE_API_CALLS, "operation" => operation.to_string(), "outcome" => outcome).increment(1);
}
