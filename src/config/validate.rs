//! The rules for values: each section checks its own fields in `validate(&self, path, problems)`
//! (`path` is where the section sits in the file, so a target knows it is `targets[2]`), and
//! [`Sections::validate`] runs them over whatever parsed, then the checks that span sections.
//! A check records a problem that names the value and the fix; it never stops at the first one.

use std::collections::BTreeSet;

use super::load::Sections;
use super::sections::{
    ApplyConfig, ArchiveConfig, AssumeRoleConfig, CloudTrailConfig, CloudTrailLookupConfig, CoordinationConfig,
    EventsConfig, LocationRewrite, MetricsConfig, SourceConfig, StateConfig, StreamConfig, TargetConfig,
};
use super::{EndpointOverrides, Problems, Service};

/// How long CloudTrail keeps the events `LookupEvents` can return: 90 days.
const LOOKUP_HISTORY_SECONDS: u64 = 90 * 24 * 3600;
/// CloudTrail makes an event visible about 5 minutes after the call, on average: a shorter
/// overlap would skip the events that show up late.
const LOOKUP_MIN_OVERLAP_SECONDS: u64 = 300;

impl Sections {
    /// Every section's own checks, then the checks across sections.
    pub fn validate(&self, problems: &mut Problems) {
        if let Some(s) = &self.source {
            s.validate("source", problems);
        }
        if let Some(s) = &self.stream {
            s.validate("stream", problems);
        }
        if let Some(s) = &self.state {
            s.validate("state", problems);
        }
        if let Some(a) = &self.apply {
            a.validate("apply", problems);
        }
        if let Some(a) = &self.archive {
            a.validate("archive", problems);
        }
        if let Some(m) = &self.metrics {
            m.validate("metrics", problems);
        }
        let mut names = BTreeSet::new();
        for (i, t) in &self.targets {
            let at = format!("targets[{i}]");
            t.validate(&at, problems);
            if !names.insert(t.name.as_str()) {
                problems.add(
                    field(&at, "name"),
                    format!("`{}` is used by another target; target names must be unique", t.name),
                );
            }
            if let Some(s) = &self.source {
                if s.region == t.region
                    && s.catalog_id.is_some()
                    && s.catalog_id == t.catalog_id
                    && s.overrides().url(Service::Glue) == t.overrides().url(Service::Glue)
                {
                    problems.add(at, "target is the source catalog itself; use another region or catalog_id");
                }
            }
        }
    }
}

impl SourceConfig {
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        check_region(&field(path, "region"), &self.region, problems);
        self.overrides().validate(path, problems);
        check_filters(path, &self.include, &self.exclude, problems);
        if !(1..=10).contains(&self.partition_segments) {
            problems.add(
                field(path, "partition_segments"),
                format!("{} is out of range; Glue allows 1 to 10", self.partition_segments),
            );
        }
        if let Some(id) = &self.catalog_id {
            check_catalog_id(&field(path, "catalog_id"), id, problems);
        }
        check_at_least_one(&field(path, "reconcile_interval_seconds"), self.reconcile_interval_seconds, problems);
        if let Some(e) = &self.events {
            e.validate(&field(path, "events"), problems);
        }
        if let Some(c) = &self.cloudtrail {
            c.validate(&field(path, "cloudtrail"), problems);
        }
        if let Some(l) = &self.cloudtrail_lookup {
            l.validate(&field(path, "cloudtrail_lookup"), problems);
        }
    }
}

impl EventsConfig {
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        match (&self.queue_url, &self.queue_name) {
            (Some(url), None) if !(url.starts_with("https://") || url.starts_with("http://")) => problems.add(
                field(path, "queue_url"),
                format!("`{url}` is not a queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)"),
            ),
            (Some(_), None) | (None, Some(_)) => {}
            _ => problems.add(path, "give exactly one of queue_url and queue_name"),
        }
        if !(0..=20).contains(&self.wait_seconds) {
            problems.add(field(path, "wait_seconds"), "SQS allows 0 to 20");
        }
        if !(10..=43_200).contains(&self.visibility_timeout_seconds) {
            problems.add(field(path, "visibility_timeout_seconds"), "use 10 to 43200");
        }
    }
}

