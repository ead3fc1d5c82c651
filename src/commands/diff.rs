//! `lakelog diff --target NAME`: a drift report between the source and one target, read-only.
//!
//! Both catalogs are read in full (what the target is configured to receive); each source object
//! is transformed exactly as apply would write it (catalog ids, location rewrites) and compared
//! with the target's object the way apply compares (writable fields, Glue's own defaults
//! accepted). It never writes and never touches the change log, so it also checks lakelog itself.
//!
//! Memory does not grow with a table's partitions beyond a compact index: a table's source
//! partitions are streamed into a [`SourceIndex`] (a 128-bit hash of the values → a 64-bit hash of
//! the transformed state, 24 bytes plus a flag per partition), then the target's are streamed page
//! by page and compared against it. Only the partitions the report lists (the first `limit` of
//! each sort) are read again whole: the names of missing ones from a second pass over the source
//! (made only when some are missing), the fields of different ones by BatchGetPartition.
//!
//! Comparing through the transform cannot see a location the transform failed to rewrite (both
//! sides keep it), so every target object is also searched on its own: a field that still names a
//! rewritten-from location (`location_rewrite[].from`) makes the object drift, whatever the
//! source says, because its copy would read the source Region's data.
//!
//! A target that receives Lake Formation is compared on its grants, LF-tags, assignments and the
//! rest too ([`permissions`]), after principal mapping and ARN rewrite: drift there is drift
//! like any other (the same counts, lists and exit code).

mod permissions;
pub mod scope;

use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::fmt;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::apply::applier::{comparable, Applier};
use crate::apply::transform::Transform;
use crate::backend::catalog::PARTITION_GET_CHUNK;
use crate::catalog::reader::{values_hash, CatalogReader};
use crate::catalog::ReadError;
use crate::connect::{Pipeline, PipelineError};
use crate::model::fields;
use crate::model::{content_hash, CatalogObject, ObjectKind, Partition, Table};

/// Tables compared at once.
const TABLE_CONCURRENCY: usize = 8;

/// One object that is not in sync.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Drift {
    pub kind: ObjectKind,
    /// `db`, `db.table` or `db.table/value1/value2`.
    pub object: String,
    /// For objects in both: the fields that differ (`storage_descriptor.location`, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// For objects in both: the target's fields that still name a rewritten-from location.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_locations: Vec<String>,
}

/// Counts for one object kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DriftCounts {
    pub in_sync: u64,
    /// In the source, not in the target.
    pub missing: u64,
    /// In the target, not in the source.
    pub extra: u64,
    /// In both, with different content.
    pub different: u64,
}

impl DriftCounts {
    pub fn drifted(&self) -> u64 {
        self.missing + self.extra + self.different
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DiffReport {
    pub target: String,
    pub counts: BTreeMap<ObjectKind, DriftCounts>,
    /// The drifted objects, sorted, at most `limit` of each sort.
    pub missing: Vec<Drift>,
    pub extra: Vec<Drift>,
    pub different: Vec<Drift>,
    /// The source's objects lakelog does not replicate (listed, not compared; never drift).
    pub not_replicated: scope::NotReplicated,
    pub seconds: f64,
}

/// The human report: counts per kind, the drifted objects, and what repairs them.
impl fmt::Display for DiffReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "target {}: compared with the source in {:.1}s", self.target, self.seconds)?;
        for (kind, c) in &self.counts {
            writeln!(
                f,
                "  {:<10} {:>9} in sync {:>7} missing {:>7} extra {:>7} different",
                kind.as_str(),
                c.in_sync,
                c.missing,
                c.extra,
                c.different
            )?;
        }
        write_drifts(f, "missing in the target", &self.missing)?;
        write_drifts(f, "only in the target", &self.extra)?;
        write_drifts(f, "different", &self.different)?;
        write!(f, "{}", self.not_replicated)?;
        if self.drifted() == 0 {
            writeln!(f, "in sync")?;
        } else {
            writeln!(
                f,
                "{} objects drifted; `lakelog sync --target {}` repairs (add --prune to delete objects only in the target)",
                self.drifted(),
                self.target
            )?;
        }
        Ok(())
    }
}

