//! A connected pipeline: the clients, accounts and stores that `pipeline.yaml` describes.

use std::sync::Arc;

use thiserror::Error;

use crate::apply::applier::Applier;
use crate::apply::target::GlueTarget;
use crate::apply::transform::Transform;
use crate::aws::client::Endpoint;
use crate::aws::counter::ApiCounter;
use crate::aws::kinesis::KinesisLog;
use crate::backend::changelog::ChangeLog;
use crate::backend::AwsError;
use crate::catalog::reader::CatalogReader;
use crate::config::{PipelineConfig, TargetConfig};
use crate::model::filter::Filter;
use crate::model::Origin;
use crate::state::checkpoint::S3CheckpointStore;
use crate::state::deadletter::DeadLetterStore;
use crate::state::{ensure_bucket, StateBucket};
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
    pub glue: aws_sdk_glue::Client,
    /// Counts every request sent to this target's Glue.
    pub counter: ApiCounter,
}

/// Everything a job needs, connected.
pub struct Pipeline {
    pub config: PipelineConfig,
    pub origin: Origin,
    pub source: CatalogReader,
    pub source_filter: Filter,
    /// The change log (`stream.name`).
    pub log: Arc<dyn ChangeLog>,
    pub state: StateBucket,
    pub checkpoints: Arc<S3CheckpointStore>,
    pub dead_letters: DeadLetterStore,
    pub targets: Vec<TargetHandle>,
}

impl Pipeline {
    /// Builds clients and resolves account ids; checks the state bucket (creating it if allowed).
    pub async fn connect(config: PipelineConfig) -> Result<Pipeline, PipelineError> {
        let aws = |what: &str| {
            let what = what.to_string();
            move |source| PipelineError::Aws { what, source }
        };
        let src = Endpoint::new(&config.source.region, config.source.endpoint.as_deref());
        let catalog_id =
            src.catalog_id(config.source.catalog_id.as_deref()).await.map_err(aws("the source account (STS)"))?;
        let source = CatalogReader::new(src.glue(None).await, &catalog_id, config.source.partition_segments);
        let origin = Origin { account: catalog_id.clone(), region: config.source.region.clone(), catalog_id };

        let stream_region = config.stream.region.clone().unwrap_or_else(|| config.source.region.clone());
        let kinesis = Endpoint::new(&stream_region, config.stream.endpoint.as_deref()).kinesis().await;
        let log: Arc<dyn ChangeLog> = Arc::new(KinesisLog::new(kinesis, &config.stream.name));

        let state_region = config.state.region.clone().unwrap_or_else(|| config.source.region.clone());
        let s3 = Endpoint::new(&state_region, config.state.endpoint.as_deref()).s3().await;
        let state = StateBucket::new(s3, &config.state.bucket, &config.state.prefix);
        ensure_bucket(&state, &state_region, config.state.create_bucket_if_missing)
            .await
            .map_err(aws(&format!("the state bucket {}", config.state.bucket)))?;

        let mut targets = Vec::new();
        for t in &config.targets {
            let ep = Endpoint::new(&t.region, t.endpoint.as_deref());
            let catalog_id = ep
                .catalog_id(t.catalog_id.as_deref())
                .await
                .map_err(aws(&format!("the account of target {} (STS)", t.name)))?;
            let counter = ApiCounter::new(&t.name);
            targets.push(TargetHandle { config: t.clone(), catalog_id, glue: ep.glue(Some(&counter)).await, counter });
        }
        let source_filter =
            Filter::new(&config.source.include, &config.source.exclude).map_err(PipelineError::Filter)?;
        Ok(Pipeline {
            checkpoints: Arc::new(S3CheckpointStore::new(state.clone(), &config.stream.name)),
            dead_letters: DeadLetterStore::new(state.clone()),
            config,
            origin,
            source,
            source_filter,
            log,
            state,
            targets,
        })
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
            GlueTarget::new(target.glue.clone(), &target.catalog_id, target.config.skip_archive),
            transform,
            self.dead_letters.clone(),
            self.config.apply.clone(),
            dry_run,
        ))
    }
}
