//! Per-target transforms: what a source object becomes in one target catalog.
//!
//! - S3 locations are rewritten bucket → bucket keeping the rest of the key, wherever they are:
//!   every S3 URI inside every string that can hold a location (see [`visit_locations`]), under
//!   any parameter key, inside templates (`s3://bucket/logs/${dt}/`) and lists
//!   (`s3://a/x,s3://a/y`), in the `s3://`, `s3a://` and `s3n://` schemes (a rule written
//!   `s3://src` covers all three and keeps the scheme it finds). A rule matches at a bucket or
//!   prefix boundary only: `s3://data` never touches `s3://data-raw/x`.
//! - Lake Formation's S3 ARNs (`arn:aws:s3:::bucket/prefix`: registered data locations and
//!   `DataLocation` grant resources) are rewritten by the same rules, matched on what follows
//!   `s3:::` exactly as on what follows `s3://`, so a target never names the source bucket.
//! - Resource links that point into the source catalog are re-pointed at the target catalog.
//! - Read-only metadata is dropped ([`CatalogObject::writable`]).
//!
//! Not locations, kept as they are: names and partition values (the object's identity), column
//! names and types, class names, principals, resource-link and federation identifiers, and view
//! SQL (`view_original_text`, `view_expanded_text`, `view_definition`). View SQL is code: an
//! `s3://` literal in it may be data the view compares with (`"$path" LIKE 's3://...'`), so a
//! rewrite could change what the view computes; Athena stores its views base64-encoded, where no
//! rewrite could reach anyway. Views read data through tables, and those are rewritten.
//!
//! Transforms are pure, deterministic and idempotent: the applier compares `transform(source)`
//! with the target's current state, so applying twice is a no-op. A URI already under a rule's
//! `to` is left alone, so a `to` inside its `from` (`s3://data` → `s3://data/dr`) is not
//! rewritten twice.

use std::fmt;

use crate::config::{LocationRewrite, TargetConfig};
use crate::model::lakeformation::{LfKey, LfObject, LfResource};
use crate::model::{CatalogObject, Column, Params, StorageDescriptor};

use crate::model::filter::Filter;
use crate::model::principal::{Mapped, PrincipalMap};

/// URI schemes that address S3: Hadoop's `s3a` and `s3n` name the same buckets as `s3`.
const S3_SCHEMES: [&str; 3] = ["s3a", "s3n", "s3"];

/// One location rule, without its scheme and trailing `/`: `bucket` or `bucket/prefix`.
#[derive(Debug, Clone)]
struct Rule {
    from: String,
    to: String,
}

impl Rule {
    fn new(r: &LocationRewrite) -> Rule {
        let bare = |uri: &str| strip_scheme(uri).unwrap_or(uri).trim_end_matches('/').to_string();
        Rule { from: bare(&r.from), to: bare(&r.to) }
    }
}

/// `uri` after its S3 scheme and `://`, if it has one.
fn strip_scheme(uri: &str) -> Option<&str> {
    let (scheme, rest) = uri.split_once("://")?;
    S3_SCHEMES.iter().any(|s| scheme.eq_ignore_ascii_case(s)).then_some(rest)
}

/// Whether `c`, right after a bucket or prefix, ends it: a `/`, or a character that cannot be
/// part of a bucket name or key segment as written in a parameter, a list or quoted text. Any
/// other character (`-`, `.`, `_`, `$`, `{`, `*`, `=`, letters, digits) continues the name, so the
/// URI names another bucket or key (`s3://data-raw`, `s3://data${env}`, `s3://data/logs2`).
fn ends_name(c: char) -> bool {
    c == '/'
        || c.is_whitespace()
        || matches!(c, '"' | '\'' | '`' | ',' | ';' | ')' | ']' | '}' | '>' | '|' | '?' | '#' | '&' | '\\')
}

/// Whether `rest` (what follows `scheme://`) lies under `prefix` at a name boundary.
fn is_under(rest: &str, prefix: &str) -> bool {
    rest.strip_prefix(prefix).is_some_and(|after| after.chars().next().is_none_or(ends_name))
}

/// Whether the `://` at `at` ends an S3 scheme (any case), and not the tail of a longer scheme
/// (`xs3://`, `foo+s3a://`).
fn is_s3_scheme_before(text: &str, at: usize) -> bool {
    let bytes = text.as_bytes();
    let Some(start) = S3_SCHEMES
        .iter()
        .find(|s| at >= s.len() && bytes[at - s.len()..at].eq_ignore_ascii_case(s.as_bytes()))
        .map(|s| at - s.len())
    else {
        return false;
    };
    let scheme_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.');
    start == 0 || !scheme_char(bytes[start - 1])
}

