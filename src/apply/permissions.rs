//! Lake Formation records on one target: the part of [`Applier`] that writes through its
//! [`LakeFormation`](crate::backend::lakeformation::LakeFormation).
//!
//! Compare first, always: the target's current grants are listed once per batch (one paged
//! ListPermissions) and every other object is read before it is written, so a re-sync of an
//! unchanged source makes no Lake Formation write at all.
//!
//! - **Grants** go out in BatchGrantPermissions / BatchRevokePermissions calls of at most
//!   [`GRANT_BATCH`] entries: what the target lacks is granted, what it has beyond the source is
//!   revoked (a grant whose condition changed is revoked whole and granted anew). A delete record
//!   revokes everything the target holds for that principal on that resource. One rejected entry
//!   fails its own record only (dead-lettered with the service's reason); a retryable one is
//!   sent again, up to `apply.max_attempts` rounds.
//! - **Principals** go through the target's `transform.principals`: an unmapped one is never
//!   granted; its record is parked as "unmapped principal: <reason>" and counted in
//!   `lakelog_unmapped_principals_total`. `IAMAllowedPrincipals` is a principal like any
//!   other: its grants (Glue's "use only IAM access control" defaults) are replicated as the
//!   source has them, so a target keeps the source's access mode.
//! - **A grant waits for its resource**: the database or table it is on must exist in the
//!   target's Glue; it is waited for (bounded, as a partition waits for its table) and, if it
//!   never comes, the record is dead-lettered with the reason.
//! - **LF-tags before their assignments**: tag definitions of the batch are written first, and
//!   an assignment creates any key or value it needs that the target lacks; removed tags are
//!   removed (RemoveLFTagsFromResource) before the rest is assigned.
//! - **Settings** are written without what is the target's own: its data lake admins and
//!   read-only admins stay, and `CROSS_ACCOUNT_VERSION` is never lowered (PutDataLakeSettings
//!   rejects a downgrade; not verified on AWS).
//!
//! - **S3 ARNs** (registered locations, `DataLocation` grants) are written as the target's
//!   `location_rewrite` rules rewrite them (`Transform::lf_key`, `Transform::apply`).
//!
//! In a dry run nothing is written: the comparisons are made and counted.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use tracing::warn;

use super::applier::{Applier, Parent};
use super::stats::{ApplyStats, Outcome};
use super::transform::Transform;
use super::ApplyError;
use crate::backend::lakeformation::{EntryError, LakeFormation, GRANT_BATCH};
use crate::backend::{AwsError, ErrorClass};
use crate::model::lakeformation::{
    sorted_set, DataLakeSettings, DataLocation, LfKey, LfObject, LfResource, LfTag, LfTagPair, Permission, ResourceTags,
};
use crate::model::principal::Mapped;
use crate::model::{CatalogObject, ChangeRecord, ObjectKey, Op};
use crate::state::deadletter::DeadLetter;

/// The data lake setting parameter that is never lowered on a target.
const CROSS_ACCOUNT_VERSION: &str = "CROSS_ACCOUNT_VERSION";

/// One grant or revoke entry and the record it serves.
struct Entry {
    record: usize,
    permission: Permission,
}

/// The order Lake Formation objects are written in: what others refer to first.
fn rank(rec: &ChangeRecord) -> u8 {
    let upsert = rec.op == Op::Upsert;
    match rec.key.lake_formation() {
        Some(LfKey::LfTag { .. }) if upsert => 0,
        Some(LfKey::DataLakeSettings | LfKey::DataLocation { .. } | LfKey::LfTagExpression { .. }) if upsert => 1,
        Some(LfKey::DataCellsFilter { .. }) if upsert => 2,
        Some(LfKey::ResourceTags { .. }) => 3,
        Some(LfKey::Permission { .. } | LfKey::OptIn { .. }) => 4,
        Some(LfKey::DataCellsFilter { .. }) => 5,
        Some(_) => 6,
        None => 7,
    }
}

/// The state a record asks for in the target, S3 ARNs rewritten (`None`: a delete).
fn desired(transform: &Transform, rec: &ChangeRecord) -> Option<LfObject> {
    match (&rec.op, rec.state.as_ref().map(|s| transform.apply(s))) {
        (Op::Upsert, Some(CatalogObject::LakeFormation { lf })) => Some(lf),
        _ => None,
    }
}

/// `a` without what `b` has.
fn minus(a: &[String], b: &[String]) -> Vec<String> {
    a.iter().filter(|x| !b.contains(x)).cloned().collect()
}

/// The settings to write: the source's, with the target's own admins, and a cross-account
/// version never lower than the target's.
pub fn settings_for_target(source: &DataLakeSettings, target: &DataLakeSettings) -> DataLakeSettings {
    let mut out = source.clone();
    out.admins = target.admins.clone();
    out.read_only_admins = target.read_only_admins.clone();
    let version = |s: &DataLakeSettings| s.parameters.get(CROSS_ACCOUNT_VERSION).and_then(|v| v.parse::<u32>().ok());
    if let (Some(t), Some(s)) = (version(target), version(&out)) {
        if t > s {
            out.parameters.insert(CROSS_ACCOUNT_VERSION.into(), t.to_string());
        }
    }
    out
}

