//! `pipeline.yaml`: what to replicate, from where, to where, and where state lives.
//!
//! Loading is two passes so that a user sees every problem at once:
//! 1. `${ENV}` interpolation on the raw text, then YAML parsing into a tree;
//! 2. each section is deserialised on its own (unknown keys rejected, with the section's path),
//!    then semantic checks run over whatever parsed. All problems are collected and reported
//!    together, each with its path (`targets[1].location_rewrite[0].from`).

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

mod endpoints;
pub use endpoints::{EndpointOverrides, Service, ServiceEndpoints};

/// The whole pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineConfig {
    pub source: SourceConfig,
    pub stream: StreamConfig,
    pub state: StateConfig,
    pub targets: Vec<TargetConfig>,
    pub apply: ApplyConfig,
    pub metrics: MetricsConfig,
}

/// The catalog that is replicated.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// AWS Region of the source catalog, e.g. `us-east-1`.
    pub region: String,
    /// Source catalog id (the account id for the default catalog). When absent, the account of
    /// the credentials in use is looked up with STS.
    #[serde(default)]
    pub catalog_id: Option<String>,
    /// One endpoint URL for every service the source section calls (Glue, STS, SQS, CloudTrail,
    /// and S3 for the trail's bucket): an emulator. See [`EndpointOverrides`] for the order.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Per-service endpoint URLs (VPC endpoints), before `endpoint`.
    #[serde(default)]
    pub endpoints: ServiceEndpoints,
    /// Databases and tables captured at all (globs, see [`Filter`]). Default: everything.
    #[serde(default)]
    pub include: Vec<String>,
    /// Databases and tables never captured.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Parallel segments for reading the partitions of one table (Glue allows 1-10).
    #[serde(default = "default_partition_segments")]
    pub partition_segments: i32,
    /// Glue events delivered by EventBridge rules to an SQS queue (`lakelog run`). Without it,
    /// `run` relies on reconciliation alone.
    #[serde(default)]
    pub events: Option<EventsConfig>,
    /// CloudTrail log files of the source account, read from the trail's S3 bucket (`lakelog run`):
    /// catches Glue API calls whose events EventBridge did not deliver.
    #[serde(default)]
    pub cloudtrail: Option<CloudTrailConfig>,
    /// CloudTrail `LookupEvents` polling (`lakelog run`): an alternative to reading log files
    /// when the trail's bucket is not reachable. Limited by AWS to 2 calls/s of 50 events.
    #[serde(default)]
    pub cloudtrail_lookup: Option<CloudTrailLookupConfig>,
    /// Seconds between reconciliation passes of `lakelog run` (full scans compared with what was
    /// recorded; they make lost events harmless).
    #[serde(default = "default_reconcile_interval")]
    pub reconcile_interval_seconds: u64,
}

/// A CloudTrail trail's log files in S3.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudTrailConfig {
    /// The trail's bucket.
    pub bucket: String,
    /// Key prefix of the trail (before `AWSLogs/`), if any.
    #[serde(default)]
    pub prefix: String,
    /// Region of the bucket. Default: the source region.
    #[serde(default)]
    pub region: Option<String>,
    /// One endpoint URL for the trail's bucket. Default: the source section's endpoints.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Per-service endpoint URLs (`s3`), before `endpoint`; unset ones come from the source section.
    #[serde(default)]
    pub endpoints: ServiceEndpoints,
    /// Seconds between listings of new log files (CloudTrail delivers about every 5 minutes).
    #[serde(default = "default_cloudtrail_poll")]
    pub poll_seconds: u64,
}

/// CloudTrail LookupEvents polling.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudTrailLookupConfig {
    /// Seconds between polls.
    #[serde(default = "default_cloudtrail_poll")]
    pub poll_seconds: u64,
    /// How far before the cursor each poll looks again, because CloudTrail makes events visible
    /// late (about 5 minutes on average, sometimes more). Re-seen events are de-duplicated.
    #[serde(default = "default_lookup_overlap")]
    pub overlap_seconds: u64,
}

