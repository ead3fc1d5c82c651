//! The composition root: from `pipeline.yaml` to connected parts.
//!
//! [`Clients::build`] (in `crate::aws::clients`) is the one place the program's SDK clients are
//! made, each from its section's endpoints (see `config::endpoints` for the order). [`Pipeline::connect`] resolves
//! account ids, checks the state bucket and holds the clients; its builder methods hand commands
//! ready components (capture sources, the reconciliation loop, consumer groups, the publisher), so
//! a command composes parts and never builds a client or reads an endpoint itself.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use crate::apply::applier::Applier;
use crate::apply::coordination::{Coordinator, LeaseWorkers};
use crate::apply::group::ConsumerGroup;
use crate::apply::transform::Transform;
use crate::archive::consumer::ArchiveConsumer;
use crate::aws::clients::Clients;
use crate::aws::counter::ApiCounter;
use crate::backend::catalog::Catalog;
use crate::backend::changelog::ChangeLog;
use crate::backend::extras::CatalogExtras;
use crate::backend::lakeformation::LakeFormation;
use crate::backend::queue::EventQueue;
use crate::backend::state::SharedStore;
use crate::backend::AwsError;
use crate::capture::events::cloudtrail::CloudTrailCapture;
use crate::capture::events::lookup::{LookupCapture, LookupReader};
use crate::capture::events::queue::{queue_url, QueueCapture, QueueError};
use crate::capture::resolve::Resolver;
use crate::capture::scan::reconcile::{Reconciler, Reconciliation};
use crate::catalog::lakeformation::LfReader;
use crate::catalog::reader::CatalogReader;
use crate::config::{PipelineConfig, TargetConfig};
use crate::lease::worker::Worker;
use crate::lease::{process_id, Timing};
use crate::model::filter::Filter;
use crate::model::Origin;
use crate::progress::Progress;
use crate::state::checkpoint::StoredCheckpoints;
use crate::state::deadletter::DeadLetterStore;
use crate::state::lock::{GroupLocks, LockError};
use crate::stream::admin::ensure_stream;
use crate::stream::producer::Producer;
use crate::stream::publisher::Publisher;
use crate::stream::StreamError;

#[derive(Debug, Error)]
pub enum PipelineError {
    #[error("connecting to {what}: {source}")]
    Aws { what: String, source: AwsError },
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error("no target named `{name}` in the config; configured targets: {known}")]
    UnknownTarget { name: String, known: String },
    #[error("invalid filter: {0}")]
    Filter(String),
}

/// One configured target, connected.
#[derive(Debug, Clone)]
pub struct TargetHandle {
    pub config: TargetConfig,
    pub catalog_id: String,
    /// The target's catalog, one attempt per call (its applier adds the target's retry policy).
    pub catalog: Arc<dyn Catalog>,
    /// The target's Lake Formation (`source.lakeformation`), one attempt per call.
    pub lake_formation: Option<Arc<dyn LakeFormation>>,
    /// Counts every request sent to this target's Glue and Lake Formation.
    pub counter: ApiCounter,
}

/// The events queue, connected: the queue and its resolved URL.
#[derive(Clone)]
pub struct EventsQueue {
    pub queue: Arc<dyn EventQueue>,
    pub url: String,
}

/// Everything a job needs, connected.
pub struct Pipeline {
    pub config: PipelineConfig,
    pub origin: Origin,
    pub source: CatalogReader,
    pub source_filter: Filter,
    /// The change log (`stream.name`).
    pub log: Arc<dyn ChangeLog>,
    /// The state store (the state bucket and prefix).
    pub state: SharedStore,
    pub checkpoints: Arc<StoredCheckpoints>,
    pub dead_letters: DeadLetterStore,
    pub targets: Vec<TargetHandle>,
    /// The clients capture reads the source's changes with.
    clients: Clients,
}

