//! The sections of `pipeline.yaml` as serde types: what each field means and its default.
//!
//! Every struct rejects unknown fields, so a typo is a reported problem rather than a silently
//! ignored setting. Defaults are named functions (one per field), shared by serde and the
//! `Default` impls of the optional sections. Nothing here checks values: see `validate`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

use super::endpoints::{EndpointOverrides, ServiceEndpoints};

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
    /// Databases and tables captured at all (globs, see [`Filter`](crate::model::filter::Filter)). Default: everything.
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
    /// Replicate Lake Formation too (grants, LF-tags and their assignments, data cells filters,
    /// settings, registered locations; see the README's "Lake Formation"). Default `false`: it
    /// needs `lakeformation:*` read rights on the source and write rights on every target, and a
    /// target whose grants are managed by hand would see them changed.
    #[serde(default)]
    pub lakeformation: bool,
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
    /// How several `lakelog` processes with this config share the change log.
    #[serde(default)]
    pub coordination: CoordinationConfig,
}

/// How the consumer groups of several processes share the change log (`state.coordination`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinationConfig {
    /// `single` (the default): one process consumes; a second one with the same config is
    /// refused at start (an expiring lock per consumer group in the state bucket). `leases`: any
    /// number of processes share the shards through a KCL-style lease table in DynamoDB.
    #[serde(default)]
    pub mode: CoordinationMode,
    /// The DynamoDB lease table (`leases`): one table for every consumer group of the stream.
    /// Default: `lakelog-<stream.name>-leases`.
    #[serde(default)]
    pub table: Option<String>,
    /// Create the lease table (on-demand) when it does not exist; meant for local runs, in AWS
    /// the table comes from `infra/`.
    #[serde(default)]
    pub create_table_if_missing: bool,
    /// A lease (or the single-process lock) that is not renewed for this long is expired and
    /// may be taken over by another process.
    #[serde(default = "default_lease_duration")]
    pub lease_duration: String,
    /// How often leases (and the lock) are renewed and a worker looks for leases to take; at
    /// most a third of `lease_duration`.
    #[serde(default = "default_renew_interval")]
    pub renew_interval: String,
    /// This process's id in the lease table; unique per process. Default: host name, process id
    /// and a random suffix.
    #[serde(default)]
    pub worker_id: Option<String>,
}

/// See [`CoordinationConfig::mode`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoordinationMode {
    #[default]
    Single,
    Leases,
}

impl Default for CoordinationConfig {
    fn default() -> Self {
        CoordinationConfig {
            mode: CoordinationMode::Single,
            table: None,
            create_table_if_missing: false,
            lease_duration: default_lease_duration(),
            renew_interval: default_renew_interval(),
            worker_id: None,
        }
    }
}

impl CoordinationConfig {
    pub fn lease_duration(&self) -> std::time::Duration {
        duration(&self.lease_duration)
    }
    pub fn renew_interval(&self) -> std::time::Duration {
        duration(&self.renew_interval)
    }
    /// The lease table of `stream`.
    pub fn table(&self, stream: &str) -> String {
        self.table.clone().unwrap_or_else(|| format!("lakelog-{stream}-leases"))
    }
}

/// KCL's default failover time is 10 s; renewing every 3 s leaves two more tries before expiry.
fn default_lease_duration() -> String {
    "10s".into()
}
fn default_renew_interval() -> String {
    "3s".into()
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
    /// Databases and tables replicated to this target (globs, see [`Filter`](crate::model::filter::Filter)). Default: all captured.
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
    /// A role lakelog assumes for every call to this target (a target in another account). Without
    /// it, the target is reached with the default credential chain, like the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assume_role: Option<AssumeRoleConfig>,
    /// How the source's Lake Formation principals map to this target's (see
    /// `model::principal`). Without it: every principal maps to itself when the target is in the
    /// source's account, and none is granted when it is in another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principals: Option<PrincipalsConfig>,
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

/// The change log's archive in the state store (`archive/<stream>/`): raw segments, snapshots,
/// point-in-time restore. Durations are written like `30d`, `12h`, `90s`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveConfig {
    /// Whether `lakelog run` archives the stream (its own consumer group, beside the targets').
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How far back a restore must stay possible; older raw segments and snapshots are removed
    /// once a newer snapshot covers them.
    #[serde(default = "default_archive_retention")]
    pub retention: String,
    /// How long a delete is kept in snapshots (so a late, older record cannot bring the object back).
    #[serde(default = "default_tombstone_retention")]
    pub tombstone_retention: String,
    /// The newest changes stay raw this long (a restore to a recent time is exact; `history` is complete).
    #[serde(default = "default_archive_head")]
    pub head: String,
    /// Compact when the raw tail holds at least this many MiB ...
    #[serde(default = "default_compact_tail_mib")]
    pub compact_tail_mib: u64,
    /// ... or this share of the newest snapshot's size, whichever is larger.
    #[serde(default = "default_compact_tail_ratio")]
    pub compact_tail_ratio: f64,
    /// How often `lakelog run` checks whether compaction is due.
    #[serde(default = "default_compact_check")]
    pub compact_check: String,
    /// A segment is written when it holds this many MiB of records ...
    #[serde(default = "default_segment_mib")]
    pub segment_mib: u64,
    /// ... or this many records ...
    #[serde(default = "default_segment_records")]
    pub segment_records: usize,
    /// ... or its oldest record has waited this long.
    #[serde(default = "default_segment_age")]
    pub segment_age: String,
    /// Memory for compaction's and restore's merge (they spill sorted runs to `work_dir` beyond it).
    #[serde(default = "default_merge_memory_mib")]
    pub merge_memory_mib: u64,
    /// Scratch space for merges. Default: the system's temporary directory.
    #[serde(default)]
    pub work_dir: Option<String>,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            enabled: true,
            retention: default_archive_retention(),
            tombstone_retention: default_tombstone_retention(),
            head: default_archive_head(),
            compact_tail_mib: default_compact_tail_mib(),
            compact_tail_ratio: default_compact_tail_ratio(),
            compact_check: default_compact_check(),
            segment_mib: default_segment_mib(),
            segment_records: default_segment_records(),
            segment_age: default_segment_age(),
            merge_memory_mib: default_merge_memory_mib(),
            work_dir: None,
        }
    }
}

