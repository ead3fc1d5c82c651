//! How far a consumer group has read each shard, so the applier can tell "the parent may still
//! come" from "the parent will not come".
//!
//! A table whose database is missing in the target may simply be early: its database can sit
//! behind on another shard's backlog. A fixed wait is the wrong rule under bursts and restarts.
//! The rule here: a missing parent can no longer arrive once **every shard of the group has been
//! read past the child's capture time** and no shard holds the parent in a batch it is still
//! applying. Until then the child waits.
//!
//! A shard has been read past time T when
//! - it has read a record captured at or after T (a shard holds its records in capture order), or
//! - it was caught up (an empty read, `MillisBehindLatest` 0) at a wall-clock time at least `grace` after T:
//!   a record reaches the stream a little after its capture (queues, publish retries), and
//!   `grace` (`apply.dependency_wait_seconds`) bounds that delay, or
//! - it is closed and read to its end, or it waits for its parent shards (its records were
//!   written after theirs; counting it would make a parent shard wait for its own children).
//!
//! A parent in a shard's current batch is "pending" until the applier has applied that batch's
//! objects of its kind (databases, then tables), so a child never gives up on a parent that a
//! blocked batch of another shard has read but not yet written.
//!
//! Under leases a shard another worker reads counts by what that worker wrote in its lease row
//! (the newest capture time it applied, when it was last caught up): what it has applied is in
//! the target, so a child here waits no longer for it. Without that, a child whose parent never
//! comes waited for ever, and its shard with it.
//!
//! Without a consumer group (a dead-letter replay, a dry run) nothing reports progress: the
//! watermark is detached and the applier falls back to waiting at most `grace`.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use crate::model::{ObjectKey, ObjectKind};

/// What the group knows about one shard.
#[derive(Debug, Clone, Default)]
struct ShardMark {
    /// Not read from yet (checkpoint loading, iterator opening): holds anything.
    opening: bool,
    /// Waiting for its parent shards, or ended: holds nothing older than what was read elsewhere.
    done: bool,
    /// Newest capture time read so far.
    newest: Option<i64>,
    /// Latest wall-clock time the shard was seen caught up.
    caught_up_at: Option<i64>,
    /// Parents (database and table upserts) in the batch being applied, not yet written.
    pending: HashSet<ObjectKey>,
    /// What another worker applied of it (newest capture time, caught up at), from its lease
    /// row: in the target already, whoever reads the shard now.
    elsewhere: (Option<i64>, Option<i64>),
}

impl ShardMark {
    /// A shard the group starts reading: one that waits for its parent shards holds nothing
    /// older than what they hold; any other may hold anything until it is read.
    fn new(after_parents: bool) -> ShardMark {
        ShardMark { opening: !after_parents, done: after_parents, ..Default::default() }
    }

    fn passed(&self, parent: &ObjectKey, t: i64, grace_ms: i64) -> bool {
        if self.pending.contains(parent) {
            return false;
        }
        if self.done {
            return true;
        }
        let past = |(newest, caught_up_at): (Option<i64>, Option<i64>)| {
            newest.is_some_and(|n| n >= t) || caught_up_at.is_some_and(|c| c >= t.saturating_add(grace_ms))
        };
        past(self.elsewhere) || (!self.opening && past((self.newest, self.caught_up_at)))
    }
}

/// The answer to "can this parent still arrive?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Some shard may still hold it: wait.
    Wait,
    /// Every shard is read past the child's capture time and none holds the parent.
    Passed,
    /// No consumer group reports progress.
    Detached,
}

/// Per-shard read progress of one consumer group, shared with its applier.
#[derive(Debug, Default)]
pub struct Watermark {
    shards: Mutex<Option<HashMap<String, ShardMark>>>,
    changed: Notify,
}