/// Where the bucket starts in an S3 ARN (`arn:<partition>:s3:::bucket/key`), if `arn` is one.
fn s3_arn_bucket_at(arn: &str) -> Option<usize> {
    let (partition, rest) = arn.strip_prefix("arn:")?.split_once(':')?;
    let bucket = rest.strip_prefix("s3:::")?;
    (!partition.is_empty()).then(|| arn.len() - bucket.len())
}

/// The principal map of `target`: its `principals` rules, else identity in the source's own
/// account (`same_account`) and no mapping in another. Validation has already refused bad rules;
/// should any remain, they are an error here rather than a grant.
fn principal_map(target: &TargetConfig, same_account: bool) -> Result<PrincipalMap, String> {
    let at = target.principals_path();
    let rules = target.principals.as_ref().map(|p| p.rules());
    PrincipalMap::for_target(rules, same_account, &at).map_err(|problems| {
        problems.iter().map(|p| format!("{at}.{}: {}", p.key, p.message)).collect::<Vec<_>>().join("; ")
    })
}

/// The transform for one target.
#[derive(Debug, Clone)]
pub struct Transform {
    rules: Vec<Rule>,
    filter: Filter,
    source_catalog: String,
    source_region: String,
    target_catalog: String,
    target_region: String,
    /// Where this target's Lake Formation grants go (identity for a same-account target).
    pub principals: PrincipalMap,
}

impl Transform {
    pub fn new(
        target: &TargetConfig,
        source_catalog: &str,
        source_region: &str,
        target_catalog: &str,
    ) -> Result<Transform, String> {
        Ok(Transform {
            rules: target.location_rewrite.iter().map(Rule::new).collect(),
            filter: Filter::new(&target.include, &target.exclude)?,
            source_catalog: source_catalog.to_string(),
            source_region: source_region.to_string(),
            target_catalog: target_catalog.to_string(),
            target_region: target.region.clone(),
            principals: principal_map(target, source_catalog == target_catalog)?,
        })
    }

    /// Whether the object identified by (database, table) goes to this target.
    pub fn allows(&self, database: &str, table: Option<&str>) -> bool {
        match table {
            Some(t) => self.filter.allows_table(database, t),
            None => self.filter.allows_database(database),
        }
    }

    /// `text` with every S3 URI of a rewritten bucket rewritten (first matching rule wins).
    pub fn rewrite_location(&self, text: &str) -> String {
        self.rewritten(text).unwrap_or_else(|| text.to_string())
    }

    /// The rewritten text, or `None` when no URI in it matches a rule (the common case, which
    /// then allocates nothing).
    fn rewritten(&self, text: &str) -> Option<String> {
        let mut out: Option<String> = None;
        let mut copied = 0;
        for (at, sep) in text.match_indices("://") {
            if at < copied || !is_s3_scheme_before(text, at) {
                continue;
            }
            let key_at = at + sep.len();
            let Some(rule) = self.matching_rule(&text[key_at..]) else { continue };
            let buf = out.get_or_insert_with(|| String::with_capacity(text.len() + 16));
            buf.push_str(&text[copied..key_at]);
            buf.push_str(&rule.to);
            copied = key_at + rule.from.len();
        }
        out.map(|mut buf| {
            buf.push_str(&text[copied..]);
            buf
        })
    }

    /// The first rule whose `from` holds `rest` (what follows `scheme://`), unless `rest` is
    /// already under that rule's `to` (a `to` inside its `from`, already rewritten).
    fn matching_rule(&self, rest: &str) -> Option<&Rule> {
        let rule = self.rules.iter().find(|r| is_under(rest, &r.from))?;
        (!is_under(rest, &rule.to)).then_some(rule)
    }

    /// The fields of `object` that still name a rewritten-from location: what a target object
    /// must never hold (its copy would read the source Region's data).
    pub fn source_locations(&self, object: &CatalogObject) -> Vec<String> {
        let mut object = object.clone();
        let mut found = Vec::new();
        visit_locations(&mut object, &mut |at, text| {
            if self.matching_uri(text) {
                found.push(at.to_string());
            }
        });
        if let CatalogObject::LakeFormation { lf } = &object {
            let arn = match lf {
                LfObject::DataLocation(l) => Some(("arn", &l.arn)),
                LfObject::Permission(crate::model::lakeformation::Permission {
                    resource: LfResource::DataLocation { arn },
                    ..
                })
                | LfObject::OptIn(crate::model::lakeformation::OptIn {
                    resource: LfResource::DataLocation { arn },
                    ..
                }) => Some(("resource.arn", arn)),
                _ => None,
            };
            found.extend(arn.filter(|(_, arn)| self.matching_arn(arn)).map(|(at, _)| at.to_string()));
        }
        found
    }

