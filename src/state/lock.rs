//! The single-writer lock of `state.coordination.mode: single`: one expiring document per
//! consumer group in the state store (`locks/<stream>/<group>.json`), so a second process with
//! the same config is refused at start instead of fighting over checkpoints.
//!
//! - Taken with a compare-and-set: `If-None-Match` when there is no document, `If-Match` on the
//!   document's version when it is expired, released, or left by a dead process of this host
//!   (same host, and its pid is this one's or no longer running: a restart after a crash need not
//!   wait for the expiry). Otherwise it is refused with [`LockError::Held`], naming the holder.
//! - Renewed with `If-Match` every `renew_interval`, moving its expiry `lease_duration` ahead. A
//!   renewal that finds someone else's document has lost the lock for good ([`WriterLock::lost`]).
//! - Fenced: the lock [`holds`](Fence::holds) only until the local deadline of the last
//!   successful renewal ([`Timing::valid_for`]), so a process that cannot renew (paused, cut off
//!   from S3) stops writing before another may take the lock over.
//! - Released on a clean shutdown (a conditional write marking it released), so the next start
//!   does not wait.
//!
//! Expiry is judged by wall clock (`expires_at`) across processes; clocks are assumed to agree
//! within `renew_interval` (NTP does far better).
//!
//! Which commands take it: `run` (every target's group and the archive's), `archive` (the
//! archive's group) and `sync` without `--dry-run` (its targets' groups): the commands whose
//! consumer groups write checkpoints. Read-only commands, `restore`, `dlq` and `compact` (its
//! manifest writes are compare-and-set on their own) do not.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{info, warn};

use super::{load_json, save_json, DocError};
use crate::backend::state::{PutOutcome, SharedStore};
use crate::backend::AwsError;
use crate::lease::{host_name, process_id, Fence, Timing};
use crate::model::now_millis;

/// The lock document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockDoc {
    /// The holding process (host, pid and a random suffix).
    pub holder: String,
    pub host: String,
    pub pid: u32,
    /// When the holder took it (epoch ms).
    pub acquired_at: i64,
    /// Unless renewed, free from then on (epoch ms).
    pub expires_at: i64,
    /// Released by a clean shutdown.
    #[serde(default)]
    pub released: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("consumer group {group} is being consumed by another lakelog process ({holder} on host {host}, pid {pid}); its lock {location} expires in {expires_in_seconds}s unless that process renews it. Stop that process first, or share the stream between processes with state.coordination.mode: leases")]
    Held { group: String, holder: String, host: String, pid: u32, location: String, expires_in_seconds: i64 },
    #[error("lost the lock {location} of consumer group {group} to {holder} on host {host}; this process stopped consuming it")]
    Lost { group: String, location: String, holder: String, host: String },
    #[error("the lock {location} of consumer group {group}: {source}")]
    Aws { group: String, location: String, source: AwsError },
    #[error("the lock {location} of consumer group {group} is unreadable ({reason}); delete it if no lakelog process runs this config")]
    Corrupt { group: String, location: String, reason: String },
}

impl LockError {
    /// Another process holds the lock: the user's to resolve (exit code 2), not a failure.
    pub fn is_refusal(&self) -> bool {
        matches!(self, LockError::Held { .. })
    }
}

/// One consumer group's lock, held by this process.
#[derive(Debug)]
pub struct WriterLock {
    store: SharedStore,
    key: String,
    group: String,
    timing: Timing,
    /// The document as we last wrote it, and its version.
    held: tokio::sync::Mutex<(LockDoc, String)>,
    /// The lock holds until then (the local deadline of the last successful renewal).
    valid_until: Mutex<Instant>,
    lost: AtomicBool,
}

/// Where the lock of `group` on `stream` lives in the state store.
fn key_of(stream: &str, group: &str) -> String {
    format!("locks/{stream}/{group}.json")
}

/// The lock document of `group` as stored (`None`: never taken), for `status`.
pub async fn read(store: &SharedStore, stream: &str, group: &str) -> Result<Option<LockDoc>, LockError> {
    let key = key_of(stream, group);
    match load_json::<LockDoc>(&**store, &key).await {
        Ok(doc) => Ok(doc.map(|(d, _)| d)),
        Err(e) => Err(WriterLock::doc_error(store, &key, group, e)),
    }
}

