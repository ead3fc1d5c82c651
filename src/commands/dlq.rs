//! `lakelog dlq list|replay|drop`: the dead-letter store, for operators.
//!
//! Replay never applies a parked record as it was: the source may have changed since, and an old
//! state written over a newer one would be a regression. It re-reads each parked object's
//! *current* state in the source (or learns that it is gone) and applies that to the target, the
//! same way capture turns an event into a record. A record that fails again is parked again with
//! its new reason; the old entry is removed only once the replay's outcome is durable.
//!
//! An "unmapped principal" entry is replayed only once the target's `principals` rules map its
//! principal: until then it stays parked as it is (same id, nothing re-read, nothing granted)
//! and counts as still failing.

use std::fmt;

use serde::Serialize;

use crate::apply::dry_run::Planned;
use crate::apply::stats::ApplyStats;
use crate::apply::ApplyError;
use crate::backend::AwsError;
use crate::capture::events::hint::Hint;
use crate::capture::CaptureError;
use crate::connect::{Pipeline, PipelineError};
use crate::model::principal::Mapped;
use crate::model::{Cause, CauseKind, ObjectKey};
use crate::state::deadletter::{DeadLetter, CAPTURE_EVENTS, UNMAPPED_PRINCIPAL};

/// One parked entry, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Stable id (the object name without `.json`); pass it to `--id`.
    pub id: String,
    /// The target, or `capture.events` for events capture could not parse.
    pub store: String,
    #[serde(flatten)]
    pub letter: DeadLetter,
}

/// What `dlq list` found: its entries, as a JSON array.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Listing(pub Vec<Entry>);

/// The human listing: one line per entry (id, store, when parked, object, class and reason),
/// then the count.
impl fmt::Display for Listing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.0 {
            let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(e.letter.parked_at) * 1_000_000)
                .ok()
                .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
                .unwrap_or_default();
            writeln!(f, "{}  {}  {}  {}  [{}] {}", e.id, e.store, at, e.letter.key, e.letter.class, e.letter.reason)?;
        }
        writeln!(f, "{} dead letters", self.0.len())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("reading the dead-letter store: {0}")]
    Store(#[from] AwsError),
    #[error("re-reading the source: {0}")]
    Source(#[from] CaptureError),
    #[error("applying to target {target}: {source}; the dead letters are kept, run the replay again once the target is reachable")]
    Apply { target: String, source: ApplyError },
    #[error("no dead letter with id {0} in {1}; list them with `lakelog dlq list`")]
    UnknownId(String, String),
}

fn id_of(key: &str) -> String {
    let name = key.rsplit('/').next().unwrap_or(key);
    name.trim_end_matches(".json").to_string()
}

/// The stores a command covers: one target's, or every target's and capture's.
fn stores(pipeline: &Pipeline, target: Option<&str>) -> Result<Vec<String>, PipelineError> {
    let mut names: Vec<String> = pipeline.select_targets(target)?.iter().map(|t| t.config.name.clone()).collect();
    if target.is_none() {
        names.push(CAPTURE_EVENTS.to_string());
    }
    Ok(names)
}

/// Every parked entry of the selected stores, oldest first per store.
pub async fn list(pipeline: &Pipeline, target: Option<&str>) -> Result<Listing, DlqError> {
    let mut out = Vec::new();
    for store in stores(pipeline, target)? {
        for (key, letter) in pipeline.dead_letters.list(&store).await? {
            out.push(Entry { id: id_of(&key), store: store.clone(), letter });
        }
    }
    Ok(Listing(out))
}

/// Entries of one store with their object keys, restricted to `ids` when given (all must exist).
async fn select(pipeline: &Pipeline, store: &str, ids: &[String]) -> Result<Vec<(String, DeadLetter)>, DlqError> {
    let all = pipeline.dead_letters.list(store).await?;
    if ids.is_empty() {
        return Ok(all);
    }
    for id in ids {
        if !all.iter().any(|(k, _)| id_of(k) == *id) {
            return Err(DlqError::UnknownId(id.clone(), store.to_string()));
        }
    }
    Ok(all.into_iter().filter(|(k, _)| ids.contains(&id_of(k))).collect())
}

/// An entry replay could not use, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub id: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplayReport {
    pub target: String,
    pub dry_run: bool,
    /// Entries replayed (and removed, unless a dry run).
    pub replayed: u64,
    /// What applying the objects' current source state did (dead-lettered again: still failing).
    pub stats: ApplyStats,
    /// In a dry run: the writes the replay would send, per operation (none were sent).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub planned_writes: std::collections::BTreeMap<String, Planned>,
    pub skipped: Vec<Skipped>,
    /// Unmapped-principal entries whose principal no rule maps yet: kept parked, untouched.
    pub still_unmapped: Vec<Skipped>,
}

