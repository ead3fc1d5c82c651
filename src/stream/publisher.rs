//! The single way records enter the change log while `lakelog run` is running.
//!
//! Several capture sources (Glue events, CloudTrail, reconciliation, the initial snapshot) read
//! the source concurrently. The publisher serialises their batches, which gives two guarantees:
//!
//! - **Per-key order across sources**: batches are published one at a time, and within a batch
//!   the producer keeps per-key order, so stream order per key is publish order.
//! - **The ordering rule (gap-free start)**: every record carries `captured_at`, the time the read
//!   of its state *started*. A record is published only if it is not older than the last record
//!   published for its key; an older one is dropped, because the newer read already reflects at
//!   least as much. So a snapshot that read a table before an event-driven re-read can never
//!   overwrite the event's newer state, however late the snapshot's record arrives. Glue's
//!   VersionId/UpdateTime are not used: partitions and databases have no version, and
//!   UpdateTime has one-second resolution.
//!
//! `lakelog sync` publishes through it too ([`Publisher::publish_all`]), so there is one path
//! into the change log and both commands' records obey the same rule and leave the same memory.
//!
//! It also remembers, per key, the content hash last published, which is "the last state lakelog
//! recorded" that reconciliation compares the source with ([`RecordedMemory`], compact).
//!
//! Two locks: `order` serialises publishing and is held across the Kinesis call; `state` (the
//! memory and totals) is held only for moments, never across an await, so a reconciliation pass
//! reads the memory while events are being published. Only a publish call (holding `order`)
//! changes what is recorded, so the memory cannot change between its ordering check and its
//! update.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex as StateLock, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, Mutex};

use super::producer::{Producer, Published};
pub use super::recorded::{Recorded, RecordedMemory};
use super::StreamError;
use crate::model::seqno::SeqNo;
use crate::model::{ChangeRecord, ObjectKey, ObjectKind, Op};

#[derive(Debug, Default)]
struct State {
    recorded: RecordedMemory,
    last_sequence: BTreeMap<String, SeqNo>,
    published: u64,
    dropped_stale: u64,
}

/// Serialised, ordered publishing (see the module docs).
pub struct Publisher {
    producer: Producer,
    order: Mutex<()>,
    state: StateLock<State>,
    /// Held for a whole reconciliation pass: the memory's seen marks belong to one pass.
    passes: Mutex<()>,
}

/// The ordering rule: keeps the records that are not older than what was last published for
/// their key (nor than an earlier record of the same batch); returns them and the number dropped.
pub fn select_fresh(recorded: &RecordedMemory, records: Vec<ChangeRecord>) -> (Vec<ChangeRecord>, u64) {
    let mut accepted: HashMap<ObjectKey, i64> = HashMap::new();
    let mut fresh = Vec::with_capacity(records.len());
    let mut stale = 0;
    for r in records {
        let last = accepted.get(&r.key).copied().or_else(|| recorded.get(&r.key).map(|x| x.captured_at));
        if last.is_some_and(|t| r.captured_at < t) {
            stale += 1;
            continue;
        }
        accepted.insert(r.key.clone(), r.captured_at);
        fresh.push(r);
    }
    (fresh, stale)
}

/// Forgets what was recorded for the objects inside dropped tables and databases: Glue deletes a
/// table's partitions (and a database's tables) with it, so they no longer exist to compare with,
/// and remembering them would make the next reconciliation delete every one again. A child
/// recorded after its parent's delete (a re-created table) is kept.
fn forget_children(recorded: &mut RecordedMemory, dropped: &[&ChangeRecord]) {
    if dropped.is_empty() {
        return;
    }
    let dropped: Vec<(&ObjectKey, i64)> = dropped.iter().map(|d| (&d.key, d.captured_at)).collect();
    recorded.forget_children(&dropped);
}

/// One reconciliation pass's view of the memory (from [`Publisher::begin_pass`]); passes run one
/// at a time.
pub struct Pass<'a> {
    publisher: &'a Publisher,
    _one_at_a_time: tokio::sync::MutexGuard<'a, ()>,
}

impl Pass<'_> {
    /// What was recorded for each record's key, marking the keys seen by this pass.
    pub fn see(&self, records: &[ChangeRecord]) -> Vec<Option<Recorded>> {
        let mut state = self.publisher.state();
        records.iter().map(|r| state.recorded.see(&r.key)).collect()
    }

    /// The keys recorded as existing before `started` that this pass neither saw nor recorded
    /// (their parent's delete standing for children of a gone table or database).
    pub fn unseen(&self, started: i64) -> Vec<ObjectKey> {
        self.publisher.state().recorded.end_pass(started)
    }
}

