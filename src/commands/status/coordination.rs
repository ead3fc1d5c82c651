//! `lakelog status`'s view of how the consumer groups share the stream (`state.coordination`):
//! under leases, every lease row of the shown groups (owner, checkpoint, counter, age, parent
//! shards); in single-process mode, each group's single-writer lock.
//!
//! A lease's age is the time since its row last changed (a live owner changes it every renewal).
//! lakelog stamps each write of a row with `lakelogUpdatedAt` (the writer's clock), so the age
//! of its own rows is read from the row (`age_basis: row`; as exact as the two clocks agree).
//! A row without that stamp (written by other KCL tooling) is read twice, a renewal interval
//! apart, and its age is what one status call can tell: its counter moved between the reads
//! (`at_most` the time watched) or stood still (`at_least` that long: its owner missed a
//! renewal).
//!
//! Read-only: never writes a row or a lock.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::StatusError;
use crate::backend::lease::{Lease, LeaseStore};
use crate::connect::Pipeline;
use crate::model::now_millis;
use crate::state::checkpoint::{of_lease, Checkpoint};
use crate::state::lock::{self, LockDoc};

/// How the shown consumer groups are coordinated, by `state.coordination.mode`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum CoordinationStatus {
    /// One process consumes; each group's single-writer lock.
    Single { locks: Vec<LockStatus> },
    /// Processes share the shards through the lease table.
    Leases { table: String, leases: Vec<LeaseStatus> },
}

/// One group's single-writer lock.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LockStatus {
    pub group: String,
    pub state: LockState,
    /// The process that holds (or last held) it: host, pid and a random suffix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Seconds until it expires unless renewed (negative: expired that long ago).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in_seconds: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LockState {
    /// Held by a running process (a second `run` is refused).
    Held,
    /// Its holder stopped renewing it: the next process takes it.
    Expired,
    /// Let go by a clean stop.
    Released,
    /// Never taken.
    Free,
}

/// One lease row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeaseStatus {
    pub group: String,
    pub shard: String,
    /// The row's `leaseKey` (`<group>:<shard>`).
    pub key: String,
    /// The worker holding it (`None`: free, or its shard ended).
    pub owner: Option<String>,
    /// A sequence number, `TRIM_HORIZON` or `SHARD_END`.
    pub checkpoint: String,
    /// `leaseCounter`: moves on with every renewal, checkpoint and owner change.
    pub counter: u64,
    /// Seconds since the row last changed, on the basis `age_basis` says.
    pub age_seconds: f64,
    pub age_basis: AgeBasis,
    /// Owner changes since the last checkpoint (`ownerSwitchesSinceCheckpoint`).
    pub owner_switches: u64,
    /// `parentShardId`: its lease is taken only once these reached `SHARD_END`.
    pub parents: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<String>,
}

/// What a lease's `age_seconds` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgeBasis {
    /// Since the row's own `lakelogUpdatedAt` stamp.
    Row,
    /// The row has no stamp and its counter moved while status watched it: at most this old.
    AtMost,
    /// The row has no stamp and its counter stood still while status watched it: at least
    /// this old.
    AtLeast,
}

/// The groups `status` shows: the selected targets', and the archive's when it runs and no
/// single target was asked for.
pub fn groups(pipeline: &Pipeline, targets: &[String], target: Option<&str>) -> Vec<String> {
    let mut g = targets.to_vec();
    if pipeline.config.archive.enabled && target.is_none() {
        g.push(crate::archive::consumer::GROUP.to_string());
    }
    g
}

/// The lease rows of the shown groups, as first read (`status` reads the targets' checkpoints
/// from them, then [`LeaseRows::finish`] reads again where an age needs it).
pub struct LeaseRows {
    store: Arc<dyn LeaseStore>,
    groups: Vec<String>,
    rows: Vec<Lease>,
    read_at: Instant,
}

impl LeaseRows {
    /// `None` in single-process mode.
    pub async fn read(pipeline: &Pipeline, groups: &[String]) -> Result<Option<LeaseRows>, StatusError> {
        let store = match pipeline.lease_table().await {
            None => return Ok(None),
            Some(Ok(store)) => store,
            Some(Err(source)) => return Err(StatusError::Leases { location: table_location(pipeline), source }),
        };
        let read_at = Instant::now();
        let rows = list(&*store, groups).await?;
        Ok(Some(LeaseRows { store, groups: groups.to_vec(), rows, read_at }))
    }

    fn row(&self, group: &str, shard: &str) -> Option<&Lease> {
        let key = Lease::key_of(group, shard);
        self.rows.iter().find(|l| l.key == key)
    }

