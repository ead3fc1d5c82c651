//! [`MemoryLakeFormation`]: one catalog's Lake Formation in memory, with Lake Formation's
//! semantics where apply relies on them, scripted per-entry failures and a call log.
//!
//! Semantics kept: a grant adds to the principal's permissions on the resource (a union), a
//! revoke removes from them and drops the grant once nothing is left; batch calls take at most
//! [`GRANT_BATCH`] entries (more is rejected) and fail per entry; assigning a tag key or value
//! that is not defined fails; deleting a tag removes it from every resource; gets of missing
//! objects answer `Ok(None)`; lists page by [`MemoryLakeFormation::page_size`].
//!
//! Must never: sleep, retry, or fail a call the test did not script to fail (other than the
//! failures Lake Formation itself would answer).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::backend::catalog::Page;
use crate::backend::lakeformation::{EntryError, LakeFormation, GRANT_BATCH};
use crate::backend::{AwsError, ErrorClass};
use crate::model::lakeformation::{
    sorted_pairs, sorted_set, DataCellsFilter, DataLakeSettings, DataLocation, LfResource, LfTag, LfTagExpression,
    LfTagPair, OptIn, Permission, ResourceTags,
};

type Grant = (String, LfResource);
type Tagged = (String, Option<String>);

/// An in-memory Lake Formation.
#[derive(Debug)]
pub struct MemoryLakeFormation {
    catalog_id: String,
    page_size: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    grants: BTreeMap<Grant, Permission>,
    tags: BTreeMap<String, Vec<String>>,
    /// (database, table) → (column or `None` for the resource itself) → tags.
    assigned: BTreeMap<Tagged, BTreeMap<Option<String>, Vec<LfTagPair>>>,
    expressions: BTreeMap<String, LfTagExpression>,
    filters: BTreeMap<(String, String, String), DataCellsFilter>,
    settings: DataLakeSettings,
    locations: BTreeMap<String, DataLocation>,
    opt_ins: BTreeMap<Grant, OptIn>,
    /// Grant and revoke entries of these principals fail with the class.
    principal_faults: BTreeMap<String, ErrorClass>,
    calls: Vec<&'static str>,
    /// Entries per batch call, in order.
    batch_sizes: Vec<usize>,
    versions: u64,
}

fn err(operation: &'static str, class: ErrorClass, message: String) -> AwsError {
    AwsError { service: "lakeformation", operation, class, code: None, message }
}

fn page<T: Clone>(items: Vec<T>, token: Option<&str>, size: usize) -> Page<T> {
    let start = token.and_then(|t| t.parse::<usize>().ok()).unwrap_or(0);
    let end = (start + size.max(1)).min(items.len());
    let next_token = (end < items.len()).then(|| end.to_string());
    Page { items: items.get(start..end).map(<[T]>::to_vec).unwrap_or_default(), next_token }
}

impl MemoryLakeFormation {
    pub fn new(catalog_id: &str) -> MemoryLakeFormation {
        MemoryLakeFormation { catalog_id: catalog_id.to_string(), page_size: 100, state: Mutex::default() }
    }

