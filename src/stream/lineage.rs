//! A stream's shards as a reader meets them while the stream is resharded under it: which shards
//! it knows, which it has started and finished, and which may start now.
//!
//! Kinesis keeps order within a shard only. A split or a merge closes the parent shard(s) and
//! opens children that take their hash ranges, so a key's older records stay in a parent and its
//! newer ones go to a child: reading a child only once every parent is finished keeps per-key
//! order. The children of a reshard done while the reader runs are not in its first listing;
//! the reader lists again when a shard finishes (a parent can only end after the reshard that
//! made its children), and [`Lineage::learn`] adds what is new.
//!
//! A parent that is not in the listing has left the stream's retention (it was read, or its
//! records are gone): nothing is waited for on its account.
//!
//! This module only keeps the books; it never reads or lists (the consumer group does).

use std::collections::HashSet;

use crate::backend::changelog::ShardInfo;

/// The shards a reader knows and how far it is with each.
#[derive(Debug, Default)]
pub struct Lineage {
    /// In the order they were listed: parents before children.
    known: Vec<ShardInfo>,
    started: HashSet<String>,
    finished: HashSet<String>,
}

impl Lineage {
    pub fn new(shards: Vec<ShardInfo>) -> Lineage {
        let mut lineage = Lineage::default();
        lineage.learn(shards);
        lineage
    }

    /// Adds the shards of a fresh listing that were not known; returns those.
    pub fn learn(&mut self, shards: Vec<ShardInfo>) -> Vec<ShardInfo> {
        let new: Vec<ShardInfo> = shards.into_iter().filter(|s| !self.knows(&s.shard_id)).collect();
        self.known.extend(new.iter().cloned());
        new
    }

    pub fn knows(&self, shard: &str) -> bool {
        self.known.iter().any(|k| k.shard_id == shard)
    }

    /// Every shard known, with whether it waits for a parent shard (one in the listing).
    pub fn known(&self) -> impl Iterator<Item = (&ShardInfo, bool)> {
        self.known.iter().map(|s| (s, self.waits_for_parents(s)))
    }

    /// Whether `shard` is read only after a parent that is still in the stream.
    pub fn waits_for_parents(&self, shard: &ShardInfo) -> bool {
        shard.parents().any(|p| self.knows(p))
    }

    /// The reading of `shard` is over: read to its end, or stopped for good in this run.
    pub fn finished(&mut self, shard: &str) {
        self.finished.insert(shard.to_string());
    }

    /// The shards to start now, each given once: not started, and every parent still in the
    /// stream finished.
    pub fn ready(&mut self) -> Vec<ShardInfo> {
        let ready: Vec<ShardInfo> = self
            .known
            .iter()
            .filter(|s| !self.started.contains(&s.shard_id))
            .filter(|s| s.parents().all(|p| !self.knows(p) || self.finished.contains(p)))
            .cloned()
            .collect();
        self.started.extend(ready.iter().map(|s| s.shard_id.clone()));
        ready
    }

    /// Every shard not started yet, whatever its parents (for readers that something else
    /// gates, such as a lease worker that hands a child out only once its parents ended).
    pub fn unstarted(&mut self) -> Vec<ShardInfo> {
        let new: Vec<ShardInfo> = self.known.iter().filter(|s| !self.started.contains(&s.shard_id)).cloned().collect();
        self.started.extend(new.iter().map(|s| s.shard_id.clone()));
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::changelog::HashRange;

    fn shard(id: &str, parent: Option<&str>, adjacent: Option<&str>) -> ShardInfo {
        ShardInfo {
            shard_id: id.into(),
            parent: parent.map(str::to_string),
            adjacent_parent: adjacent.map(str::to_string),
            hash_range: HashRange::ALL,
            ending_sequence: None,
        }
    }

    fn ids(shards: &[ShardInfo]) -> Vec<&str> {
        shards.iter().map(|s| s.shard_id.as_str()).collect()
    }

    #[test]
    fn children_learned_during_the_run_start_once_every_parent_finished() {
        let mut l = Lineage::new(vec![shard("a", None, None), shard("b", None, None)]);
        assert_eq!(ids(&l.ready()), ["a", "b"]);
        assert!(l.ready().is_empty(), "each shard is given once");
        // "a" was split while it was read; the listing after it finished shows its children.
        l.finished("a");
        let listing = vec![
            shard("a", None, None),
            shard("b", None, None),
            shard("a1", Some("a"), None),
            shard("a2", Some("a"), None),
        ];
        assert_eq!(ids(&l.learn(listing.clone())), ["a1", "a2"]);
        assert!(l.learn(listing).is_empty(), "nothing new the second time");
        assert_eq!(ids(&l.ready()), ["a1", "a2"]);
        // The children merged: the merged shard waits for both.
        let merged = shard("m", Some("a1"), Some("a2"));
        l.learn(vec![merged.clone()]);
        assert!(l.waits_for_parents(&merged));
        l.finished("a1");
        assert!(l.ready().is_empty(), "a2 is still being read");
        l.finished("a2");
        assert_eq!(ids(&l.ready()), ["m"]);
    }

    #[test]
    fn a_parent_gone_from_the_stream_is_not_waited_for() {
        let mut l = Lineage::new(vec![shard("child", Some("trimmed"), None)]);
        assert!(!l.known().any(|(_, waits)| waits));
        assert_eq!(ids(&l.ready()), ["child"]);
    }

    #[test]
    fn unstarted_gives_every_new_shard_once_parents_or_not() {
        let mut l = Lineage::new(vec![shard("a", None, None), shard("a1", Some("a"), None)]);
        assert_eq!(ids(&l.unstarted()), ["a", "a1"]);
        l.learn(vec![shard("a2", Some("a"), None)]);
        assert_eq!(ids(&l.unstarted()), ["a2"]);
        assert!(l.ready().is_empty());
    }
}