impl CloudTrailConfig {
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        check_bucket(&field(path, "bucket"), &self.bucket, problems);
        // The trail's S3KeyPrefix: CloudTrail writes `logs/AWSLogs/...` for `logs` (or `logs/`);
        // S3 keys never start with `/`.
        if self.prefix.starts_with('/') {
            problems.add(
                field(path, "prefix"),
                format!(
                    "`{}` starts with /; write the trail's S3KeyPrefix as CloudTrail shows it (`{}`)",
                    self.prefix,
                    self.prefix.trim_matches('/')
                ),
            );
        }
        EndpointOverrides::new(self.endpoint.as_deref(), &self.endpoints).validate(path, problems);
        if let Some(r) = &self.region {
            check_region(&field(path, "region"), r, problems);
        }
        check_at_least_one(&field(path, "poll_seconds"), self.poll_seconds, problems);
    }
}

impl CloudTrailLookupConfig {
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        check_at_least_one(&field(path, "poll_seconds"), self.poll_seconds, problems);
        if !(LOOKUP_MIN_OVERLAP_SECONDS..=LOOKUP_HISTORY_SECONDS).contains(&self.overlap_seconds) {
            problems.add(
                field(path, "overlap_seconds"),
                format!(
                    "{} is out of range; use {LOOKUP_MIN_OVERLAP_SECONDS} to {LOOKUP_HISTORY_SECONDS}: CloudTrail makes \
                     events visible about 5 minutes late and keeps 90 days of them",
                    self.overlap_seconds
                ),
            );
        }
    }
}

impl StreamConfig {
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        let ok = !self.name.is_empty()
            && self.name.len() <= 128
            && self.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !ok {
            problems.add(
                field(path, "name"),
                format!("`{}` is not a Kinesis stream name (1-128 of a-z A-Z 0-9 _ . -)", self.name),
            );
        }
        if let Some(r) = &self.region {
            check_region(&field(path, "region"), r, problems);
        }
        self.overrides().validate(path, problems);
        if !(1024..=1_040_000).contains(&self.frame_bytes) {
            problems.add(
                field(path, "frame_bytes"),
                format!("{} is out of range; use 1024 to 1040000 (Kinesis records hold 1 MiB)", self.frame_bytes),
            );
        }
        if !(1..=500).contains(&self.shards) {
            problems.add(field(path, "shards"), format!("{} is out of range; use 1 to 500", self.shards));
        }
    }
}

impl StateConfig {
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        check_bucket(&field(path, "bucket"), &self.bucket, problems);
        if let Some(r) = &self.region {
            check_region(&field(path, "region"), r, problems);
        }
        self.overrides().validate(path, problems);
        self.coordination.validate(&field(path, "coordination"), problems);
    }
}

impl CoordinationConfig {
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        let mut parsed = Vec::new();
        for (name, text) in [("lease_duration", &self.lease_duration), ("renew_interval", &self.renew_interval)] {
            match humantime::parse_duration(text) {
                Ok(d) if d < std::time::Duration::from_secs(1) => {
                    problems.add(field(path, name), format!("`{text}` is shorter than 1s"))
                }
                Ok(d) => parsed.push(d),
                Err(e) => problems.add(field(path, name), format!("`{text}` is not a duration ({e}); write e.g. 10s")),
            }
        }
        if let [lease, renew] = parsed[..] {
            if renew * 3 > lease {
                problems.add(
                    field(path, "renew_interval"),
                    format!(
                        "{} is more than a third of lease_duration {}: a lease would expire after one slow renewal; shorten it or lengthen lease_duration",
                        self.renew_interval, self.lease_duration
                    ),
                );
            }
        }
        if let Some(t) = &self.table {
            let ok = (3..=255).contains(&t.len())
                && t.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !ok {
                problems.add(
                    field(path, "table"),
                    format!("`{t}` is not a DynamoDB table name; use 3 to 255 letters, digits, -, _ and ."),
                );
            }
        }
        if let Some(w) = &self.worker_id {
            if w.trim().is_empty() {
                problems.add(field(path, "worker_id"), "is empty; leave it out for a generated id");
            }
        }
    }
}

