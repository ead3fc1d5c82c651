//! One process's share of a consumer group's leases (`state.coordination.mode: leases`), the
//! KCL's lease lifecycle over a [`LeaseStore`]:
//!
//! - **Rows**: every shard of the stream gets a row (unowned, at `TRIM_HORIZON`, with its parents
//!   and hash range) the first time any worker sees it.
//! - **Renewal**: every `renew_interval` the worker moves each of its leases' counter on. A
//!   renewal that loses the conditional write means another worker took the lease: it is dropped
//!   at once. A lease is [held](Fence::holds) only until the local deadline of its last
//!   successful write ([`Timing::valid_for`]), so a worker that cannot renew (paused, cut off)
//!   stops writing before the others may take it.
//! - **Expiry**: a lease whose counter a worker has seen unchanged for `lease_duration` (by its
//!   own clock, as the KCL does; no clocks are compared) is expired and may be taken.
//! - **Taking and balancing**: a worker takes unowned and expired leases up to its share
//!   (leases / live workers, rounded up); holding fewer with none free, it takes one lease a
//!   round from the busiest worker if that one holds more than the share (or the share, while
//!   this worker lacks two or more).
//! - **Parents first**: a child shard's lease is taken only once every parent's lease reached
//!   `SHARD_END` (a parent with no row has left the stream's retention), so per-key order holds
//!   across a reshard whichever workers read the shards.
//! - **Checkpoints** live in the row and are conditional writes on its counter, so a worker that
//!   lost a lease can never checkpoint past the new owner.
//! - **Release**: on a clean stop the worker clears its leases' owner, so the others take them at
//!   their next round instead of waiting for the expiry.
//!
//! Takeover bound: a dead worker's lease is taken within `lease_duration` + 2 × `renew_interval`
//! of its last renewal (up to one round to see the last counter, the duration, up to one round
//! to act); 10 s + 6 s with the defaults.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tracing::{info, warn};

use super::{Fence, Timing};
use crate::backend::changelog::{ChangeLog, ShardInfo};
use crate::backend::lease::{Lease, LeaseStore, Swap, SHARD_END, TRIM_HORIZON};
use crate::backend::AwsError;
use crate::metrics as m;

/// A lease this worker holds.
#[derive(Debug, Clone)]
struct Held {
    /// The row as this worker last wrote it.
    lease: Lease,
    /// It may write until then.
    valid_until: Instant,
}

#[derive(Debug, Default)]
struct State {
    /// By shard.
    held: HashMap<String, Held>,
    /// Every lease's counter as last seen, and since when (by this worker's clock), by shard.
    seen: HashMap<String, (u64, Instant)>,
    /// Every row as last listed (other workers' progress, for the group's watermark).
    listed: Vec<Lease>,
    /// When each held shard was last found caught up, not yet written to its row.
    caught_up: HashMap<String, i64>,
}

/// What one round did (for tests and logs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Round {
    pub renewed: usize,
    pub lost: Vec<String>,
    pub taken: Vec<String>,
}

/// One worker of one consumer group.
#[derive(Debug)]
pub struct Worker {
    store: Arc<dyn LeaseStore>,
    group: String,
    id: String,
    timing: Timing,
    state: Mutex<State>,
    /// This worker's writes of its rows, one at a time: a renewal and a checkpoint of one lease
    /// must not race each other on its counter.
    writes: tokio::sync::Mutex<()>,
    changed: Notify,
    taking: AtomicBool,
}

