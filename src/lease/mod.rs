//! Who may consume which shard: the fence every consumer-group write is checked against, and the
//! lease workers of `state.coordination.mode: leases`.
//!
//! - [`Fence`]: "may this process still write for this shard?", asked right before each write
//!   (a batch applied to a target or the archive, a checkpoint). The single-writer lock
//!   (`state::lock`) and the lease [`worker::Worker`] answer it.
//! - [`worker`]: one process's share of a consumer group's leases: it takes expired or unowned
//!   leases, renews its own, balances, hands a child shard out only once its parents ended, and
//!   fences itself when a renewal is late or lost.
//!
//! Must never: answer "held" past the local deadline of the last successful renewal (a paused or
//! partitioned process must stop writing before another process may take over), or write a lease
//! except as a conditional write on its counter.

pub mod worker;

use std::time::Duration;

/// Whether this process may still write for a shard.
pub trait Fence: Send + Sync {
    /// Checked right before each write; `false` means stop before writing.
    fn holds(&self, shard: &str) -> bool;
}

/// How long a lease (or the lock) lasts unrenewed, and how often it is renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub lease_duration: Duration,
    pub renew_interval: Duration,
}

impl Timing {
    /// How long after sending a renewal that succeeded the holder may still write: the lease
    /// duration less one renewal interval. Another process counts the duration from when *it*
    /// saw the renewal (never earlier than it was sent), so the holder stops first as long as the
    /// two clocks run at about the same rate; the interval is the margin for a slow answer.
    pub fn valid_for(&self) -> Duration {
        self.lease_duration.saturating_sub(self.renew_interval)
    }
}

impl Default for Timing {
    fn default() -> Self {
        Timing { lease_duration: Duration::from_secs(10), renew_interval: Duration::from_secs(3) }
    }
}

/// This process's host name (for lock documents and worker ids).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string())
}

/// A fresh id for this process: host, pid and a random suffix (a restarted process with the same
/// pid, as in a container, is still a new worker).
pub fn process_id() -> String {
    format!("{}-{}-{:08x}", host_name(), std::process::id(), fastrand::u32(..))
}