/// The SQS queue that EventBridge rules feed with Glue events.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// Queue URL (or give `queue_name`).
    #[serde(default)]
    pub queue_url: Option<String>,
    /// Queue name in the source account and Region, resolved with GetQueueUrl.
    #[serde(default)]
    pub queue_name: Option<String>,
    /// Long-poll wait per ReceiveMessage (0-20).
    #[serde(default = "default_wait_seconds")]
    pub wait_seconds: i32,
    /// How long a received message stays invisible while lakelog works on it (extended while
    /// work continues); it reappears if lakelog dies before deleting it.
    #[serde(default = "default_visibility_timeout")]
    pub visibility_timeout_seconds: i32,
}

/// The Kinesis stream that carries the change log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Stream name.
    pub name: String,
    /// Region of the stream. Default: the source region.
    #[serde(default)]
    pub region: Option<String>,
    /// One endpoint URL for every service of this section (Kinesis): an emulator.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Per-service endpoint URLs (`kinesis`), before `endpoint`.
    #[serde(default)]
    pub endpoints: ServiceEndpoints,
    /// Shard count used when lakelog creates the stream.
    #[serde(default = "default_shards")]
    pub shards: i32,
    /// Create the stream when it does not exist (else: a clear error).
    #[serde(default)]
    pub create_if_missing: bool,
    /// Largest Kinesis record the producer builds, packing change records that share a key
    /// (a table and its partitions). Kinesis allows 1 MiB including the partition key.
    #[serde(default = "default_frame_bytes")]
    pub frame_bytes: usize,
}

/// Where lakelog keeps its own durable state: checkpoints and dead letters.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// S3 bucket for checkpoints and dead letters.
    pub bucket: String,
    /// Key prefix inside the bucket.
    #[serde(default = "default_state_prefix")]
    pub prefix: String,
    /// Region of the bucket. Default: the source region.
    #[serde(default)]
    pub region: Option<String>,
    /// One endpoint URL for every service of this section (S3): an emulator.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Per-service endpoint URLs (`s3`), before `endpoint`.
    #[serde(default)]
    pub endpoints: ServiceEndpoints,
    /// Create the bucket when it does not exist (meant for local runs; production buckets come from `infra/`).
    #[serde(default)]
    pub create_bucket_if_missing: bool,
}

/// One replica catalog.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Unique name; used in checkpoints, dead letters, metrics and `--target`.
    pub name: String,
    /// AWS Region of the target catalog.
    pub region: String,
    /// Target catalog id. When absent, the account of the target credentials (STS).
    #[serde(default)]
    pub catalog_id: Option<String>,
    /// One endpoint URL for every service of this target (Glue, STS): an emulator.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Per-service endpoint URLs (VPC endpoints), before `endpoint`.
    #[serde(default)]
    pub endpoints: ServiceEndpoints,
    /// Databases and tables replicated to this target (globs, see [`Filter`]). Default: all captured.
    #[serde(default)]
    pub include: Vec<String>,
    /// Databases and tables never replicated to this target.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// S3 location rewrites, first match wins: `s3://src-bucket` → `s3://dr-bucket`, keeping the rest.
    /// Every S3 URI in every string that can hold one is rewritten (locations, any table,
    /// partition, storage or SerDe parameter, templates such as `s3://src-bucket/logs/${dt}/`),
    /// in the `s3://`, `s3a://` and `s3n://` schemes; view SQL is not (see `apply::transform`).
    #[serde(default)]
    pub location_rewrite: Vec<LocationRewrite>,
    /// Ask Glue not to archive the previous table version on update, so a busy table does not
    /// exhaust Glue's table-version quota in the replica.
    #[serde(default = "default_true")]
    pub skip_archive: bool,
}

