//! Every SDK client `pipeline.yaml` describes, each built with its own section's endpoint for its
//! service (see `config::endpoints` for the order), and the backends made from them. The
//! composition root (`crate::connect`) asks for backends here and never sees an SDK type.

use std::sync::Arc;

use super::client::{self, Endpoint};
use super::cloudtrail::CloudTrailHistory;
use super::counter::ApiCounter;
use super::credentials::TargetRole;
use super::dynamodb::DynamoLeases;
use super::glue::GlueCatalog;
use super::glue_extras::GlueExtras;
use super::kinesis::KinesisLog;
use super::lakeformation::LfCatalog;
use super::s3::S3Store;
use super::sqs::SqsQueue;
use crate::backend::catalog::Catalog;
use crate::backend::changelog::ChangeLog;
use crate::backend::extras::CatalogExtras;
use crate::backend::history::EventHistory;
use crate::backend::lakeformation::LakeFormation;
use crate::backend::lease::LeaseStore;
use crate::backend::queue::EventQueue;
use crate::backend::state::SharedStore;
use crate::backend::AwsError;
use crate::config::{CoordinationMode, PipelineConfig, TargetConfig};

/// One target's clients.
#[derive(Debug, Clone)]
pub struct TargetClients {
    /// Counted by `counter`.
    pub glue: aws_sdk_glue::Client,
    /// Lake Formation (`source.lakeformation`), counted by `counter`.
    pub lakeformation: Option<aws_sdk_lakeformation::Client>,
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
    /// The source's Lake Formation (`source.lakeformation`; not counted, as scans are not).
    pub source_lakeformation: Option<aws_sdk_lakeformation::Client>,
    /// The events queue (`source.events`).
    pub sqs: Option<aws_sdk_sqs::Client>,
    /// The trail's bucket (`source.cloudtrail`).
    pub trail_s3: Option<aws_sdk_s3::Client>,
    /// LookupEvents (`source.cloudtrail_lookup`).
    pub cloudtrail: Option<aws_sdk_cloudtrail::Client>,
    pub kinesis: aws_sdk_kinesis::Client,
    /// The state bucket.
    pub state_s3: aws_sdk_s3::Client,
    /// The lease table (`state.coordination.mode: leases`).
    pub state_dynamodb: Option<aws_sdk_dynamodb::Client>,
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
            let ep = Endpoint::for_target(t).await;
            let counter = ApiCounter::new(&t.name);
            let lakeformation = match source.lakeformation {
                true => Some(ep.lakeformation(Some(&counter)).await),
                false => None,
            };
            targets.push(TargetClients {
                glue: ep.glue(Some(&counter)).await,
                lakeformation,
                sts: ep.sts().await,
                counter,
            });
        }
        Clients {
            source_glue: src.glue(None).await,
            capture_glue: src.glue(Some(&source_counter)).await,
            source_counter,
            source_sts: src.sts().await,
            source_lakeformation: match source.lakeformation {
                true => Some(src.lakeformation(None).await),
                false => None,
            },
            sqs,
            trail_s3,
            cloudtrail,
            kinesis: Endpoint::with(stream_region, config.stream.overrides()).kinesis().await,
            state_s3: Endpoint::with(state_region, config.state.overrides()).s3().await,
            state_dynamodb: match config.state.coordination.mode {
                CoordinationMode::Leases => {
                    Some(Endpoint::with(state_region, config.state.overrides()).dynamodb().await)
                }
                CoordinationMode::Single => None,
            },
            targets,
        }
    }
}

impl Clients {
    /// The source catalog as scans read it (uncounted), retried by the default policy.
    pub fn source_catalog(&self, catalog_id: &str) -> Arc<dyn Catalog> {
        GlueCatalog::retrying(self.source_glue.clone(), catalog_id)
    }

    /// What the source catalog holds beside what lakelog replicates (uncounted, one attempt per read).
    pub fn source_extras(&self, catalog_id: &str) -> Arc<dyn CatalogExtras> {
        Arc::new(GlueExtras::new(self.source_glue.clone(), catalog_id))
    }

    /// The source catalog as capture's re-reads read it (counted by `source_counter`).
    pub fn capture_catalog(&self, catalog_id: &str) -> Arc<dyn Catalog> {
        GlueCatalog::retrying(self.capture_glue.clone(), catalog_id)
    }