impl Applier {
    /// Applies a batch's Lake Formation records; their outcomes are added to `stats`.
    pub(super) async fn apply_lake_formation(
        &self,
        mut records: Vec<ChangeRecord>,
        stats: &mut ApplyStats,
    ) -> Result<(), ApplyError> {
        if records.is_empty() {
            return Ok(());
        }
        let Some(lf) = self.lake_formation.clone() else {
            for rec in &records {
                let reason = format!(
                    "target {} does not apply Lake Formation objects ({}): source.lakeformation is false; set it to true, then replay",
                    self.name, rec.key
                );
                self.park(rec, reason, None).await?;
                stats.add(rec.key.kind(), Outcome::DeadLettered, 1);
            }
            return Ok(());
        };
        records.sort_by_key(rank);
        let (grants, others): (Vec<ChangeRecord>, Vec<ChangeRecord>) =
            records.into_iter().partition(|r| matches!(r.key.lake_formation(), Some(LfKey::Permission { .. })));
        let mut present = HashSet::new();
        // Tags, settings, filters and assignments first (ranked), then the grants, then deletes
        // of what grants may name.
        let (before, after): (Vec<ChangeRecord>, Vec<ChangeRecord>) = others.into_iter().partition(|r| rank(r) < 4);
        for rec in &before {
            let outcome = self.apply_object(&lf, rec, &mut present).await?;
            stats.add(rec.key.kind(), outcome, 1);
        }
        self.apply_grants(&lf, grants, &mut present, stats).await?;
        for rec in &after {
            let outcome = self.apply_object(&lf, rec, &mut present).await?;
            stats.add(rec.key.kind(), outcome, 1);
        }
        Ok(())
    }

    /// Waits for the database or table `rec` is on (none for catalog-level objects); `false`:
    /// it never came and the record is parked.
    async fn resource_ready(&self, rec: &ChangeRecord, present: &mut HashSet<ObjectKey>) -> Result<bool, ApplyError> {
        let Some(lf) = rec.key.lake_formation() else { return Ok(true) };
        let Some(parent) = Parent::of(&rec.key, lf.database(), lf.table()) else { return Ok(true) };
        if present.contains(&parent.key) {
            return Ok(true);
        }
        match self.await_parent(rec, &parent).await {
            Ok(true) => {
                present.insert(parent.key.clone());
                Ok(true)
            }
            Ok(false) => {
                self.orphan(rec, &parent).await?;
                Ok(false)
            }
            Err(e) if e.class.is_retryable() => Err(self.unavailable(e)),
            Err(e) => {
                self.settle(rec, e).await?;
                Ok(false)
            }
        }
    }

    /// Parks a record whose principal maps to none in this target, as an unmapped principal
    /// (`lakelog status` lists it; parking counts it in `lakelog_unmapped_principals_total`).
    async fn park_unmapped(&self, rec: &ChangeRecord, reason: &str) -> Result<Outcome, ApplyError> {
        let reason = format!("unmapped principal: {reason}");
        warn!(target = %self.name, key = %rec.key, reason = %reason, "not granting");
        // A dry run changes nothing, the dead-letter store included.
        if self.dry_run.is_some() {
            return Ok(Outcome::DeadLettered);
        }
        let principal = match rec.key.lake_formation() {
            Some(LfKey::Permission { principal, .. }) => principal.clone(),
            _ => String::new(),
        };
        let dl = DeadLetter::unmapped_principal(&self.name, rec, &principal, reason);
        self.dead_letters
            .park(&dl)
            .await
            .map_err(|source| ApplyError::DeadLetter { target: self.name.clone(), source })?;
        Ok(Outcome::DeadLettered)
    }

    /// One call under the target's retry policy; a final error that is retryable fails the batch.
    async fn lf_call<T, F, Fut>(&self, call: F) -> Result<Result<T, AwsError>, ApplyError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, AwsError>>,
    {
        match self.retry.run(call).await {
            Err(e) if e.class.is_retryable() => Err(self.unavailable(e)),
            other => Ok(other),
        }
    }