    /// An S3 ARN with its bucket (or prefix) rewritten by the first matching rule; anything else
    /// as it is.
    pub fn rewrite_s3_arn(&self, arn: &str) -> String {
        let Some(at) = s3_arn_bucket_at(arn) else { return arn.to_string() };
        match self.matching_rule(&arn[at..]) {
            Some(rule) => format!("{}{}{}", &arn[..at], rule.to, &arn[at + rule.from.len()..]),
            None => arn.to_string(),
        }
    }

    fn matching_arn(&self, arn: &str) -> bool {
        s3_arn_bucket_at(arn).is_some_and(|at| self.matching_rule(&arn[at..]).is_some())
    }

    /// A Lake Formation resource as the target names it (a data location's ARN rewritten).
    pub fn lf_resource(&self, resource: &LfResource) -> LfResource {
        match resource {
            LfResource::DataLocation { arn } => LfResource::DataLocation { arn: self.rewrite_s3_arn(arn) },
            other => other.clone(),
        }
    }

    /// A Lake Formation key as the target names it, principals left as the source names them
    /// (the applier maps those, parking what is unmapped).
    pub fn lf_key(&self, key: &LfKey) -> LfKey {
        match key {
            LfKey::Permission { principal, resource } => {
                LfKey::Permission { principal: principal.clone(), resource: self.lf_resource(resource) }
            }
            LfKey::OptIn { principal, resource } => {
                LfKey::OptIn { principal: principal.clone(), resource: self.lf_resource(resource) }
            }
            LfKey::DataLocation { arn } => LfKey::DataLocation { arn: self.rewrite_s3_arn(arn) },
            other => other.clone(),
        }
    }

    /// The key a source object has in the target: [`Transform::lf_key`] with the principal
    /// mapped; `None` when no rule maps it (it is never granted there).
    pub fn lf_target_key(&self, key: &LfKey) -> Option<LfKey> {
        let mapped = |p: &str| match self.principals.map(p) {
            Mapped::To(to) => Some(to),
            Mapped::Unmapped { .. } => None,
        };
        Some(match self.lf_key(key) {
            LfKey::Permission { principal, resource } => LfKey::Permission { principal: mapped(&principal)?, resource },
            LfKey::OptIn { principal, resource } => LfKey::OptIn { principal: mapped(&principal)?, resource },
            other => other,
        })
    }

    /// A source key that becomes `target` in this target: the inverse of
    /// [`Transform::lf_target_key`], the principal mapped back ([`PrincipalMap::source_of`]),
    /// names and S3 ARNs as the target has them (a rewrite leaves a target ARN as it is). A delete
    /// record under it removes exactly `target`. `None`: no source key becomes `target` (a
    /// principal no rule reaches, an ARN a rule would move).
    pub fn lf_source_key(&self, target: &LfKey) -> Option<LfKey> {
        let source = match target {
            LfKey::Permission { principal, resource } => {
                LfKey::Permission { principal: self.principals.source_of(principal)?, resource: resource.clone() }
            }
            LfKey::OptIn { principal, resource } => {
                LfKey::OptIn { principal: self.principals.source_of(principal)?, resource: resource.clone() }
            }
            other => other.clone(),
        };
        (self.lf_target_key(&source).as_ref() == Some(target)).then_some(source)
    }

    /// A Lake Formation object as the target names it: writable, S3 ARNs rewritten, principals
    /// left to the applier (see [`Transform::lf_key`]).
    pub fn lf_object(&self, object: &LfObject) -> LfObject {
        match self.apply(&CatalogObject::LakeFormation { lf: object.clone() }) {
            CatalogObject::LakeFormation { lf } => lf,
            // `apply` keeps an object's kind.
            _ => object.writable(),
        }
    }

    fn rewrite_lf(&self, object: &mut LfObject) {
        match object {
            LfObject::Permission(p) => p.resource = self.lf_resource(&p.resource),
            LfObject::OptIn(o) => o.resource = self.lf_resource(&o.resource),
            LfObject::DataLocation(l) => l.arn = self.rewrite_s3_arn(&l.arn),
            _ => {}
        }
    }