/// One sort of drifted objects under its title (nothing when there are none).
fn write_drifts(f: &mut fmt::Formatter<'_>, title: &str, items: &[Drift]) -> fmt::Result {
    if items.is_empty() {
        return Ok(());
    }
    writeln!(f, "{title}:")?;
    for d in items {
        let fields = if d.fields.is_empty() { String::new() } else { format!("  ({})", d.fields.join(", ")) };
        writeln!(f, "  {:<10} {}{fields}", d.kind.as_str(), d.object)?;
        if !d.source_locations.is_empty() {
            writeln!(
                f,
                "  {:<10}   still names a source location, so it reads the source Region: {}",
                "",
                d.source_locations.join(", ")
            )?;
        }
    }
    Ok(())
}

impl DiffReport {
    /// Objects not in sync, all kinds.
    pub fn drifted(&self) -> u64 {
        self.counts.values().map(|c| c.drifted()).sum()
    }

    fn count(&mut self, kind: ObjectKind, f: impl FnOnce(&mut DriftCounts)) {
        f(self.counts.entry(kind).or_default());
    }

    fn merge(&mut self, other: DiffReport) {
        for (kind, c) in other.counts {
            self.count(kind, |mine| {
                mine.in_sync += c.in_sync;
                mine.missing += c.missing;
                mine.extra += c.extra;
                mine.different += c.different;
            });
        }
        self.missing.extend(other.missing);
        self.extra.extend(other.extra);
        self.different.extend(other.different);
    }

    /// Keeps the first `limit` drifts of each sort (the counts stay complete).
    fn keep_first(&mut self, limit: usize) {
        for list in [&mut self.missing, &mut self.extra, &mut self.different] {
            list.sort();
            list.truncate(limit);
        }
    }

    /// Compares one object present on either side.
    fn compare(
        &mut self,
        transform: &Transform,
        kind: ObjectKind,
        object: String,
        desired: Option<&CatalogObject>,
        actual: Option<&CatalogObject>,
    ) {
        match (desired, actual) {
            (Some(_), None) => {
                self.count(kind, |c| c.missing += 1);
                self.missing.push(Drift::named(kind, object));
            }
            (None, Some(_)) => {
                self.count(kind, |c| c.extra += 1);
                self.extra.push(Drift::named(kind, object));
            }
            (Some(want), Some(have)) => match Drift::of(transform, kind, object, want, have) {
                None => self.count(kind, |c| c.in_sync += 1),
                Some(drift) => {
                    self.count(kind, |c| c.different += 1);
                    self.different.push(drift);
                }
            },
            (None, None) => {}
        }
    }
}

impl Drift {
    /// A drift without fields (missing, extra).
    fn named(kind: ObjectKind, object: String) -> Drift {
        Drift { kind, object, fields: Vec::new(), source_locations: Vec::new() }
    }

    /// How an object in both catalogs drifted; `None` when it is in sync.
    fn of(
        transform: &Transform,
        kind: ObjectKind,
        object: String,
        want: &CatalogObject,
        have: &CatalogObject,
    ) -> Option<Drift> {
        let source_locations = transform.source_locations(have);
        let have = comparable(have, want);
        if have == *want && source_locations.is_empty() {
            return None;
        }
        let fields = fields::paths(&fields::json(&have), &fields::json(want));
        Some(Drift { kind, object, fields, source_locations })
    }
}