impl TargetConfig {
    /// The target's own fields; unique names and "not the source" are checked across sections.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        let name_ok =
            !self.name.is_empty() && self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            problems.add(
                field(path, "name"),
                format!("`{}` is not a valid target name; use letters, digits, - and _", self.name),
            );
        }
        check_region(&field(path, "region"), &self.region, problems);
        self.overrides().validate(path, problems);
        if let Some(id) = &self.catalog_id {
            check_catalog_id(&field(path, "catalog_id"), id, problems);
        }
        check_filters(path, &self.include, &self.exclude, problems);
        for (j, r) in self.location_rewrite.iter().enumerate() {
            r.validate(&format!("{path}.location_rewrite[{j}]"), problems);
        }
        if let Some(role) = &self.assume_role {
            role.validate(&field(path, "assume_role"), problems);
        }
        if let Some(p) = &self.principals {
            let at = field(path, "principals");
            for problem in p.rules().problems() {
                problems.add(field(&at, &problem.key), problem.message);
            }
        }
    }
}

impl AssumeRoleConfig {
    /// STS's limits. The external id is a secret: its problems never quote it.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        let mut parts = self.role_arn.splitn(6, ':');
        let arn_ok = matches!(
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next()),
            (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(role))
                if !partition.is_empty()
                    && account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
                    && role.strip_prefix("role/").is_some_and(|n| !n.is_empty() && !n.ends_with('/') && !n.contains('*'))
        );
        if !arn_ok {
            problems.add(
                field(path, "role_arn"),
                format!(
                    "`{}` is not an IAM role ARN; write arn:aws:iam::<12-digit account>:role/<name>",
                    self.role_arn
                ),
            );
        }
        if let Some(id) = &self.external_id {
            let id = id.expose();
            let ok = (2..=1224).contains(&id.len())
                && id.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@:/-_".contains(c));
            if !ok {
                problems.add(
                    field(path, "external_id"),
                    "is not a valid external id (2 to 1224 of letters, digits and + = , . @ : / - _); the value is not shown",
                );
            }
        }
        if let Some(name) = &self.session_name {
            let ok = (2..=64).contains(&name.len())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c));
            if !ok {
                problems.add(
                    field(path, "session_name"),
                    format!("`{name}` is not a role session name (2 to 64 of letters, digits and + = , . @ - _)"),
                );
            }
        }
        match humantime::parse_duration(&self.duration) {
            Ok(d) if (900..=43_200).contains(&d.as_secs()) => {}
            Ok(_) => problems.add(
                field(path, "duration"),
                format!(
                    "{} is out of range; STS allows 15m to 12h (and at most the role's maximum session duration)",
                    self.duration
                ),
            ),
            Err(e) => problems.add(
                field(path, "duration"),
                format!("`{}` is not a duration ({e}); write e.g. 1h, 45m", self.duration),
            ),
        }
    }
}

impl LocationRewrite {
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        check_s3_prefix(&field(path, "from"), &self.from, problems);
        check_s3_prefix(&field(path, "to"), &self.to, problems);
    }
}

impl ApplyConfig {
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        if self.concurrency == 0 || self.concurrency > 64 {
            problems.add(field(path, "concurrency"), format!("{} is out of range; use 1 to 64", self.concurrency));
        }
        if !(1..=10_000).contains(&self.batch_records) {
            problems.add(
                field(path, "batch_records"),
                format!("{} is out of range; GetRecords reads 1 to 10000 records", self.batch_records),
            );
        }
        if self.max_attempts == 0 {
            problems.add(field(path, "max_attempts"), "must be at least 1");
        }
    }
}