/// Whether the process `pid` of this host is still running (Linux: `/proc/<pid>`; elsewhere it is
/// assumed to be, and the lock waits for its expiry).
fn running(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

impl WriterLock {
    /// Takes the lock of `group` on `stream`, or says who holds it.
    pub async fn acquire(
        store: SharedStore,
        stream: &str,
        group: &str,
        timing: Timing,
    ) -> Result<Arc<WriterLock>, LockError> {
        let key = key_of(stream, group);
        let (host, pid) = (host_name(), std::process::id());
        let holder = process_id();
        // Two processes racing for a free lock: one write wins, the other reads the winner's.
        for _ in 0..3 {
            let current =
                load_json::<LockDoc>(&*store, &key).await.map_err(|e| Self::doc_error(&store, &key, group, e))?;
            let version = match &current {
                None => None,
                Some((doc, version)) => {
                    let now = now_millis();
                    let free = doc.released
                        || now >= doc.expires_at
                        || (doc.host == host && (doc.pid == pid || !running(doc.pid)));
                    if !free {
                        return Err(LockError::Held {
                            group: group.to_string(),
                            holder: doc.holder.clone(),
                            host: doc.host.clone(),
                            pid: doc.pid,
                            location: format!("{}/{key}", store.location()),
                            expires_in_seconds: (doc.expires_at - now).max(0) / 1000 + 1,
                        });
                    }
                    Some(version.clone())
                }
            };
            let sent = Instant::now();
            let now = now_millis();
            let doc = LockDoc {
                holder: holder.clone(),
                host: host.clone(),
                pid,
                acquired_at: now,
                expires_at: now + millis(timing.lease_duration),
                released: false,
            };
            match save_json(&*store, &key, &doc, version.as_deref()).await {
                Ok(PutOutcome::Written(v)) => {
                    if let Some((old, _)) = current.filter(|(d, _)| !d.released) {
                        info!(group, previous = %old.holder, "took over the single-writer lock of a process that is gone");
                    }
                    return Ok(Arc::new(WriterLock {
                        store,
                        key,
                        group: group.to_string(),
                        timing,
                        held: tokio::sync::Mutex::new((doc, v)),
                        valid_until: Mutex::new(sent + timing.valid_for()),
                        lost: AtomicBool::new(false),
                    }));
                }
                Ok(PutOutcome::Conflict) => continue,
                Err(e) => return Err(Self::doc_error(&store, &key, group, e)),
            }
        }
        // Three lost races in a row: someone keeps writing it, which only a holder does.
        let current = load_json::<LockDoc>(&*store, &key).await.map_err(|e| Self::doc_error(&store, &key, group, e))?;
        let doc = current.map(|(d, _)| d);
        Err(LockError::Held {
            group: group.to_string(),
            holder: doc.as_ref().map_or_else(String::new, |d| d.holder.clone()),
            host: doc.as_ref().map_or_else(String::new, |d| d.host.clone()),
            pid: doc.as_ref().map_or(0, |d| d.pid),
            location: format!("{}/{key}", store.location()),
            expires_in_seconds: doc.map_or(0, |d| (d.expires_at - now_millis()).max(0) / 1000 + 1),
        })
    }

    fn doc_error(store: &SharedStore, key: &str, group: &str, e: DocError) -> LockError {
        let (group, location) = (group.to_string(), format!("{}/{key}", store.location()));
        match e {
            DocError::Aws(source) => LockError::Aws { group, location, source },
            DocError::Corrupt { reason, .. } => LockError::Corrupt { group, location, reason },
        }
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    /// Whether the lock was taken over by another process (for good).
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Moves the expiry ahead. A lock found rewritten by someone else is lost.
    pub async fn renew(&self) -> Result<(), LockError> {
        let mut held = self.held.lock().await;
        if self.lost() {
            return Err(self.lost_to(&held.0));
        }
        let sent = Instant::now();
        let mut doc = held.0.clone();
        doc.expires_at = now_millis() + millis(self.timing.lease_duration);
        match save_json(&*self.store, &self.key, &doc, Some(&held.1)).await {
            Ok(PutOutcome::Written(v)) => {
                *held = (doc, v);
                if let Ok(mut until) = self.valid_until.lock() {
                    *until = sent + self.timing.valid_for();
                }
                Ok(())
            }
            Ok(PutOutcome::Conflict) => {
                self.lost.store(true, Ordering::SeqCst);
                let now = load_json::<LockDoc>(&*self.store, &self.key).await.ok().flatten().map(|(d, _)| d);
                Err(self.lost_to(now.as_ref().unwrap_or(&held.0)))
            }
            Err(e) => Err(Self::doc_error(&self.store, &self.key, &self.group, e)),
        }
    }

    fn lost_to(&self, doc: &LockDoc) -> LockError {
        LockError::Lost {
            group: self.group.clone(),
            location: format!("{}/{}", self.store.location(), self.key),
            holder: doc.holder.clone(),
            host: doc.host.clone(),
        }
    }

    /// Marks the lock released (only if it is still ours), so the next start need not wait.
    pub async fn release(&self) {
        let held = self.held.lock().await;
        if self.lost() {
            return;
        }
        self.lost.store(true, Ordering::SeqCst);
        let doc = LockDoc { released: true, expires_at: now_millis(), ..held.0.clone() };
        match save_json(&*self.store, &self.key, &doc, Some(&held.1)).await {
            Ok(PutOutcome::Written(_)) => {}
            Ok(PutOutcome::Conflict) => {
                warn!(group = %self.group, "the single-writer lock was taken over before it was released")
            }
            Err(e) => {
                warn!(group = %self.group, error = %e, "cannot release the single-writer lock; the next start waits for its expiry")
            }
        }
    }
}

impl Fence for WriterLock {
    fn holds(&self, _shard: &str) -> bool {
        !self.lost() && self.valid_until.lock().is_ok_and(|until| Instant::now() < *until)
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The locks of a command's consumer groups, renewed in the background until released.
pub struct GroupLocks {
    locks: Vec<Arc<WriterLock>>,
    /// One renewing task per lock; dropped (aborted) with this.
    keepers: tokio::task::JoinSet<()>,
    /// Kept here too, so the channel stays open when there is nothing to renew.
    _report: Arc<watch::Sender<Option<String>>>,
    lost: watch::Receiver<Option<String>>,
}

impl GroupLocks {
    /// Takes every group's lock, or none: a refusal releases those already taken.
    pub async fn acquire(
        store: &SharedStore,
        stream: &str,
        groups: &[String],
        timing: Timing,
    ) -> Result<GroupLocks, LockError> {
        let mut locks = Vec::new();
        for g in groups {
            match WriterLock::acquire(store.clone(), stream, g, timing).await {
                Ok(l) => locks.push(l),
                Err(e) => {
                    for l in &locks {
                        l.release().await;
                    }
                    return Err(e);
                }
            }
        }
        let (tx, lost) = watch::channel(None);
        let tx = Arc::new(tx);
        let mut keepers = tokio::task::JoinSet::new();
        for l in &locks {
            // Born at 0, so `increase()` over it sees the first failure.
            crate::metrics::init_lease_series(&l.group, false);
            keepers.spawn(keep(l.clone(), timing.renew_interval, tx.clone()));
        }
        Ok(GroupLocks { locks, keepers, _report: tx, lost })
    }

    /// No locks (groups that run unfenced: unit tests).
    pub fn none() -> GroupLocks {
        let (tx, lost) = watch::channel(None);
        GroupLocks { locks: Vec::new(), keepers: tokio::task::JoinSet::new(), _report: Arc::new(tx), lost }
    }

    /// The lock of `group`.
    pub fn of(&self, group: &str) -> Option<Arc<WriterLock>> {
        self.locks.iter().find(|l| l.group == group).cloned()
    }

    /// Turns to the reason once a lock is lost to another process.
    pub fn lost(&self) -> watch::Receiver<Option<String>> {
        self.lost.clone()
    }

    /// Stops renewing and releases every lock (after the last checkpoint is written).
    pub async fn release(mut self) {
        self.keepers.abort_all();
        for l in &self.locks {
            l.release().await;
        }
    }
}

/// After a failed renewal (the store's retry policy has already given up), the next attempt
/// waits this long (or the renewal interval, if shorter): soon enough for more attempts to fit
/// before the fence closes, not a hot loop on a permanent error.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Renews one lock until it is lost (or the task is aborted at release).
///
/// Each lock has its own task, and a renewal is due `every` after the previous one was *sent*:
/// the fence only closes when no renewal succeeded for `Timing::valid_for` (7 s of the 10 s lock
/// with the defaults). Renewing the locks one after another and sleeping `every` after the whole
/// round (as this did before) made the gap between two renewals of a lock `every` plus the
/// latency of every lock's renewal: with three groups and a state bucket answering in about
/// 1.5 s under heavy load, every lock fenced itself and its groups restarted from their
/// checkpoints, though nobody else wanted them. Likewise a failed renewal waited a whole
/// interval before its next attempt, and one that failed slowly used the whole margin.
async fn keep(lock: Arc<WriterLock>, every: Duration, lost: Arc<watch::Sender<Option<String>>>) {
    // Acquired just now.
    let mut due = Instant::now() + every;
    loop {
        tokio::time::sleep_until(due).await;
        let sent = Instant::now();
        match lock.renew().await {
            Ok(()) => {
                let took = sent.elapsed();
                if took > every {
                    warn!(group = %lock.group, seconds = took.as_secs_f64(), "renewing the single-writer lock took longer than state.coordination.renew_interval; the state bucket is slow");
                }
                // Already past when the renewal took longer than the interval: at once.
                due = sent + every;
            }
            Err(e @ LockError::Lost { .. }) => {
                tracing::error!(group = %lock.group, error = %e, "lost the single-writer lock");
                crate::metrics::lease_renew_failed(&lock.group);
                let _ = lost.send(Some(e.to_string()));
                return;
            }
            Err(e) => {
                warn!(group = %lock.group, error = %e, "cannot renew the single-writer lock; retrying");
                crate::metrics::lease_renew_failed(&lock.group);
                due = Instant::now() + RETRY_AFTER_FAILURE.min(every);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::memory::state::MemoryStore;
    use crate::backend::state::{ListPage, StateStore, Stored};

    const T: Timing = Timing { lease_duration: Duration::from_secs(10), renew_interval: Duration::from_secs(3) };

    fn other_host(doc: &LockDoc) -> Vec<u8> {
        serde_json::to_vec(&LockDoc { host: "elsewhere".into(), ..doc.clone() }).expect("json")
    }

    #[tokio::test]
    async fn a_second_holder_is_refused_until_the_lock_expires_or_is_released() {
        let store: SharedStore = Arc::new(MemoryStore::new());
        let first = WriterLock::acquire(store.clone(), "s", "dr", T).await.expect("first");
        // A live holder on another host: refused, named.
        let key = "locks/s/dr.json";
        let doc: LockDoc = serde_json::from_slice(&store.get(key).await.unwrap().unwrap().bytes).unwrap();
        store.put(key, other_host(&doc)).await.unwrap();
        let refused = WriterLock::acquire(store.clone(), "s", "dr", T).await.unwrap_err();
        assert!(refused.is_refusal() && refused.to_string().contains(&doc.holder), "{refused}");
        // The first process's renewal finds a document it did not write: lost, fenced.
        assert!(matches!(first.renew().await, Err(LockError::Lost { .. })));
        assert!(!first.holds("any"), "a lost lock fences");
        // Expired: taken over.
        let expired = LockDoc { expires_at: now_millis() - 1, ..doc.clone() };
        store.put(key, other_host(&expired)).await.unwrap();
        let second = WriterLock::acquire(store.clone(), "s", "dr", T).await.expect("expired lock is taken over");
        assert!(second.holds("any"));
        second.renew().await.expect("the holder renews");
        second.release().await;
        assert!(!second.holds("any"));
        WriterLock::acquire(store.clone(), "s", "dr", T).await.expect("a released lock is free");
        WriterLock::acquire(store.clone(), "s", "archive.segments", T).await.expect("another group's lock is its own");
    }

    /// The state bucket under load: conditional writes (renewals) of keys under `prefix` answer
    /// after `delay`; the next `fail` of them fail, after `fail_delay` more (the store's retries
    /// used up).
    #[derive(Debug, Default)]
    struct Slow {
        inner: MemoryStore,
        prefix: String,
        delay: Duration,
        fail: std::sync::atomic::AtomicU32,
        fail_delay: Duration,
    }

    #[async_trait::async_trait]
    impl StateStore for Slow {
        fn location(&self) -> String {
            self.inner.location()
        }
        async fn get(&self, key: &str) -> Result<Option<Stored>, AwsError> {
            self.inner.get(key).await
        }
        async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<String, AwsError> {
            self.inner.put(key, bytes).await
        }
        async fn put_if_absent(&self, key: &str, bytes: Vec<u8>) -> Result<PutOutcome, AwsError> {
            self.inner.put_if_absent(key, bytes).await
        }
        async fn put_if_match(&self, key: &str, bytes: Vec<u8>, version: &str) -> Result<PutOutcome, AwsError> {
            if key.starts_with(&self.prefix) {
                tokio::time::sleep(self.delay).await;
                let failing = self.fail.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
                if failing.is_ok() {
                    tokio::time::sleep(self.fail_delay).await;
                    return Err(AwsError {
                        service: "memory",
                        operation: "put",
                        class: crate::backend::ErrorClass::Retryable,
                        code: None,
                        message: "slow, then failed".into(),
                    });
                }
            }
            self.inner.put_if_match(key, bytes, version).await
        }
        async fn list(&self, prefix: &str, after: Option<&str>) -> Result<ListPage, AwsError> {
            self.inner.list(prefix, after).await
        }
        async fn delete(&self, key: &str) -> Result<(), AwsError> {
            self.inner.delete(key).await
        }
    }

    /// Steps through `seconds` of (paused) time in 100 ms steps; every lock must hold throughout.
    async fn hold_throughout(locks: &GroupLocks, groups: &[String], seconds: u64) {
        for step in 0..seconds * 10 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            for g in groups {
                let lock = locks.of(g).expect("lock");
                assert!(lock.holds("x"), "{g} fenced itself at {:.1}s though nobody else wants it", step as f64 / 10.0);
            }
        }
        assert!(locks.lost().borrow().is_none());
    }

    fn groups() -> Vec<String> {
        ["dr", "dr2", "archive.segments"].map(String::from).to_vec()
    }

    /// Every renewal takes 1.5 s (the state bucket is slow for everyone): each lock's own
    /// latency is far within its 7 s margin, so none fences itself. (Renewed one after another,
    /// with the interval slept after the round, the third lock's renewal landed 7.5 s after the
    /// last one: fenced.)
    #[tokio::test(start_paused = true)]
    async fn slow_renewals_do_not_add_up_to_fence_a_lock() {
        let slow = Slow { prefix: "locks/".into(), delay: Duration::from_millis(1500), ..Default::default() };
        let store: SharedStore = Arc::new(slow);
        let locks = GroupLocks::acquire(&store, "s", &groups(), T).await.expect("locks");
        hold_throughout(&locks, &groups(), 40).await;
        locks.release().await;
    }

    /// A renewal fails after 2.5 s (retries used up): retried a second later, not a whole
    /// interval later, it lands within the lock's validity and no lock fences.
    #[tokio::test(start_paused = true)]
    async fn a_renewal_that_fails_slowly_is_retried_before_the_lock_fences() {
        let slow = Slow { prefix: "locks/s/dr.".into(), fail_delay: Duration::from_millis(2500), ..Default::default() };
        slow.fail.store(1, Ordering::SeqCst);
        let store: SharedStore = Arc::new(slow);
        let locks = GroupLocks::acquire(&store, "s", &groups(), T).await.expect("locks");
        hold_throughout(&locks, &groups(), 20).await;
        locks.release().await;
    }

    /// Failing for good: fenced once the validity of the last renewal is over, but the lock is
    /// not reported lost (it may still come back); taken by another process, it is.
    #[tokio::test(start_paused = true)]
    async fn only_a_lock_taken_by_another_process_is_lost() {
        let slow = Slow { prefix: "locks/".into(), delay: Duration::from_millis(10), ..Default::default() };
        slow.fail.store(u32::MAX, Ordering::SeqCst);
        let store: Arc<Slow> = Arc::new(slow);
        let shared: SharedStore = store.clone();
        let groups = vec!["dr".to_string()];
        let locks = GroupLocks::acquire(&shared, "s", &groups, T).await.expect("locks");
        let lock = locks.of("dr").expect("lock");
        tokio::time::sleep(T.valid_for() + Duration::from_millis(100)).await;
        assert!(!lock.holds("x"), "no renewal for the lock's validity: fenced");
        assert!(locks.lost().borrow().is_none(), "fenced, not lost");
        store.fail.store(0, Ordering::SeqCst);
        tokio::time::sleep(T.renew_interval).await;
        assert!(lock.holds("x"), "a renewal that lands again holds again");
        let key = "locks/s/dr.json";
        let doc: LockDoc = serde_json::from_slice(&store.inner.get(key).await.unwrap().unwrap().bytes).unwrap();
        store.inner.put(key, other_host(&doc)).await.unwrap();
        tokio::time::sleep(T.renew_interval * 2).await;
        assert!(locks.lost().borrow().is_some(), "taken over: lost");
        assert!(!lock.holds("x"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lock_not_renewed_in_time_fences_before_it_expires() {
        let store: SharedStore = Arc::new(MemoryStore::new());
        let lock = WriterLock::acquire(store.clone(), "s", "dr", T).await.expect("lock");
        tokio::time::advance(T.valid_for() - Duration::from_millis(1)).await;
        assert!(lock.holds("x"));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!lock.holds("x"), "past the local deadline, before the expiry others see");
        lock.renew().await.expect("a late renewal still lands: nobody took it");
        assert!(lock.holds("x"));
    }
}
