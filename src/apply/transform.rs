//! Per-target transforms: what a source object becomes in one target catalog.
//!
//! - S3 locations are rewritten bucket → bucket keeping the rest of the key (database
//!   `location_uri`, storage-descriptor `location` and `additional_locations`, skewed-value
//!   location maps, the Iceberg `metadata_location`/`previous_metadata_location` parameters,
//!   and the Spark `path` SerDe parameter).
//! - Resource links that point into the source catalog are re-pointed at the target catalog.
//! - Read-only metadata is dropped ([`CatalogObject::writable`]).
//!
//! Transforms are pure and deterministic: the applier compares `transform(source)` with the
//! target's current state, so applying twice is a no-op.

use crate::config::{LocationRewrite, TargetConfig};
use crate::model::{CatalogObject, Params, StorageDescriptor};

use super::filter::Filter;

/// Table parameters that hold S3 locations (Iceberg, Hudi/Delta via Spark).
const LOCATION_PARAMS: [&str; 2] = ["metadata_location", "previous_metadata_location"];
/// SerDe parameters that hold S3 locations (Spark data source tables).
const LOCATION_SERDE_PARAMS: [&str; 1] = ["path"];

/// The transform for one target.
#[derive(Debug, Clone)]
pub struct Transform {
    rewrites: Vec<LocationRewrite>,
    filter: Filter,
    source_catalog: String,
    source_region: String,
    target_catalog: String,
    target_region: String,
}

impl Transform {
    pub fn new(
        target: &TargetConfig,
        source_catalog: &str,
        source_region: &str,
        target_catalog: &str,
    ) -> Result<Transform, String> {
        Ok(Transform {
            rewrites: target.location_rewrite.clone(),
            filter: Filter::new(&target.include, &target.exclude)?,
            source_catalog: source_catalog.to_string(),
            source_region: source_region.to_string(),
            target_catalog: target_catalog.to_string(),
            target_region: target.region.clone(),
        })
    }

    /// Whether the object identified by (database, table) goes to this target.
    pub fn allows(&self, database: &str, table: Option<&str>) -> bool {
        match table {
            Some(t) => self.filter.allows_table(database, t),
            None => self.filter.allows_database(database),
        }
    }

    /// Rewrites one S3 location; first matching rule wins. A rule matches on a whole path segment
    /// (`s3://data` matches `s3://data/x` and `s3://data`, never `s3://data-raw/x`).
    pub fn rewrite_location(&self, location: &str) -> String {
        for r in &self.rewrites {
            let from = r.from.trim_end_matches('/');
            if let Some(rest) = location.strip_prefix(from) {
                if rest.is_empty() || rest.starts_with('/') {
                    return format!("{}{}", r.to.trim_end_matches('/'), rest);
                }
            }
        }
        location.to_string()
    }

    fn rewrite_opt(&self, loc: &mut Option<String>) {
        if let Some(l) = loc {
            *l = self.rewrite_location(l);
        }
    }

    fn rewrite_params(&self, params: &mut Params, keys: &[&str]) {
        for k in keys {
            if let Some(v) = params.get_mut(*k) {
                *v = self.rewrite_location(v);
            }
        }
    }

    fn rewrite_sd(&self, sd: &mut StorageDescriptor) {
        self.rewrite_opt(&mut sd.location);
        for l in &mut sd.additional_locations {
            *l = self.rewrite_location(l);
        }
        if let Some(skew) = &mut sd.skewed_info {
            for v in skew.skewed_column_value_location_maps.values_mut() {
                *v = self.rewrite_location(v);
            }
        }
        if let Some(serde) = &mut sd.serde_info {
            self.rewrite_params(&mut serde.parameters, &LOCATION_SERDE_PARAMS);
        }
    }

    fn map_catalog(&self, catalog: &mut Option<String>, region: &mut Option<String>) {
        let same_catalog = catalog.as_deref().is_none_or(|c| c == self.source_catalog);
        let same_region = region.as_deref().is_none_or(|r| r == self.source_region);
        if same_catalog && same_region {
            if catalog.is_some() {
                *catalog = Some(self.target_catalog.clone());
            }
            if region.is_some() {
                *region = Some(self.target_region.clone());
            }
        }
    }