impl Pipeline {
    /// Builds clients and resolves account ids; checks the state bucket (creating it if allowed).
    pub async fn connect(config: PipelineConfig) -> Result<Pipeline, PipelineError> {
        let aws = |what: &str| {
            let what = what.to_string();
            move |source| PipelineError::Aws { what, source }
        };
        let clients = Clients::build(&config).await;
        let catalog_id = clients
            .source_catalog_id(config.source.catalog_id.as_deref())
            .await
            .map_err(aws("the source account (STS)"))?;
        let mut source = CatalogReader::new(clients.source_catalog(&catalog_id), config.source.partition_segments);
        if let Some(lf) = clients.source_lake_formation(&catalog_id) {
            source = source.with_lake_formation(LfReader::new(lf));
        }
        let origin = Origin { account: catalog_id.clone(), region: config.source.region.clone(), catalog_id };

        let log = clients.log(&config.stream.name);
        let state_region = config.state.region.as_deref().unwrap_or(&config.source.region);
        let state = clients
            .state(&config.state.bucket, &config.state.prefix, state_region, config.state.create_bucket_if_missing)
            .await
            .map_err(aws(&format!("the state bucket {}", config.state.bucket)))?;

        let mut targets = Vec::new();
        for (t, c) in config.targets.iter().zip(&clients.targets) {
            let catalog_id = c
                .catalog_id(t.catalog_id.as_deref())
                .await
                .map_err(aws(&match &t.assume_role {
                    // The external id is not named: it is a secret.
                    Some(role) => format!(
                        "the account of target {} (STS, as role {}; check targets[{}].assume_role and the role's trust policy)",
                        t.name, role.role_arn, t.name
                    ),
                    None => format!("the account of target {} (STS)", t.name),
                }))?;
            let catalog = c.catalog(&catalog_id, t.skip_archive);
            let lake_formation = c.lake_formation(&catalog_id);
            targets.push(TargetHandle {
                config: t.clone(),
                catalog_id,
                catalog,
                lake_formation,
                counter: c.counter.clone(),
            });
        }
        let source_filter =
            Filter::new(&config.source.include, &config.source.exclude).map_err(PipelineError::Filter)?;
        Ok(Pipeline {
            checkpoints: Arc::new(StoredCheckpoints::new(state.clone(), &config.stream.name)),
            dead_letters: DeadLetterStore::new(state.clone()),
            config,
            origin,
            source,
            source_filter,
            log,
            state,
            targets,
            clients,
        })
    }

    /// What the source catalog holds beside what lakelog replicates (for `diff` to list).
    pub fn source_extras(&self) -> Arc<dyn CatalogExtras> {
        self.clients.source_extras(&self.origin.catalog_id)
    }

    /// Requests capture's re-reads sent to the source catalog, per operation, since connecting.
    pub fn source_api_calls(&self) -> BTreeMap<String, u64> {
        self.clients.source_counter.snapshot()
    }

    /// Re-reads the source objects that events name (counted in [`Pipeline::source_api_calls`]).
    pub fn resolver(&self) -> Resolver {
        let source = self.clients.capture_catalog(&self.origin.catalog_id);
        let resolver = Resolver::new(source, self.origin.clone(), self.source_filter.clone());
        match self.source.lake_formation() {
            Some(lf) => resolver.with_lake_formation(lf.clone()),
            None => resolver,
        }
    }

    /// The one publishing path into the change log (creating the stream if allowed): every
    /// record of `run` and `sync` goes through it, so all get its ordering rule and memory.
    pub async fn publisher(&self) -> Result<Arc<Publisher>, PipelineError> {
        let s = &self.config.stream;
        ensure_stream(self.log.as_ref(), s.shards, s.create_if_missing).await?;
        Ok(Arc::new(Publisher::new(Producer::new(self.log.clone(), s.frame_bytes))))
    }