/// Compares the source with one target.
pub async fn diff(pipeline: &Pipeline, target: &str, limit: usize) -> Result<DiffReport, DiffError> {
    let started = Instant::now();
    let handle = pipeline.select_targets(Some(target))?[0];
    let applier = pipeline.applier(handle, true)?;
    let source = &pipeline.source;
    let dest = applier.reader();
    let in_scope = |db: &str, table: Option<&str>| pipeline.replicates(&applier, db, table);
    let read = |what: &str| {
        let what = what.to_string();
        move |e| DiffError::Read { what, source: e }
    };

    let mut report = DiffReport { target: target.to_string(), ..Default::default() };
    let mut scope = scope::Scope::default();
    let desired_dbs: BTreeMap<String, CatalogObject> = source
        .databases()
        .await
        .map_err(read("source databases"))?
        .into_iter()
        .filter(|d| in_scope(&d.name, None))
        .inspect(|d| scope.database(d))
        .map(|d| (d.name.clone(), applier.transform().apply(&CatalogObject::Database(d))))
        .collect();
    let actual_dbs: BTreeMap<String, CatalogObject> = dest
        .databases()
        .await
        .map_err(read("target databases"))?
        .into_iter()
        .filter(|d| in_scope(&d.name, None))
        .map(|d| (d.name.clone(), CatalogObject::Database(d)))
        .collect();
    let names: BTreeSet<&String> = desired_dbs.keys().chain(actual_dbs.keys()).collect();
    // The databases and tables (either side) whose LF-tags are compared.
    let mut tagged: Vec<(String, Option<String>)> = Vec::new();
    for db in names {
        tagged.push((db.clone(), None));
        let (want, have) = (desired_dbs.get(db), actual_dbs.get(db));
        report.compare(applier.transform(), ObjectKind::Database, db.clone(), want, have);
        // Tables of a database missing on one side are all missing (or extra) on that side.
        let source_tables = match want {
            Some(_) => source.tables(db).await.map_err(read(&format!("source tables of {db}")))?,
            None => Vec::new(),
        };
        let target_tables = match have {
            Some(_) => dest.tables(db).await.map_err(read(&format!("target tables of {db}")))?,
            None => Vec::new(),
        };
        let mut pairs: BTreeMap<String, (Option<Table>, Option<Table>)> = BTreeMap::new();
        for t in source_tables.into_iter().filter(|t| in_scope(db, Some(&t.name))) {
            scope.table(&t);
            let slot = pairs.entry(t.name.clone()).or_default();
            slot.0 = Some(t);
        }
        for t in target_tables.into_iter().filter(|t| in_scope(db, Some(&t.name))) {
            let slot = pairs.entry(t.name.clone()).or_default();
            slot.1 = Some(t);
        }
        tagged.extend(pairs.keys().map(|t| (db.clone(), Some(t.clone()))));
        let tables: Vec<DiffReport> =
            futures::stream::iter(pairs.into_values().map(|(s, t)| compare_table(source, dest, &applier, s, t, limit)))
                .buffer_unordered(TABLE_CONCURRENCY)
                .try_collect()
                .await?;
        for t in tables {
            report.merge(t);
        }
        report.keep_first(limit);
    }
    let unmapped = permissions::compare(pipeline, handle, &applier, &tagged, &mut report).await?;
    report.keep_first(limit);
    report.not_replicated = scope.read(&*pipeline.source_extras(), limit).await;
    report.not_replicated.extend(scope::UNMAPPED_PRINCIPAL, unmapped, limit);
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// One table and its partitions, present on either side.
async fn compare_table(
    source: &CatalogReader,
    dest: &CatalogReader,
    applier: &Applier,
    desired: Option<Table>,
    actual: Option<Table>,
    limit: usize,
) -> Result<DiffReport, DiffError> {
    let mut report = DiffReport::default();
    let Some((db, name)) = desired.as_ref().or(actual.as_ref()).map(|t| (t.database_name.clone(), t.name.clone()))
    else {
        return Ok(report);
    };
    let object = format!("{db}.{name}");
    let read = |side: &str| {
        let what = format!("{side} partitions of {object}");
        move |e| DiffError::Read { what, source: e }
    };
    let transform = applier.transform();
    let (in_source, in_target) = (desired.is_some(), actual.is_some());
    let want = desired.map(|t| transform.apply(&CatalogObject::Table(t)));
    let have = actual.map(CatalogObject::Table);
    report.compare(transform, ObjectKind::Table, object.clone(), want.as_ref(), have.as_ref());

    let mut parts = PartitionDiff::new(transform, &object, limit);
    match (in_source, in_target) {
        // Every partition is on one side only: one pass, no index.
        (true, false) => {
            source.each_partition_page(&db, &name, |page| parts.all_missing(page)).await.map_err(read("source"))?;
        }
        (false, true) => {
            dest.each_partition_page(&db, &name, |page| parts.all_extra(page)).await.map_err(read("target"))?;
        }
        (true, true) => {
            source.each_partition_page(&db, &name, |page| parts.index(page)).await.map_err(read("source"))?;
            parts.index_done();
            dest.each_partition_page(&db, &name, |page| parts.compare(page)).await.map_err(read("target"))?;
            // Only a missing partition's hash is known: its name takes a second pass over the
            // source, made only when some are missing (a partition created since the first pass
            // is not in the index and is not listed; one dropped since is counted, not named).
            if parts.unmatched() > 0 {
                source
                    .each_partition_page(&db, &name, |page| parts.name_missing(page))
                    .await
                    .map_err(read("source"))?;
            }
        }
        (false, false) => {}
    }
    let (counts, missing, extra, different) = parts.finish();
    report.count(ObjectKind::Partition, |c| {
        c.in_sync += counts.in_sync;
        c.missing += counts.missing;
        c.extra += counts.extra;
        c.different += counts.different;
    });
    report.missing.extend(missing.into_iter().map(|(o, _)| Drift::named(ObjectKind::Partition, o)));
    report.extra.extend(extra.into_iter().map(|(o, _)| Drift::named(ObjectKind::Partition, o)));
    // The fields of the listed different partitions: both sides read again, just those.
    for chunk in different.chunks(PARTITION_GET_CHUNK) {
        let values: Vec<Vec<String>> = chunk.iter().map(|(_, v)| v.clone()).collect();
        let by_values = |found: Vec<Partition>| -> HashMap<Vec<String>, CatalogObject> {
            found.into_iter().map(|p| (p.values.clone(), CatalogObject::Partition(p))).collect()
        };
        let wants = by_values(source.partitions_by_values(&db, &name, &values).await.map_err(read("source"))?);
        let haves = by_values(dest.partitions_by_values(&db, &name, &values).await.map_err(read("target"))?);
        for (object, values) in chunk {
            let (want, have) = (wants.get(values).map(|w| transform.apply(w)), haves.get(values));
            // Changed again (or dropped) since the comparison: still counted, named without fields.
            let drift = match (want, have) {
                (Some(want), Some(have)) => Drift::of(transform, ObjectKind::Partition, object.clone(), &want, have),
                _ => None,
            };
            report.different.push(drift.unwrap_or_else(|| Drift::named(ObjectKind::Partition, object.clone())));
        }
    }
    Ok(report)
}

/// A table's source partitions, compactly: per partition the 128-bit hash of its values and the
/// 64-bit hash of its transformed state (24 bytes), and whether a target partition matched it (1
/// byte). Sorted once filled, looked up by binary search.
#[derive(Debug, Default)]
struct SourceIndex {
    entries: Vec<([u64; 2], u64)>,
    matched: Vec<bool>,
}

fn split(hash: u128) -> [u64; 2] {
    [(hash >> 64) as u64, hash as u64]
}

impl SourceIndex {
    fn insert(&mut self, values: u128, state: u64) {
        self.entries.push((split(values), state));
    }

    fn sort(&mut self) {
        self.entries.sort_unstable_by_key(|e| e.0);
        self.entries.shrink_to_fit();
        self.matched = vec![false; self.entries.len()];
    }

    fn position(&self, values: u128) -> Option<usize> {
        let key = split(values);
        self.entries.binary_search_by_key(&key, |e| e.0).ok()
    }

    /// The state hash of the source partition with these values, marking it matched; `None` when
    /// the source has no such partition (or it was matched already).
    fn take(&mut self, values: u128) -> Option<u64> {
        let i = self.position(values)?;
        if std::mem::replace(&mut self.matched[i], true) {
            return None;
        }
        Some(self.entries[i].1)
    }

    fn is_unmatched(&self, values: u128) -> bool {
        self.position(values).is_some_and(|i| !self.matched[i])
    }

    fn unmatched(&self) -> usize {
        self.matched.iter().filter(|m| !**m).count()
    }
}

/// The `limit` smallest items pushed (a max-heap of at most `limit`): the part of a sorted,
/// truncated list one table contributes, without holding the rest.
#[derive(Debug)]
struct Smallest<T: Ord> {
    limit: usize,
    heap: BinaryHeap<T>,
}

impl<T: Ord> Smallest<T> {
    fn new(limit: usize) -> Smallest<T> {
        Smallest { limit, heap: BinaryHeap::new() }
    }

    fn push(&mut self, item: T) {
        if self.heap.len() < self.limit {
            self.heap.push(item);
        } else if self.heap.peek().is_some_and(|max| item < *max) {
            self.heap.pop();
            self.heap.push(item);
        }
    }

    fn into_sorted(self) -> Vec<T> {
        self.heap.into_sorted_vec()
    }
}

/// A listed partition: its object name (`db.table/v1/v2`, the report's sort key) and its values.
type Listed = (String, Vec<String>);

/// The partition comparison of one table, fed a page at a time.
struct PartitionDiff<'a> {
    transform: &'a Transform,
    table: &'a str,
    index: SourceIndex,
    counts: DriftCounts,
    missing: Smallest<Listed>,
    extra: Smallest<Listed>,
    different: Smallest<Listed>,
}