impl Worker {
    pub fn new(store: Arc<dyn LeaseStore>, group: &str, id: &str, timing: Timing) -> Arc<Worker> {
        Arc::new(Worker {
            store,
            group: group.to_string(),
            id: id.to_string(),
            timing,
            state: Mutex::default(),
            writes: tokio::sync::Mutex::new(()),
            changed: Notify::new(),
            taking: AtomicBool::new(true),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    /// How often the worker renews its leases and lists the table.
    pub fn renew_interval(&self) -> std::time::Duration {
        self.timing.renew_interval
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Plain maps every update leaves consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The shards this worker holds now.
    pub fn held(&self) -> Vec<String> {
        let mut h: Vec<String> = self.state().held.keys().cloned().collect();
        h.sort();
        h
    }

    /// The lease of `shard` as this worker last wrote it, while it holds it.
    pub fn lease(&self, shard: &str) -> Option<Lease> {
        self.state().held.get(shard).map(|h| h.lease.clone())
    }

    /// Returns once this worker holds `shard`.
    pub async fn wait_held(&self, shard: &str) {
        loop {
            let notified = self.changed.notified();
            if self.holds(shard) {
                return;
            }
            let _ = tokio::time::timeout(self.timing.renew_interval, notified).await;
        }
    }

    /// Gives `shard` up locally (its write was lost, or its consumer stopped on a fence).
    pub fn forget(&self, shard: &str) {
        let mut state = self.state();
        state.caught_up.remove(shard);
        if state.held.remove(shard).is_some() {
            drop(state);
            self.changed.notify_waiters();
        }
    }

    /// Creates the rows of shards that have none.
    pub async fn ensure(&self, shards: &[ShardInfo]) -> Result<(), AwsError> {
        let known: HashSet<String> =
            self.store.list(&self.group).await?.iter().map(|l| l.shard().to_string()).collect();
        for s in shards.iter().filter(|s| !known.contains(&s.shard_id)) {
            let lease = Lease {
                key: Lease::key_of(&self.group, &s.shard_id),
                checkpoint: TRIM_HORIZON.to_string(),
                parents: s.parents().map(str::to_string).collect(),
                hash_range: Some((s.hash_range.start.to_string(), s.hash_range.end.to_string())),
                ..Default::default()
            };
            // Lost: another worker created it first, which is as good.
            self.store.create(&lease).await?;
        }
        Ok(())
    }

    /// Writes `next` (the held row changed) if the row is still at `expected`; keeps or drops
    /// the lease by the outcome. Called with `writes` held.
    async fn write(&self, shard: &str, next: Lease, expected: u64) -> Result<Swap, AwsError> {
        let sent = Instant::now();
        let swap = self.store.update(&next, expected).await?;
        let mut state = self.state();
        match swap {
            Swap::Done if next.owner.as_deref() == Some(&self.id) => {
                state.seen.insert(shard.to_string(), (next.counter, sent));
                state.held.insert(shard.to_string(), Held { lease: next, valid_until: sent + self.timing.valid_for() });
            }
            _ => {
                state.held.remove(shard);
                state.caught_up.remove(shard);
            }
        }
        drop(state);
        self.changed.notify_waiters();
        Ok(swap)
    }

    /// The held row of `shard` with its counter moved on (and the latest time its consumer
    /// was caught up), or `None` when it is not held.
    fn next_of(&self, shard: &str) -> Option<(Lease, u64)> {
        let state = self.state();
        let held = state.held.get(shard).map(|h| h.lease.clone())?;
        let expected = held.counter;
        let caught_up_at = held.caught_up_at.max(state.caught_up.get(shard).copied());
        Some((Lease { counter: expected + 1, caught_up_at, ..held }, expected))
    }

    /// The consumer of held `shard` read its tip with everything before applied, at `at`
    /// (epoch ms): the next write of its row says so.
    pub fn caught_up(&self, shard: &str, at: i64) {
        let mut state = self.state();
        if state.held.contains_key(shard) {
            let t = state.caught_up.entry(shard.to_string()).or_insert(at);
            *t = (*t).max(at);
        }
    }

    /// The rows, as last listed, of the shards this worker does not hold: how far the others
    /// have applied them.
    pub fn others(&self) -> Vec<Lease> {
        let state = self.state();
        state.listed.iter().filter(|l| !state.held.contains_key(l.shard())).cloned().collect()
    }

    /// Writes a checkpoint into the held lease of `shard`. [`Swap::Lost`]: the lease is no
    /// longer this worker's (taken, or lapsed here), and nothing was written.
    pub async fn checkpoint(
        &self,
        shard: &str,
        sequence: &str,
        records: u64,
        newest_captured_at: Option<i64>,
        at: i64,
    ) -> Result<Swap, AwsError> {
        let _w = self.writes.lock().await;
        if !self.holds(shard) {
            self.forget(shard);
            return Ok(Swap::Lost);
        }
        let Some((mut next, expected)) = self.next_of(shard) else { return Ok(Swap::Lost) };
        next.checkpoint = sequence.to_string();
        next.checkpoint_sub = 0;
        next.owner_switches = 0;
        next.records = records;
        next.newest_captured_at = newest_captured_at;
        next.checkpoint_at = Some(at);
        self.write(shard, next, expected).await
    }

    /// `shard` is read to its end: its lease is marked `SHARD_END` and let go, so its children
    /// can be leased.
    pub async fn shard_ended(&self, shard: &str) -> Result<Swap, AwsError> {
        let _w = self.writes.lock().await;
        if !self.holds(shard) {
            self.forget(shard);
            return Ok(Swap::Lost);
        }
        let Some((mut next, expected)) = self.next_of(shard) else { return Ok(Swap::Lost) };
        next.checkpoint = SHARD_END.to_string();
        next.checkpoint_sub = 0;
        next.owner = None;
        let swap = self.write(shard, next, expected).await?;
        info!(group = %self.group, shard, "shard read to its end; its children may be leased");
        Ok(swap)
    }

    /// Renews every held lease once.
    async fn renew(&self, round: &mut Round) {
        for shard in self.held() {
            let _w = self.writes.lock().await;
            let Some((next, expected)) = self.next_of(&shard) else { continue };
            match self.write(&shard, next, expected).await {
                Ok(Swap::Done) => round.renewed += 1,
                Ok(Swap::Lost) => {
                    warn!(group = %self.group, shard, "lease taken by another worker; its consumer stops before its next write");
                    m::lease_renew_failed(&self.group);
                    round.lost.push(shard);
                }
                Err(e) => {
                    warn!(group = %self.group, shard, error = %e, "cannot renew the lease; retrying at the next round");
                    m::lease_renew_failed(&self.group);
                }
            }
        }
    }

    /// One round: renew, then (unless stopping) look at the table and take what is due.
    pub async fn round(&self) -> Result<Round, AwsError> {
        let mut round = Round::default();
        self.renew(&mut round).await;
        // Listed while stopping too: a batch draining here may wait on another worker's shard.
        let leases = self.store.list(&self.group).await?;
        self.state().listed.clone_from(&leases);
        if !self.taking.load(Ordering::SeqCst) {
            m::leases_held(&self.group, self.held().len());
            return Ok(round);
        }
        for lease in self.choose(&leases) {
            let shard = lease.shard().to_string();
            let from = lease.owner.clone().filter(|o| *o != self.id);
            let mut next = lease.clone();
            next.counter += 1;
            next.owner = Some(self.id.clone());
            if from.is_some() {
                next.owner_switches += 1;
            }
            let _w = self.writes.lock().await;
            if self.write(&shard, next, lease.counter).await? == Swap::Done {
                if let Some(from) = &from {
                    info!(group = %self.group, shard, from = %from, "took the lease over");
                    m::lease_taken_over(&self.group);
                } else {
                    info!(group = %self.group, shard, "took a free lease");
                }
                round.taken.push(shard);
            }
        }
        m::leases_held(&self.group, self.held().len());
        Ok(round)
    }

    /// The leases to take this round, from the table as just read.
    fn choose(&self, leases: &[Lease]) -> Vec<Lease> {
        let now = Instant::now();
        let mut state = self.state();
        for l in leases {
            let shard = l.shard().to_string();
            match state.seen.get(&shard) {
                Some((c, _)) if *c == l.counter => {}
                _ => {
                    state.seen.insert(shard, (l.counter, now));
                }
            }
        }
        let ended: HashSet<&str> = leases.iter().filter(|l| l.ended()).map(|l| l.shard()).collect();
        let rows: HashSet<&str> = leases.iter().map(|l| l.shard()).collect();
        // Leasable: not ended, every parent ended (or gone from the table and the stream).
        let active: Vec<&Lease> = leases
            .iter()
            .filter(|l| !l.ended())
            .filter(|l| l.parents.iter().all(|p| ended.contains(p.as_str()) || !rows.contains(p.as_str())))
            .collect();
        let expired = |l: &Lease| {
            state.seen.get(l.shard()).is_some_and(|(_, since)| now.duration_since(*since) >= self.timing.lease_duration)
        };
        let mine = state.held.len();
        // Free: nobody's, expired, or this worker's id on a row it does not hold (an earlier
        // process with the same configured worker_id).
        let free: Vec<&Lease> = active
            .iter()
            .copied()
            .filter(|l| !state.held.contains_key(l.shard()))
            .filter(|l| match &l.owner {
                None => true,
                Some(o) if *o == self.id => true,
                Some(_) => expired(l),
            })
            .collect();
        let mut load: BTreeMap<&str, usize> = BTreeMap::new();
        for l in &active {
            if let Some(o) = l.owner.as_deref().filter(|o| *o != self.id && !expired(l)) {
                *load.entry(o).or_default() += 1;
            }
        }
        let workers = load.len() + 1;
        let share = active.len().div_ceil(workers);
        if mine >= share {
            return Vec::new();
        }
        if !free.is_empty() {
            return free.into_iter().take(share - mine).cloned().collect();
        }
        // Nothing free: one lease from the busiest worker, if it holds more than its share, or
        // just its share while this worker lacks two or more (KCL's rule: with 4 leases held 2
        // and 2, a third worker would otherwise never get one).
        let Some((busiest, n)) = load.iter().max_by_key(|(o, n)| (**n, std::cmp::Reverse(**o))) else {
            return Vec::new();
        };
        if *n < share || (*n == share && mine + 1 >= share) {
            return Vec::new();
        }
        active.into_iter().filter(|l| l.owner.as_deref() == Some(*busiest)).take(1).cloned().collect()
    }

    /// Lets go of every held lease (clears its owner), so other workers take them at once.
    pub async fn release_all(&self) {
        self.taking.store(false, Ordering::SeqCst);
        for shard in self.held() {
            let _w = self.writes.lock().await;
            let Some((mut next, expected)) = self.next_of(&shard) else { continue };
            next.owner = None;
            match self.write(&shard, next, expected).await {
                Ok(_) => {}
                Err(e) => warn!(group = %self.group, shard, error = %e, "cannot release the lease; it expires instead"),
            }
        }
        m::leases_held(&self.group, 0);
    }

    /// Takes no more leases (a stop is under way; held ones are still renewed).
    pub fn stop_taking(&self) {
        self.taking.store(false, Ordering::SeqCst);
    }

    /// Rounds every `renew_interval` (the shard list re-read every 20 rounds, for new shards)
    /// until `finished`; then releases every lease. `stopping`: take no more.
    pub async fn run(
        self: Arc<Self>,
        log: Arc<dyn ChangeLog>,
        mut stopping: watch::Receiver<bool>,
        mut finished: watch::Receiver<bool>,
    ) {
        let mut rounds = 0u64;
        // The rows are made at the first round that can list the shards (a stream created at
        // start is not listable at once: waiting the 20 rounds took 40 s), then every 20 rounds.
        let mut rows_made = false;
        loop {
            if *finished.borrow() {
                break;
            }
            if *stopping.borrow() {
                self.stop_taking();
            }
            if !rows_made || rounds % 20 == 0 {
                match log.list_shards().await {
                    Ok(shards) => match self.ensure(&shards).await {
                        Ok(()) => rows_made = !shards.is_empty(),
                        Err(e) => {
                            warn!(group = %self.group, error = %e, "cannot create the lease rows of new shards; retrying")
                        }
                    },
                    Err(e) => warn!(group = %self.group, error = %e, "cannot list the stream's shards; retrying"),
                }
            }
            rounds += 1;
            if let Err(e) = self.round().await {
                warn!(group = %self.group, error = %e, "cannot read the lease table; retrying at the next round");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.timing.renew_interval) => {}
                _ = changed(&mut finished) => {}
                _ = changed(&mut stopping) => {}
            }
        }
        self.release_all().await;
    }
}

impl Fence for Worker {
    fn holds(&self, shard: &str) -> bool {
        self.state().held.get(shard).is_some_and(|h| Instant::now() < h.valid_until)
    }
}

/// The next change of `rx`; never, once its sender is gone.
async fn changed(rx: &mut watch::Receiver<bool>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::backend::changelog::HashRange;
    use crate::backend::memory::lease::MemoryLeases;

    const T: Timing = Timing { lease_duration: Duration::from_secs(10), renew_interval: Duration::from_secs(3) };

    fn shard(id: &str, parent: Option<&str>) -> ShardInfo {
        ShardInfo {
            shard_id: id.into(),
            parent: parent.map(str::to_string),
            adjacent_parent: None,
            hash_range: HashRange { start: 0, end: u128::MAX },
            ending_sequence: None,
        }
    }

    fn shards(n: usize) -> Vec<ShardInfo> {
        (0..n).map(|i| shard(&format!("s{i}"), None)).collect()
    }

    async fn workers(store: &Arc<MemoryLeases>, n: usize) -> Vec<Arc<Worker>> {
        let ws: Vec<Arc<Worker>> = (0..n).map(|i| Worker::new(store.clone(), "dr", &format!("w{i}"), T)).collect();
        ws[0].ensure(&shards(4)).await.expect("rows");
        ws
    }

    async fn rounds(ws: &[Arc<Worker>], n: usize) {
        for _ in 0..n {
            for w in ws {
                w.round().await.expect("round");
            }
        }
    }

    fn counts(ws: &[Arc<Worker>]) -> Vec<usize> {
        ws.iter().map(|w| w.held().len()).collect()
    }

    /// Every shard has exactly one holder.
    fn one_owner_each(ws: &[Arc<Worker>], n: usize) {
        let mut all: Vec<String> = ws.iter().flat_map(|w| w.held()).collect();
        all.sort();
        let before = all.len();
        all.dedup();
        assert_eq!((before, all.len()), (n, n), "{:?}", ws.iter().map(|w| w.held()).collect::<Vec<_>>());
    }

    #[tokio::test(start_paused = true)]
    async fn workers_share_the_shards_and_a_newcomer_takes_from_the_busiest() {
        let store = Arc::new(MemoryLeases::new());
        let ws = workers(&store, 3).await;
        rounds(&ws[..1], 1).await;
        assert_eq!(counts(&ws[..1]), [4], "alone, a worker takes every free lease");
        rounds(&ws, 4).await;
        let mut c = counts(&ws);
        c.sort();
        assert_eq!(c, [1, 1, 2], "balanced to the share (4 leases, 3 workers)");
        one_owner_each(&ws, 4);
        let switched: u64 = (0..4).map(|i| store.row(&format!("dr:s{i}")).expect("row").owner_switches).sum();
        assert_eq!(switched, 2, "two leases were taken from the busiest worker");
    }

    /// How far one worker applied its shards reaches the others through the rows: a caught-up
    /// note goes out with the next renewal, and the other worker lists it among `others`.
    #[tokio::test(start_paused = true)]
    async fn a_caught_up_shard_is_written_at_the_next_renewal_and_seen_by_the_other_worker() {
        let store = Arc::new(MemoryLeases::new());
        let ws = workers(&store, 2).await;
        rounds(&ws, 4).await;
        let mine = ws[0].held();
        assert_eq!(mine.len(), 2, "{:?}", counts(&ws));
        ws[0].caught_up(&mine[0], 42_000);
        ws[0].caught_up("not-held", 43_000);
        rounds(&ws, 1).await;
        let seen: HashMap<String, Option<i64>> =
            ws[1].others().into_iter().map(|l| (l.shard().to_string(), l.caught_up_at)).collect();
        assert_eq!(seen.len(), 2, "the other worker lists the two rows it does not hold");
        assert_eq!(seen[&mine[0]], Some(42_000));
        assert_eq!(seen[&mine[1]], None);
        assert!(ws[1].others().iter().all(|l| !ws[1].held().contains(&l.shard().to_string())));
    }

    /// A stream created as the run starts cannot be listed at the first round: the rows are made
    /// at the next rounds, not 20 rounds later (40 s with the default timing).
    #[tokio::test(start_paused = true)]
    async fn the_rows_of_a_stream_created_after_the_first_round_are_made_at_the_next_one() {
        use crate::backend::memory::changelog::MemoryLog;
        let store = Arc::new(MemoryLeases::new());
        let log = Arc::new(MemoryLog::missing("s"));
        let w = Worker::new(store.clone(), "dr", "w0", T);
        let (_stopping_tx, stopping) = watch::channel(false);
        let (finished_tx, finished) = watch::channel(false);
        let task = tokio::spawn(w.clone().run(log.clone(), stopping, finished));
        tokio::time::sleep(Duration::from_millis(10)).await;
        log.create(2).await.expect("create");
        tokio::time::sleep(T.renew_interval * 3).await;
        assert_eq!(w.held().len(), 2, "leases taken within three rounds of the stream's creation");
        let _ = finished_tx.send(true);
        task.await.expect("worker task");
    }

    /// A worker that stops taking leases still lists the table: a batch it drains may wait on
    /// what another worker applied.
    #[tokio::test(start_paused = true)]
    async fn a_stopping_worker_still_sees_what_the_others_applied() {
        let store = Arc::new(MemoryLeases::new());
        let ws = workers(&store, 2).await;
        rounds(&ws, 4).await;
        ws[0].stop_taking();
        let theirs = ws[1].held();
        ws[1].caught_up(&theirs[0], 7_000);
        ws[1].round().await.expect("renews, writing the note");
        ws[0].round().await.expect("lists, taking nothing");
        let seen: Vec<Option<i64>> = ws[0].others().iter().map(|l| l.caught_up_at).collect();
        assert!(seen.contains(&Some(7_000)), "{seen:?}");
    }

    /// Two workers took two leases each before a third started: it still gets one.
    #[tokio::test(start_paused = true)]
    async fn a_late_third_worker_takes_one_of_two_workers_two_leases_each() {
        let store = Arc::new(MemoryLeases::new());
        let ws = workers(&store, 3).await;
        rounds(&ws[..2], 4).await;
        let mut c = counts(&ws[..2]);
        c.sort();
        assert_eq!(c, [2, 2], "two workers share four leases");
        rounds(&ws, 6).await;
        let mut c = counts(&ws);
        c.sort();
        assert_eq!(c, [1, 1, 2], "the third worker took one");
        one_owner_each(&ws, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dead_workers_leases_are_taken_only_once_expired() {
        let store = Arc::new(MemoryLeases::new());
        let ws = workers(&store, 2).await;
        rounds(&ws, 3).await;
        assert_eq!(counts(&ws), [2, 2]);
        // w1 dies: it renews no more. w0 sees its counters stand still.
        let survivor = &ws[..1];
        tokio::time::advance(T.renew_interval).await;
        rounds(survivor, 1).await;
        assert_eq!(counts(survivor), [2], "not yet expired");
        tokio::time::advance(T.lease_duration).await;
        rounds(survivor, 1).await;
        assert_eq!(counts(survivor), [4], "expired leases are taken over");
        assert!(
            !ws[1].holds("s0") && ws[1].held().iter().all(|s| !ws[1].holds(s)),
            "the dead worker's deadline passed"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_worker_that_lost_its_lease_cannot_checkpoint_and_is_fenced_when_late() {
        let store = Arc::new(MemoryLeases::new());
        let ws = workers(&store, 2).await;
        rounds(&ws[..1], 1).await;
        assert!(ws[0].holds("s0"));
        assert_eq!(ws[0].checkpoint("s0", "100", 1, None, 1).await.expect("cp"), Swap::Done);
        // Paused past its deadline: fenced before anyone could take it, and nothing is written.
        tokio::time::advance(T.valid_for()).await;
        assert!(!ws[0].holds("s0"), "fenced at the local deadline");
        assert_eq!(ws[0].checkpoint("s0", "200", 2, None, 2).await.expect("cp"), Swap::Lost);
        assert_eq!(store.row("dr:s0").expect("row").checkpoint, "100");
        // w1 takes it once expired; the old owner's renewal loses and drops it.
        tokio::time::advance(T.lease_duration).await;
        rounds(&ws[1..], 2).await;
        assert!(ws[1].holds("s0"));
        assert_eq!(ws[1].checkpoint("s0", "300", 3, None, 3).await.expect("cp"), Swap::Done);
        let row = store.row("dr:s0").expect("row");
        assert_eq!((row.checkpoint.as_str(), row.owner.as_deref()), ("300", Some("w1")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_child_is_leased_only_after_its_parent_reached_shard_end() {
        let store = Arc::new(MemoryLeases::new());
        let w = Worker::new(store.clone(), "archive.segments", "w0", T);
        w.ensure(&[shard("p", None), shard("c", Some("p"))]).await.expect("rows");
        w.round().await.expect("round");
        assert_eq!(w.held(), ["p"], "the child waits for its parent");
        assert_eq!(w.shard_ended("p").await.expect("end"), Swap::Done);
        w.round().await.expect("round");
        assert_eq!(w.held(), ["c"]);
        assert_eq!(store.row("archive.segments:p").expect("row").owner, None, "an ended lease is let go");
    }

    #[tokio::test(start_paused = true)]
    async fn released_leases_are_taken_at_the_next_round_and_a_failed_renewal_keeps_the_lease_until_its_deadline() {
        let store = Arc::new(MemoryLeases::new());
        let ws = workers(&store, 2).await;
        rounds(&ws, 3).await;
        store.fail_next("update");
        tokio::time::advance(T.renew_interval).await;
        ws[0].round().await.expect("round");
        assert_eq!(ws[0].held().len(), 2, "a failed renewal is retried, the lease is still held");
        ws[0].release_all().await;
        assert!(ws[0].held().is_empty());
        rounds(&ws[1..], 1).await;
        assert_eq!(counts(&ws[1..]), [4], "released leases need no expiry");
    }
}