    /// The checkpoint of `group` on `shard`, from its lease row (`None`: no row, or at the
    /// trim horizon).
    pub fn checkpoint(&self, group: &str, shard: &str) -> Option<Checkpoint> {
        self.row(group, shard).and_then(of_lease)
    }

    /// When `group`'s lease of `shard` says the shard was read to its end: the records the
    /// group applied through it.
    pub fn ended(&self, group: &str, shard: &str) -> Option<u64> {
        self.row(group, shard).filter(|l| l.ended()).map(|l| l.records)
    }

    /// Every row with its age; rows without a stamp are read again once `watch` has passed
    /// since the first read (long enough for a live owner to renew).
    pub async fn finish(self, watch: Duration) -> Result<CoordinationStatus, StatusError> {
        let now = now_millis();
        let unstamped = self.rows.iter().any(|l| l.updated_at.is_none());
        let (again, watched) = if unstamped {
            tokio::time::sleep_until(self.read_at + watch).await;
            let again = list(&*self.store, &self.groups).await?;
            (again, self.read_at.elapsed())
        } else {
            (Vec::new(), Duration::ZERO)
        };
        let leases =
            self.rows.iter().map(|l| lease_status(l, again.iter().find(|a| a.key == l.key), now, watched)).collect();
        Ok(CoordinationStatus::Leases { table: self.store.location(), leases })
    }
}

fn table_location(pipeline: &Pipeline) -> String {
    format!("dynamodb://{}", pipeline.config.state.coordination.table(&pipeline.config.stream.name))
}

async fn list(store: &dyn LeaseStore, groups: &[String]) -> Result<Vec<Lease>, StatusError> {
    let mut rows = Vec::new();
    for g in groups {
        let mut of =
            store.list(g).await.map_err(|source| StatusError::Leases { location: store.location(), source })?;
        of.sort_by(|a, b| a.key.cmp(&b.key));
        rows.extend(of);
    }
    Ok(rows)
}

/// One row's status: its age from its stamp, or from `again` (the same row read `watched`
/// later; `None`: gone meanwhile).
fn lease_status(l: &Lease, again: Option<&Lease>, now: i64, watched: Duration) -> LeaseStatus {
    let (age_seconds, age_basis) = match l.updated_at {
        Some(at) => (((now - at).max(0) as f64) / 1000.0, AgeBasis::Row),
        None if again.is_some_and(|a| a.counter == l.counter) => (watched.as_secs_f64(), AgeBasis::AtLeast),
        None => (watched.as_secs_f64(), AgeBasis::AtMost),
    };
    LeaseStatus {
        group: l.parts().0.to_string(),
        shard: l.shard().to_string(),
        key: l.key.clone(),
        owner: l.owner.clone(),
        checkpoint: l.checkpoint.clone(),
        counter: l.counter,
        age_seconds,
        age_basis,
        owner_switches: l.owner_switches,
        parents: l.parents.clone(),
        children: l.children.clone(),
    }
}

/// Each group's single-writer lock, as stored.
pub async fn locks(pipeline: &Pipeline, groups: &[String]) -> Result<CoordinationStatus, StatusError> {
    let mut locks = Vec::new();
    for g in groups {
        let doc = lock::read(&pipeline.state, &pipeline.config.stream.name, g).await?;
        locks.push(lock_status(g, doc.as_ref(), now_millis()));
    }
    Ok(CoordinationStatus::Single { locks })
}

fn lock_status(group: &str, doc: Option<&LockDoc>, now: i64) -> LockStatus {
    let Some(d) = doc else {
        return LockStatus {
            group: group.to_string(),
            state: LockState::Free,
            holder: None,
            host: None,
            pid: None,
            expires_in_seconds: None,
        };
    };
    let state = if d.released {
        LockState::Released
    } else if now >= d.expires_at {
        LockState::Expired
    } else {
        LockState::Held
    };
    LockStatus {
        group: group.to_string(),
        state,
        holder: Some(d.holder.clone()),
        host: Some(d.host.clone()),
        pid: Some(d.pid),
        expires_in_seconds: (!d.released).then(|| (d.expires_at - now) as f64 / 1000.0),
    }
}