    /// The object as it must look in the target.
    pub fn apply(&self, object: &CatalogObject) -> CatalogObject {
        let mut out = object.writable();
        match &mut out {
            CatalogObject::Database(d) => {
                self.rewrite_opt(&mut d.location_uri);
                if let Some(t) = &mut d.target_database {
                    self.map_catalog(&mut t.catalog_id, &mut t.region);
                }
            }
            CatalogObject::Table(t) => {
                if let Some(sd) = &mut t.storage_descriptor {
                    self.rewrite_sd(sd);
                }
                self.rewrite_params(&mut t.parameters, &LOCATION_PARAMS);
                if let Some(link) = &mut t.target_table {
                    self.map_catalog(&mut link.catalog_id, &mut link.region);
                }
            }
            CatalogObject::Partition(p) => {
                if let Some(sd) = &mut p.storage_descriptor {
                    self.rewrite_sd(sd);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SerDeInfo, SkewedInfo, Table, TableIdentifier};

    fn transform() -> Transform {
        let target: TargetConfig = serde_yaml_ng::from_str(
            "{name: dr, region: us-west-2, location_rewrite: [{from: 's3://data/', to: 's3://data-dr'}, {from: 's3://logs', to: 's3://logs-dr/copy'}]}",
        )
        .expect("target");
        Transform::new(&target, "111111111111", "us-east-1", "222222222222").expect("transform")
    }

    #[test]
    fn rewrites_on_bucket_boundary_only() {
        let t = transform();
        assert_eq!(t.rewrite_location("s3://data/a/b/"), "s3://data-dr/a/b/");
        assert_eq!(t.rewrite_location("s3://data"), "s3://data-dr");
        assert_eq!(t.rewrite_location("s3://data-raw/a"), "s3://data-raw/a");
        assert_eq!(t.rewrite_location("s3://logs/x"), "s3://logs-dr/copy/x");
    }

    #[test]
    fn rewrites_every_location_field_and_links() {
        let mut table = Table { database_name: "db".into(), name: "t".into(), ..Default::default() };
        table.parameters.insert("metadata_location".into(), "s3://data/t/metadata/1.json".into());
        let mut sd = StorageDescriptor { location: Some("s3://data/t/".into()), ..Default::default() };
        sd.additional_locations.push("s3://logs/t2".into());
        let mut skew = SkewedInfo::default();
        skew.skewed_column_value_location_maps.insert("a".into(), "s3://data/t/a".into());
        sd.skewed_info = Some(skew);
        let mut serde = SerDeInfo::default();
        serde.parameters.insert("path".into(), "s3://data/t".into());
        sd.serde_info = Some(serde);
        table.storage_descriptor = Some(sd);
        table.target_table = Some(TableIdentifier {
            catalog_id: Some("111111111111".into()),
            database_name: Some("db".into()),
            name: Some("x".into()),
            region: Some("us-east-1".into()),
        });
        let CatalogObject::Table(out) = transform().apply(&CatalogObject::Table(table)) else { panic!() };
        let sd = out.storage_descriptor.expect("sd");
        assert_eq!(sd.location.as_deref(), Some("s3://data-dr/t/"));
        assert_eq!(sd.additional_locations, vec!["s3://logs-dr/copy/t2".to_string()]);
        assert_eq!(sd.skewed_info.expect("skew").skewed_column_value_location_maps["a"], "s3://data-dr/t/a");
        assert_eq!(sd.serde_info.expect("serde").parameters["path"], "s3://data-dr/t");
        assert_eq!(out.parameters["metadata_location"], "s3://data-dr/t/metadata/1.json");
        let link = out.target_table.expect("link");
        assert_eq!(link.catalog_id.as_deref(), Some("222222222222"));
        assert_eq!(link.region.as_deref(), Some("us-west-2"));
    }
}
