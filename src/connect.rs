//! The composition root: from `pipeline.yaml` to connected parts.
//!
//! [`Clients::build`] is the one place the program's SDK clients are made, each from its
//! section's endpoints (see `config::endpoints` for the order). [`Pipeline::connect`] resolves
//! account ids, checks the state bucket and holds the clients; its builder methods hand commands
//! ready components (capture sources, the reconciliation loop, consumer groups, the publisher), so
//! a command composes parts and never builds a client or reads an endpoint itself.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use crate::apply::applier::Applier;
use crate::apply::group::ConsumerGroup;
use crate::apply::transform::Transform;
use crate::aws::client::{self, Endpoint};
use crate::aws::counter::ApiCounter;
use crate::aws::glue::GlueCatalog;
use crate::aws::s3::S3Store;
use crate::backend::catalog::Catalog;
use crate::backend::state::SharedStore;
use crate::backend::AwsError;
use crate::capture::events::cloudtrail::CloudTrailCapture;
use crate::capture::events::lookup::{LookupCapture, LookupReader};
use crate::capture::events::queue::{queue_url, QueueCapture, QueueError};
use crate::capture::resolve::Resolver;
use crate::capture::scan::reconcile::{Reconciler, Reconciliation};
use crate::catalog::reader::CatalogReader;
use crate::config::{PipelineConfig, TargetConfig};
use crate::model::filter::Filter;
use crate::model::Origin;
use crate::progress::Progress;
use crate::state::checkpoint::StoredCheckpoints;
use crate::state::deadletter::DeadLetterStore;
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

/// One target's clients.
#[derive(Debug, Clone)]
pub struct TargetClients {
    /// Counted by `counter`.
    pub glue: aws_sdk_glue::Client,
    pub sts: aws_sdk_sts::Client,
    pub counter: ApiCounter,
}

/// Every SDK client `pipeline.yaml` describes, each built with its own section's endpoint for
/// its service. Building sends no request.
#[derive(Debug, Clone)]
pub struct Clients {
    /// The source catalog as scans read it (not counted: `RunReport::source_api_calls` excludes
    /// reconciliation scans).
    pub source_glue: aws_sdk_glue::Client,
    /// The source catalog as capture's re-reads and replays read it, counted by `source_counter`.
    pub capture_glue: aws_sdk_glue::Client,
    pub source_counter: ApiCounter,
    pub source_sts: aws_sdk_sts::Client,
    /// The events queue (`source.events`).
    pub sqs: Option<aws_sdk_sqs::Client>,
    /// The trail's bucket (`source.cloudtrail`).
    pub trail_s3: Option<aws_sdk_s3::Client>,
    /// LookupEvents (`source.cloudtrail_lookup`).
    pub cloudtrail: Option<aws_sdk_cloudtrail::Client>,
    pub kinesis: aws_sdk_kinesis::Client,
    /// The state bucket.
    pub state_s3: aws_sdk_s3::Client,
    /// In `config.targets` order.
    pub targets: Vec<TargetClients>,
}

impl Clients {
    pub async fn build(config: &PipelineConfig) -> Clients {
        let source = &config.source;
        let src = Endpoint::with(&source.region, source.overrides());
        let source_counter = ApiCounter::source();
        let (sqs, trail_s3, cloudtrail) = (
            match &source.events {
                Some(_) => Some(src.sqs().await),
                None => None,
            },
            match &source.cloudtrail {
                Some(ct) => {
                    let region = ct.region.as_deref().unwrap_or(&source.region);
                    Some(Endpoint::with(region, ct.overrides(source)).s3().await)
                }
                None => None,
            },
            match &source.cloudtrail_lookup {
                Some(_) => Some(src.cloudtrail().await),
                None => None,
            },
        );
        let stream_region = config.stream.region.as_deref().unwrap_or(&source.region);
        let state_region = config.state.region.as_deref().unwrap_or(&source.region);
        let mut targets = Vec::new();
        for t in &config.targets {
            let ep = Endpoint::with(&t.region, t.overrides());
            let counter = ApiCounter::new(&t.name);
            targets.push(TargetClients { glue: ep.glue(Some(&counter)).await, sts: ep.sts().await, counter });
        }
        Clients {
            source_glue: src.glue(None).await,
            capture_glue: src.glue(Some(&source_counter)).await,
            source_counter,
            source_sts: src.sts().await,
            sqs,
            trail_s3,
            cloudtrail,
            kinesis: Endpoint::with(stream_region, config.stream.overrides()).kinesis().await,
            state_s3: Endpoint::with(state_region, config.state.overrides()).s3().await,
            targets,
        }
    }
}

/// One configured target, connected.
#[derive(Debug, Clone)]
pub struct TargetHandle {
    pub config: TargetConfig,
    pub catalog_id: String,
    /// The target's catalog, one attempt per call (its applier adds the target's retry policy).
    pub catalog: Arc<dyn Catalog>,
    /// Counts every request sent to this target's Glue.
    pub counter: ApiCounter,
}

/// The events queue, connected: its client and resolved URL.
#[derive(Debug, Clone)]
pub struct EventsQueue {
    pub sqs: aws_sdk_sqs::Client,
    pub url: String,
}