    fn matching_uri(&self, text: &str) -> bool {
        text.match_indices("://")
            .any(|(at, sep)| is_s3_scheme_before(text, at) && self.matching_rule(&text[at + sep.len()..]).is_some())
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

    /// Whether [`Transform::apply`] leaves a partition as it is (bar its read-only metadata):
    /// without location rules, it does. The applier then compares the record's own state with
    /// the target's instead of a copy (a restore compares a million of them).
    pub fn keeps_partitions(&self) -> bool {
        self.rules.is_empty()
    }

    /// The object as it must look in the target.
    pub fn apply(&self, object: &CatalogObject) -> CatalogObject {
        let mut out = object.writable();
        if !self.rules.is_empty() {
            visit_locations(&mut out, &mut |_, text| {
                if let Some(new) = self.rewritten(text) {
                    *text = new;
                }
            });
        }
        match &mut out {
            CatalogObject::Database(d) => {
                if let Some(t) = &mut d.target_database {
                    self.map_catalog(&mut t.catalog_id, &mut t.region);
                }
            }
            CatalogObject::Table(t) => {
                if let Some(link) = &mut t.target_table {
                    self.map_catalog(&mut link.catalog_id, &mut link.region);
                }
            }
            // Nothing else changes in a partition (`keeps_partitions` relies on it).
            CatalogObject::Partition(_) => {}
            // S3 ARNs are rewritten; principals are mapped by the applier
            // (`apply::permissions`), never here: an unmapped one must be parked, not rewritten.
            CatalogObject::LakeFormation { lf } => {
                if !self.rules.is_empty() {
                    self.rewrite_lf(lf);
                }
            }
        }
        out
    }
}

/// A field's path inside an object (`storage_descriptor.serde_info.parameters.path`,
/// `storage_descriptor.additional_locations[1]`), built on the stack and rendered only when
/// asked for.
#[derive(Clone, Copy)]
pub struct FieldPath<'a> {
    parent: Option<&'a FieldPath<'a>>,
    segment: Segment<'a>,
}

#[derive(Clone, Copy)]
enum Segment<'a> {
    Field(&'a str),
    Index(usize),
}

impl<'a> FieldPath<'a> {
    fn field(parent: Option<&'a FieldPath<'a>>, name: &'a str) -> FieldPath<'a> {
        FieldPath { parent, segment: Segment::Field(name) }
    }

    fn index(parent: &'a FieldPath<'a>, i: usize) -> FieldPath<'a> {
        FieldPath { parent: Some(parent), segment: Segment::Index(i) }
    }
}

impl fmt::Display for FieldPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = self.parent {
            write!(f, "{p}")?;
        }
        match self.segment {
            Segment::Field(name) if self.parent.is_some() => write!(f, ".{name}"),
            Segment::Field(name) => write!(f, "{name}"),
            Segment::Index(i) => write!(f, "[{i}]"),
        }
    }
}

type Visit<'v> = dyn FnMut(&FieldPath<'_>, &mut String) + 'v;

/// Calls `f` on every string of `object` that can hold an S3 location, with its path: all of
/// them but the ones the module doc lists as not locations. The struct patterns name every field
/// on purpose (no `..`): a field added to the model does not compile here until someone decides
/// whether it holds locations.
pub fn visit_locations(object: &mut CatalogObject, f: &mut Visit<'_>) {
    match object {
        CatalogObject::Database(d) => {
            let crate::model::Database {
                name: _,
                description,
                location_uri,
                parameters,
                create_table_default_permissions: _,
                target_database: _,
                federated_database: _,
                meta: _,
            } = d;
            visit_opt(description, "description", None, f);
            visit_opt(location_uri, "location_uri", None, f);
            visit_params(parameters, "parameters", None, f);
        }
        CatalogObject::Table(t) => {
            let crate::model::Table {
                database_name: _,
                name: _,
                description,
                owner: _,
                last_access_time: _,
                last_analyzed_time: _,
                retention: _,
                storage_descriptor,
                partition_keys,
                view_original_text: _,
                view_expanded_text: _,
                table_type: _,
                parameters,
                target_table: _,
                federated_table: _,
                view_definition: _,
                meta: _,
            } = t;
            visit_opt(description, "description", None, f);
            if let Some(sd) = storage_descriptor {
                visit_sd(sd, &FieldPath::field(None, "storage_descriptor"), f);
            }
            visit_columns(partition_keys, &FieldPath::field(None, "partition_keys"), f);
            visit_params(parameters, "parameters", None, f);
        }
        CatalogObject::Partition(p) => {
            let crate::model::Partition {
                database_name: _,
                table_name: _,
                values: _,
                last_access_time: _,
                storage_descriptor,
                parameters,
                last_analyzed_time: _,
                meta: _,
            } = p;
            if let Some(sd) = storage_descriptor {
                visit_sd(sd, &FieldPath::field(None, "storage_descriptor"), f);
            }
            visit_params(parameters, "parameters", None, f);
        }
        // Lake Formation names S3 by ARN, not URI: `Transform::rewrite_s3_arn`.
        CatalogObject::LakeFormation { .. } => {}
    }
}