/// Rewrites S3 URIs whose bucket (and optional key prefix) matches `from`, at a name boundary
/// (`s3://data` never matches `s3://data-raw/x`); `s3a://` and `s3n://` URIs match too and keep
/// their scheme.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LocationRewrite {
    /// `s3://bucket` or `s3://bucket/prefix` (whole key segments: `s3://b/logs` is not `s3://b/logs2`).
    pub from: String,
    /// What replaces `from`, e.g. `s3://dr-bucket`.
    pub to: String,
}

/// How records are applied to targets.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyConfig {
    /// Tables applied at once within one shard's batch, and the most calls in flight to the
    /// target at once. Throttling halves the latter; it grows back by one after a run of successes.
    #[serde(default = "default_apply_concurrency")]
    pub concurrency: usize,
    /// Attempts every target call (reads, writes, the listing after a sync) gets for a retryable
    /// failure (throttling, 5xx, timeouts, resets), with jittered backoff, before the run stops
    /// with an error (without checkpointing past it, so nothing is lost). The SDK makes one
    /// attempt per try, so this is the whole count.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// How late a record may reach the stream after its capture (queues, publish retries).
    ///
    /// A record whose parent is missing in the target (a table's database, a partition's table)
    /// waits, spending reads and no writes, until every shard of its consumer group has been read
    /// past the record's capture time: a shard counts as read past time T once it has read a
    /// record captured at or after T, or once it is idle (caught up) at T plus this many seconds.
    /// Only then, with the parent still missing, is the record dead-lettered. Without a consumer
    /// group to watch (`lakelog dlq replay`), this is how long a record waits.
    #[serde(default = "default_dependency_wait_seconds")]
    pub dependency_wait_seconds: u64,
    /// Kinesis records read per GetRecords (one batch, then one checkpoint).
    #[serde(default = "default_batch_records")]
    pub batch_records: i32,
}

impl Default for ApplyConfig {
    fn default() -> Self {
        ApplyConfig {
            concurrency: default_apply_concurrency(),
            max_attempts: default_max_attempts(),
            dependency_wait_seconds: default_dependency_wait_seconds(),
            batch_records: default_batch_records(),
        }
    }
}

/// The Prometheus listener of `lakelog run` (`/metrics`, `/healthz`, `/readyz`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address to listen on; loopback by default so nothing is exposed unless asked. `off`
    /// disables the listener.
    #[serde(default = "default_metrics_listen")]
    pub listen: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { listen: default_metrics_listen() }
    }
}

impl MetricsConfig {
    /// The socket address to bind, or `None` when the listener is off.
    pub fn address(&self) -> Result<Option<std::net::SocketAddr>, String> {
        parse_listen(&self.listen)
    }
}

/// Parses a listen address (`127.0.0.1:9464`, `[::1]:9464`, `0.0.0.0:9464`) or `off`.
pub fn parse_listen(text: &str) -> Result<Option<std::net::SocketAddr>, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        format!(
            "`{text}` is not a listen address; use IP:PORT such as 127.0.0.1:9464 (0.0.0.0:9464 to expose it), or off"
        )
    })
}

fn default_metrics_listen() -> String {
    "127.0.0.1:9464".to_string()
}

fn default_partition_segments() -> i32 {
    4
}
fn default_reconcile_interval() -> u64 {
    300
}
fn default_cloudtrail_poll() -> u64 {
    60
}
fn default_lookup_overlap() -> u64 {
    900
}
fn default_wait_seconds() -> i32 {
    20
}
fn default_visibility_timeout() -> i32 {
    120
}
fn default_shards() -> i32 {
    2
}
fn default_state_prefix() -> String {
    "lakelog/".to_string()
}
fn default_true() -> bool {
    true
}
fn default_apply_concurrency() -> usize {
    8
}
fn default_max_attempts() -> u32 {
    6
}
fn default_dependency_wait_seconds() -> u64 {
    30
}
fn default_frame_bytes() -> usize {
    1_000_000
}
fn default_batch_records() -> i32 {
    500
}

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: `targets[1].location_rewrite[0].from`.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{} problem(s) in {file}:\n{}", .problems.len(), .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid { file: String, problems: Vec<Problem> },
}