/// Everything a job needs, connected.
pub struct Pipeline {
    pub config: PipelineConfig,
    pub origin: Origin,
    pub source: CatalogReader,
    pub source_filter: Filter,
    pub kinesis: aws_sdk_kinesis::Client,
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
        let catalog_id = client::catalog_id(config.source.catalog_id.as_deref(), &clients.source_sts)
            .await
            .map_err(aws("the source account (STS)"))?;
        let source = CatalogReader::new(
            GlueCatalog::retrying(clients.source_glue.clone(), &catalog_id),
            config.source.partition_segments,
        );
        let origin = Origin { account: catalog_id.clone(), region: config.source.region.clone(), catalog_id };

        let state_region = config.state.region.clone().unwrap_or_else(|| config.source.region.clone());
        let bucket = S3Store::new(clients.state_s3.clone(), &config.state.bucket, &config.state.prefix);
        bucket
            .ensure_bucket(&state_region, config.state.create_bucket_if_missing)
            .await
            .map_err(aws(&format!("the state bucket {}", config.state.bucket)))?;
        let state: SharedStore = Arc::new(bucket);

        let mut targets = Vec::new();
        for (t, c) in config.targets.iter().zip(&clients.targets) {
            let catalog_id = client::catalog_id(t.catalog_id.as_deref(), &c.sts)
                .await
                .map_err(aws(&format!("the account of target {} (STS)", t.name)))?;
            let glue = GlueCatalog::new(c.glue.clone(), &catalog_id).skip_archive(t.skip_archive);
            targets.push(TargetHandle {
                config: t.clone(),
                catalog_id,
                catalog: Arc::new(glue),
                counter: c.counter.clone(),
            });
        }
        let source_filter =
            Filter::new(&config.source.include, &config.source.exclude).map_err(PipelineError::Filter)?;
        Ok(Pipeline {
            checkpoints: Arc::new(StoredCheckpoints::new(state.clone(), &config.stream.name)),
            dead_letters: DeadLetterStore::new(state.clone()),
            kinesis: clients.kinesis.clone(),
            config,
            origin,
            source,
            source_filter,
            state,
            targets,
            clients,
        })
    }

    /// Requests capture's re-reads sent to the source catalog, per operation, since connecting.
    pub fn source_api_calls(&self) -> BTreeMap<String, u64> {
        self.clients.source_counter.snapshot()
    }

    /// Re-reads the source objects that events name (counted in [`Pipeline::source_api_calls`]).
    pub fn resolver(&self) -> Resolver {
        let source = GlueCatalog::retrying(self.clients.capture_glue.clone(), &self.origin.catalog_id);
        Resolver::new(source, self.origin.clone(), self.source_filter.clone())
    }

    /// The one publishing path into the change log (creating the stream if allowed): every
    /// record of `run` and `sync` goes through it, so all get its ordering rule and memory.
    pub async fn publisher(&self) -> Result<Arc<Publisher>, PipelineError> {
        let s = &self.config.stream;
        ensure_stream(&self.kinesis, &s.name, s.shards, s.create_if_missing).await?;
        Ok(Arc::new(Publisher::new(Producer::new(self.kinesis.clone(), &s.name, s.frame_bytes))))
    }

    /// The events queue, its URL resolved (`None`: `source.events` is not configured).
    pub async fn events_queue(&self) -> Result<Option<EventsQueue>, QueueError> {
        let (Some(events), Some(sqs)) = (&self.config.source.events, &self.clients.sqs) else { return Ok(None) };
        Ok(Some(EventsQueue { url: queue_url(sqs, events).await?, sqs: sqs.clone() }))
    }

    /// Event capture from the queue (`None`: not configured).
    pub async fn queue_capture(&self, publisher: &Arc<Publisher>) -> Result<Option<QueueCapture>, QueueError> {
        let (Some(config), Some(queue)) = (&self.config.source.events, self.events_queue().await?) else {
            return Ok(None);
        };
        Ok(Some(QueueCapture {
            sqs: queue.sqs,
            queue_url: queue.url,
            config: config.clone(),
            resolver: self.resolver(),
            publisher: publisher.clone(),
            dead_letters: self.dead_letters.clone(),
        }))
    }

    /// Capture from the CloudTrail trail's log files (`None`: not configured).
    pub fn trail_capture(&self, publisher: &Arc<Publisher>) -> Option<CloudTrailCapture> {
        let (config, s3) = (self.config.source.cloudtrail.as_ref()?, self.clients.trail_s3.as_ref()?);
        Some(CloudTrailCapture {
            trail: Arc::new(S3Store::new(s3.clone(), &config.bucket, "")),
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
        let (config, cloudtrail) = (self.config.source.cloudtrail_lookup.as_ref()?, self.clients.cloudtrail.as_ref()?);
        Some(LookupCapture {
            reader: LookupReader { cloudtrail: cloudtrail.clone(), config: config.clone() },
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
            kinesis: self.kinesis.clone(),
            stream: self.config.stream.name.clone(),
            applier,
            checkpoints: self.checkpoints.clone(),
            dead_letters: self.dead_letters.clone(),
            batch_limit: self.config.apply.batch_records,
            progress,
            log_batches,
            health,
        }
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
        Ok(Applier::new(
            &target.config.name,
            target.catalog.clone(),
            transform,
            self.dead_letters.clone(),
            self.config.apply.clone(),
            dry_run,
        ))
    }
}