    /// Grants and revokes for a batch's permission records, in calls of at most [`GRANT_BATCH`].
    async fn apply_grants(
        &self,
        lf: &Arc<dyn LakeFormation>,
        records: Vec<ChangeRecord>,
        present: &mut HashSet<ObjectKey>,
        stats: &mut ApplyStats,
    ) -> Result<(), ApplyError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut outcomes: Vec<Option<Outcome>> = vec![None; records.len()];
        // Principals mapped and resources waited for first, then the target listed: a listing
        // taken before a wait could miss what another shard granted meanwhile.
        let mut wanted: Vec<Option<(String, Option<Permission>)>> = Vec::with_capacity(records.len());
        for (i, rec) in records.iter().enumerate() {
            let Some(LfKey::Permission { principal, .. }) = rec.key.lake_formation() else {
                wanted.push(None);
                continue;
            };
            let target_principal = match self.transform.principals.map(principal) {
                Mapped::To(p) => p,
                Mapped::Unmapped { reason } => {
                    outcomes[i] = Some(self.park_unmapped(rec, &reason).await?);
                    wanted.push(None);
                    continue;
                }
            };
            let want = match desired(&self.transform, rec) {
                Some(LfObject::Permission(p)) => Some(Permission { principal: target_principal.clone(), ..p }),
                Some(_) => {
                    outcomes[i] = Some(self.malformed(rec).await?);
                    wanted.push(None);
                    continue;
                }
                None => None,
            };
            // A grant needs its database or table in the target; a revoke does not.
            if want.is_some() && !self.resource_ready(rec, present).await? {
                outcomes[i] = Some(Outcome::DeadLettered);
                wanted.push(None);
                continue;
            }
            wanted.push(Some((target_principal, want)));
        }
        let current = self.target_grants(lf).await?;
        let (mut grants, mut revokes) = (Vec::new(), Vec::new());
        for (i, (rec, w)) in records.iter().zip(wanted).enumerate() {
            let (Some(LfKey::Permission { resource, .. }), Some((target_principal, want))) =
                (rec.key.lake_formation(), w)
            else {
                continue;
            };
            let have = current.get(&(target_principal, self.transform.lf_resource(resource)));
            let (grant, revoke) = match (have, &want) {
                (Some(h), Some(w)) if h == w => (None, None),
                (None, None) => (None, None),
                (Some(h), None) => (None, Some(h.clone())),
                (None, Some(w)) => (Some(w.clone()), None),
                (Some(h), Some(w)) if h.condition != w.condition => (Some(w.clone()), Some(h.clone())),
                (Some(h), Some(w)) => {
                    let grant = Permission {
                        permissions: minus(&w.permissions, &h.permissions),
                        grantable: minus(&w.grantable, &h.grantable),
                        ..w.clone()
                    };
                    let revoke = Permission {
                        permissions: minus(&h.permissions, &w.permissions),
                        grantable: minus(&h.grantable, &w.grantable),
                        ..h.clone()
                    };
                    ((!grant.is_empty()).then_some(grant), (!revoke.is_empty()).then_some(revoke))
                }
            };
            if grant.is_none() && revoke.is_none() {
                outcomes[i] = Some(Outcome::Unchanged);
                continue;
            }
            outcomes[i] = Some(match (have, &want) {
                (None, _) => Outcome::Created,
                (Some(_), None) => Outcome::Deleted,
                (Some(_), Some(_)) => Outcome::Updated,
            });
            if let Some(p) = revoke {
                revokes.push(Entry { record: i, permission: p });
            }
            if let Some(p) = grant {
                grants.push(Entry { record: i, permission: p });
            }
        }
        if self.dry_run.is_none() {
            let mut failed: BTreeMap<usize, AwsError> = BTreeMap::new();
            // Revokes first: a changed condition is revoked before it is granted anew.
            for (revoke, entries) in [(true, revokes), (false, grants)] {
                for (record, error) in self.send_entries(lf, revoke, entries).await? {
                    failed.entry(record).or_insert(error);
                }
            }
            for (i, error) in failed {
                outcomes[i] = Some(self.settle(&records[i], error).await?);
            }
        }
        for (rec, o) in records.iter().zip(outcomes) {
            stats.add(rec.key.kind(), o.unwrap_or(Outcome::Unchanged), 1);
        }
        Ok(())
    }

    /// Every grant the target holds, by (principal, resource).
    async fn target_grants(
        &self,
        lf: &Arc<dyn LakeFormation>,
    ) -> Result<BTreeMap<(String, LfResource), Permission>, ApplyError> {
        let mut out = BTreeMap::new();
        let mut token: Option<String> = None;
        loop {
            let page = match self.lf_call(|| lf.permissions_page(None, token.as_deref())).await? {
                Ok(p) => p,
                // Nothing can be compared: the batch waits for the target to answer.
                Err(e) => return Err(self.unavailable(e)),
            };
            for p in page.items {
                out.insert((p.principal.clone(), p.resource.clone()), p);
            }
            match page.next_token {
                Some(t) if !t.is_empty() && Some(&t) != token.as_ref() => token = Some(t),
                _ => return Ok(out),
            }
        }
    }

    /// Sends `entries` in calls of at most [`GRANT_BATCH`]; a retryable per-entry failure is
    /// sent again (up to `apply.max_attempts` rounds). Returns the records whose entry failed
    /// for good, with the error.
    async fn send_entries(
        &self,
        lf: &Arc<dyn LakeFormation>,
        revoke: bool,
        mut entries: Vec<Entry>,
    ) -> Result<Vec<(usize, AwsError)>, ApplyError> {
        let mut failed = Vec::new();
        let mut round = 1;
        while !entries.is_empty() {
            let mut retry = Vec::new();
            for chunk in entries.chunks(GRANT_BATCH) {
                let batch: Vec<Permission> = chunk.iter().map(|e| e.permission.clone()).collect();
                let result = self
                    .lf_call(|| async {
                        if revoke {
                            lf.revoke(&batch).await
                        } else {
                            lf.grant(&batch).await
                        }
                    })
                    .await?;
                let errors: Vec<EntryError> = match result {
                    Ok(errors) => errors,
                    // The whole call was rejected: every entry of it carries the reason.
                    Err(e) => (0..chunk.len()).map(|index| EntryError { index, error: e.clone() }).collect(),
                };
                let mut seen = BTreeSet::new();
                for EntryError { index, error } in errors {
                    let Some(entry) = chunk.get(index) else { continue };
                    if !seen.insert(index) {
                        continue;
                    }
                    if error.class.is_retryable() && round < self.cfg.max_attempts {
                        retry.push(Entry { record: entry.record, permission: entry.permission.clone() });
                    } else {
                        warn!(target = %self.name, permission = %entry.permission.resource, error = %error, "Lake Formation entry failed");
                        failed.push((entry.record, error));
                    }
                }
            }
            if !retry.is_empty() {
                tokio::time::sleep(self.retry.backoff(round)).await;
            }
            entries = retry;
            round += 1;
        }
        Ok(failed)
    }

    /// Compare-then-write of one object that is not a grant.
    async fn apply_object(
        &self,
        lf: &Arc<dyn LakeFormation>,
        rec: &ChangeRecord,
        present: &mut HashSet<ObjectKey>,
    ) -> Result<Outcome, ApplyError> {
        let Some(key) = rec.key.lake_formation() else { return Ok(Outcome::Unchanged) };
        // The key and state as the target names them; `rec` stays the source's (it is what a
        // dead letter keeps, and what a replay re-reads the source by).
        let key = &self.transform.lf_key(key);
        let want = desired(&self.transform, rec);
        let want = want.as_ref();
        let dry = self.dry_run.is_some();
        // What the write came to: Ok(outcome) or the service's refusal, settled below.
        let result: Result<Outcome, AwsError> = match (key, want) {
            (LfKey::LfTag { key }, want) => {
                let have = match self.lf_call(|| lf.get_lf_tag(key)).await? {
                    Ok(h) => h,
                    Err(e) => return self.settle(rec, e).await,
                };
                match (have, want) {
                    (None, Some(LfObject::LfTag(_))) if dry => Ok(Outcome::Created),
                    (None, Some(LfObject::LfTag(t))) => {
                        self.lf_call(|| lf.create_lf_tag(t)).await?.map(|()| Outcome::Created)
                    }
                    (Some(h), Some(LfObject::LfTag(t))) if h.values == t.values => Ok(Outcome::Unchanged),
                    (Some(_), Some(LfObject::LfTag(_))) if dry => Ok(Outcome::Updated),
                    (Some(h), Some(LfObject::LfTag(t))) => {
                        let (add, delete) = (minus(&t.values, &h.values), minus(&h.values, &t.values));
                        self.lf_call(|| lf.update_lf_tag(key, &add, &delete)).await?.map(|()| Outcome::Updated)
                    }
                    (None, None) => Ok(Outcome::Unchanged),
                    (Some(_), None) if dry => Ok(Outcome::Deleted),
                    (Some(_), None) => self.lf_call(|| lf.delete_lf_tag(key)).await?.map(|()| Outcome::Deleted),
                    (_, Some(_)) => return self.malformed(rec).await,
                }
            }
            (LfKey::ResourceTags { database, table }, want) => {
                let want = match want {
                    Some(LfObject::ResourceTags(t)) => t.clone(),
                    Some(_) => return self.malformed(rec).await,
                    None => ResourceTags { database: database.clone(), table: table.clone(), ..Default::default() },
                };
                if want.is_empty() || self.resource_ready(rec, present).await? {
                    self.put_resource_tags(lf, &want).await?
                } else {
                    return Ok(Outcome::DeadLettered);
                }
            }
            (LfKey::DataLakeSettings, Some(LfObject::DataLakeSettings(s))) => {
                let have = match self.lf_call(|| lf.data_lake_settings()).await? {
                    Ok(h) => h,
                    Err(e) => return self.settle(rec, e).await,
                };
                let write = settings_for_target(s, &have);
                if write == have {
                    Ok(Outcome::Unchanged)
                } else if dry {
                    Ok(Outcome::Updated)
                } else {
                    self.lf_call(|| lf.put_data_lake_settings(&write)).await?.map(|()| Outcome::Updated)
                }
            }
            // The settings exist as long as the catalog does: a delete has nothing to do.
            (LfKey::DataLakeSettings, _) => Ok(Outcome::Unchanged),
            (LfKey::LfTagExpression { name }, want) => {
                let have = match self.lf_call(|| lf.get_tag_expression(name)).await? {
                    Ok(h) => h,
                    Err(e) => return self.settle(rec, e).await,
                };
                match (have, want) {
                    (Some(h), Some(LfObject::LfTagExpression(w))) if &h == w => Ok(Outcome::Unchanged),
                    (h, Some(LfObject::LfTagExpression(w))) => {
                        let o = if h.is_some() { Outcome::Updated } else { Outcome::Created };
                        if dry {
                            Ok(o)
                        } else {
                            self.lf_call(|| lf.put_tag_expression(w, h.is_some())).await?.map(|()| o)
                        }
                    }
                    (None, None) => Ok(Outcome::Unchanged),
                    (Some(_), None) if dry => Ok(Outcome::Deleted),
                    (Some(_), None) => {
                        self.lf_call(|| lf.delete_tag_expression(name)).await?.map(|()| Outcome::Deleted)
                    }
                    (_, Some(_)) => return self.malformed(rec).await,
                }
            }
            (LfKey::DataCellsFilter { database, table, name }, want) => {
                if want.is_some() && !self.resource_ready(rec, present).await? {
                    return Ok(Outcome::DeadLettered);
                }
                let have = match self.lf_call(|| lf.get_data_cells_filter(database, table, name)).await? {
                    Ok(h) => h,
                    Err(e) => return self.settle(rec, e).await,
                };
                match (have, want) {
                    // The version is the service's own: compared without it.
                    (Some(h), Some(LfObject::DataCellsFilter(w)))
                        if LfObject::DataCellsFilter(h.clone()).writable()
                            == LfObject::DataCellsFilter(w.clone()).writable() =>
                    {
                        Ok(Outcome::Unchanged)
                    }
                    (h, Some(LfObject::DataCellsFilter(w))) => {
                        let o = if h.is_some() { Outcome::Updated } else { Outcome::Created };
                        let version = h.and_then(|h| h.version);
                        if dry {
                            Ok(o)
                        } else {
                            self.lf_call(|| lf.put_data_cells_filter(w, version.as_deref())).await?.map(|()| o)
                        }
                    }
                    (None, None) => Ok(Outcome::Unchanged),
                    (Some(_), None) if dry => Ok(Outcome::Deleted),
                    (Some(_), None) => self
                        .lf_call(|| lf.delete_data_cells_filter(database, table, name))
                        .await?
                        .map(|()| Outcome::Deleted),
                    (_, Some(_)) => return self.malformed(rec).await,
                }
            }
            (LfKey::DataLocation { arn }, want) => {
                // The role Lake Formation reads the location with is a principal of the source
                // account: mapped as grants' principals are, never registered unmapped.
                let mapped;
                let want = match want {
                    Some(LfObject::DataLocation(w)) if w.role_arn.is_some() => {
                        let role = w.role_arn.as_deref().unwrap_or_default();
                        match self.transform.principals.map(role) {
                            Mapped::To(r) => {
                                mapped = LfObject::DataLocation(DataLocation { role_arn: Some(r), ..w.clone() });
                                Some(&mapped)
                            }
                            Mapped::Unmapped { reason } => return self.park_unmapped(rec, &reason).await,
                        }
                    }
                    other => other,
                };
                let have = match self.lf_call(|| lf.describe_location(arn)).await? {
                    Ok(h) => h,
                    Err(e) => return self.settle(rec, e).await,
                };
                match (have, want) {
                    (Some(h), Some(LfObject::DataLocation(w))) if &h == w => Ok(Outcome::Unchanged),
                    (h, Some(LfObject::DataLocation(w))) => {
                        let o = if h.is_some() { Outcome::Updated } else { Outcome::Created };
                        if dry {
                            Ok(o)
                        } else {
                            self.lf_call(|| lf.put_location(w, h.is_some())).await?.map(|()| o)
                        }
                    }
                    (None, None) => Ok(Outcome::Unchanged),
                    (Some(_), None) if dry => Ok(Outcome::Deleted),
                    (Some(_), None) => self.lf_call(|| lf.deregister_location(arn)).await?.map(|()| Outcome::Deleted),
                    (_, Some(_)) => return self.malformed(rec).await,
                }
            }
            (LfKey::OptIn { principal, resource }, want) => {
                let target_principal = match self.transform.principals.map(principal) {
                    Mapped::To(p) => p,
                    Mapped::Unmapped { reason } => return self.park_unmapped(rec, &reason).await,
                };
                let have = match self.lf_call(|| lf.opt_ins_page(Some((&target_principal, resource)), None)).await? {
                    Ok(page) => page.and_then(|p| p.items.into_iter().next()),
                    Err(e) => return self.settle(rec, e).await,
                };
                match (have, want) {
                    (Some(_), Some(LfObject::OptIn(_))) => Ok(Outcome::Unchanged),
                    (None, Some(LfObject::OptIn(w))) => {
                        if !self.resource_ready(rec, present).await? {
                            return Ok(Outcome::DeadLettered);
                        }
                        let w = crate::model::lakeformation::OptIn { principal: target_principal, ..w.clone() };
                        if dry {
                            Ok(Outcome::Created)
                        } else {
                            self.lf_call(|| lf.create_opt_in(&w)).await?.map(|()| Outcome::Created)
                        }
                    }
                    (None, None) => Ok(Outcome::Unchanged),
                    (Some(_), None) if dry => Ok(Outcome::Deleted),
                    (Some(h), None) => self.lf_call(|| lf.delete_opt_in(&h)).await?.map(|()| Outcome::Deleted),
                    (_, Some(_)) => return self.malformed(rec).await,
                }
            }
            // Grants are applied in batches (`apply_grants`).
            (LfKey::Permission { .. }, _) => Ok(Outcome::Unchanged),
        };
        match result {
            Ok(o) => Ok(o),
            Err(e) => self.settle(rec, e).await,
        }
    }

    async fn malformed(&self, rec: &ChangeRecord) -> Result<Outcome, ApplyError> {
        let reason = "malformed record: an upsert whose state is of another kind than its key".to_string();
        self.park(rec, reason, None).await?;
        Ok(Outcome::DeadLettered)
    }

    /// Makes the tags on one database or table (and its columns) those of `want`: removed ones
    /// removed first, then the rest assigned, any key or value the target lacks created first.
    async fn put_resource_tags(
        &self,
        lf: &Arc<dyn LakeFormation>,
        want: &ResourceTags,
    ) -> Result<Result<Outcome, AwsError>, ApplyError> {
        let (database, table) = (want.database.as_str(), want.table.as_deref());
        let have = match self.lf_call(|| lf.resource_tags(database, table)).await? {
            Ok(h) => h.unwrap_or_default(),
            Err(e) => return Ok(Err(e)),
        };
        let mut places: Vec<(Option<&str>, &[LfTagPair], &[LfTagPair])> = vec![(None, &want.tags, &have.tags)];
        let columns: BTreeSet<&String> = want.columns.keys().chain(have.columns.keys()).collect();
        for c in columns {
            let w = want.columns.get(c).map(Vec::as_slice).unwrap_or_default();
            let h = have.columns.get(c).map(Vec::as_slice).unwrap_or_default();
            places.push((Some(c.as_str()), w, h));
        }
        let mut wrote = false;
        for (column, w, h) in places {
            let remove: Vec<LfTagPair> = h.iter().filter(|t| !w.contains(t)).cloned().collect();
            let add = w.iter().any(|t| !h.contains(t));
            if remove.is_empty() && !add {
                continue;
            }
            wrote = true;
            if self.dry_run.is_some() {
                continue;
            }
            if !remove.is_empty() {
                if let Err(e) = self.lf_call(|| lf.remove_resource_tags(database, table, column, &remove)).await? {
                    return Ok(Err(e));
                }
            }
            if add {
                if let Err(e) = self.ensure_tag_values(lf, w).await? {
                    return Ok(Err(e));
                }
                // Every wanted tag, not only the new ones: one call either way, and the local
                // emulator replaces a resource's tags with what a call assigns.
                if let Err(e) = self.lf_call(|| lf.add_resource_tags(database, table, column, w)).await? {
                    return Ok(Err(e));
                }
            }
        }
        Ok(Ok(match (wrote, have.is_empty(), want.is_empty()) {
            (false, _, _) => Outcome::Unchanged,
            (true, true, _) => Outcome::Created,
            (true, false, true) => Outcome::Deleted,
            (true, false, false) => Outcome::Updated,
        }))
    }

    /// Creates the LF-tag keys and values `tags` use that the target lacks.
    async fn ensure_tag_values(
        &self,
        lf: &Arc<dyn LakeFormation>,
        tags: &[LfTagPair],
    ) -> Result<Result<(), AwsError>, ApplyError> {
        for t in tags {
            let have = match self.lf_call(|| lf.get_lf_tag(&t.key)).await? {
                Ok(h) => h,
                Err(e) => return Ok(Err(e)),
            };
            let r = match have {
                None => {
                    let tag = LfTag { key: t.key.clone(), values: sorted_set(t.values.clone()) };
                    self.lf_call(|| lf.create_lf_tag(&tag)).await?
                }
                Some(h) => {
                    let add = minus(&t.values, &h.values);
                    if add.is_empty() {
                        continue;
                    }
                    self.lf_call(|| lf.update_lf_tag(&t.key, &add, &[])).await?
                }
            };
            match r {
                Ok(()) => {}
                // Created meanwhile (another batch's tag record): what it needs is there or follows.
                Err(e) if e.class == ErrorClass::AlreadyExists => {}
                Err(e) => return Ok(Err(e)),
            }
        }
        Ok(Ok(()))
    }
}