impl PipelineConfig {
    /// Reads, interpolates, parses and validates a pipeline file.
    pub fn load(path: &Path) -> Result<PipelineConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    /// Parses and validates pipeline YAML; `file` names it in errors.
    pub fn from_yaml(text: &str, file: &str) -> Result<PipelineConfig, ConfigError> {
        let invalid = |problems| ConfigError::Invalid { file: file.to_string(), problems };
        let mut problems = Vec::new();
        let text = interpolate_env(text, &mut problems);
        let root: serde_yaml_ng::Value = match serde_yaml_ng::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                problems.push(Problem { path: "(file)".into(), message: format!("not valid YAML: {e}") });
                return Err(invalid(problems));
            }
        };
        let Some(map) = root.as_mapping() else {
            problems.push(Problem {
                path: "(file)".into(),
                message: "expected a mapping with source, stream, state and targets".into(),
            });
            return Err(invalid(problems));
        };
        const KNOWN: [&str; 6] = ["source", "stream", "state", "targets", "apply", "metrics"];
        for key in map.keys() {
            let name = key.as_str().unwrap_or("?");
            if !KNOWN.contains(&name) {
                problems.push(Problem {
                    path: name.to_string(),
                    message: format!("unknown section; expected one of {}", KNOWN.join(", ")),
                });
            }
        }
        let source: Option<SourceConfig> = section(map, "source", true, &mut problems);
        let stream: Option<StreamConfig> = section(map, "stream", true, &mut problems);
        let state: Option<StateConfig> = section(map, "state", true, &mut problems);
        let apply: Option<ApplyConfig> = section(map, "apply", false, &mut problems);
        let metrics: Option<MetricsConfig> = section(map, "metrics", false, &mut problems);
        if let Some(Err(message)) = metrics.as_ref().map(|m| m.address()) {
            problems.push(Problem { path: "metrics.listen".into(), message });
        }
        let mut targets = Vec::new();
        match map.get("targets") {
            Some(serde_yaml_ng::Value::Sequence(items)) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(t) = parse_at::<TargetConfig>(item, &format!("targets[{i}]"), &mut problems) {
                        targets.push((i, t));
                    }
                }
                if items.is_empty() {
                    problems.push(Problem { path: "targets".into(), message: "add at least one target".into() });
                }
            }
            Some(_) => problems
                .push(Problem { path: "targets".into(), message: "expected a list of targets (`- name: ...`)".into() }),
            None => problems.push(Problem {
                path: "targets".into(),
                message: "missing; add at least one target with name and region".into(),
            }),
        }

        if let Some(s) = &source {
            check_region("source.region", &s.region, &mut problems);
            s.overrides().validate("source", &mut problems);
            check_filters("source", &s.include, &s.exclude, &mut problems);
            if !(1..=10).contains(&s.partition_segments) {
                problems.push(Problem {
                    path: "source.partition_segments".into(),
                    message: format!("{} is out of range; Glue allows 1 to 10", s.partition_segments),
                });
            }
            if let Some(id) = &s.catalog_id {
                check_catalog_id("source.catalog_id", id, &mut problems);
            }
            if s.reconcile_interval_seconds == 0 {
                problems.push(Problem {
                    path: "source.reconcile_interval_seconds".into(),
                    message: "must be at least 1".into(),
                });
            }
            if let Some(c) = &s.cloudtrail {
                check_bucket("source.cloudtrail.bucket", &c.bucket, &mut problems);
                EndpointOverrides::new(c.endpoint.as_deref(), &c.endpoints)
                    .validate("source.cloudtrail", &mut problems);
                if c.poll_seconds == 0 {
                    problems.push(Problem {
                        path: "source.cloudtrail.poll_seconds".into(),
                        message: "must be at least 1".into(),
                    });
                }
            }
            if let Some(e) = &s.events {
                match (&e.queue_url, &e.queue_name) {
                    (Some(url), None) if !(url.starts_with("https://") || url.starts_with("http://")) => {
                        problems.push(Problem {
                            path: "source.events.queue_url".into(),
                            message: format!(
                                "`{url}` is not a queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)"
                            ),
                        })
                    }
                    (Some(_), None) | (None, Some(_)) => {}
                    _ => problems.push(Problem {
                        path: "source.events".into(),
                        message: "give exactly one of queue_url and queue_name".into(),
                    }),
                }
                if !(0..=20).contains(&e.wait_seconds) {
                    problems.push(Problem {
                        path: "source.events.wait_seconds".into(),
                        message: "SQS allows 0 to 20".into(),
                    });
                }
                if !(10..=43_200).contains(&e.visibility_timeout_seconds) {
                    problems.push(Problem {
                        path: "source.events.visibility_timeout_seconds".into(),
                        message: "use 10 to 43200".into(),
                    });
                }
            }
        }
        if let Some(s) = &stream {
            check_stream_name(&s.name, &mut problems);
            if let Some(r) = &s.region {
                check_region("stream.region", r, &mut problems);
            }
            s.overrides().validate("stream", &mut problems);
            if !(1024..=1_040_000).contains(&s.frame_bytes) {
                problems.push(Problem {
                    path: "stream.frame_bytes".into(),
                    message: format!(
                        "{} is out of range; use 1024 to 1040000 (Kinesis records hold 1 MiB)",
                        s.frame_bytes
                    ),
                });
            }
            if !(1..=500).contains(&s.shards) {
                problems.push(Problem {
                    path: "stream.shards".into(),
                    message: format!("{} is out of range; use 1 to 500", s.shards),
                });
            }
        }
        if let Some(s) = &state {
            check_bucket("state.bucket", &s.bucket, &mut problems);
            if let Some(r) = &s.region {
                check_region("state.region", r, &mut problems);
            }
            s.overrides().validate("state", &mut problems);
        }
        if let Some(a) = &apply {
            if a.concurrency == 0 || a.concurrency > 64 {
                problems.push(Problem {
                    path: "apply.concurrency".into(),
                    message: format!("{} is out of range; use 1 to 64", a.concurrency),
                });
            }
            if !(1..=10_000).contains(&a.batch_records) {
                problems.push(Problem {
                    path: "apply.batch_records".into(),
                    message: format!("{} is out of range; GetRecords reads 1 to 10000 records", a.batch_records),
                });
            }
            if a.max_attempts == 0 {
                problems.push(Problem { path: "apply.max_attempts".into(), message: "must be at least 1".into() });
            }
        }
        let mut names = BTreeSet::new();
        for (i, t) in &targets {
            let at = format!("targets[{i}]");
            if t.name.is_empty() || !t.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                problems.push(Problem {
                    path: format!("{at}.name"),
                    message: format!("`{}` is not a valid target name; use letters, digits, - and _", t.name),
                });
            } else if !names.insert(t.name.clone()) {
                problems.push(Problem {
                    path: format!("{at}.name"),
                    message: format!("`{}` is used by another target; target names must be unique", t.name),
                });
            }
            check_region(&format!("{at}.region"), &t.region, &mut problems);
            t.overrides().validate(&at, &mut problems);
            if let Some(id) = &t.catalog_id {
                check_catalog_id(&format!("{at}.catalog_id"), id, &mut problems);
            }
            check_filters(&at, &t.include, &t.exclude, &mut problems);
            for (j, r) in t.location_rewrite.iter().enumerate() {
                let rw = format!("{at}.location_rewrite[{j}]");
                check_s3_prefix(&format!("{rw}.from"), &r.from, &mut problems);
                check_s3_prefix(&format!("{rw}.to"), &r.to, &mut problems);
            }
            if let Some(s) = &source {
                if s.region == t.region
                    && s.catalog_id.is_some()
                    && s.catalog_id == t.catalog_id
                    && s.overrides().url(Service::Glue) == t.overrides().url(Service::Glue)
                {
                    problems.push(Problem {
                        path: at.clone(),
                        message: "target is the source catalog itself; use another region or catalog_id".into(),
                    });
                }
            }
        }

        match (source, stream, state, problems.is_empty()) {
            (Some(source), Some(stream), Some(state), true) => Ok(PipelineConfig {
                source,
                stream,
                state,
                targets: targets.into_iter().map(|(_, t)| t).collect(),
                apply: apply.unwrap_or_default(),
                metrics: metrics.unwrap_or_default(),
            }),
            _ => Err(invalid(problems)),
        }
    }

    /// The configured target called `name`.
    pub fn target(&self, name: &str) -> Option<&TargetConfig> {
        self.targets.iter().find(|t| t.name == name)
    }
}