    /// The events queue, its URL resolved (`None`: `source.events` is not configured).
    pub async fn events_queue(&self) -> Result<Option<EventsQueue>, QueueError> {
        let (Some(events), Some(queue)) = (&self.config.source.events, self.clients.queue()) else { return Ok(None) };
        Ok(Some(EventsQueue { url: queue_url(queue.as_ref(), events).await?, queue }))
    }

    /// Event capture from the queue (`None`: not configured).
    pub async fn queue_capture(&self, publisher: &Arc<Publisher>) -> Result<Option<QueueCapture>, QueueError> {
        let (Some(config), Some(queue)) = (&self.config.source.events, self.events_queue().await?) else {
            return Ok(None);
        };
        Ok(Some(QueueCapture {
            queue: queue.queue,
            queue_url: queue.url,
            config: config.clone(),
            resolver: self.resolver(),
            publisher: publisher.clone(),
            dead_letters: self.dead_letters.clone(),
        }))
    }

    /// Capture from the CloudTrail trail's log files (`None`: not configured).
    pub fn trail_capture(&self, publisher: &Arc<Publisher>) -> Option<CloudTrailCapture> {
        let config = self.config.source.cloudtrail.as_ref()?;
        Some(CloudTrailCapture {
            trail: self.clients.trail(&config.bucket)?,
            config: config.clone(),
            account: self.origin.account.clone(),
            region: self.config.source.region.clone(),
            resolver: self.resolver(),
            publisher: publisher.clone(),
            state: self.state.clone(),
            dead_letters: self.dead_letters.clone(),
        })
    }

    /// Capture from CloudTrail LookupEvents (`None`: not configured).
    pub fn lookup_capture(&self, publisher: &Arc<Publisher>) -> Option<LookupCapture> {
        let (config, history) = (self.config.source.cloudtrail_lookup.as_ref()?, self.clients.history()?);
        Some(LookupCapture {
            reader: LookupReader { history, config: config.clone() },
            resolver: self.resolver(),
            publisher: publisher.clone(),
            state: self.state.clone(),
            dead_letters: self.dead_letters.clone(),
        })
    }

    /// One full comparison of the source with what `publisher` recorded.
    pub fn reconciler(&self, publisher: &Arc<Publisher>) -> Reconciler {
        Reconciler {
            reader: self.source.clone(),
            filter: self.source_filter.clone(),
            origin: self.origin.clone(),
            publisher: publisher.clone(),
        }
    }

    /// The initial snapshot, then a reconciliation pass every `source.reconcile_interval_seconds`.
    pub fn reconciliation(&self, publisher: &Arc<Publisher>) -> Reconciliation {
        Reconciliation {
            reconciler: self.reconciler(publisher),
            interval: Duration::from_secs(self.config.source.reconcile_interval_seconds),
        }
    }

    /// The consumer group that applies the stream with `applier`; `health` names its `/readyz`
    /// component and `log_batches` logs every batch that changed the target (both for `run`).
    pub fn consumer_group(
        &self,
        applier: Applier,
        progress: Progress,
        health: Option<String>,
        log_batches: bool,
    ) -> ConsumerGroup {
        ConsumerGroup {
            log: self.log.clone(),
            sink: Arc::new(applier),
            checkpoints: self.checkpoints.clone(),
            dead_letters: self.dead_letters.clone(),
            batch_limit: self.config.apply.batch_records,
            progress,
            log_batches,
            health,
            coordination: Default::default(),
        }
    }

    /// Whether the S3 object at `location` (`s3://bucket/key`, also `s3a://`, `s3n://`) exists;
    /// `None` when it cannot be told (not an S3 URI, no access, another Region's bucket).
    pub async fn object_exists(&self, location: &str) -> Option<bool> {
        let rest = ["s3://", "s3a://", "s3n://"].iter().find_map(|p| location.strip_prefix(p))?;
        let (bucket, key) = rest.split_once('/')?;
        self.clients.bucket(bucket).exists(key).await.ok()
    }