/// The policy on the in-memory catalog and Lake Formation (the emulator tests are in
/// `tests/e2e/lakeformation.rs`).
#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::memory::catalog::MemoryCatalog;
    use crate::backend::memory::lakeformation::MemoryLakeFormation;
    use crate::backend::memory::state::MemoryStore;
    use crate::config::{ApplyConfig, TargetConfig};
    use crate::model::principal::PrincipalMap;
    use crate::model::{now_millis, Cause, CauseKind, Database, Origin};
    use crate::state::deadletter::DeadLetterStore;

    const SOURCE: &str = "111122223333";

    struct Setup {
        applier: Applier,
        lf: Arc<MemoryLakeFormation>,
        dead_letters: DeadLetterStore,
    }

    fn setup(principals: PrincipalMap) -> Setup {
        setup_in("{ name: dr, region: us-west-2 }", principals)
    }

    fn setup_in(target_yaml: &str, principals: PrincipalMap) -> Setup {
        let glue = MemoryCatalog::new(SOURCE);
        glue.put(CatalogObject::Database(Database { name: "d".into(), ..Default::default() }));
        glue.put(CatalogObject::Table(crate::model::Table {
            database_name: "d".into(),
            name: "t".into(),
            ..Default::default()
        }));
        let config: TargetConfig = serde_yaml_ng::from_str(target_yaml).expect("target config");
        let mut transform = Transform::new(&config, SOURCE, "us-east-1", SOURCE).expect("transform");
        transform.principals = principals;
        let dead_letters = DeadLetterStore::new(Arc::new(MemoryStore::new()));
        let cfg = ApplyConfig { max_attempts: 2, dependency_wait_seconds: 0, ..Default::default() };
        let lf = Arc::new(MemoryLakeFormation::new(SOURCE));
        let applier = Applier::new("dr", Arc::new(glue), transform, dead_letters.clone(), cfg, false)
            .with_lake_formation(lf.clone());
        Setup { applier, lf, dead_letters }
    }

    fn origin() -> Origin {
        Origin { account: SOURCE.into(), region: "us-east-1".into(), catalog_id: SOURCE.into() }
    }

    fn cause() -> Cause {
        Cause { kind: CauseKind::Snapshot, event_id: None }
    }

    fn grant(principal: &str, resource: LfResource, permissions: &[&str]) -> ChangeRecord {
        let p = Permission::new(
            principal.into(),
            resource,
            permissions.iter().map(|s| s.to_string()).collect(),
            vec![],
            None,
        );
        ChangeRecord::upsert(
            CatalogObject::LakeFormation { lf: LfObject::Permission(p) },
            &origin(),
            cause(),
            now_millis(),
        )
    }

    fn on_db() -> LfResource {
        LfResource::Database { database: "d".into() }
    }

    fn writes(lf: &MemoryLakeFormation) -> usize {
        lf.calls().iter().filter(|c| crate::aws::counter::is_write(c)).count()
    }

    #[tokio::test]
    async fn grants_go_in_calls_of_twenty_and_a_resync_writes_nothing() {
        let s = setup(PrincipalMap::identity());
        let records: Vec<ChangeRecord> = (0..45).map(|i| grant(&format!("p{i}"), on_db(), &["DESCRIBE"])).collect();
        let stats = s.applier.apply(records.clone()).await.expect("applies");
        assert_eq!(s.lf.batch_sizes(), vec![20, 20, 5]);
        assert_eq!(stats.total().created, 45);
        assert_eq!(s.lf.grants().len(), 45);

        let before = writes(&s.lf);
        let stats = s.applier.apply(records).await.expect("applies");
        assert_eq!(writes(&s.lf), before, "a re-sync of unchanged grants writes nothing");
        assert_eq!(stats.total().unchanged, 45);
    }

    #[tokio::test]
    async fn a_partial_revoke_removes_only_what_the_source_no_longer_has_and_a_delete_revokes_the_rest() {
        let s = setup(PrincipalMap::identity());
        s.applier.apply(vec![grant("p", on_db(), &["ALTER", "DESCRIBE"])]).await.expect("applies");
        s.applier.apply(vec![grant("p", on_db(), &["DESCRIBE"])]).await.expect("applies");
        assert_eq!(s.lf.grants()[0].permissions, vec!["DESCRIBE".to_string()]);
        let key = ObjectKey::LakeFormation {
            catalog: SOURCE.into(),
            lf: LfKey::Permission { principal: "p".into(), resource: on_db() },
        };
        s.applier.apply(vec![ChangeRecord::delete(key, &origin(), cause(), now_millis())]).await.expect("applies");
        assert!(s.lf.grants().is_empty());
    }

    #[tokio::test]
    async fn a_rejected_entry_fails_only_its_own_record() {
        let s = setup(PrincipalMap::identity());
        s.lf.fail_principal("bad", ErrorClass::Permanent);
        let records = vec![
            grant("a", on_db(), &["DESCRIBE"]),
            grant("bad", on_db(), &["DESCRIBE"]),
            grant("c", on_db(), &["DESCRIBE"]),
        ];
        let stats = s.applier.apply(records).await.expect("applies");
        assert_eq!((stats.total().created, stats.total().dead_lettered), (2, 1));
        let parked = s.dead_letters.list("dr").await.expect("list");
        assert_eq!(parked.len(), 1);
        assert!(parked[0].1.reason.contains("scripted failure for bad"), "{}", parked[0].1.reason);
        assert_eq!(s.lf.batch_sizes(), vec![3], "one call for the three, no retry of a permanent failure");
    }

    #[tokio::test]
    async fn an_unmapped_principal_is_never_granted_and_is_parked_with_the_reason() {
        let s = setup(PrincipalMap::default());
        let stats =
            s.applier.apply(vec![grant("arn:aws:iam::1:role/x", on_db(), &["DESCRIBE"])]).await.expect("applies");
        assert_eq!(stats.total().dead_lettered, 1);
        assert!(s.lf.grants().is_empty());
        assert!(s.lf.batch_sizes().is_empty(), "no grant call at all");
        let parked = s.dead_letters.list("dr").await.expect("list");
        assert!(parked[0].1.reason.starts_with("unmapped principal: "), "{}", parked[0].1.reason);
    }

    #[tokio::test]
    async fn a_grant_on_a_table_that_never_comes_is_dead_lettered_with_the_reason() {
        let s = setup(PrincipalMap::identity());
        let on_table = LfResource::Table { database: "d".into(), table: "missing".into() };
        let stats = s.applier.apply(vec![grant("p", on_table, &["SELECT"])]).await.expect("applies");
        assert_eq!(stats.total().dead_lettered, 1);
        let parked = s.dead_letters.list("dr").await.expect("list");
        assert!(parked[0].1.reason.contains("table d.missing"), "{}", parked[0].1.reason);
        assert!(s.lf.batch_sizes().is_empty());
    }

    #[tokio::test]
    async fn tags_are_defined_before_they_are_assigned_and_removed_when_the_source_drops_them() {
        let s = setup(PrincipalMap::identity());
        let tags = |pairs: Vec<LfTagPair>| {
            let t = ResourceTags { database: "d".into(), table: None, tags: pairs, ..Default::default() };
            ChangeRecord::upsert(
                CatalogObject::LakeFormation { lf: LfObject::ResourceTags(t) },
                &origin(),
                cause(),
                now_millis(),
            )
        };
        s.applier.apply(vec![tags(vec![LfTagPair::new("team", vec!["a".into()])])]).await.expect("applies");
        let on = s.lf.resource_tags("d", None).await.expect("reads").expect("exists");
        assert_eq!(on.tags, vec![LfTagPair::new("team", vec!["a".into()])]);
        assert_eq!(s.lf.get_lf_tag("team").await.expect("reads").map(|t| t.values), Some(vec!["a".to_string()]));

        s.applier.apply(vec![tags(vec![])]).await.expect("applies");
        assert!(s.lf.resource_tags("d", None).await.expect("reads").expect("exists").is_empty());
    }

    /// A registered location's role is a principal of the source account: it is mapped as a
    /// grant's principal is, and a location whose role no rule maps is parked, not registered
    /// with the source's role.
    #[tokio::test]
    async fn a_locations_role_is_mapped_to_the_target_account_or_parked() {
        use crate::model::lakeformation::DataLocation;
        use crate::model::principal::Rules;
        let rules =
            Rules { account_map: [(SOURCE.to_string(), "444455556666".to_string())].into(), ..Default::default() };
        let s = setup(PrincipalMap::new(rules, "principals").expect("rules"));
        let location = |arn: &str, role: &str| {
            let l = DataLocation { arn: arn.into(), role_arn: Some(role.into()), ..Default::default() };
            ChangeRecord::upsert(
                CatalogObject::LakeFormation { lf: LfObject::DataLocation(l) },
                &origin(),
                cause(),
                now_millis(),
            )
        };
        let records = vec![
            location("arn:aws:s3:::data/a", &format!("arn:aws:iam::{SOURCE}:role/lf-reader")),
            location("arn:aws:s3:::data/b", "arn:aws:iam::999988887777:role/elsewhere"),
        ];
        let stats = s.applier.apply(records).await.expect("applies");
        assert_eq!((stats.total().created, stats.total().dead_lettered), (1, 1), "{stats:?}");
        let a = s.lf.describe_location("arn:aws:s3:::data/a").await.expect("reads").expect("registered");
        assert_eq!(a.role_arn.as_deref(), Some("arn:aws:iam::444455556666:role/lf-reader"));
        assert!(s.lf.describe_location("arn:aws:s3:::data/b").await.expect("reads").is_none());
        let parked = s.dead_letters.list("dr").await.expect("list");
        assert!(parked.iter().any(|(_, d)| d.reason.contains("unmapped principal")), "{parked:?}");
    }

    /// Tags on a table's columns follow the source column by column: added where the source
    /// assigns them, removed where it no longer does, the table's own tags untouched.
    #[tokio::test]
    async fn column_tags_are_assigned_and_removed_per_column() {
        let s = setup(PrincipalMap::identity());
        let pair = |k: &str, v: &str| LfTagPair::new(k, vec![v.to_string()]);
        let tags = |columns: Vec<(&str, Vec<LfTagPair>)>| {
            let t = ResourceTags {
                database: "d".into(),
                table: Some("t".into()),
                tags: vec![pair("team", "a")],
                columns: columns.into_iter().map(|(c, t)| (c.to_string(), t)).collect(),
            };
            ChangeRecord::upsert(
                CatalogObject::LakeFormation { lf: LfObject::ResourceTags(t) },
                &origin(),
                cause(),
                now_millis(),
            )
        };
        let both = vec![("email", vec![pair("class", "pii")]), ("phone", vec![pair("class", "pii")])];
        s.applier.apply(vec![tags(both)]).await.expect("applies");
        let on = s.lf.resource_tags("d", Some("t")).await.expect("reads").expect("exists");
        assert_eq!(on.tags, vec![pair("team", "a")]);
        assert_eq!(on.columns.keys().collect::<Vec<_>>(), ["email", "phone"]);

        s.applier.apply(vec![tags(vec![("email", vec![pair("class", "pii")])])]).await.expect("applies");
        let on = s.lf.resource_tags("d", Some("t")).await.expect("reads").expect("exists");
        assert_eq!(on.columns.keys().collect::<Vec<_>>(), ["email"], "phone's tag removed");
        assert_eq!(on.tags, vec![pair("team", "a")], "the table's own tag stays");
    }

    /// A registered location and a grant on it name the target's bucket, and a re-sync of the
    /// same source records compares against those (no write); a delete finds them too.
    #[tokio::test]
    async fn locations_and_their_grants_are_written_under_the_rewritten_bucket() {
        use crate::model::lakeformation::DataLocation;
        let s = setup_in(
            "{ name: dr, region: us-west-2, location_rewrite: [{ from: 's3://data', to: 's3://data-dr' }] }",
            PrincipalMap::identity(),
        );
        let (source_arn, target_arn) = ("arn:aws:s3:::data/lake", "arn:aws:s3:::data-dr/lake");
        let location = DataLocation { arn: source_arn.into(), ..Default::default() };
        let records = vec![
            ChangeRecord::upsert(
                CatalogObject::LakeFormation { lf: LfObject::DataLocation(location) },
                &origin(),
                cause(),
                now_millis(),
            ),
            grant("p", LfResource::DataLocation { arn: source_arn.into() }, &["DATA_LOCATION_ACCESS"]),
        ];
        let stats = s.applier.apply(records.clone()).await.expect("applies");
        assert_eq!(stats.total().created, 2, "{stats:?}");
        assert!(s.lf.describe_location(source_arn).await.expect("reads").is_none(), "the source bucket");
        assert_eq!(s.lf.describe_location(target_arn).await.expect("reads").map(|l| l.arn), Some(target_arn.into()));
        assert_eq!(s.lf.grants()[0].resource, LfResource::DataLocation { arn: target_arn.into() });

        let before = writes(&s.lf);
        let stats = s.applier.apply(records).await.expect("applies");
        assert_eq!((writes(&s.lf), stats.total().unchanged), (before, 2), "{stats:?}");

        let key = |lf| ObjectKey::LakeFormation { catalog: SOURCE.into(), lf };
        let deletes = vec![
            ChangeRecord::delete(key(LfKey::DataLocation { arn: source_arn.into() }), &origin(), cause(), now_millis()),
            ChangeRecord::delete(
                key(LfKey::Permission {
                    principal: "p".into(),
                    resource: LfResource::DataLocation { arn: source_arn.into() },
                }),
                &origin(),
                cause(),
                now_millis(),
            ),
        ];
        let stats = s.applier.apply(deletes).await.expect("applies");
        assert_eq!(stats.total().deleted, 2, "{stats:?}");
        assert!(s.lf.grants().is_empty());
        assert!(s.lf.describe_location(target_arn).await.expect("reads").is_none());
    }

    #[test]
    fn settings_keep_the_target_admins_and_never_lower_the_cross_account_version() {
        let source = DataLakeSettings {
            admins: vec!["src-admin".into()],
            parameters: [(CROSS_ACCOUNT_VERSION.to_string(), "3".to_string())].into(),
            trusted_resource_owners: vec!["999".into()],
            ..Default::default()
        };
        let target = DataLakeSettings {
            admins: vec!["dr-admin".into()],
            parameters: [(CROSS_ACCOUNT_VERSION.to_string(), "4".to_string())].into(),
            ..Default::default()
        };
        let w = settings_for_target(&source, &target);
        assert_eq!(w.admins, vec!["dr-admin".to_string()]);
        assert_eq!(w.parameters[CROSS_ACCOUNT_VERSION], "4");
        assert_eq!(w.trusted_resource_owners, vec!["999".to_string()]);
    }
}