/// A duration field (`30d`, `90s`); validation has already checked it parses.
pub fn duration(text: &str) -> std::time::Duration {
    humantime::parse_duration(text).unwrap_or_default()
}

impl ArchiveConfig {
    pub fn retention(&self) -> std::time::Duration {
        duration(&self.retention)
    }
    pub fn tombstone_retention(&self) -> std::time::Duration {
        duration(&self.tombstone_retention)
    }
    pub fn head(&self) -> std::time::Duration {
        duration(&self.head)
    }
    pub fn compact_check(&self) -> std::time::Duration {
        duration(&self.compact_check)
    }
    pub fn segment_age(&self) -> std::time::Duration {
        duration(&self.segment_age)
    }
}

fn default_archive_retention() -> String {
    "30d".into()
}
fn default_tombstone_retention() -> String {
    "7d".into()
}
fn default_archive_head() -> String {
    "1h".into()
}
fn default_compact_tail_mib() -> u64 {
    64
}
fn default_compact_tail_ratio() -> f64 {
    0.1
}
fn default_compact_check() -> String {
    "10m".into()
}
fn default_segment_mib() -> u64 {
    8
}
fn default_segment_records() -> usize {
    100_000
}
fn default_segment_age() -> String {
    "60s".into()
}
fn default_merge_memory_mib() -> u64 {
    64
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

/// The role a target is reached through: STS AssumeRole from the default credential chain, with
/// the target's STS endpoint; the credentials are renewed before they expire.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssumeRoleConfig {
    /// The role in the target account, e.g. `arn:aws:iam::222222222222:role/lakelog-target`
    /// (`infra/cloudformation/target-account.yaml` creates one). Without `catalog_id`, the target
    /// catalog is this role's account.
    pub role_arn: String,
    /// The external id the role's trust policy requires (`sts:ExternalId`). A secret: write it as
    /// `${ENV_VAR}`; lakelog never logs or prints it (`validate --output json` shows `<redacted>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<Secret>,
    /// The role session name, as the target account's CloudTrail shows it. Default: `lakelog-<target name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_name: Option<String>,
    /// How long one set of credentials is valid (15m to 12h, and at most the role's maximum
    /// session duration, 1h unless raised); lakelog renews them before they expire.
    #[serde(default = "default_session_duration")]
    pub duration: String,
}

impl AssumeRoleConfig {
    /// The session name: as configured, else `lakelog-<target>` (cut to STS's 64 characters).
    pub fn session_name(&self, target: &str) -> String {
        match &self.session_name {
            Some(name) => name.clone(),
            None => format!("lakelog-{target}").chars().take(64).collect(),
        }
    }

    /// The configured duration; validation has already checked it parses.
    pub fn duration(&self) -> std::time::Duration {
        duration(&self.duration)
    }
}

fn default_session_duration() -> String {
    "1h".into()
}

/// A value that must never reach a log, an error message or printed output: its `Debug` and
/// `Serialize` say `<redacted>`; [`Secret::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one call that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

/// `targets[].principals`: how Lake Formation principals of the source map to the target's. The
/// rules and their order are documented in `model::principal`; a principal no rule maps is
/// never granted (it is reported and parked as "unmapped principal").
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalsConfig {
    /// Source account id → target account id, for IAM role and user ARNs (quote the ids).
    #[serde(default)]
    pub account_map: BTreeMap<String, String>,
    /// Source principal → target principal, exactly. Wins over every other rule; the only way to
    /// map a whole account, `<account>:IAMPrincipals`, an organization or an OU. Each maps to a
    /// principal of its own kind, and no two to the same one.
    #[serde(default)]
    pub map: BTreeMap<String, String>,
    /// Source SAML identity provider ARN → the target account's: SAML users and groups keep
    /// their name under the target's provider.
    #[serde(default)]
    pub saml_providers: BTreeMap<String, String>,
    /// IAM Identity Center users and groups keep their id: set it when the target account uses
    /// the source's Identity Center instance (the same organization).
    #[serde(default)]
    pub keep_identity_center: bool,
    /// Grant `IAMAllowedPrincipals` in the target too (off: in a target that uses Lake Formation
    /// permissions it would open the resource to every IAM principal IAM allows).
    #[serde(default)]
    pub keep_iam_allowed_principals: bool,
}

impl PrincipalsConfig {
    /// The rules, as the model maps with them.
    pub fn rules(&self) -> crate::model::principal::Rules {
        crate::model::principal::Rules {
            account_map: self.account_map.clone(),
            map: self.map.clone(),
            saml_providers: self.saml_providers.clone(),
            keep_identity_center: self.keep_identity_center,
            keep_iam_allowed_principals: self.keep_iam_allowed_principals,
        }
    }
}

impl TargetConfig {
    /// Where this target's principal rules sit, as reasons name them: `targets[<name>].principals`.
    pub fn principals_path(&self) -> String {
        format!("targets[{}].principals", self.name)
    }
}