impl MetricsConfig {
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        if let Err(message) = self.address() {
            problems.add(field(path, "listen"), message);
        }
    }
}

/// The path of `name` inside the section or item at `path`.
fn field(path: &str, name: &str) -> String {
    format!("{path}.{name}")
}

fn check_at_least_one(path: &str, value: u64, problems: &mut Problems) {
    if value == 0 {
        problems.add(path, "must be at least 1");
    }
}

fn check_region(path: &str, region: &str, problems: &mut Problems) {
    let ok = !region.is_empty()
        && region.split('-').count() >= 3
        && region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        problems.add(path, format!("`{region}` is not an AWS Region name (like us-east-1)"));
    }
}

fn check_catalog_id(path: &str, id: &str, problems: &mut Problems) {
    if id.len() != 12 || !id.chars().all(|c| c.is_ascii_digit()) {
        problems.add(path, format!("`{id}` is not a catalog id; use the 12-digit account id (quote it in YAML)"));
    }
}

fn check_bucket(path: &str, bucket: &str, problems: &mut Problems) {
    let ok = (3..=63).contains(&bucket.len())
        && bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if !ok {
        problems.add(path, format!("`{bucket}` is not an S3 bucket name (3-63 of a-z 0-9 - .), without s3://"));
    }
}

fn check_s3_prefix(path: &str, value: &str, problems: &mut Problems) {
    match value.strip_prefix("s3://") {
        Some(rest) if !rest.is_empty() => {
            let bucket = rest.split('/').next().unwrap_or_default();
            check_bucket(path, bucket, problems);
        }
        _ => problems.add(path, format!("`{value}` is not an S3 location; write s3://bucket or s3://bucket/prefix")),
    }
}

fn check_filters(path: &str, include: &[String], exclude: &[String], problems: &mut Problems) {
    for (name, list) in [("include", include), ("exclude", exclude)] {
        for (i, p) in list.iter().enumerate() {
            if let Err(e) = crate::model::filter::Filter::check_pattern(p) {
                problems.add(format!("{path}.{name}[{i}]"), e);
            }
        }
    }
}

impl ArchiveConfig {
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        let durations = [
            ("retention", &self.retention),
            ("tombstone_retention", &self.tombstone_retention),
            ("head", &self.head),
            ("compact_check", &self.compact_check),
            ("segment_age", &self.segment_age),
        ];
        for (name, text) in durations {
            match humantime::parse_duration(text) {
                Ok(d) if d.is_zero() => problems.add(field(path, name), "must be longer than 0"),
                Ok(_) => {}
                Err(e) => problems
                    .add(field(path, name), format!("`{text}` is not a duration ({e}); write e.g. 30d, 12h, 90s")),
            }
        }
        if self.head() > self.retention() {
            problems.add(field(path, "head"), format!("{} is longer than the retention {}", self.head, self.retention));
        }
        if self.tombstone_retention() > self.retention() {
            problems.add(
                field(path, "tombstone_retention"),
                format!("{} is longer than the retention {}", self.tombstone_retention, self.retention),
            );
        }
        if !(1..=4096).contains(&self.segment_mib) {
            problems.add(field(path, "segment_mib"), format!("{} is out of range; use 1 to 4096", self.segment_mib));
        }
        if self.segment_records == 0 {
            problems.add(field(path, "segment_records"), "must be at least 1");
        }
        if !(self.compact_tail_ratio >= 0.0 && self.compact_tail_ratio.is_finite()) {
            problems
                .add(field(path, "compact_tail_ratio"), "must be a number of 0 or more (0.1 = 10% of the snapshot)");
        }
        if self.merge_memory_mib < 8 {
            problems
                .add(field(path, "merge_memory_mib"), format!("{} is too small; use 8 or more", self.merge_memory_mib));
        }
    }
}