impl<'a> PartitionDiff<'a> {
    fn new(transform: &'a Transform, table: &'a str, limit: usize) -> PartitionDiff<'a> {
        PartitionDiff {
            transform,
            table,
            index: SourceIndex::default(),
            counts: DriftCounts::default(),
            missing: Smallest::new(limit),
            extra: Smallest::new(limit),
            different: Smallest::new(limit),
        }
    }

    fn listed(&self, values: Vec<String>) -> Listed {
        (format!("{}/{}", self.table, values.join("/")), values)
    }

    /// The state a source partition is compared by: as apply would write it.
    fn desired(&self, p: Partition) -> u64 {
        content_hash(&self.transform.apply(&CatalogObject::Partition(p)))
    }

    fn all_missing(&mut self, page: Vec<Partition>) {
        for p in page {
            self.counts.missing += 1;
            let listed = self.listed(p.values);
            self.missing.push(listed);
        }
    }

    fn all_extra(&mut self, page: Vec<Partition>) {
        for p in page {
            self.counts.extra += 1;
            let listed = self.listed(p.values);
            self.extra.push(listed);
        }
    }

    fn index(&mut self, page: Vec<Partition>) {
        for p in page {
            let values = values_hash(&p.values);
            let state = self.desired(p);
            self.index.insert(values, state);
        }
    }

    fn index_done(&mut self) {
        self.index.sort();
    }

    /// A page of target partitions against the index. A target partition still naming a
    /// rewritten-from location differs, whatever the source says (checked on each partition of
    /// the page, as `Drift::of` does for one object).
    fn compare(&mut self, page: Vec<Partition>) {
        for p in page {
            let Some(want) = self.index.take(values_hash(&p.values)) else {
                self.counts.extra += 1;
                let listed = self.listed(p.values);
                self.extra.push(listed);
                continue;
            };
            let have = CatalogObject::Partition(p);
            // A partition's comparable form is its writable fields (Glue adds no defaults to
            // partitions), which is what `content_hash` hashes.
            if want == content_hash(&have) && self.transform.source_locations(&have).is_empty() {
                self.counts.in_sync += 1;
            } else if let CatalogObject::Partition(p) = have {
                self.counts.different += 1;
                let listed = self.listed(p.values);
                self.different.push(listed);
            }
        }
    }

    fn unmatched(&self) -> usize {
        self.index.unmatched()
    }

    /// A page of the second source pass: names the partitions no target partition matched.
    fn name_missing(&mut self, page: Vec<Partition>) {
        for p in page {
            if self.index.is_unmatched(values_hash(&p.values)) {
                let listed = self.listed(p.values);
                self.missing.push(listed);
            }
        }
    }

    /// Counts (missing: every unmatched source partition) and the listed partitions, sorted.
    fn finish(mut self) -> (DriftCounts, Vec<Listed>, Vec<Listed>, Vec<Listed>) {
        self.counts.missing += self.index.unmatched() as u64;
        (self.counts, self.missing.into_sorted(), self.extra.into_sorted(), self.different.into_sorted())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("reading {what}: {source}")]
    Read { what: String, source: ReadError },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_report_lists_counts_drifts_and_the_repair() {
        let missing = Drift {
            kind: ObjectKind::Table,
            object: "db.t".into(),
            fields: vec![],
            source_locations: vec!["s3://src/t".into()],
        };
        let mut report =
            DiffReport { target: "dr".into(), missing: vec![missing], seconds: 1.25, ..Default::default() };
        report.count(ObjectKind::Table, |c| {
            c.in_sync = 3;
            c.missing = 1;
        });
        assert_eq!(
            report.to_string(),
            "target dr: compared with the source in 1.2s\n\
             \x20 table              3 in sync       1 missing       0 extra       0 different\n\
             missing in the target:\n\
             \x20 table      db.t\n\
             \x20              still names a source location, so it reads the source Region: s3://src/t\n\
             1 objects drifted; `lakelog sync --target dr` repairs (add --prune to delete objects only in the target)\n"
        );
        assert!(DiffReport { target: "dr".into(), ..Default::default() }.to_string().ends_with("\nin sync\n"));
    }

    /// A location the transform left in place (here: a transform that rewrites nothing, the way
    /// one with a gap would) is drift although source and target agree. In memory, because the
    /// real transform cannot be made to leave one.
    #[test]
    fn a_target_naming_a_rewritten_from_bucket_is_drift_even_when_it_matches_the_source() {
        let target: crate::config::TargetConfig = serde_yaml_ng::from_str(
            "{name: dr, region: us-west-2, location_rewrite: [{from: 's3://data', to: 's3://data-dr'}]}",
        )
        .expect("target");
        let transform = Transform::new(&target, "111111111111", "us-east-1", "222222222222").expect("transform");
        let mut table = Table { database_name: "db".into(), name: "t".into(), ..Default::default() };
        table.parameters.insert("custom.path".into(), "s3a://data/t/${dt}/".into());
        let object = CatalogObject::Table(table);
        let mut report = DiffReport::default();
        report.compare(&transform, ObjectKind::Table, "db.t".into(), Some(&object), Some(&object));
        assert_eq!(report.drifted(), 1);
        assert_eq!(report.different[0].object, "db.t");
        assert_eq!(report.different[0].source_locations, vec!["parameters.custom.path"]);
        assert!(report.different[0].fields.is_empty(), "source and target agree");

        // Rewritten, the same object is in sync.
        let rewritten = transform.apply(&object);
        let mut report = DiffReport::default();
        report.compare(&transform, ObjectKind::Table, "db.t".into(), Some(&rewritten), Some(&rewritten));
        assert_eq!(report.drifted(), 0);
    }
    fn transform() -> Transform {
        let target: crate::config::TargetConfig = serde_yaml_ng::from_str(
            "{name: dr, region: us-west-2, location_rewrite: [{from: 's3://data', to: 's3://data-dr'}]}",
        )
        .expect("target");
        Transform::new(&target, "111111111111", "us-east-1", "222222222222").expect("transform")
    }

    fn partition(day: &str, location: &str) -> Partition {
        let mut p = Partition {
            database_name: "db".into(),
            table_name: "t".into(),
            values: vec![day.into(), "eu".into()],
            ..Default::default()
        };
        p.parameters.insert("path".into(), format!("{location}/t/{day}/"));
        p
    }

    /// The compact comparison, fed in pages as the readers feed it: counts are complete, the
    /// listed partitions are the first `limit` of each sort (and only those), whatever the pages'
    /// order, and the report agrees with comparing whole objects.
    #[test]
    fn the_compact_comparison_counts_everything_and_lists_the_first_of_each_sort() {
        let transform = transform();
        let days: Vec<String> = (1..=9).map(|d| format!("2026-01-0{d}")).collect();
        let source: Vec<Partition> = days.iter().map(|d| partition(d, "s3://data")).collect();
        let mut target: Vec<Partition> = Vec::new();
        for (i, d) in days.iter().enumerate() {
            match i {
                // 0..=2 in sync (rewritten as apply writes them).
                0..=2 => target.push(partition(d, "s3://data-dr")),
                // 3..=5 different: a changed parameter, a changed value, a source location left.
                3 => {
                    let mut p = partition(d, "s3://data-dr");
                    p.parameters.insert("extra".into(), "x".into());
                    target.push(p);
                }
                4 => target.push(partition(d, "s3://other")),
                5 => target.push(partition(d, "s3://data")),
                // 6..=8 missing from the target.
                _ => {}
            }
        }
        // Two extra partitions in the target.
        target.push(partition("2027-01-01", "s3://data-dr"));
        target.push(partition("2027-01-02", "s3://data-dr"));
        // Read-only fields never make drift.
        target[0].meta.creation_time = Some(1);

        let mut diff = PartitionDiff::new(&transform, "db.t", 2);
        // Pages in an order unlike the sort order.
        diff.index(source[4..].to_vec());
        diff.index(source[..4].to_vec());
        diff.index_done();
        let mut reversed = target.clone();
        reversed.reverse();
        for page in reversed.chunks(3) {
            diff.compare(page.to_vec());
        }
        assert_eq!(diff.unmatched(), 3);
        diff.name_missing(source.clone());
        let (counts, missing, extra, different) = diff.finish();
        assert_eq!(counts, DriftCounts { in_sync: 3, missing: 3, extra: 2, different: 3 });
        let names = |l: &[Listed]| l.iter().map(|(o, _)| o.clone()).collect::<Vec<_>>();
        assert_eq!(names(&missing), vec!["db.t/2026-01-07/eu", "db.t/2026-01-08/eu"]);
        assert_eq!(names(&extra), vec!["db.t/2027-01-01/eu", "db.t/2027-01-02/eu"]);
        assert_eq!(names(&different), vec!["db.t/2026-01-04/eu", "db.t/2026-01-05/eu"]);
        assert_eq!(different[0].1, vec!["2026-01-04".to_string(), "eu".to_string()], "values to re-read by");

        // The same verdicts as comparing the whole objects.
        let mut whole = DiffReport::default();
        for (i, s) in source.iter().enumerate() {
            let want = transform.apply(&CatalogObject::Partition(s.clone()));
            let have = target.iter().find(|t| t.values == s.values).cloned().map(CatalogObject::Partition);
            whole.compare(&transform, ObjectKind::Partition, i.to_string(), Some(&want), have.as_ref());
        }
        let c = whole.counts[&ObjectKind::Partition];
        assert_eq!((c.in_sync, c.missing, c.different), (counts.in_sync, counts.missing, counts.different));
        let left = whole.different.iter().find(|d| d.object == "5").expect("the source location is drift");
        assert_eq!(left.source_locations, vec!["parameters.path"]);
    }

    #[test]
    fn the_index_matches_each_source_partition_once() {
        let mut index = SourceIndex::default();
        for (v, state) in [(3u128 << 64 | 1, 30), (1, 10), (u128::MAX, 99)] {
            index.insert(v, state);
        }
        index.sort();
        assert_eq!(index.take(1), Some(10));
        assert_eq!(index.take(1), None, "matched already");
        assert_eq!(index.take(2), None, "not in the source");
        assert!(index.is_unmatched(u128::MAX) && !index.is_unmatched(1));
        assert_eq!(index.unmatched(), 2);
        assert_eq!(std::mem::size_of::<([u64; 2], u64)>(), 24, "the cost per source partition");
    }
}