    /// The archive's consumer group: raw segments of every shard into the state store
    /// (`None`: `archive.enabled` is false).
    pub fn archive_group(&self, progress: Progress) -> Option<ConsumerGroup> {
        let a = &self.config.archive;
        if !a.enabled {
            return None;
        }
        let sink = ArchiveConsumer::new(self.state.clone(), &self.config.stream.name, ArchiveConsumer::flush_of(a));
        Some(ConsumerGroup {
            log: self.log.clone(),
            sink: Arc::new(sink),
            checkpoints: self.checkpoints.clone(),
            dead_letters: self.dead_letters.clone(),
            batch_limit: self.config.apply.batch_records,
            progress,
            log_batches: false,
            health: None,
            coordination: Default::default(),
        })
    }

    /// Takes what this process needs to consume `groups` beside other processes: each group's
    /// single-writer lock (refused while another process holds one), or under leases a started
    /// lease worker per group.
    pub async fn coordinate(&self, groups: &[String]) -> Result<Coordinator, LockError> {
        let c = &self.config.state.coordination;
        let timing = Timing { lease_duration: c.lease_duration(), renew_interval: c.renew_interval() };
        let stream = &self.config.stream.name;
        let table = c.table(stream);
        match self.clients.leases(&table, c.create_table_if_missing).await {
            None => Ok(Coordinator::Single(GroupLocks::acquire(&self.state, stream, groups, timing).await?)),
            Some(Err(source)) => {
                Err(LockError::Aws { group: groups.join(", "), location: format!("dynamodb://{table}"), source })
            }
            Some(Ok(store)) => {
                let id = c.worker_id.clone().unwrap_or_else(process_id);
                tracing::info!(worker = %id, table = %table, "sharing the stream through the lease table");
                for g in groups {
                    crate::metrics::init_lease_series(g, true);
                }
                let workers = groups.iter().map(|g| Worker::new(store.clone(), g, &id, timing)).collect();
                Ok(Coordinator::Leases(LeaseWorkers::start(workers, self.log.clone())))
            }
        }
    }

    /// The lease table (`None`: the coordination mode is `single`), for `status`.
    pub async fn lease_table(&self) -> Option<Result<Arc<dyn crate::backend::lease::LeaseStore>, AwsError>> {
        let c = &self.config.state.coordination;
        self.clients.leases(&c.table(&self.config.stream.name), false).await
    }

    /// The targets a command applies to: one by name, or all.
    pub fn select_targets(&self, name: Option<&str>) -> Result<Vec<&TargetHandle>, PipelineError> {
        match name {
            None => Ok(self.targets.iter().collect()),
            Some(n) => match self.targets.iter().find(|t| t.config.name == n) {
                Some(t) => Ok(vec![t]),
                None => Err(PipelineError::UnknownTarget {
                    name: n.to_string(),
                    known: self.targets.iter().map(|t| t.config.name.as_str()).collect::<Vec<_>>().join(", "),
                }),
            },
        }
    }

    /// Whether an object (a database, or a table with its partitions) is replicated to the target
    /// of `applier`: captured from the source and accepted by the target's filter.
    pub fn replicates(&self, applier: &Applier, database: &str, table: Option<&str>) -> bool {
        let captured = match table {
            Some(t) => self.source_filter.allows_table(database, t),
            None => self.source_filter.allows_database(database),
        };
        captured && applier.transform().allows(database, table)
    }

    /// The applier for one target.
    pub fn applier(&self, target: &TargetHandle, dry_run: bool) -> Result<Applier, PipelineError> {
        let transform =
            Transform::new(&target.config, &self.origin.catalog_id, &self.origin.region, &target.catalog_id)
                .map_err(PipelineError::Filter)?;
        let applier = Applier::new(
            &target.config.name,
            target.catalog.clone(),
            transform,
            self.dead_letters.clone(),
            self.config.apply.clone(),
            dry_run,
        );
        Ok(match &target.lake_formation {
            Some(lf) => applier.with_lake_formation(lf.clone()),
            None => applier,
        })
    }
}
