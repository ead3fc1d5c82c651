//! `lakelog simulate seed|route|burst`: realistic catalog changes made in the *source* (for demos,
//! tests and benchmarks), and the reports they print. These commands write to the source catalog
//! and the emulator's EventBridge and SQS only; they never touch a target or lakelog's state.

use std::fmt;
use std::time::Instant;

use serde::Serialize;

use crate::aws::client::Endpoint;
use crate::aws::eventbridge::EventBridge;
use crate::aws::glue::GlueCatalog;
use crate::backend::AwsError;
use crate::config::PipelineConfig;
use crate::simulate::catalog::{generate, CatalogSpec};
use crate::simulate::events::{crawler_burst, route_glue_events, Burst, EventRoute};
use crate::simulate::seed::{write_catalog, Seeded};

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("looking up the source account: {0}")]
    Account(#[source] AwsError),
    #[error("seeding the source: {0}")]
    Seed(#[source] AwsError),
    #[error("creating the event route: {0}")]
    Route(#[source] AwsError),
    #[error("burst: {0}")]
    Burst(#[source] AwsError),
}

/// What `simulate seed` wrote; the JSON is the counts alone.
#[derive(Debug, Clone, Serialize)]
pub struct SeedReport {
    #[serde(flatten)]
    pub seeded: Seeded,
    #[serde(skip)]
    pub region: String,
    #[serde(skip)]
    pub catalog_id: String,
    #[serde(skip)]
    pub seconds: f64,
}

impl fmt::Display for SeedReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seeded {} databases, {} tables, {} partitions into {} ({}) in {:.1}s",
            self.seeded.databases,
            self.seeded.tables,
            self.seeded.partitions,
            self.region,
            self.catalog_id,
            self.seconds
        )
    }
}

/// What `simulate burst` wrote and delivered; the JSON is the counts alone.
#[derive(Debug, Clone, Serialize)]
pub struct BurstReport {
    #[serde(flatten)]
    pub burst: Burst,
    #[serde(skip)]
    pub seconds: f64,
}

impl fmt::Display for BurstReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.burst;
        writeln!(
            f,
            "burst: {} tables, {} partitions written; {} events delivered, {} deliberately lost; {:.1}s",
            b.tables, b.partitions, b.events_sent, b.events_dropped, self.seconds
        )
    }
}

fn source(cfg: &PipelineConfig) -> Endpoint {
    Endpoint::with(&cfg.source.region, cfg.source.overrides())
}

/// Creates a generated catalog in the source (existing objects are left as they are).
pub async fn seed(cfg: &PipelineConfig, spec: &CatalogSpec) -> Result<SeedReport, SimulateError> {
    let ep = source(cfg);
    let catalog_id = ep.catalog_id(cfg.source.catalog_id.as_deref()).await.map_err(SimulateError::Account)?;
    let catalog = generate(spec);
    let started = Instant::now();
    let source = GlueCatalog::retrying(ep.glue(None).await, &catalog_id);
    let seeded = write_catalog(&*source, &catalog).await.map_err(SimulateError::Seed)?;
    Ok(SeedReport { seeded, region: cfg.source.region.clone(), catalog_id, seconds: started.elapsed().as_secs_f64() })
}

/// Creates (or reuses) queue `queue` and an EventBridge rule sending every Glue event to it.
pub async fn route(cfg: &PipelineConfig, queue: &str) -> Result<EventRoute, SimulateError> {
    let ep = source(cfg);
    route_glue_events(&EventBridge::connect(&ep).await, queue).await.map_err(SimulateError::Route)
}

/// Writes a generated catalog the way a crawler would, delivering the events its writes cause.
pub async fn burst(cfg: &PipelineConfig, spec: &CatalogSpec, drop_every: usize) -> Result<BurstReport, SimulateError> {
    let ep = source(cfg);
    let catalog_id = ep.catalog_id(cfg.source.catalog_id.as_deref()).await.map_err(SimulateError::Account)?;
    let started = Instant::now();
    let source = GlueCatalog::retrying(ep.glue(None).await, &catalog_id);
    let burst = crawler_burst(&*source, &EventBridge::connect(&ep).await, &generate(spec), drop_every)
        .await
        .map_err(SimulateError::Burst)?;
    Ok(BurstReport { burst, seconds: started.elapsed().as_secs_f64() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_of_a_report_is_the_counts_alone() {
        let seeded = Seeded { databases: 1, tables: 2, partitions: 3 };
        let report = SeedReport { seeded, region: "us-east-1".into(), catalog_id: "123456789012".into(), seconds: 0.5 };
        assert_eq!(serde_json::to_value(&report).expect("json"), serde_json::to_value(seeded).expect("json"));
        assert_eq!(
            report.to_string(),
            "seeded 1 databases, 2 tables, 3 partitions into us-east-1 (123456789012) in 0.5s\n"
        );
        let burst = Burst { tables: 2, partitions: 3, events_sent: 4, events_dropped: 1 };
        let report = BurstReport { burst, seconds: 0.5 };
        assert_eq!(serde_json::to_value(&report).expect("json"), serde_json::to_value(burst).expect("json"));
    }
}