impl SourceConfig {
    /// `endpoint` and `endpoints` of the source section.
    pub fn overrides(&self) -> EndpointOverrides {
        EndpointOverrides::new(self.endpoint.as_deref(), &self.endpoints)
    }
}

impl CloudTrailConfig {
    /// Where the trail's bucket is reached: this section's endpoints, then the source section's
    /// (the trail belongs to the source account).
    pub fn overrides(&self, source: &SourceConfig) -> EndpointOverrides {
        EndpointOverrides::new(self.endpoint.as_deref(), &self.endpoints).within(&source.overrides())
    }
}

impl StreamConfig {
    /// `endpoint` and `endpoints` of the stream section.
    pub fn overrides(&self) -> EndpointOverrides {
        EndpointOverrides::new(self.endpoint.as_deref(), &self.endpoints)
    }
}

impl StateConfig {
    /// `endpoint` and `endpoints` of the state section.
    pub fn overrides(&self) -> EndpointOverrides {
        EndpointOverrides::new(self.endpoint.as_deref(), &self.endpoints)
    }
}

impl TargetConfig {
    /// `endpoint` and `endpoints` of this target.
    pub fn overrides(&self) -> EndpointOverrides {
        EndpointOverrides::new(self.endpoint.as_deref(), &self.endpoints)
    }
}

