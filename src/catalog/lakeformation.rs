//! Reading one catalog's Lake Formation whole through [`LakeFormation`]: pages followed to the
//! end, each call retried by the reader's policy, and every object as a keyed [`LfObject`].
//!
//! Grants are read with one unfiltered, paged ListPermissions: without a resource, Lake
//! Formation lists every permission of the catalog (grants on LF-tag policies included, per the
//! API reference; not verified on AWS). A typed listing per resource kind is not used: moto
//! answers the kinds it lacks (and some filters) with HTTP 500.
//!
//! Resource LF-tags are read per database and table, so only when the catalog defines any
//! LF-tag at all (a catalog without LF-tags costs no per-resource reads).
//!
//! Must never: loop on a token the service repeats, or read a feature the endpoint does not
//! offer as "none there" without saying so (it is logged once per read).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tracing::debug;

use super::reader::collect_pages;
use super::ReadError;
use crate::backend::catalog::Page;
use crate::backend::lakeformation::LakeFormation;
use crate::backend::retry::RetryPolicy;
use crate::backend::AwsError;
use crate::model::lakeformation::{LfKey, LfObject, LfTag, Permission};

/// Reads one catalog's Lake Formation.
#[derive(Debug, Clone)]
pub struct LfReader {
    lf: Arc<dyn LakeFormation>,
    retry: RetryPolicy,
}

impl LfReader {
    /// Reads `lf`, every call under the default retry policy.
    pub fn new(lf: Arc<dyn LakeFormation>) -> LfReader {
        LfReader { lf, retry: RetryPolicy::default() }
    }

    /// The Lake Formation read.
    pub fn service(&self) -> &Arc<dyn LakeFormation> {
        &self.lf
    }

    async fn pages<T, F, Fut>(&self, what: &str, page: F) -> Result<Vec<T>, ReadError>
    where
        F: Fn(Option<String>) -> Fut,
        Fut: std::future::Future<Output = Result<Page<T>, AwsError>>,
    {
        let page = &page;
        collect_pages(|token| async move { self.retry.run(|| page(token.clone())).await })
            .await
            .map_err(|e| ReadError::new(format!("Lake Formation {what}"), e))
    }

    /// A list that may be not offered: read as none, logged.
    async fn optional_pages<T, F, Fut>(&self, what: &str, page: F) -> Result<Vec<T>, ReadError>
    where
        F: Fn(Option<String>) -> Fut,
        Fut: std::future::Future<Output = Result<Option<Page<T>>, AwsError>>,
    {
        let offered = AtomicBool::new(true);
        let items = self
            .pages(what, |token| {
                let f = page(token);
                let offered = &offered;
                async move {
                    let p = f.await?;
                    if p.is_none() {
                        offered.store(false, Ordering::Relaxed);
                    }
                    Ok(p.unwrap_or(Page { items: Vec::new(), next_token: None }))
                }
            })
            .await?;
        if !offered.load(Ordering::Relaxed) {
            debug!(what, "this Lake Formation endpoint does not offer {what}; read as none");
        }
        Ok(items)
    }

    /// Every grant of the catalog.
    pub async fn permissions(&self) -> Result<Vec<Permission>, ReadError> {
        self.pages("permissions", |t| async move { self.lf.permissions_page(None, t.as_deref()).await }).await
    }

    pub async fn lf_tags(&self) -> Result<Vec<LfTag>, ReadError> {
        self.pages("LF-tags", |t| async move { self.lf.lf_tags_page(t.as_deref()).await }).await
    }

    /// Every object of the catalog but grants and resource tags (see [`LfReader::permissions`]
    /// and [`LfReader::resource_tags`]): LF-tags, expressions, filters, settings, locations,
    /// opt-ins.
    pub async fn catalog_objects(&self) -> Result<Vec<LfObject>, ReadError> {
        let mut out: Vec<LfObject> = self.lf_tags().await?.into_iter().map(LfObject::LfTag).collect();
        let expressions = self
            .optional_pages("LF-tag expressions", |t| async move { self.lf.tag_expressions_page(t.as_deref()).await })
            .await?;
        out.extend(expressions.into_iter().map(LfObject::LfTagExpression));
        let filters =
            self.optional_pages("data cells filters", |t| async move {
                self.lf.data_cells_filters_page(t.as_deref()).await
            })
            .await?;
        out.extend(filters.into_iter().map(LfObject::DataCellsFilter));
        let settings = self
            .retry
            .run(|| self.lf.data_lake_settings())
            .await
            .map_err(|e| ReadError::new("Lake Formation data lake settings", e))?;
        out.push(LfObject::DataLakeSettings(settings));
        let locations =
            self.pages("registered locations", |t| async move { self.lf.locations_page(t.as_deref()).await }).await?;
        out.extend(locations.into_iter().map(LfObject::DataLocation));
        let opt_ins = self
            .optional_pages("hybrid access opt-ins", |t| async move { self.lf.opt_ins_page(None, t.as_deref()).await })
            .await?;
        out.extend(opt_ins.into_iter().map(LfObject::OptIn));
        Ok(out)
    }

    /// The LF-tags on a database or table (`None`: none, or no such resource).
    pub async fn resource_tags(&self, database: &str, table: Option<&str>) -> Result<Option<LfObject>, ReadError> {
        let what = || match table {
            Some(t) => format!("LF-tags on {database}.{t}"),
            None => format!("LF-tags on {database}"),
        };
        let tags =
            self.retry.run(|| self.lf.resource_tags(database, table)).await.map_err(|e| ReadError::new(what(), e))?;
        Ok(tags.filter(|t| !t.is_empty()).map(LfObject::ResourceTags))
    }

    /// The current state of the objects `keys` name (absent: gone). Grants are matched in one
    /// unfiltered listing, whatever their number (see the module doc).
    pub async fn objects(&self, keys: &[LfKey]) -> Result<BTreeMap<LfKey, LfObject>, ReadError> {
        let mut out = BTreeMap::new();
        let wanted: std::collections::BTreeSet<&LfKey> = keys.iter().collect();
        let mut catalog_level = false;
        let mut grants = false;
        for k in keys {
            match k {
                LfKey::Permission { .. } => grants = true,
                LfKey::ResourceTags { database, table } => {
                    if let Some(o) = self.resource_tags(database, table.as_deref()).await? {
                        out.insert(k.clone(), o);
                    }
                }
                _ => catalog_level = true,
            }
        }
        if grants {
            for p in self.permissions().await? {
                let o = LfObject::Permission(p);
                if wanted.contains(&o.key()) {
                    out.insert(o.key(), o);
                }
            }
        }
        if catalog_level {
            for o in self.catalog_objects().await? {
                if wanted.contains(&o.key()) {
                    out.insert(o.key(), o);
                }
            }
        }
        Ok(out)
    }
}