    /// The source's Lake Formation (`None`: `source.lakeformation` is off), one attempt per call.
    pub fn source_lake_formation(&self, catalog_id: &str) -> Option<Arc<dyn LakeFormation>> {
        self.source_lakeformation
            .as_ref()
            .map(|c| Arc::new(LfCatalog::new(c.clone(), catalog_id)) as Arc<dyn LakeFormation>)
    }

    /// The source account's catalog id: `configured`, else the account of the credentials (STS).
    pub async fn source_catalog_id(&self, configured: Option<&str>) -> Result<String, AwsError> {
        client::catalog_id(configured, &self.source_sts).await
    }

    /// The events queue (`None`: `source.events` is not configured).
    pub fn queue(&self) -> Option<Arc<dyn EventQueue>> {
        self.sqs.as_ref().map(|c| Arc::new(SqsQueue::new(c.clone())) as Arc<dyn EventQueue>)
    }

    /// The trail's bucket, read as a store (`None`: `source.cloudtrail` is not configured).
    pub fn trail(&self, bucket: &str) -> Option<SharedStore> {
        self.trail_s3.as_ref().map(|c| Arc::new(S3Store::new(c.clone(), bucket, "")) as SharedStore)
    }

    /// LookupEvents (`None`: `source.cloudtrail_lookup` is not configured).
    pub fn history(&self) -> Option<Arc<dyn EventHistory>> {
        self.cloudtrail.as_ref().map(|c| Arc::new(CloudTrailHistory::new(c.clone())) as Arc<dyn EventHistory>)
    }

    /// Any bucket of the lake, read as a store (with the state section's S3 endpoint).
    pub fn bucket(&self, bucket: &str) -> SharedStore {
        Arc::new(S3Store::new(self.state_s3.clone(), bucket, ""))
    }

    /// The change log.
    pub fn log(&self, stream: &str) -> Arc<dyn ChangeLog> {
        Arc::new(KinesisLog::new(self.kinesis.clone(), stream))
    }

    /// The lease table, checked (and created when `create`); `None` unless the coordination mode
    /// is `leases`.
    pub async fn leases(&self, table: &str, create: bool) -> Option<Result<Arc<dyn LeaseStore>, AwsError>> {
        let client = self.state_dynamodb.clone()?;
        let store = DynamoLeases::new(client, table);
        Some(store.ensure_table(create).await.map(|()| Arc::new(store) as Arc<dyn LeaseStore>))
    }

    /// The state store: the state bucket and prefix, checked (and created when `create`).
    pub async fn state(&self, bucket: &str, prefix: &str, region: &str, create: bool) -> Result<SharedStore, AwsError> {
        let store = S3Store::new(self.state_s3.clone(), bucket, prefix);
        store.ensure_bucket(region, create).await?;
        Ok(Arc::new(store))
    }
}

impl Endpoint {
    /// Where and as whom a target is reached: its endpoints, and its assumed role's credentials
    /// when it has `assume_role` (else the default chain). Every client of the target (Glue, STS,
    /// Lake Formation) is built from this, so all of them act in the target's account.
    pub async fn for_target(t: &TargetConfig) -> Endpoint {
        let ep = Endpoint::with(&t.region, t.overrides());
        match &t.assume_role {
            Some(role) => {
                let credentials = TargetRole::provider(&ep, &t.name, role).await;
                ep.with_credentials(credentials)
            }
            None => ep,
        }
    }
}

impl TargetClients {
    /// The target's catalog id: `configured`, else the account of its credentials (STS).
    pub async fn catalog_id(&self, configured: Option<&str>) -> Result<String, AwsError> {
        client::catalog_id(configured, &self.sts).await
    }

    /// The target's catalog, one attempt per call (its applier adds the target's retry policy),
    /// every request counted.
    pub fn catalog(&self, catalog_id: &str, skip_archive: bool) -> Arc<dyn Catalog> {
        Arc::new(GlueCatalog::new(self.glue.clone(), catalog_id).skip_archive(skip_archive))
    }

    /// The target's Lake Formation (`None`: `source.lakeformation` is off), one attempt per
    /// call, every request counted.
    pub fn lake_formation(&self, catalog_id: &str) -> Option<Arc<dyn LakeFormation>> {
        self.lakeformation.as_ref().map(|c| Arc::new(LfCatalog::new(c.clone(), catalog_id)) as Arc<dyn LakeFormation>)
    }
}
