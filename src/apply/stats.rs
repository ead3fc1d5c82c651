//! What an apply (or a dry run) did, per object kind.

use std::collections::BTreeMap;
use std::ops::AddAssign;

use serde::Serialize;

use crate::model::ObjectKind;

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Deleted,
    Unchanged,
    DeadLettered,
    /// Not in this target's include/exclude scope.
    Filtered,
}

/// Counts for one object kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KindCounts {
    pub created: u64,
    pub updated: u64,
    pub deleted: u64,
    pub unchanged: u64,
    pub dead_lettered: u64,
    pub filtered: u64,
}

impl KindCounts {
    pub fn add(&mut self, outcome: Outcome, n: u64) {
        let slot = match outcome {
            Outcome::Created => &mut self.created,
            Outcome::Updated => &mut self.updated,
            Outcome::Deleted => &mut self.deleted,
            Outcome::Unchanged => &mut self.unchanged,
            Outcome::DeadLettered => &mut self.dead_lettered,
            Outcome::Filtered => &mut self.filtered,
        };
        *slot += n;
    }

    /// Objects written (created, updated or deleted).
    pub fn changed(&self) -> u64 {
        self.created + self.updated + self.deleted
    }

    pub fn total(&self) -> u64 {
        self.changed() + self.unchanged + self.dead_lettered + self.filtered
    }
}

impl AddAssign for KindCounts {
    fn add_assign(&mut self, o: Self) {
        self.created += o.created;
        self.updated += o.updated;
        self.deleted += o.deleted;
        self.unchanged += o.unchanged;
        self.dead_lettered += o.dead_lettered;
        self.filtered += o.filtered;
    }
}

/// Counts per object kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ApplyStats(pub BTreeMap<ObjectKind, KindCounts>);

impl ApplyStats {
    pub fn add(&mut self, kind: ObjectKind, outcome: Outcome, n: u64) {
        if n > 0 {
            self.0.entry(kind).or_default().add(outcome, n);
        }
    }

    pub fn kind(&self, kind: ObjectKind) -> KindCounts {
        self.0.get(&kind).copied().unwrap_or_default()
    }

    pub fn merge(&mut self, other: &ApplyStats) {
        for (k, v) in &other.0 {
            *self.0.entry(*k).or_default() += *v;
        }
    }

    pub fn total(&self) -> KindCounts {
        let mut t = KindCounts::default();
        for v in self.0.values() {
            t += *v;
        }
        t
    }
}