fn visit_sd(sd: &mut StorageDescriptor, at: &FieldPath<'_>, f: &mut Visit<'_>) {
    let StorageDescriptor {
        columns,
        location,
        additional_locations,
        input_format: _,
        output_format: _,
        compressed: _,
        number_of_buckets: _,
        serde_info,
        bucket_columns: _,
        sort_columns: _,
        parameters,
        skewed_info,
        stored_as_sub_directories: _,
        schema_reference: _,
    } = sd;
    visit_columns(columns, &FieldPath::field(Some(at), "columns"), f);
    visit_opt(location, "location", Some(at), f);
    let list = FieldPath::field(Some(at), "additional_locations");
    for (i, l) in additional_locations.iter_mut().enumerate() {
        f(&FieldPath::index(&list, i), l);
    }
    if let Some(crate::model::SerDeInfo { name: _, serialization_library: _, parameters }) = serde_info {
        visit_params(parameters, "parameters", Some(&FieldPath::field(Some(at), "serde_info")), f);
    }
    visit_params(parameters, "parameters", Some(at), f);
    if let Some(crate::model::SkewedInfo {
        skewed_column_names: _,
        skewed_column_values: _,
        skewed_column_value_location_maps,
    }) = skewed_info
    {
        let skew = FieldPath::field(Some(at), "skewed_info");
        visit_params(skewed_column_value_location_maps, "skewed_column_value_location_maps", Some(&skew), f);
    }
}

fn visit_columns(columns: &mut [Column], at: &FieldPath<'_>, f: &mut Visit<'_>) {
    for (i, c) in columns.iter_mut().enumerate() {
        let Column { name: _, type_: _, comment, parameters } = c;
        let column = FieldPath::index(at, i);
        visit_opt(comment, "comment", Some(&column), f);
        visit_params(parameters, "parameters", Some(&column), f);
    }
}

fn visit_opt(value: &mut Option<String>, name: &str, parent: Option<&FieldPath<'_>>, f: &mut Visit<'_>) {
    if let Some(v) = value {
        f(&FieldPath::field(parent, name), v);
    }
}