impl ReplayReport {
    /// Entries still failing: parked again with their new reason, or kept as still unmapped.
    pub fn failing(&self) -> u64 {
        self.stats.total().dead_lettered + self.still_unmapped.len() as u64
    }
}

/// The human report: the outcome in one line, then the entries skipped and why.
impl fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.stats.total();
        let verb = if self.dry_run { "would replay" } else { "replayed" };
        writeln!(
            f,
            "{verb} {} entries into {}: {} created, {} updated, {} deleted, {} already in sync, {} failed again (parked with the new reason)",
            self.replayed, self.target, t.created, t.updated, t.deleted, t.unchanged, t.dead_lettered
        )?;
        if self.dry_run {
            writeln!(f, "  {}", crate::apply::dry_run::describe(&self.planned_writes))?;
        }
        for s in &self.skipped {
            writeln!(f, "  skipped {}: {}", s.id, s.reason)?;
        }
        for s in &self.still_unmapped {
            writeln!(f, "  kept parked {}: {}", s.id, s.reason)?;
        }
        Ok(())
    }
}

/// What `dlq drop` removed.
#[derive(Debug, Clone, Serialize)]
pub struct Dropped {
    /// The store the entries were removed from (said in the text; the JSON is `{"dropped": n}`).
    #[serde(skip)]
    pub store: String,
    pub dropped: usize,
}

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "dropped {} dead letters from {}", self.dropped, self.store)
    }
}

fn hint_for(key: &ObjectKey) -> Hint {
    match key {
        ObjectKey::Database { database, .. } => Hint::Database { database: database.clone() },
        ObjectKey::Table { database, table, .. } => Hint::Table { database: database.clone(), table: table.clone() },
        ObjectKey::Partition { database, table, values, .. } => {
            Hint::Partitions { database: database.clone(), table: table.clone(), values: vec![values.clone()] }
        }
        ObjectKey::LakeFormation { lf, .. } => Hint::LakeFormation { lf: lf.clone() },
    }
}

/// Why an unmapped-principal entry cannot be replayed yet: its principal maps to none under the
/// target's current rules (`None`: any other entry, or the principal maps now).
fn still_unmapped(letter: &DeadLetter, principals: &crate::model::principal::PrincipalMap) -> Option<String> {
    let principal = letter.principal.as_deref().filter(|_| letter.class == UNMAPPED_PRINCIPAL)?;
    match principals.map(principal) {
        Mapped::To(_) => None,
        Mapped::Unmapped { reason } => Some(format!("still unmapped, kept parked: {reason}")),
    }
}