    /// Objects per list page.
    pub fn page_size(self, page_size: usize) -> MemoryLakeFormation {
        MemoryLakeFormation { page_size, ..self }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn log(&self, op: &'static str) -> MutexGuard<'_, State> {
        let mut s = self.state();
        s.calls.push(op);
        s
    }

    /// Every grant and revoke entry of `principal` fails with `class` from now on.
    pub fn fail_principal(&self, principal: &str, class: ErrorClass) {
        self.state().principal_faults.insert(principal.to_string(), class);
    }

    /// The operations called so far, in order.
    pub fn calls(&self) -> Vec<&'static str> {
        self.state().calls.clone()
    }

    /// Entries of each batch grant or revoke call so far.
    pub fn batch_sizes(&self) -> Vec<usize> {
        self.state().batch_sizes.clone()
    }

    /// Every grant, sorted by principal and resource.
    pub fn grants(&self) -> Vec<Permission> {
        self.state().grants.values().cloned().collect()
    }

    /// Sets the settings directly (a test's starting point).
    pub fn set_settings(&self, settings: DataLakeSettings) {
        self.state().settings = settings;
    }

    fn batch(
        &self,
        op: &'static str,
        entries: &[Permission],
        mut each: impl FnMut(&mut State, &Permission),
    ) -> Result<Vec<EntryError>, AwsError> {
        let mut s = self.log(op);
        if entries.len() > GRANT_BATCH {
            let why = format!("{} entries; at most {GRANT_BATCH} are allowed", entries.len());
            return Err(err(op, ErrorClass::Permanent, why));
        }
        s.batch_sizes.push(entries.len());
        let mut failed = Vec::new();
        for (index, p) in entries.iter().enumerate() {
            match s.principal_faults.get(&p.principal) {
                Some(class) => {
                    let error = err(op, *class, format!("scripted failure for {}", p.principal));
                    failed.push(EntryError { index, error });
                }
                None => each(&mut s, p),
            }
        }
        Ok(failed)
    }
}

#[async_trait]
impl LakeFormation for MemoryLakeFormation {
    fn catalog_id(&self) -> &str {
        &self.catalog_id
    }

    async fn permissions_page(
        &self,
        resource: Option<&LfResource>,
        token: Option<&str>,
    ) -> Result<Page<Permission>, AwsError> {
        let s = self.log("ListPermissions");
        let items = s.grants.values().filter(|p| resource.is_none_or(|r| &p.resource == r)).cloned().collect();
        Ok(page(items, token, self.page_size))
    }

    async fn grant(&self, entries: &[Permission]) -> Result<Vec<EntryError>, AwsError> {
        self.batch("BatchGrantPermissions", entries, |s, p| {
            let key = (p.principal.clone(), p.resource.clone());
            let cur = s.grants.entry(key).or_insert_with(|| Permission {
                permissions: vec![],
                grantable: vec![],
                ..p.clone()
            });
            cur.permissions = sorted_set([cur.permissions.clone(), p.permissions.clone()].concat());
            cur.grantable = sorted_set([cur.grantable.clone(), p.grantable.clone()].concat());
            cur.condition = p.condition.clone();
        })
    }

    async fn revoke(&self, entries: &[Permission]) -> Result<Vec<EntryError>, AwsError> {
        self.batch("BatchRevokePermissions", entries, |s, p| {
            let key = (p.principal.clone(), p.resource.clone());
            if let Some(cur) = s.grants.get_mut(&key) {
                cur.permissions.retain(|x| !p.permissions.contains(x));
                cur.grantable.retain(|x| !p.grantable.contains(x));
                if cur.is_empty() {
                    s.grants.remove(&key);
                }
            }
        })
    }

    async fn lf_tags_page(&self, token: Option<&str>) -> Result<Page<LfTag>, AwsError> {
        let s = self.log("ListLFTags");
        let items = s.tags.iter().map(|(k, v)| LfTag { key: k.clone(), values: v.clone() }).collect();
        Ok(page(items, token, self.page_size))
    }

    async fn get_lf_tag(&self, key: &str) -> Result<Option<LfTag>, AwsError> {
        let s = self.log("GetLFTag");
        Ok(s.tags.get(key).map(|v| LfTag { key: key.to_string(), values: v.clone() }))
    }

    async fn create_lf_tag(&self, tag: &LfTag) -> Result<(), AwsError> {
        let mut s = self.log("CreateLFTag");
        if s.tags.contains_key(&tag.key) {
            return Err(err("CreateLFTag", ErrorClass::AlreadyExists, format!("LF-tag {} exists", tag.key)));
        }
        s.tags.insert(tag.key.clone(), sorted_set(tag.values.clone()));
        Ok(())
    }