/// Every value of a parameter map (keys are names, never locations).
fn visit_params(params: &mut Params, name: &str, parent: Option<&FieldPath<'_>>, f: &mut Visit<'_>) {
    let map = FieldPath::field(parent, name);
    for (k, v) in params.iter_mut() {
        f(&FieldPath::field(Some(&map), k), v);
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

    /// A target with one rule whose `to` starts with its `from`, as a DR bucket often does.
    fn transform_with(from: &str, to: &str) -> Transform {
        let yaml = format!("{{name: dr, region: us-west-2, location_rewrite: [{{from: '{from}', to: '{to}'}}]}}");
        let target: TargetConfig = serde_yaml_ng::from_str(&yaml).expect("target");
        Transform::new(&target, "111111111111", "us-east-1", "222222222222").expect("transform")
    }

    #[test]
    fn rewrites_s3a_and_s3n_keeping_the_scheme() {
        let t = transform();
        assert_eq!(t.rewrite_location("s3a://data/a"), "s3a://data-dr/a");
        assert_eq!(t.rewrite_location("s3n://data"), "s3n://data-dr");
        assert_eq!(t.rewrite_location("S3A://data/a"), "S3A://data-dr/a");
        assert_eq!(t.rewrite_location("s3a://data-raw/a"), "s3a://data-raw/a");
        // Not an S3 scheme, only one ending in the same letters.
        assert_eq!(t.rewrite_location("xs3://data/a"), "xs3://data/a");
        assert_eq!(t.rewrite_location("foo+s3a://data/a"), "foo+s3a://data/a");
    }

    #[test]
    fn rewrites_uris_inside_templates_and_lists() {
        let t = transform();
        assert_eq!(t.rewrite_location("s3://data/logs/${dt}/"), "s3://data-dr/logs/${dt}/");
        assert_eq!(t.rewrite_location("s3://data/logs/dt=${dt}/h=${hour}"), "s3://data-dr/logs/dt=${dt}/h=${hour}");
        assert_eq!(
            t.rewrite_location("s3a://data,s3://logs/x, s3://other/y"),
            "s3a://data-dr,s3://logs-dr/copy/x, s3://other/y"
        );
        assert_eq!(
            t.rewrite_location(r#"{"paths": ["s3://data/a", "s3n://data/b"]}"#),
            r#"{"paths": ["s3://data-dr/a", "s3n://data-dr/b"]}"#
        );
        assert_eq!(t.rewrite_location("LOCATION 's3://logs' STORED AS"), "LOCATION 's3://logs-dr/copy' STORED AS");
        // A templated bucket name may be any bucket: left alone.
        assert_eq!(t.rewrite_location("s3://data${env}/x"), "s3://data${env}/x");
        assert_eq!(t.rewrite_location("s3://${bucket}/x"), "s3://${bucket}/x");
    }

    #[test]
    fn matches_at_a_bucket_or_prefix_boundary_only() {
        let t = transform_with("s3://data/logs", "s3://dr/logs");
        assert_eq!(t.rewrite_location("s3://data/logs/x"), "s3://dr/logs/x");
        assert_eq!(t.rewrite_location("s3://data/logs"), "s3://dr/logs");
        assert_eq!(t.rewrite_location("s3://data/logs2/x"), "s3://data/logs2/x");
        assert_eq!(t.rewrite_location("s3://data/logs-old"), "s3://data/logs-old");
        assert_eq!(t.rewrite_location("s3://data/other"), "s3://data/other");
        assert_eq!(t.rewrite_location("s3://data-other/logs/x"), "s3://data-other/logs/x");
    }

    #[test]
    fn applying_twice_rewrites_once_when_to_starts_with_from() {
        for (from, to, source, once) in [
            ("s3://data", "s3://data-dr", "s3://data/x s3://data", "s3://data-dr/x s3://data-dr"),
            ("s3://data", "s3://data/dr", "s3://data/x", "s3://data/dr/x"),
            ("s3://data/", "s3://data/dr/", "s3a://data", "s3a://data/dr"),
        ] {
            let t = transform_with(from, to);
            let first = t.rewrite_location(source);
            assert_eq!(first, once, "{from} -> {to}");
            assert_eq!(t.rewrite_location(&first), once, "{from} -> {to} applied twice");
        }
    }

    /// Every string that can hold a location, in every object kind, under keys no list names.
    #[test]
    fn rewrites_uris_in_every_parameter_and_storage_field() {
        let uri = |k: &str| format!("s3://data/{k}/${{dt}}/");
        let want = |k: &str| format!("s3://data-dr/{k}/${{dt}}/");
        let mut params = Params::new();
        params.insert("custom.output.template".into(), uri("p"));
        params.insert("spark.sql.sources.schema".into(), format!("see s3a://data/{}", "x"));
        let sd = StorageDescriptor {
            location: Some("s3a://data/t".into()),
            parameters: params.clone(),
            columns: vec![crate::model::Column {
                name: "c".into(),
                type_: Some("string".into()),
                comment: Some("copied from s3://data/raw".into()),
                parameters: params.clone(),
            }],
            serde_info: Some(SerDeInfo { parameters: params.clone(), ..Default::default() }),
            ..Default::default()
        };
        let table = Table {
            database_name: "db".into(),
            name: "t".into(),
            description: Some("lands in s3://data/t".into()),
            parameters: params.clone(),
            storage_descriptor: Some(sd.clone()),
            ..Default::default()
        };
        let partition = crate::model::Partition {
            database_name: "db".into(),
            table_name: "t".into(),
            values: vec!["1".into()],
            parameters: params.clone(),
            storage_descriptor: Some(sd),
            ..Default::default()
        };
        let database = crate::model::Database {
            name: "db".into(),
            location_uri: Some("s3n://data/db".into()),
            parameters: params.clone(),
            ..Default::default()
        };
        let t = transform();
        let check = |p: &Params| {
            assert_eq!(p["custom.output.template"], want("p"));
            assert_eq!(p["spark.sql.sources.schema"], "see s3a://data-dr/x");
        };
        let check_sd = |sd: &StorageDescriptor| {
            assert_eq!(sd.location.as_deref(), Some("s3a://data-dr/t"));
            check(&sd.parameters);
            check(&sd.serde_info.as_ref().expect("serde").parameters);
            assert_eq!(sd.columns[0].comment.as_deref(), Some("copied from s3://data-dr/raw"));
            check(&sd.columns[0].parameters);
        };
        let CatalogObject::Table(out) = t.apply(&CatalogObject::Table(table)) else { panic!() };
        check(&out.parameters);
        assert_eq!(out.description.as_deref(), Some("lands in s3://data-dr/t"));
        check_sd(out.storage_descriptor.as_ref().expect("sd"));
        let CatalogObject::Partition(out) = t.apply(&CatalogObject::Partition(partition)) else { panic!() };
        check(&out.parameters);
        check_sd(out.storage_descriptor.as_ref().expect("sd"));
        let CatalogObject::Database(out) = t.apply(&CatalogObject::Database(database)) else { panic!() };
        check(&out.parameters);
        assert_eq!(out.location_uri.as_deref(), Some("s3n://data-dr/db"));
    }

    /// View SQL, names and partition values are not locations and keep their text.
    #[test]
    fn leaves_view_sql_names_and_values_alone() {
        let sql = "SELECT * FROM parquet.`s3://data/t` WHERE \"$path\" LIKE 's3://data/%'";
        let table = Table {
            database_name: "db".into(),
            name: "v".into(),
            view_original_text: Some(sql.into()),
            view_expanded_text: Some(sql.into()),
            ..Default::default()
        };
        let CatalogObject::Table(out) = transform().apply(&CatalogObject::Table(table)) else { panic!() };
        assert_eq!(out.view_original_text.as_deref(), Some(sql));
        assert_eq!(out.view_expanded_text.as_deref(), Some(sql));
        let partition = crate::model::Partition {
            database_name: "db".into(),
            table_name: "t".into(),
            values: vec!["s3://data/x".into()],
            ..Default::default()
        };
        let CatalogObject::Partition(out) = transform().apply(&CatalogObject::Partition(partition)) else { panic!() };
        assert_eq!(out.values, vec!["s3://data/x".to_string()]);
    }

    #[test]
    fn source_locations_name_the_fields_a_rule_still_matches() {
        let t = transform();
        let mut table = Table { database_name: "db".into(), name: "t".into(), ..Default::default() };
        table.parameters.insert("custom.template".into(), "s3a://data/x/${dt}/".into());
        table.parameters.insert("done".into(), "s3://data-dr/x".into());
        table.parameters.insert("other".into(), "s3://data-raw/x".into());
        let mut sd = StorageDescriptor { location: Some("s3://data-dr/t".into()), ..Default::default() };
        sd.additional_locations = vec!["s3://logs-dr/copy/a".into(), "s3://logs/b".into()];
        sd.serde_info = Some(SerDeInfo {
            parameters: [("path".to_string(), "s3n://data".to_string())].into(),
            ..Default::default()
        });
        table.storage_descriptor = Some(sd);
        table.view_original_text = Some("SELECT 's3://data/x'".into());
        let object = CatalogObject::Table(table);
        assert_eq!(
            t.source_locations(&object),
            vec![
                "storage_descriptor.additional_locations[1]",
                "storage_descriptor.serde_info.parameters.path",
                "parameters.custom.template",
            ]
        );
        // What apply writes never names a rewritten-from location, even applied twice.
        let once = t.apply(&object);
        assert_eq!(t.source_locations(&once), Vec::<String>::new());
        assert_eq!(t.apply(&once), once);
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

    /// A link into the source catalog follows the copy; one into any other catalog (a third
    /// account, or the source account's catalog of another Region) keeps pointing there.
    #[test]
    fn resource_links_into_the_source_catalog_are_re_pointed_and_others_kept() {
        let t = transform();
        let link = |catalog: Option<&str>, region: Option<&str>| {
            let db = crate::model::Database {
                name: "l".into(),
                target_database: Some(crate::model::DatabaseIdentifier {
                    catalog_id: catalog.map(str::to_string),
                    database_name: Some("db".into()),
                    region: region.map(str::to_string),
                }),
                ..Default::default()
            };
            let CatalogObject::Database(out) = t.apply(&CatalogObject::Database(db)) else { panic!() };
            let id = out.target_database.expect("link");
            (id.catalog_id, id.region)
        };
        let s = |v: &str| Some(v.to_string());
        assert_eq!(link(Some("111111111111"), Some("us-east-1")), (s("222222222222"), s("us-west-2")));
        assert_eq!(link(Some("111111111111"), None), (s("222222222222"), None));
        assert_eq!(link(None, Some("us-east-1")), (None, s("us-west-2")));
        assert_eq!(link(Some("333333333333"), Some("eu-west-1")), (s("333333333333"), s("eu-west-1")));
        assert_eq!(link(Some("333333333333"), Some("us-east-1")), (s("333333333333"), s("us-east-1")));
        assert_eq!(link(Some("111111111111"), Some("eu-west-1")), (s("111111111111"), s("eu-west-1")));
    }

    /// Registered locations and DataLocation grants name S3 by ARN: the same rules rewrite them
    /// (on a bucket or prefix boundary, any partition), and a target still naming the source
    /// bucket is found.
    #[test]
    fn s3_arns_of_lake_formation_are_rewritten_by_the_location_rules() {
        use crate::model::lakeformation::{DataLocation, Permission};
        let t = transform();
        assert_eq!(t.rewrite_s3_arn("arn:aws:s3:::data/a/b"), "arn:aws:s3:::data-dr/a/b");
        assert_eq!(t.rewrite_s3_arn("arn:aws:s3:::data"), "arn:aws:s3:::data-dr");
        assert_eq!(t.rewrite_s3_arn("arn:aws-cn:s3:::logs/x"), "arn:aws-cn:s3:::logs-dr/copy/x");
        assert_eq!(t.rewrite_s3_arn("arn:aws:s3:::data-raw/a"), "arn:aws:s3:::data-raw/a");
        assert_eq!(t.rewrite_s3_arn("arn:aws:iam::111111111111:role/data"), "arn:aws:iam::111111111111:role/data");
        assert_eq!(t.rewrite_s3_arn("s3://data/a"), "s3://data/a", "a URI is not an ARN");

        let location = |arn: &str| CatalogObject::LakeFormation {
            lf: LfObject::DataLocation(DataLocation { arn: arn.into(), ..Default::default() }),
        };
        assert_eq!(t.apply(&location("arn:aws:s3:::data/lake")), location("arn:aws:s3:::data-dr/lake"));
        let grant = |arn: &str| {
            let resource = LfResource::DataLocation { arn: arn.into() };
            let p = Permission::new("p".into(), resource, vec!["DATA_LOCATION_ACCESS".into()], vec![], None);
            CatalogObject::LakeFormation { lf: LfObject::Permission(p) }
        };
        assert_eq!(t.apply(&grant("arn:aws:s3:::data/lake")), grant("arn:aws:s3:::data-dr/lake"));
        let key = LfKey::DataLocation { arn: "arn:aws:s3:::data/lake".into() };
        assert_eq!(t.lf_key(&key), LfKey::DataLocation { arn: "arn:aws:s3:::data-dr/lake".into() });
        // Idempotent, and what still names the source bucket is named.
        let once = t.apply(&grant("arn:aws:s3:::data/lake"));
        assert_eq!(t.apply(&once), once);
        assert_eq!(t.source_locations(&grant("arn:aws:s3:::data/lake")), vec!["resource.arn"]);
        assert_eq!(t.source_locations(&location("arn:aws:s3:::data/lake")), vec!["arn"]);
        assert!(t.source_locations(&once).is_empty());
    }
    #[test]
    fn a_target_key_leads_back_to_the_source_key_it_came_from_or_to_none() {
        let yaml = "{name: dr, region: us-west-2, location_rewrite: [{from: 's3://data', to: 's3://data-dr'}], \
                    principals: {account_map: {'111111111111': '222222222222'}}}";
        let target: TargetConfig = serde_yaml_ng::from_str(yaml).expect("target");
        let t = Transform::new(&target, "111111111111", "us-east-1", "222222222222").expect("transform");
        let grant = |principal: &str, arn: &str| LfKey::Permission {
            principal: principal.into(),
            resource: LfResource::DataLocation { arn: arn.into() },
        };
        let source = grant("arn:aws:iam::111111111111:role/etl", "arn:aws:s3:::data/raw");
        let in_target = t.lf_target_key(&source).expect("mapped");
        assert_eq!(in_target, grant("arn:aws:iam::222222222222:role/etl", "arn:aws:s3:::data-dr/raw"));
        // The principal the source's; the ARN the target's, which the rewrite leaves as it is.
        let back = t.lf_source_key(&in_target).expect("a source key");
        assert_eq!(back, grant("arn:aws:iam::111111111111:role/etl", "arn:aws:s3:::data-dr/raw"));
        assert_eq!(t.lf_target_key(&back), Some(in_target));
        let tag = LfKey::LfTag { key: "team".into() };
        assert_eq!(t.lf_source_key(&tag), Some(tag));
        // The target's own principal, and an ARN the rewrite would move: no source key.
        assert_eq!(t.lf_source_key(&grant("arn:aws:iam::333333333333:role/etl", "arn:aws:s3:::data-dr/raw")), None);
        assert_eq!(t.lf_source_key(&grant("arn:aws:iam::222222222222:role/etl", "arn:aws:s3:::data/raw")), None);
    }
}