/// Re-applies the parked objects of `target` from the source's current state.
pub async fn replay(
    pipeline: &Pipeline,
    target: &str,
    ids: &[String],
    dry_run: bool,
) -> Result<ReplayReport, DlqError> {
    let handle = pipeline.select_targets(Some(target))?[0];
    let entries = select(pipeline, target, ids).await?;
    let mut report = ReplayReport { target: target.to_string(), dry_run, ..Default::default() };
    let applier = pipeline.applier(handle, dry_run)?;
    let mut hints = Vec::new();
    let mut replayable = Vec::new();
    for (key, letter) in entries {
        if let Some(reason) = still_unmapped(&letter, &applier.transform().principals) {
            report.still_unmapped.push(Skipped { id: id_of(&key), reason });
            continue;
        }
        match &letter.record {
            Some(r) => {
                hints.push(hint_for(&r.key));
                replayable.push(key);
            }
            None => report.skipped.push(Skipped {
                id: id_of(&key),
                reason: format!(
                    "{}: there is no record to replay; inspect it with `lakelog dlq list --output json`, then `lakelog dlq drop`",
                    letter.class
                ),
            }),
        }
    }
    if replayable.is_empty() {
        return Ok(report);
    }
    let records = pipeline.resolver().resolve(&hints, &Cause { kind: CauseKind::Replay, event_id: None }).await?;
    report.stats =
        applier.apply(records).await.map_err(|source| DlqError::Apply { target: target.to_string(), source })?;
    report.replayed = replayable.len() as u64;
    report.planned_writes = applier.dry_run().map(|d| d.planned()).unwrap_or_default();
    if !dry_run {
        // The outcome is durable (applied, or parked again with its new reason): the old entries go.
        for key in &replayable {
            pipeline.dead_letters.remove(key).await?;
        }
    }
    Ok(report)
}

/// Removes entries for good (after inspecting them).
pub async fn drop(pipeline: &Pipeline, store: &str, ids: &[String]) -> Result<Dropped, DlqError> {
    if store != CAPTURE_EVENTS {
        pipeline.select_targets(Some(store))?;
    }
    let entries = select(pipeline, store, ids).await?;
    for (key, _) in &entries {
        pipeline.dead_letters.remove(key).await?;
    }
    Ok(Dropped { store: store.to_string(), dropped: entries.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_is_a_line_per_entry_then_the_count_and_a_json_array() {
        let letter = DeadLetter {
            target: "dr".into(),
            key: "catalog/db/t".into(),
            reason: "the parent does not exist".into(),
            class: "not_found".into(),
            code: None,
            record: None,
            raw_hex: None,
            body: None,
            principal: None,
            parked_at: 1_700_000_000_000,
        };
        let listing = Listing(vec![Entry { id: "e1".into(), store: "dr".into(), letter }]);
        assert_eq!(
            listing.to_string(),
            "e1  dr  2023-11-14T22:13:20Z  catalog/db/t  [not_found] the parent does not exist\n1 dead letters\n"
        );
        let json = serde_json::to_value(&listing).expect("json");
        assert_eq!(json[0]["id"], "e1", "{json}");
        assert_eq!(json[0]["reason"], "the parent does not exist", "the letter is flattened: {json}");
    }

    /// Only an unmapped-principal entry whose principal the rules still map to none is kept.
    #[test]
    fn an_unmapped_principal_entry_is_kept_until_a_rule_maps_its_principal() {
        use crate::model::principal::PrincipalMap;
        use crate::model::{CatalogObject, ChangeRecord, Database, Origin};
        let origin = Origin { account: "1".into(), region: "r".into(), catalog_id: "1".into() };
        let db = CatalogObject::Database(Database { name: "db".into(), ..Default::default() });
        let record = ChangeRecord::upsert(db, &origin, Cause { kind: CauseKind::Snapshot, event_id: None }, 1);
        let role = "arn:aws:iam::444444444444:role/partner";
        let letter = DeadLetter::unmapped_principal("dr", &record, role, "no rule".into());
        let kept = still_unmapped(&letter, &PrincipalMap::default()).expect("no rule maps it");
        assert!(kept.starts_with("still unmapped, kept parked: "), "{kept}");
        assert_eq!(still_unmapped(&letter, &PrincipalMap::identity()), None, "mapped now: replayed");
        let other = DeadLetter::for_record("dr", &record, "rejected".into(), None);
        assert_eq!(still_unmapped(&other, &PrincipalMap::default()), None, "not an unmapped principal");
    }

    #[test]
    fn dropped_names_the_store_in_text_and_only_the_count_in_json() {
        let dropped = Dropped { store: "capture.events".into(), dropped: 2 };
        assert_eq!(dropped.to_string(), "dropped 2 dead letters from capture.events\n");
        assert_eq!(serde_json::to_string(&dropped).expect("json"), r#"{"dropped":2}"#);
    }
}