fn section<T: DeserializeOwned>(
    map: &serde_yaml_ng::Mapping,
    name: &str,
    required: bool,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    match map.get(name) {
        Some(v) => parse_at(v, name, problems),
        None if required => {
            problems.push(Problem { path: name.into(), message: "missing section".into() });
            None
        }
        None => serde_yaml_ng::from_value(serde_yaml_ng::Value::Mapping(Default::default())).ok(),
    }
}

fn parse_at<T: DeserializeOwned>(value: &serde_yaml_ng::Value, at: &str, problems: &mut Vec<Problem>) -> Option<T> {
    match serde_yaml_ng::from_value::<T>(value.clone()) {
        Ok(v) => Some(v),
        Err(e) => {
            // serde_yaml reports "unknown field `x`, expected one of ..." / "missing field `y`";
            // name the field in the path when the message carries one.
            let msg = e.to_string();
            let field = msg.split('`').nth(1).filter(|_| msg.contains("field"));
            let path = match field {
                Some(f) if msg.starts_with("unknown field") || msg.starts_with("missing field") => format!("{at}.{f}"),
                _ => at.to_string(),
            };
            problems.push(Problem { path, message: msg });
            None
        }
    }
}

/// Replaces `${NAME}` and `${NAME:-default}` with environment values, except on comment lines;
/// `$${` escapes a literal `${`.
fn interpolate_env(text: &str, problems: &mut Vec<Problem>) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
        } else {
            out.push_str(&interpolate_line(line, problems));
        }
    }
    out
}