/// What one `publish` call (or a whole `publish_all`) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishOutcome {
    pub published: u64,
    /// Records dropped because a newer read of the same object was already published.
    pub stale: u64,
    /// Kinesis records (frames) the published records were packed into.
    pub frames: u64,
    /// PutRecords calls made.
    pub put_calls: u64,
}

impl PublishOutcome {
    fn add(&mut self, other: PublishOutcome) {
        self.published += other.published;
        self.stale += other.stale;
        self.frames += other.frames;
        self.put_calls += other.put_calls;
    }
}

/// Records [`Publisher::publish_all`] gathers into one `publish` call at most: big enough that a
/// table's partitions pack into full frames (about the producer's flush size at ~1 KB a record).
const STREAM_BATCH_RECORDS: usize = 4096;
/// How long `publish_all` waits for a batch to fill once its first record arrived.
const STREAM_LINGER: Duration = Duration::from_millis(200);

impl Publisher {
    pub fn new(producer: Producer) -> Publisher {
        Publisher { producer, order: Mutex::default(), state: StateLock::default(), passes: Mutex::default() }
    }

    /// The state, held for a moment (a panic elsewhere while holding it leaves nothing half-done
    /// that matters more than publishing on).
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a reconciliation pass (waiting for the one running, if any).
    pub async fn begin_pass(&self) -> Pass<'_> {
        let guard = self.passes.lock().await;
        self.state().recorded.begin_pass();
        Pass { publisher: self, _one_at_a_time: guard }
    }

    /// Publishes the records that are not stale; returns once Kinesis acknowledged them.
    pub async fn publish(&self, records: Vec<ChangeRecord>) -> Result<PublishOutcome, StreamError> {
        let _order = self.order.lock().await;
        let (fresh, stale) = select_fresh(&self.state().recorded, records);
        if fresh.is_empty() {
            self.state().dropped_stale += stale;
            return Ok(PublishOutcome { stale, ..PublishOutcome::default() });
        }
        let out: Published = self.producer.publish_batch(&fresh).await?;
        let mut state = self.state();
        let mut dropped = Vec::new();
        for r in &fresh {
            let hash = match r.op {
                Op::Upsert => Some(r.content_hash),
                Op::Delete => None,
            };
            state.recorded.insert(&r.key, Recorded { captured_at: r.captured_at, hash });
            if r.op == Op::Delete && r.key.kind() != ObjectKind::Partition {
                dropped.push(r);
            }
        }
        forget_children(&mut state.recorded, &dropped);
        for (shard, seq) in out.last_sequence {
            let last = state.last_sequence.entry(shard).or_insert_with(|| seq.clone());
            if seq > *last {
                *last = seq;
            }
        }
        state.published += fresh.len() as u64;
        state.dropped_stale += stale;
        Ok(PublishOutcome { published: fresh.len() as u64, stale, frames: out.frames, put_calls: out.put_calls })
    }

    /// Publishes everything received on `rx` until it closes, batch by batch through
    /// [`Publisher::publish`]; returns once Kinesis acknowledged the last one.
    pub async fn publish_all(&self, mut rx: mpsc::Receiver<ChangeRecord>) -> Result<PublishOutcome, StreamError> {
        let mut total = PublishOutcome::default();
        let mut batch = Vec::with_capacity(STREAM_BATCH_RECORDS);
        while rx.recv_many(&mut batch, STREAM_BATCH_RECORDS).await > 0 {
            let linger = tokio::time::sleep(STREAM_LINGER);
            tokio::pin!(linger);
            let mut closed = false;
            while batch.len() < STREAM_BATCH_RECORDS {
                let room = STREAM_BATCH_RECORDS - batch.len();
                tokio::select! {
                    n = rx.recv_many(&mut batch, room) => if n == 0 {
                        closed = true;
                        break;
                    },
                    () = &mut linger => break,
                }
            }
            total.add(self.publish(std::mem::take(&mut batch)).await?);
            if closed {
                break;
            }
        }
        Ok(total)
    }

    /// The highest acknowledged sequence number per shard (where consumers must drain to).
    pub async fn last_sequence(&self) -> BTreeMap<String, SeqNo> {
        self.state().last_sequence.clone()
    }

    /// A copy of what was last published for each key, for inspection and tests: it builds every
    /// key, so nothing in the pipeline calls it (reconciliation uses [`Publisher::begin_pass`]).
    pub async fn recorded(&self) -> HashMap<ObjectKey, Recorded> {
        self.state().recorded.iter().collect()
    }

    /// Whether the last record published for `key` (by this process, or remembered from the
    /// archive) is an upsert: the object is live as far as the stream knows.
    pub fn has_live(&self, key: &ObjectKey) -> bool {
        self.state().recorded.get(key).is_some_and(|r| r.hash.is_some())
    }

    /// Remembers what an earlier run published (rebuilt from the archive at start), so the first
    /// reconciliation pass finds what was deleted while nothing ran. What this run has already
    /// recorded, newer, wins.
    pub fn remember(&self, recorded: impl IntoIterator<Item = (ObjectKey, Recorded)>) -> u64 {
        let mut state = self.state();
        let mut n = 0;
        for (key, r) in recorded {
            if state.recorded.get(&key).is_none_or(|have| have.captured_at < r.captured_at) {
                state.recorded.insert(&key, r);
                n += 1;
            }
        }
        n
    }

    /// Totals: records published, stale records dropped.
    pub async fn totals(&self) -> (u64, u64) {
        let s = self.state();
        (s.published, s.dropped_stale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CatalogObject, Cause, CauseKind, Origin, Table};

    fn rec(table: &str, desc: &str, at: i64, kind: CauseKind) -> ChangeRecord {
        let t = Table {
            database_name: "db".into(),
            name: table.into(),
            description: Some(desc.into()),
            ..Default::default()
        };
        ChangeRecord::upsert(
            CatalogObject::Table(t),
            &Origin { catalog_id: "1".into(), ..Default::default() },
            Cause { kind, event_id: None },
            at,
        )
    }

    fn key(table: Option<&str>, values: Option<&str>) -> ObjectKey {
        let (catalog, database) = ("1".to_string(), "db".to_string());
        match (table, values) {
            (None, _) => ObjectKey::Database { catalog, database },
            (Some(t), None) => ObjectKey::Table { catalog, database, table: t.into() },
            (Some(t), Some(v)) => ObjectKey::Partition { catalog, database, table: t.into(), values: vec![v.into()] },
        }
    }

    fn delete(key: ObjectKey, at: i64) -> ChangeRecord {
        let origin = Origin { catalog_id: "1".into(), ..Default::default() };
        ChangeRecord::delete(key, &origin, Cause { kind: CauseKind::Event, event_id: None }, at)
    }

    #[test]
    fn a_recorded_delete_forgets_the_children_recorded_before_it() {
        let mut recorded = RecordedMemory::default();
        for (k, at) in [
            (key(Some("t"), Some("1")), 100),
            (key(Some("t"), Some("2")), 100),
            // Re-created after the drop and read again: it exists, keep it.
            (key(Some("t"), Some("3")), 300),
            (key(Some("t2"), Some("1")), 100),
            (key(Some("u"), None), 100),
        ] {
            recorded.insert(&k, Recorded { captured_at: at, hash: Some(1) });
        }
        let drop_t = delete(key(Some("t"), None), 200);
        forget_children(&mut recorded, &[&drop_t]);
        let mut left: Vec<_> = recorded.iter().map(|(k, _)| k).collect();
        left.sort();
        assert_eq!(left, vec![key(Some("u"), None), key(Some("t"), Some("3")), key(Some("t2"), Some("1"))]);

        let drop_db = delete(key(None, None), 400);
        forget_children(&mut recorded, &[&drop_db]);
        let left: Vec<_> = recorded.iter().collect();
        assert!(recorded.is_empty(), "a database's tables and partitions go with it: {left:?}");
    }

    #[test]
    fn a_snapshot_read_older_than_a_published_event_read_is_dropped() {
        let event = rec("t", "new", 200, CauseKind::Event);
        let mut recorded = RecordedMemory::default();
        recorded.insert(&event.key, Recorded { captured_at: 200, hash: Some(event.content_hash) });
        // The snapshot read the table at 100, before the event's re-read, and arrives late.
        let (fresh, stale) = select_fresh(
            &recorded,
            vec![rec("t", "old", 100, CauseKind::Snapshot), rec("u", "x", 100, CauseKind::Snapshot)],
        );
        assert_eq!(stale, 1);
        assert_eq!(fresh.len(), 1);
        assert_eq!(fresh[0].key.table(), Some("u"));
    }

    #[test]
    fn within_a_batch_an_older_read_after_a_newer_one_is_dropped_and_ties_are_kept() {
        let (fresh, stale) = select_fresh(
            &RecordedMemory::default(),
            vec![
                rec("t", "b", 300, CauseKind::Event),
                rec("t", "a", 250, CauseKind::Snapshot),
                rec("t", "c", 300, CauseKind::Reconcile),
            ],
        );
        assert_eq!(stale, 1);
        let descs: Vec<_> = fresh
            .iter()
            .map(|r| match &r.state {
                Some(CatalogObject::Table(t)) => t.description.clone().unwrap_or_default(),
                _ => String::new(),
            })
            .collect();
        assert_eq!(descs, vec!["b", "c"]);
    }
}
