//! The Lake Formation part of `diff`: grants, LF-tags, tag assignments, expressions, filters,
//! settings, locations and opt-ins of the source, as apply would write them to the target
//! (principals mapped by the target's rules, S3 ARNs rewritten, the target's own admins kept),
//! compared key by key with what the target holds. Only for a target that receives Lake
//! Formation (`source.lakeformation: true`).
//!
//! A source grant whose principal no rule maps is not drift: it is never granted (the promise),
//! so it is listed among what is not replicated, with the reason. A target grant no source grant
//! maps to is drift ("only in the target"), as apply would revoke it.

use std::collections::BTreeMap;

use super::{DiffError, DiffReport};
use crate::apply::applier::Applier;
use crate::apply::permissions::settings_for_target;
use crate::apply::transform::Transform;
use crate::catalog::lakeformation::LfReader;
use crate::connect::{Pipeline, TargetHandle};
use crate::model::lakeformation::{LfKey, LfObject};
use crate::model::principal::Mapped;
use crate::model::CatalogObject;

/// Every Lake Formation object of one side: its catalog objects, the LF-tags on `tagged`
/// databases and tables (read only when that side defines any LF-tag), and its grants.
async fn read_all(lf: &LfReader, tagged: &[(String, Option<String>)], side: &str) -> Result<Vec<LfObject>, DiffError> {
    let read = |source| DiffError::Read { what: format!("{side} Lake Formation"), source };
    let mut out = lf.catalog_objects().await.map_err(read)?;
    if out.iter().any(|o| matches!(o, LfObject::LfTag(_))) {
        for (database, table) in tagged {
            out.extend(lf.resource_tags(database, table.as_deref()).await.map_err(read)?);
        }
    }
    out.extend(lf.permissions().await.map_err(read)?.into_iter().map(LfObject::Permission));
    Ok(out)
}

/// A source object as the target must hold it; `Err(reason)` when its principal is unmapped.
fn in_target(transform: &Transform, object: &LfObject) -> Result<LfObject, String> {
    let mut out = transform.lf_object(object);
    let principal = match &mut out {
        LfObject::Permission(p) => Some(&mut p.principal),
        LfObject::OptIn(o) => Some(&mut o.principal),
        _ => None,
    };
    if let Some(p) = principal {
        match transform.principals.map(p) {
            Mapped::To(to) => *p = to,
            Mapped::Unmapped { reason } => return Err(reason),
        }
    }
    Ok(out)
}

/// Compares the Lake Formation of the source and one target into `report`; `tagged` are the
/// databases and tables (either side, in scope) whose LF-tags are compared. Returns the source
/// objects left out for an unmapped principal: (object, reason).
pub(super) async fn compare(
    pipeline: &Pipeline,
    handle: &TargetHandle,
    applier: &Applier,
    tagged: &[(String, Option<String>)],
    report: &mut DiffReport,
) -> Result<Vec<(String, String)>, DiffError> {
    let (Some(source), Some(target)) = (pipeline.source.lake_formation(), handle.lake_formation.clone()) else {
        return Ok(Vec::new());
    };
    let target = LfReader::new(target);
    let transform = applier.transform();
    let in_scope = |k: &LfKey| k.database().is_empty() || pipeline.replicates(applier, k.database(), k.table());
    let mut pairs: BTreeMap<LfKey, (Option<LfObject>, Option<LfObject>)> = BTreeMap::new();
    let mut unmapped = Vec::new();
    for o in read_all(source, tagged, "source").await? {
        if !in_scope(&o.key()) {
            continue;
        }
        match in_target(transform, &o) {
            Ok(want) => {
                let key = want.key();
                pairs.entry(key).or_default().0 = Some(want);
            }
            Err(reason) => unmapped.push((o.key().to_string(), reason)),
        }
    }
    for o in read_all(&target, tagged, "target").await? {
        let key = o.key();
        if in_scope(&key) {
            pairs.entry(key).or_default().1 = Some(o);
        }
    }
    let wrap = |lf| CatalogObject::LakeFormation { lf };
    for (key, (want, have)) in pairs {
        // The settings apply writes: the target keeps its own admins and cross-account version.
        let want = match (want, &have) {
            (Some(LfObject::DataLakeSettings(s)), Some(LfObject::DataLakeSettings(t))) => {
                Some(LfObject::DataLakeSettings(settings_for_target(&s, t)))
            }
            (want, _) => want,
        };
        report.compare(transform, key.kind(), key.to_string(), want.map(wrap).as_ref(), have.map(wrap).as_ref());
    }
    Ok(unmapped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::lakeformation::{LfResource, Permission};
    use crate::model::principal::PrincipalMap;

    fn transform(principals: PrincipalMap) -> Transform {
        let target: crate::config::TargetConfig = serde_yaml_ng::from_str(
            "{name: dr, region: us-west-2, location_rewrite: [{from: 's3://data', to: 's3://data-dr'}]}",
        )
        .expect("target");
        let mut t = Transform::new(&target, "111111111111", "us-east-1", "222222222222").expect("transform");
        t.principals = principals;
        t
    }

    fn grant(principal: &str, resource: LfResource) -> LfObject {
        LfObject::Permission(Permission::new(
            principal.into(),
            resource,
            vec!["DATA_LOCATION_ACCESS".into()],
            vec![],
            None,
        ))
    }

    /// What a source grant must be in the target: on the rewritten location, to the mapped
    /// principal; an unmapped one is no object at all, with the reason.
    #[test]
    fn a_source_grant_is_compared_as_apply_writes_it_and_an_unmapped_one_is_left_out() {
        let on = |arn: &str| LfResource::DataLocation { arn: arn.into() };
        let t = transform(PrincipalMap::identity());
        assert_eq!(in_target(&t, &grant("p", on("arn:aws:s3:::data/x"))), Ok(grant("p", on("arn:aws:s3:::data-dr/x"))));
        let t = transform(PrincipalMap::default());
        let unmapped = in_target(&t, &grant("arn:aws:iam::111111111111:role/a", on("arn:aws:s3:::data/x")));
        assert!(unmapped.is_err_and(|reason| !reason.is_empty()));
    }
}
