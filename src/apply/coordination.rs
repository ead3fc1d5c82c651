//! A command's consumer groups, coordinated with other processes:
//! - `state.coordination.mode: single`: each group's single-writer lock (`state::lock`); a
//!   second process is refused at start.
//! - `leases`: a lease [`Worker`] per group over the lease table; the group reads only the
//!   shards its worker holds and checkpoints into their rows.
//!
//! A command takes them before its first read, gives each group its [`Coordination`], and
//! releases them after the last checkpoint.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::group::{ConsumerGroup, Coordination};
use crate::backend::changelog::ChangeLog;
use crate::lease::worker::Worker;
use crate::lease::Fence;
use crate::state::checkpoint::LeasedCheckpoints;
use crate::state::lock::GroupLocks;

/// What a command holds for its consumer groups.
pub enum Coordinator {
    Single(GroupLocks),
    Leases(LeaseWorkers),
}

/// The lease workers of a command's groups, each renewing and taking in its own task.
pub struct LeaseWorkers {
    workers: HashMap<String, Arc<Worker>>,
    tasks: Vec<JoinHandle<()>>,
    stopping: watch::Sender<bool>,
    finished: watch::Sender<bool>,
    /// Never turns: a lease lost is taken back in its turn, not the end of the run.
    lost: (Arc<watch::Sender<Option<String>>>, watch::Receiver<Option<String>>),
}

impl LeaseWorkers {
    /// Starts one worker per group (their first round runs at once).
    pub fn start(workers: Vec<Arc<Worker>>, log: Arc<dyn ChangeLog>) -> LeaseWorkers {
        let (stopping, stopping_rx) = watch::channel(false);
        let (finished, finished_rx) = watch::channel(false);
        let tasks = workers
            .iter()
            .map(|w| tokio::spawn(w.clone().run(log.clone(), stopping_rx.clone(), finished_rx.clone())))
            .collect();
        let (tx, rx) = watch::channel(None);
        LeaseWorkers {
            workers: workers.into_iter().map(|w| (w.group().to_string(), w)).collect(),
            tasks,
            stopping,
            finished,
            lost: (Arc::new(tx), rx),
        }
    }

    pub fn worker(&self, group: &str) -> Option<&Arc<Worker>> {
        self.workers.get(group)
    }
}

impl Coordinator {
    /// Fences `group` by what this process holds for it (under leases, its checkpoints move
    /// into the lease rows).
    pub fn coordinate(&self, group: &mut ConsumerGroup) {
        let name = group.sink.name().to_string();
        match self {
            Coordinator::Single(locks) => {
                group.coordination = Coordination::Single(locks.of(&name).map(|l| l as Arc<dyn Fence>));
            }
            Coordinator::Leases(l) => {
                if let Some(w) = l.worker(&name) {
                    group.checkpoints = Arc::new(LeasedCheckpoints::new(w.clone()));
                    group.coordination = Coordination::Leases(w.clone());
                }
            }
        }
    }

    /// Turns to the reason once this process lost a group to another process for good (the
    /// single-writer lock; leases come and go).
    pub fn lost(&self) -> watch::Receiver<Option<String>> {
        match self {
            Coordinator::Single(locks) => locks.lost(),
            Coordinator::Leases(l) => l.lost.1.clone(),
        }
    }

    /// A stop is under way: take no more leases (held ones are still renewed while they drain).
    pub fn stopping(&self) {
        if let Coordinator::Leases(l) = self {
            let _ = l.stopping.send(true);
        }
    }

    /// Hands everything back (after the last checkpoint): locks released, leases let go so
    /// other workers take them at once.
    pub async fn release(self) {
        match self {
            Coordinator::Single(locks) => locks.release().await,
            Coordinator::Leases(l) => {
                let _ = l.finished.send(true);
                for t in l.tasks {
                    let _ = t.await;
                }
                drop(l.lost.0);
            }
        }
    }
}
