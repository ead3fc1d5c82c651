//! `lakelog diff --target NAME`: a drift report between the source and one target, read-only.
//!
//! Both catalogs are read in full (what the target is configured to receive); each source object
//! is transformed exactly as apply would write it (catalog ids, location rewrites) and compared
//! with the target's object the way apply compares (writable fields, Glue's own defaults
//! accepted). It never writes and never touches the change log, so it also checks lakelog itself.
//!
//! Comparing through the transform cannot see a location the transform failed to rewrite (both
//! sides keep it), so every target object is also searched on its own: a field that still names a
//! rewritten-from location (`location_rewrite[].from`) makes the object drift, whatever the
//! source says, because its copy would read the source Region's data.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::apply::applier::{comparable, Applier};
use crate::apply::transform::Transform;
use crate::capture::reader::CatalogReader;
use crate::capture::CaptureError;
use crate::model::{CatalogObject, ObjectKind, Partition, Table};
use crate::pipeline::{Pipeline, PipelineError};

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
    pub seconds: f64,
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
                self.missing.push(Drift { kind, object, fields: Vec::new(), source_locations: Vec::new() });
            }
            (None, Some(_)) => {
                self.count(kind, |c| c.extra += 1);
                self.extra.push(Drift { kind, object, fields: Vec::new(), source_locations: Vec::new() });
            }
            (Some(want), Some(have)) => {
                let source_locations = transform.source_locations(have);
                let have = comparable(have, want);
                if have == *want && source_locations.is_empty() {
                    self.count(kind, |c| c.in_sync += 1);
                } else {
                    let mut fields = Vec::new();
                    differing_fields(&to_json(&have), &to_json(want), "", &mut fields);
                    self.count(kind, |c| c.different += 1);
                    self.different.push(Drift { kind, object, fields, source_locations });
                }
            }
            (None, None) => {}
        }
    }
}

fn to_json(object: &CatalogObject) -> serde_json::Value {
    let value = match object {
        CatalogObject::Database(d) => serde_json::to_value(d),
        CatalogObject::Table(t) => serde_json::to_value(t),
        CatalogObject::Partition(p) => serde_json::to_value(p),
    };
    value.unwrap_or(serde_json::Value::Null)
}

/// The paths (`a.b[2].c`) where two JSON values differ, down to the first differing level.
fn differing_fields(a: &serde_json::Value, b: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let null = Value::Null;
                let (va, vb) = (x.get(k).unwrap_or(&null), y.get(k).unwrap_or(&null));
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                differing_fields(va, vb, &p, out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                differing_fields(va, vb, &format!("{path}[{i}]"), out);
            }
        }
        _ if a != b => out.push(if path.is_empty() { "(whole object)".into() } else { path.to_string() }),
        _ => {}
    }
}

/// Compares the source with one target.
pub async fn diff(pipeline: &Pipeline, target: &str, limit: usize) -> Result<DiffReport, DiffError> {
    let started = Instant::now();
    let handle = pipeline.select_targets(Some(target))?[0];
    let applier = pipeline.applier(handle, true)?;
    let source = &pipeline.source;
    let dest = applier.target().reader();
    let in_scope = |db: &str, table: Option<&str>| pipeline.replicates(&applier, db, table);
    let read = |what: &str| {
        let what = what.to_string();
        move |e| DiffError::Read { what, source: e }
    };

    let mut report = DiffReport { target: target.to_string(), ..Default::default() };
    let desired_dbs: BTreeMap<String, CatalogObject> = source
        .databases()
        .await
        .map_err(read("source databases"))?
        .into_iter()
        .filter(|d| in_scope(&d.name, None))
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
    for db in names {
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
            let slot = pairs.entry(t.name.clone()).or_default();
            slot.0 = Some(t);
        }
        for t in target_tables.into_iter().filter(|t| in_scope(db, Some(&t.name))) {
            let slot = pairs.entry(t.name.clone()).or_default();
            slot.1 = Some(t);
        }
        let tables: Vec<DiffReport> =
            futures::stream::iter(pairs.into_values().map(|(s, t)| compare_table(source, dest, &applier, s, t)))
                .buffer_unordered(TABLE_CONCURRENCY)
                .try_collect()
                .await?;
        for t in tables {
            report.merge(t);
        }
    }
    for list in [&mut report.missing, &mut report.extra, &mut report.different] {
        list.sort();
        list.truncate(limit);
    }
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
    let source_parts = match &desired {
        Some(_) => source.all_partitions(&db, &name).await.map_err(read("source"))?,
        None => Vec::new(),
    };
    let target_parts = match &actual {
        Some(_) => dest.all_partitions(&db, &name).await.map_err(read("target"))?,
        None => Vec::new(),
    };
    let want = desired.map(|t| applier.transform().apply(&CatalogObject::Table(t)));
    let have = actual.map(CatalogObject::Table);
    report.compare(applier.transform(), ObjectKind::Table, object.clone(), want.as_ref(), have.as_ref());

    let mut pairs: BTreeMap<Vec<String>, (Option<CatalogObject>, Option<CatalogObject>)> = BTreeMap::new();
    let partition = |p: Partition| CatalogObject::Partition(p);
    for p in source_parts {
        let slot = pairs.entry(p.values.clone()).or_default();
        slot.0 = Some(applier.transform().apply(&partition(p)));
    }
    for p in target_parts {
        let slot = pairs.entry(p.values.clone()).or_default();
        slot.1 = Some(partition(p));
    }
    for (values, (want, have)) in pairs {
        let object = format!("{object}/{}", values.join("/"));
        report.compare(applier.transform(), ObjectKind::Partition, object, want.as_ref(), have.as_ref());
    }
    Ok(report)
}

#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("reading {what}: {source}")]
    Read { what: String, source: CaptureError },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differing_fields_name_the_nested_paths() {
        let a = serde_json::json!({"name": "t", "sd": {"location": "s3://a", "cols": [{"n": "x"}, {"n": "y"}]}, "p": {"k": "1"}});
        let b =
            serde_json::json!({"name": "t", "sd": {"location": "s3://b", "cols": [{"n": "x"}, {"n": "z"}]}, "p": {}});
        let mut out = Vec::new();
        differing_fields(&a, &b, "", &mut out);
        assert_eq!(out, vec!["p.k", "sd.cols[1].n", "sd.location"]);
        let mut out = Vec::new();
        differing_fields(&serde_json::json!({"c": [1]}), &serde_json::json!({"c": [1, 2]}), "", &mut out);
        assert_eq!(out, vec!["c"]);
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
}