impl fmt::Display for CoordinationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoordinationStatus::Single { locks } => {
                writeln!(f, "coordination: single process (state.coordination.mode: single; a second process with this config is refused)")?;
                for l in locks {
                    let who = l.holder.as_deref().unwrap_or("-");
                    let host = l.host.as_deref().unwrap_or("-");
                    let pid = l.pid.map_or("-".to_string(), |p| p.to_string());
                    match l.state {
                        LockState::Held => writeln!(
                            f,
                            "  lock {}: held by {who} (host {host}, pid {pid}), expires in {:.1}s unless renewed",
                            l.group,
                            l.expires_in_seconds.unwrap_or(0.0)
                        )?,
                        LockState::Expired => writeln!(
                            f,
                            "  lock {}: expired {:.1}s ago (last holder {who}, host {host}, pid {pid}); free to take",
                            l.group,
                            -l.expires_in_seconds.unwrap_or(0.0)
                        )?,
                        LockState::Released => {
                            writeln!(f, "  lock {}: released by {who} (host {host}, pid {pid})", l.group)?
                        }
                        LockState::Free => writeln!(f, "  lock {}: free (never taken)", l.group)?,
                    }
                }
            }
            CoordinationStatus::Leases { table, leases } => {
                let mut owners: BTreeMap<&str, usize> = BTreeMap::new();
                for l in leases {
                    *owners.entry(l.owner.as_deref().unwrap_or("(none)")).or_default() += 1;
                }
                let held: Vec<String> = owners.iter().map(|(o, n)| format!("{o}: {n}")).collect();
                writeln!(f, "coordination: leases in {table}; {} leases ({})", leases.len(), held.join(", "))?;
                writeln!(
                    f,
                    "  {:<40} {:<36} {:>8} {:>18}  {:<24} checkpoint",
                    "lease", "owner", "counter", "age", "parents"
                )?;
                for l in leases {
                    let age = match l.age_basis {
                        AgeBasis::Row => format!("{:.1}s (row)", l.age_seconds),
                        AgeBasis::AtMost => format!("<{:.1}s (watched)", l.age_seconds),
                        AgeBasis::AtLeast => format!(">{:.1}s (watched)", l.age_seconds),
                    };
                    let parents = if l.parents.is_empty() { "-".to_string() } else { l.parents.join(",") };
                    writeln!(
                        f,
                        "  {:<40} {:<36} {:>8} {:>18}  {:<24} {}",
                        l.key,
                        l.owner.as_deref().unwrap_or("-"),
                        l.counter,
                        age,
                        parents,
                        l.checkpoint
                    )?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(counter: u64, updated_at: Option<i64>) -> Lease {
        Lease {
            key: "dr:shardId-000000000003".into(),
            owner: Some("w1".into()),
            counter,
            checkpoint: "TRIM_HORIZON".into(),
            parents: vec!["shardId-000000000000".into()],
            updated_at,
            ..Default::default()
        }
    }

    #[test]
    fn a_stamped_rows_age_is_its_own_and_an_unstamped_one_is_bounded_by_the_watch() {
        let watched = Duration::from_secs(3);
        let s = lease_status(&row(7, Some(10_000)), None, 12_500, watched);
        assert_eq!((s.age_seconds, s.age_basis), (2.5, AgeBasis::Row));
        assert_eq!((s.group.as_str(), s.shard.as_str(), s.counter), ("dr", "shardId-000000000003", 7));
        assert_eq!(s.parents, ["shardId-000000000000"]);
        let still = lease_status(&row(7, None), Some(&row(7, None)), 12_500, watched);
        assert_eq!((still.age_seconds, still.age_basis), (3.0, AgeBasis::AtLeast));
        let moved = lease_status(&row(7, None), Some(&row(8, None)), 12_500, watched);
        assert_eq!(moved.age_basis, AgeBasis::AtMost);
        let gone = lease_status(&row(7, None), None, 12_500, watched);
        assert_eq!(gone.age_basis, AgeBasis::AtMost, "a row deleted meanwhile changed");
    }

    #[test]
    fn a_lock_is_held_until_its_expiry_unless_released() {
        let doc = LockDoc {
            holder: "h-1-ab".into(),
            host: "h".into(),
            pid: 1,
            acquired_at: 0,
            expires_at: 10_000,
            released: false,
        };
        assert_eq!(lock_status("dr", Some(&doc), 9_000).state, LockState::Held);
        assert_eq!(lock_status("dr", Some(&doc), 9_000).expires_in_seconds, Some(1.0));
        assert_eq!(lock_status("dr", Some(&doc), 10_000).state, LockState::Expired);
        let released = LockDoc { released: true, ..doc };
        assert_eq!(lock_status("dr", Some(&released), 9_000).state, LockState::Released);
        assert_eq!(lock_status("dr", None, 9_000).state, LockState::Free);
    }
}