fn interpolate_line(text: &str, problems: &mut Vec<Problem>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("${") {
        if pos > 0 && rest.as_bytes()[pos - 1] == b'$' {
            out.push_str(&rest[..pos - 1]);
            out.push_str("${");
            rest = &rest[pos + 2..];
            continue;
        }
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        let Some(end) = after.find('}') else {
            problems.push(Problem { path: "(file)".into(), message: "unterminated `${` in config".into() });
            out.push_str(&rest[pos..]);
            return out;
        };
        let expr = &after[..end];
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (expr, None),
        };
        match (std::env::var(name), default) {
            (Ok(v), _) if !v.is_empty() => out.push_str(&v),
            (_, Some(d)) => out.push_str(d),
            (Ok(v), None) => out.push_str(&v),
            (Err(_), None) => problems.push(Problem {
                path: format!("${{{name}}}"),
                message: format!("environment variable {name} is not set; set it or write ${{{name}:-default}}"),
            }),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn check_region(path: &str, region: &str, problems: &mut Vec<Problem>) {
    let ok = !region.is_empty()
        && region.split('-').count() >= 3
        && region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        problems.push(Problem {
            path: path.into(),
            message: format!("`{region}` is not an AWS Region name (like us-east-1)"),
        });
    }
}

fn check_catalog_id(path: &str, id: &str, problems: &mut Vec<Problem>) {
    if id.len() != 12 || !id.chars().all(|c| c.is_ascii_digit()) {
        problems.push(Problem {
            path: path.into(),
            message: format!("`{id}` is not a catalog id; use the 12-digit account id (quote it in YAML)"),
        });
    }
}

fn check_stream_name(name: &str, problems: &mut Vec<Problem>) {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok {
        problems.push(Problem {
            path: "stream.name".into(),
            message: format!("`{name}` is not a Kinesis stream name (1-128 of a-z A-Z 0-9 _ . -)"),
        });
    }
}

fn check_bucket(path: &str, bucket: &str, problems: &mut Vec<Problem>) {
    let ok = (3..=63).contains(&bucket.len())
        && bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if !ok {
        problems.push(Problem {
            path: path.into(),
            message: format!("`{bucket}` is not an S3 bucket name (3-63 of a-z 0-9 - .), without s3://"),
        });
    }
}

fn check_s3_prefix(path: &str, value: &str, problems: &mut Vec<Problem>) {
    match value.strip_prefix("s3://") {
        Some(rest) if !rest.is_empty() => {
            let bucket = rest.split('/').next().unwrap_or_default();
            check_bucket(path, bucket, problems);
        }
        _ => problems.push(Problem {
            path: path.into(),
            message: format!("`{value}` is not an S3 location; write s3://bucket or s3://bucket/prefix"),
        }),
    }
}

fn check_filters(at: &str, include: &[String], exclude: &[String], problems: &mut Vec<Problem>) {
    for (name, list) in [("include", include), ("exclude", exclude)] {
        for (i, p) in list.iter().enumerate() {
            if let Err(e) = crate::model::filter::Filter::check_pattern(p) {
                problems.push(Problem { path: format!("{at}.{name}[{i}]"), message: e });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
source: { region: us-east-1, catalog_id: "123456789012" }
stream: { name: lakelog-changes, shards: 2, create_if_missing: true }
state: { bucket: lakelog-state }
targets:
  - name: dr
    region: us-west-2
    location_rewrite: [ { from: "s3://data", to: "s3://data-dr" } ]
"#;

    #[test]
    fn good_config_parses_with_defaults() {
        let c = PipelineConfig::from_yaml(GOOD, "t.yaml").expect("valid");
        assert_eq!(c.targets[0].name, "dr");
        assert!(c.targets[0].skip_archive);
        assert_eq!(c.state.prefix, "lakelog/");
        assert_eq!(c.apply.concurrency, 8);
        assert_eq!(c.source.partition_segments, 4);
        // Metrics are served on loopback unless configured otherwise.
        assert_eq!(c.metrics.address(), Ok(Some("127.0.0.1:9464".parse().expect("addr"))));
    }

    #[test]
    fn metrics_listen_takes_an_address_or_off_and_names_a_bad_one() {
        assert_eq!(parse_listen("off"), Ok(None));
        assert_eq!(parse_listen("0.0.0.0:9464"), Ok(Some("0.0.0.0:9464".parse().expect("addr"))));
        let text = format!("{GOOD}metrics:\n  listen: \"localhost\"\n");
        let Err(ConfigError::Invalid { problems, .. }) = PipelineConfig::from_yaml(&text, "t.yaml") else {
            panic!("a bad listen address must be rejected")
        };
        assert_eq!(problems[0].path, "metrics.listen");
        assert!(problems[0].message.contains("127.0.0.1:9464"), "{}", problems[0].message);
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let bad = r#"
source: { region: nowhere, colour: blue }
stream: { name: "bad name!", shards: 0 }
state: { bucket: "s3://Bucket" }
targets:
  - name: dr
    region: us-west-2
    location_rewrite: [ { from: "data-bucket", to: "s3://ok" } ]
  - name: dr
    region: us-west-2
    location_rewrite: [ { from: "s3://a", to: "s3://b" }, { from: "gs://x", to: "s3://y" } ]
extra: 1
"#;
        let Err(ConfigError::Invalid { problems, .. }) = PipelineConfig::from_yaml(bad, "t.yaml") else {
            panic!("expected invalid");
        };
        let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
        for want in [
            "source.colour",
            "stream.name",
            "stream.shards",
            "state.bucket",
            "targets[0].location_rewrite[0].from",
            "targets[1].name",
            "targets[1].location_rewrite[1].from",
            "extra",
        ] {
            assert!(paths.contains(&want), "missing {want} in {paths:?}");
        }
    }

    #[test]
    fn env_interpolation_with_default_and_missing() {
        std::env::set_var("LAKELOG_TEST_BUCKET", "from-env");
        let text = GOOD
            .replace("lakelog-state", "${LAKELOG_TEST_BUCKET}")
            .replace("lakelog-changes", "${LAKELOG_NOPE_XYZ:-dflt}");
        let c = PipelineConfig::from_yaml(&text, "t").expect("valid");
        assert_eq!(c.state.bucket, "from-env");
        assert_eq!(c.stream.name, "dflt");
        let commented = format!("# see ${{NOT_INTERPOLATED}}\n{GOOD}");
        assert!(PipelineConfig::from_yaml(&commented, "t").is_ok());
        let text = GOOD.replace("lakelog-state", "${LAKELOG_UNSET_VAR_XYZ}");
        let err = PipelineConfig::from_yaml(&text, "t").unwrap_err().to_string();
        assert!(err.contains("LAKELOG_UNSET_VAR_XYZ is not set"), "{err}");
    }

    #[test]
    fn endpoints_take_a_url_per_service_and_every_bad_one_is_reported() {
        let text = GOOD
            .replace(
                "stream: { name: lakelog-changes,",
                "stream: { endpoints: { kinesis: \"kinesis.local\" }, name: lakelog-changes,",
            )
            .replace(
                "region: us-west-2\n",
                "region: us-west-2\n    endpoints: { glue: \"http://glue:1\", sts: \"ftp://x\" }\n",
            );
        let Err(ConfigError::Invalid { problems, .. }) = PipelineConfig::from_yaml(&text, "t.yaml") else {
            panic!("bad endpoint URLs must be rejected")
        };
        let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["stream.endpoints.kinesis", "targets[0].endpoints.sts"]);

        let good =
            GOOD.replace("region: us-west-2\n", "region: us-west-2\n    endpoints: { glue: \"http://glue:1\" }\n");
        let c = PipelineConfig::from_yaml(&good, "t.yaml").expect("valid");
        assert_eq!(c.targets[0].overrides().url(Service::Glue), Some("http://glue:1"));
        assert_eq!(c.targets[0].overrides().url(Service::Sts), None);

        let unknown =
            GOOD.replace("region: us-west-2\n", "region: us-west-2\n    endpoints: { gleu: \"http://glue:1\" }\n");
        let err = PipelineConfig::from_yaml(&unknown, "t.yaml").unwrap_err().to_string();
        assert!(err.contains("gleu") && err.contains("targets[0]"), "{err}");
    }
}