impl Watermark {
    fn lock(&self) -> MutexGuard<'_, Option<HashMap<String, ShardMark>>> {
        // Plain data that every update leaves consistent.
        self.shards.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, shard: &str, f: impl FnOnce(&mut ShardMark)) {
        if let Some(m) = self.lock().as_mut().and_then(|s| s.get_mut(shard)) {
            f(m);
        }
        self.changed.notify_waiters();
    }

    /// A group starts reading `shards`; `(id, waits_for_parents)`. Forgets any earlier run.
    pub fn attach(&self, shards: impl IntoIterator<Item = (String, bool)>) {
        let marks = shards.into_iter().map(|(id, after_parents)| (id, ShardMark::new(after_parents))).collect();
        *self.lock() = Some(marks);
        self.changed.notify_waiters();
    }

    /// Shards that appeared while the group runs (a reshard's children), `(id,
    /// waits_for_parents)` as for [`Watermark::attach`]; shards already known keep their marks.
    pub fn learned(&self, shards: impl IntoIterator<Item = (String, bool)>) {
        if let Some(marks) = self.lock().as_mut() {
            for (id, after_parents) in shards {
                marks.entry(id).or_insert_with(|| ShardMark::new(after_parents));
            }
        }
        self.changed.notify_waiters();
    }

    /// The group stopped: nobody reports progress any more.
    pub fn detach(&self) {
        *self.lock() = None;
        self.changed.notify_waiters();
    }

    /// The shard is being read (after its checkpoint, or from the trim horizon).
    pub fn opened(&self, shard: &str) {
        self.update(shard, |m| {
            m.opening = false;
            m.done = false;
        });
    }

    /// A batch was read: its newest capture time and the parents it holds (database and table
    /// upserts), pending until [`Watermark::settled`].
    pub fn batch_read(&self, shard: &str, newest: Option<i64>, parents: HashSet<ObjectKey>) {
        self.update(shard, |m| {
            m.newest = m.newest.max(newest);
            m.pending = parents;
        });
    }

    /// The batch's objects of `kind` are written (or dead-lettered).
    pub fn settled(&self, shard: &str, kind: ObjectKind) {
        self.update(shard, |m| m.pending.retain(|k| k.kind() != kind));
    }

    /// The batch is applied.
    pub fn batch_done(&self, shard: &str) {
        self.update(shard, |m| m.pending.clear());
    }

    /// An empty read at the shard's tip (`MillisBehindLatest` 0), at wall-clock `at`. Only an
    /// empty read counts: a full batch says little about what follows it (and the local
    /// emulator reports 0 behind for every read of an open shard).
    pub fn caught_up(&self, shard: &str, at: i64) {
        self.update(shard, |m| m.caught_up_at = m.caught_up_at.max(Some(at)));
    }

    /// This process stopped reading the shard (its lease went to another worker): what it holds
    /// is unknown here again. How far it had read is forgotten too: the batch it stopped in was
    /// read but never applied, and whoever reads the shard next starts at the last checkpoint,
    /// before it (kept, a retaken shard counted as read past that batch's parents before reading
    /// them again, and their children were dead-lettered).
    pub fn released(&self, shard: &str) {
        self.update(shard, |m| {
            m.opening = true;
            m.newest = None;
            m.caught_up_at = None;
            m.pending.clear();
        });
    }

    /// Another worker's lease row of the shard: the newest capture time it applied, when it was
    /// last caught up, and whether the shard is read to its end.
    pub fn elsewhere(&self, shard: &str, newest: Option<i64>, caught_up_at: Option<i64>, ended: bool) {
        self.update(shard, |m| {
            m.elsewhere = (m.elsewhere.0.max(newest), m.elsewhere.1.max(caught_up_at));
            m.done |= ended;
        });
    }

    /// The shard is closed and read to its end.
    pub fn ended(&self, shard: &str) {
        self.update(shard, |m| {
            m.done = true;
            m.pending.clear();
        });
    }

    /// Whether `parent` of a child captured at `captured_at` can still arrive.
    pub fn verdict(&self, parent: &ObjectKey, captured_at: i64, grace: Duration) -> Verdict {
        let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        match &*self.lock() {
            None => Verdict::Detached,
            Some(shards) if shards.values().all(|m| m.passed(parent, captured_at, grace_ms)) => Verdict::Passed,
            Some(_) => Verdict::Wait,
        }
    }

    /// Returns when any shard's progress changes, or after `at_most`.
    pub async fn changed(&self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, self.changed.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(name: &str) -> ObjectKey {
        ObjectKey::Database { catalog: "1".into(), database: name.into() }
    }

    fn group(shards: &[&str]) -> Watermark {
        let w = Watermark::default();
        w.attach(shards.iter().map(|s| (s.to_string(), false)));
        for s in shards {
            w.opened(s);
        }
        w
    }

    const GRACE: Duration = Duration::from_secs(30);

    #[test]
    fn a_child_waits_while_any_shard_is_behind_its_capture_time() {
        let w = group(&["a", "b"]);
        w.batch_read("a", Some(1_000), HashSet::new());
        assert_eq!(w.verdict(&db("d"), 1_000, GRACE), Verdict::Wait, "b has read nothing");
        w.batch_read("b", Some(999), HashSet::new());
        assert_eq!(w.verdict(&db("d"), 1_000, GRACE), Verdict::Wait, "b is behind");
        w.batch_read("b", Some(1_000), HashSet::new());
        assert_eq!(w.verdict(&db("d"), 1_000, GRACE), Verdict::Passed);
    }

    #[test]
    fn a_parent_in_a_batch_still_being_applied_is_waited_for_until_its_kind_is_settled() {
        let w = group(&["a", "b"]);
        w.batch_read("a", Some(2_000), HashSet::new());
        w.batch_read("b", Some(5_000), HashSet::from([db("d")]));
        assert_eq!(w.verdict(&db("d"), 2_000, GRACE), Verdict::Wait);
        assert_eq!(w.verdict(&db("other"), 2_000, GRACE), Verdict::Passed, "only that parent is pending");
        w.settled("b", ObjectKind::Table);
        assert_eq!(w.verdict(&db("d"), 2_000, GRACE), Verdict::Wait);
        w.settled("b", ObjectKind::Database);
        assert_eq!(w.verdict(&db("d"), 2_000, GRACE), Verdict::Passed);
    }

    #[test]
    fn a_caught_up_shard_passes_a_time_only_grace_later() {
        let w = group(&["a", "b"]);
        w.batch_read("a", Some(10_000), HashSet::new());
        w.caught_up("b", 10_000 + 29_999);
        assert_eq!(w.verdict(&db("d"), 10_000, GRACE), Verdict::Wait, "a parent may still be on its way");
        w.caught_up("b", 10_000 + 30_000);
        assert_eq!(w.verdict(&db("d"), 10_000, GRACE), Verdict::Passed);
    }

    #[test]
    fn opening_shards_hold_anything_ended_and_child_shards_hold_nothing_older() {
        let w = Watermark::default();
        w.attach([("a".to_string(), false), ("b".to_string(), false), ("child".to_string(), true)]);
        w.opened("a");
        w.batch_read("a", Some(1_000), HashSet::new());
        assert_eq!(w.verdict(&db("d"), 1_000, GRACE), Verdict::Wait, "b is still opening");
        w.ended("b");
        assert_eq!(w.verdict(&db("d"), 1_000, GRACE), Verdict::Passed);
        w.opened("child");
        assert_eq!(w.verdict(&db("d"), 1_000, GRACE), Verdict::Wait, "once read, the child counts");
    }

    #[test]
    fn a_shard_released_before_its_batch_was_applied_holds_its_parents_again_when_retaken() {
        let w = group(&["a", "b"]);
        w.batch_read("a", Some(9_000), HashSet::new());
        // b read a batch holding the database, then lost its lease before applying it.
        w.batch_read("b", Some(5_000), HashSet::from([db("d")]));
        w.caught_up("b", 60_000);
        w.released("b");
        assert_eq!(w.verdict(&db("d"), 2_000, GRACE), Verdict::Wait, "another worker reads b");
        // Retaken: reading starts again at the checkpoint, before the database.
        w.opened("b");
        assert_eq!(w.verdict(&db("d"), 2_000, GRACE), Verdict::Wait, "b has not read the database again");
        w.batch_read("b", Some(5_000), HashSet::from([db("d")]));
        w.batch_done("b");
        assert_eq!(w.verdict(&db("d"), 2_000, GRACE), Verdict::Passed);
    }

    #[test]
    fn a_shard_another_worker_reads_counts_by_what_its_lease_row_says_was_applied() {
        let w = Watermark::default();
        w.attach([("mine".to_string(), false), ("theirs".to_string(), false)]);
        w.opened("mine");
        w.batch_read("mine", Some(10_000), HashSet::new());
        assert_eq!(w.verdict(&db("d"), 5_000, GRACE), Verdict::Wait, "nothing known of theirs");
        w.elsewhere("theirs", Some(4_999), None, false);
        assert_eq!(w.verdict(&db("d"), 5_000, GRACE), Verdict::Wait, "applied up to before the child");
        w.elsewhere("theirs", None, Some(5_000 + 30_000), false);
        assert_eq!(w.verdict(&db("d"), 5_000, GRACE), Verdict::Passed, "idle there since, a grace after");
        assert_eq!(w.verdict(&db("d"), 6_000, GRACE), Verdict::Wait);
        w.elsewhere("theirs", Some(6_000), None, false);
        assert_eq!(w.verdict(&db("d"), 6_000, GRACE), Verdict::Passed, "what it applied only grows");
        // Taken here with a batch holding the parent: pending wins.
        w.opened("theirs");
        w.batch_read("theirs", Some(7_000), HashSet::from([db("d")]));
        assert_eq!(w.verdict(&db("d"), 6_000, GRACE), Verdict::Wait);
        w.elsewhere("other", None, None, true);
        let w = Watermark::default();
        w.attach([("a".to_string(), false)]);
        w.elsewhere("a", None, None, true);
        assert_eq!(w.verdict(&db("d"), 1, GRACE), Verdict::Passed, "read to its end elsewhere");
    }

    #[test]
    fn without_a_group_the_watermark_is_detached() {
        let w = Watermark::default();
        assert_eq!(w.verdict(&db("d"), 0, GRACE), Verdict::Detached);
        let w = group(&["a"]);
        w.detach();
        assert_eq!(w.verdict(&db("d"), 0, GRACE), Verdict::Detached);
    }
}
