//! `pipeline.yaml`: what to replicate, from where, to where, and where state lives.
//!
//! Loading is two passes so that a user sees every problem at once:
//! 1. [`load`]: `${ENV}` interpolation on the raw text, YAML parsing into a tree, then each
//!    section (and each target) deserialised on its own, so one bad section does not hide the
//!    problems of the others. Type errors, unknown and missing fields are reported with their
//!    full path (`targets[0].location_rewrite[0].form`).
//! 2. [`validate`]: each section that parsed checks its own values (`fn validate(&self, path,
//!    problems)`), then the checks across sections run (unique target names, a target that is
//!    the source itself).
//!
//! All problems are collected and reported together, each with its path. This module owns the
//! file's shape and its rules; it never connects to AWS (whether a bucket or stream exists is
//! found out, and reported, when a command connects).

mod endpoints;
mod load;
mod sections;
mod validate;

use std::fmt;
use std::path::Path;

use serde::Serialize;
use thiserror::Error;

pub use endpoints::{EndpointOverrides, Service, ServiceEndpoints};
pub use sections::{
    duration, parse_listen, ApplyConfig, ArchiveConfig, AssumeRoleConfig, CloudTrailConfig, CloudTrailLookupConfig,
    CoordinationConfig, CoordinationMode, EventsConfig, LocationRewrite, MetricsConfig, PrincipalsConfig, Secret,
    SourceConfig, StateConfig, StreamConfig, TargetConfig,
};

/// The whole pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineConfig {
    /// The catalog that is replicated, and how its changes are captured.
    pub source: SourceConfig,
    /// The Kinesis stream that carries the change log.
    pub stream: StreamConfig,
    /// Where checkpoints and dead letters live.
    pub state: StateConfig,
    /// The replica catalogs (at least one).
    pub targets: Vec<TargetConfig>,
    /// How records are applied to the targets (optional section).
    pub apply: ApplyConfig,
    /// The Prometheus listener of `lakelog run` (optional section).
    pub metrics: MetricsConfig,
    /// The change log's archive: segments, compaction, restore (optional section).
    pub archive: ArchiveConfig,
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

/// The problems found so far; loading and every `validate` add to it.
#[derive(Debug, Default)]
pub struct Problems(Vec<Problem>);

impl Problems {
    /// Records that the value at `path` is wrong, and how to fix it.
    pub fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem { path: path.into(), message: message.into() });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems, in the order found.
    pub fn list(&self) -> &[Problem] {
        &self.0
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
        let mut problems = Problems::default();
        let sections = load::Sections::parse(text, &mut problems);
        sections.validate(&mut problems);
        match sections.complete() {
            Some(config) if problems.is_empty() => Ok(config),
            _ => Err(ConfigError::Invalid { file: file.to_string(), problems: problems.0 }),
        }
    }

    /// The configured target called `name`.
    pub fn target(&self, name: &str) -> Option<&TargetConfig> {
        self.targets.iter().find(|t| t.name == name)
    }
}

#[cfg(test)]
mod tests;