    async fn update_lf_tag(&self, key: &str, add: &[String], delete: &[String]) -> Result<(), AwsError> {
        let mut s = self.log("UpdateLFTag");
        let Some(values) = s.tags.get_mut(key) else {
            return Err(err("UpdateLFTag", ErrorClass::NotFound, format!("no LF-tag {key}")));
        };
        let mut v: BTreeSet<String> = values.iter().cloned().collect();
        v.extend(add.iter().cloned());
        v.retain(|x| !delete.contains(x));
        *values = v.into_iter().collect();
        Ok(())
    }

    async fn delete_lf_tag(&self, key: &str) -> Result<(), AwsError> {
        let mut s = self.log("DeleteLFTag");
        if s.tags.remove(key).is_none() {
            return Err(err("DeleteLFTag", ErrorClass::NotFound, format!("no LF-tag {key}")));
        }
        for on in s.assigned.values_mut() {
            for tags in on.values_mut() {
                tags.retain(|t| t.key != key);
            }
        }
        Ok(())
    }

    async fn resource_tags(&self, database: &str, table: Option<&str>) -> Result<Option<ResourceTags>, AwsError> {
        let s = self.log("GetResourceLFTags");
        let mut out =
            ResourceTags { database: database.into(), table: table.map(str::to_string), ..Default::default() };
        if let Some(on) = s.assigned.get(&(database.to_string(), table.map(str::to_string))) {
            for (column, tags) in on.iter().filter(|(_, t)| !t.is_empty()) {
                match column {
                    None => out.tags = tags.clone(),
                    Some(c) => {
                        out.columns.insert(c.clone(), tags.clone());
                    }
                }
            }
        }
        Ok(Some(out))
    }

    async fn add_resource_tags(
        &self,
        database: &str,
        table: Option<&str>,
        column: Option<&str>,
        tags: &[LfTagPair],
    ) -> Result<(), AwsError> {
        let mut s = self.log("AddLFTagsToResource");
        for t in tags {
            let defined = s.tags.get(&t.key).is_some_and(|v| t.values.iter().all(|x| v.contains(x)));
            if !defined {
                let why = format!("LF-tag {}={} is not defined", t.key, t.values.join("|"));
                return Err(err("AddLFTagsToResource", ErrorClass::NotFound, why));
            }
        }
        let on = s.assigned.entry((database.to_string(), table.map(str::to_string))).or_default();
        let cur = on.entry(column.map(str::to_string)).or_default();
        // Assigning a key again replaces its value, as Lake Formation does.
        cur.retain(|c| !tags.iter().any(|t| t.key == c.key));
        cur.extend(tags.iter().cloned());
        *cur = sorted_pairs(std::mem::take(cur));
        Ok(())
    }

    async fn remove_resource_tags(
        &self,
        database: &str,
        table: Option<&str>,
        column: Option<&str>,
        tags: &[LfTagPair],
    ) -> Result<(), AwsError> {
        let mut s = self.log("RemoveLFTagsFromResource");
        if let Some(cur) = s
            .assigned
            .get_mut(&(database.to_string(), table.map(str::to_string)))
            .and_then(|on| on.get_mut(&column.map(str::to_string)))
        {
            cur.retain(|c| !tags.iter().any(|t| t.key == c.key));
        }
        Ok(())
    }

    async fn tag_expressions_page(&self, token: Option<&str>) -> Result<Option<Page<LfTagExpression>>, AwsError> {
        let s = self.log("ListLFTagExpressions");
        Ok(Some(page(s.expressions.values().cloned().collect(), token, self.page_size)))
    }

    async fn get_tag_expression(&self, name: &str) -> Result<Option<LfTagExpression>, AwsError> {
        Ok(self.log("GetLFTagExpression").expressions.get(name).cloned())
    }

    async fn put_tag_expression(&self, expression: &LfTagExpression, exists: bool) -> Result<(), AwsError> {
        let mut s = self.log(if exists { "UpdateLFTagExpression" } else { "CreateLFTagExpression" });
        s.expressions.insert(expression.name.clone(), expression.clone());
        Ok(())
    }

    async fn delete_tag_expression(&self, name: &str) -> Result<(), AwsError> {
        self.log("DeleteLFTagExpression").expressions.remove(name);
        Ok(())
    }

    async fn data_cells_filters_page(&self, token: Option<&str>) -> Result<Option<Page<DataCellsFilter>>, AwsError> {
        let s = self.log("ListDataCellsFilter");
        Ok(Some(page(s.filters.values().cloned().collect(), token, self.page_size)))
    }

    async fn get_data_cells_filter(
        &self,
        database: &str,
        table: &str,
        name: &str,
    ) -> Result<Option<DataCellsFilter>, AwsError> {
        let s = self.log("GetDataCellsFilter");
        Ok(s.filters.get(&(database.to_string(), table.to_string(), name.to_string())).cloned())
    }

    async fn put_data_cells_filter(&self, filter: &DataCellsFilter, version: Option<&str>) -> Result<(), AwsError> {
        let mut s = self.log(if version.is_some() { "UpdateDataCellsFilter" } else { "CreateDataCellsFilter" });
        s.versions += 1;
        let stored = DataCellsFilter { version: Some(s.versions.to_string()), ..filter.clone() };
        s.filters.insert((filter.database.clone(), filter.table.clone(), filter.name.clone()), stored);
        Ok(())
    }

    async fn delete_data_cells_filter(&self, database: &str, table: &str, name: &str) -> Result<(), AwsError> {
        self.log("DeleteDataCellsFilter").filters.remove(&(database.to_string(), table.to_string(), name.to_string()));
        Ok(())
    }

    async fn data_lake_settings(&self) -> Result<DataLakeSettings, AwsError> {
        Ok(self.log("GetDataLakeSettings").settings.clone())
    }

    async fn put_data_lake_settings(&self, settings: &DataLakeSettings) -> Result<(), AwsError> {
        self.log("PutDataLakeSettings").settings = settings.clone();
        Ok(())
    }

    async fn locations_page(&self, token: Option<&str>) -> Result<Page<DataLocation>, AwsError> {
        let s = self.log("ListResources");
        Ok(page(s.locations.values().cloned().collect(), token, self.page_size))
    }

    async fn describe_location(&self, arn: &str) -> Result<Option<DataLocation>, AwsError> {
        Ok(self.log("DescribeResource").locations.get(arn).cloned())
    }

    async fn put_location(&self, location: &DataLocation, exists: bool) -> Result<(), AwsError> {
        let mut s = self.log(if exists { "UpdateResource" } else { "RegisterResource" });
        s.locations.insert(location.arn.clone(), location.clone());
        Ok(())
    }

    async fn deregister_location(&self, arn: &str) -> Result<(), AwsError> {
        self.log("DeregisterResource").locations.remove(arn);
        Ok(())
    }

    async fn opt_ins_page(
        &self,
        of: Option<(&str, &LfResource)>,
        token: Option<&str>,
    ) -> Result<Option<Page<OptIn>>, AwsError> {
        let s = self.log("ListLakeFormationOptIns");
        let items = s
            .opt_ins
            .values()
            .filter(|o| of.is_none_or(|(p, r)| o.principal == p && &o.resource == r))
            .cloned()
            .collect();
        Ok(Some(page(items, token, self.page_size)))
    }

    async fn create_opt_in(&self, opt_in: &OptIn) -> Result<(), AwsError> {
        let mut s = self.log("CreateLakeFormationOptIn");
        s.opt_ins.insert((opt_in.principal.clone(), opt_in.resource.clone()), opt_in.clone());
        Ok(())
    }

    async fn delete_opt_in(&self, opt_in: &OptIn) -> Result<(), AwsError> {
        self.log("DeleteLakeFormationOptIn").opt_ins.remove(&(opt_in.principal.clone(), opt_in.resource.clone()));
        Ok(())
    }
}
