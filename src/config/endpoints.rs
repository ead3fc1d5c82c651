//! Endpoint overrides: where a config section's AWS calls go.
//!
//! Every section that talks to AWS has two keys: `endpoint`, one URL for every service the section
//! calls (an emulator that serves them all on one port), and `endpoints`, one URL per service (a
//! VPC interface endpoint is per service: a Glue endpoint does not answer SQS). For one call the
//! first that is set wins:
//!
//! 1. `endpoints.<service>` of the section,
//! 2. `endpoint` of the section,
//! 3. the SDK's `AWS_ENDPOINT_URL_<SERVICE>` environment variable, then `AWS_ENDPOINT_URL`,
//! 4. AWS's own endpoint for the Region.
//!
//! This module owns the shape and the checks of those keys; it never builds a client (that is
//! `aws::client`, which applies the order above).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Problems;

/// An AWS service lakelog calls (or will call: Lake Formation and DynamoDB are accepted so that
/// configs can name them before the features that use them land).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Glue,
    S3,
    Sqs,
    Kinesis,
    CloudTrail,
    Sts,
    LakeFormation,
    DynamoDb,
}

impl Service {
    pub const ALL: [Service; 8] = [
        Service::Glue,
        Service::S3,
        Service::Sqs,
        Service::Kinesis,
        Service::CloudTrail,
        Service::Sts,
        Service::LakeFormation,
        Service::DynamoDb,
    ];

    /// The key under `endpoints:`.
    pub fn key(self) -> &'static str {
        match self {
            Service::Glue => "glue",
            Service::S3 => "s3",
            Service::Sqs => "sqs",
            Service::Kinesis => "kinesis",
            Service::CloudTrail => "cloudtrail",
            Service::Sts => "sts",
            Service::LakeFormation => "lakeformation",
            Service::DynamoDb => "dynamodb",
        }
    }

    /// The suffix of the SDK's service-specific variable, `AWS_ENDPOINT_URL_<SUFFIX>`.
    pub fn env_suffix(self) -> &'static str {
        match self {
            Service::Glue => "GLUE",
            Service::S3 => "S3",
            Service::Sqs => "SQS",
            Service::Kinesis => "KINESIS",
            Service::CloudTrail => "CLOUDTRAIL",
            Service::Sts => "STS",
            Service::LakeFormation => "LAKEFORMATION",
            Service::DynamoDb => "DYNAMODB",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// `endpoints:` of one section: a URL per service, each optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceEndpoints {
    /// AWS Glue (catalog reads and writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glue: Option<String>,
    /// Amazon S3 (the state bucket, the CloudTrail trail's bucket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<String>,
    /// Amazon SQS (the events queue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqs: Option<String>,
    /// Amazon Kinesis Data Streams (the change log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kinesis: Option<String>,
    /// AWS CloudTrail (LookupEvents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloudtrail: Option<String>,
    /// AWS STS (the account of the credentials, when `catalog_id` is not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sts: Option<String>,
    /// AWS Lake Formation (not called yet; accepted and checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lakeformation: Option<String>,
    /// Amazon DynamoDB (the lease table of `state.coordination.mode: leases`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamodb: Option<String>,
}

impl ServiceEndpoints {
    pub fn get(&self, service: Service) -> Option<&str> {
        match service {
            Service::Glue => self.glue.as_deref(),
            Service::S3 => self.s3.as_deref(),
            Service::Sqs => self.sqs.as_deref(),
            Service::Kinesis => self.kinesis.as_deref(),
            Service::CloudTrail => self.cloudtrail.as_deref(),
            Service::Sts => self.sts.as_deref(),
            Service::LakeFormation => self.lakeformation.as_deref(),
            Service::DynamoDb => self.dynamodb.as_deref(),
        }
    }

    fn slot(&mut self, service: Service) -> &mut Option<String> {
        match service {
            Service::Glue => &mut self.glue,
            Service::S3 => &mut self.s3,
            Service::Sqs => &mut self.sqs,
            Service::Kinesis => &mut self.kinesis,
            Service::CloudTrail => &mut self.cloudtrail,
            Service::Sts => &mut self.sts,
            Service::LakeFormation => &mut self.lakeformation,
            Service::DynamoDb => &mut self.dynamodb,
        }
    }

    pub fn is_empty(&self) -> bool {
        Service::ALL.iter().all(|s| self.get(*s).is_none())
    }
}

/// A section's `endpoint` and `endpoints` together: what [`EndpointOverrides::url`] resolves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointOverrides {
    /// `endpoint`: every service of the section.
    pub all: Option<String>,
    /// `endpoints`: per service, before `all`.
    pub services: ServiceEndpoints,
}

impl EndpointOverrides {
    pub fn new(all: Option<&str>, services: &ServiceEndpoints) -> EndpointOverrides {
        EndpointOverrides { all: all.map(str::to_string), services: services.clone() }
    }

    /// The configured URL for `service`, or `None`: the SDK resolves it (environment, then AWS).
    pub fn url(&self, service: Service) -> Option<&str> {
        self.services.get(service).or(self.all.as_deref())
    }

    /// These overrides with `parent`'s under them, for a subsection that reaches the same account
    /// (the CloudTrail trail's bucket under `source`): whatever this section sets wins, and its
    /// own `endpoint` covers every service, so then nothing of the parent's applies.
    pub fn within(&self, parent: &EndpointOverrides) -> EndpointOverrides {
        if self.all.is_some() {
            return self.clone();
        }
        let mut services = self.services.clone();
        for s in Service::ALL {
            let slot = services.slot(s);
            if slot.is_none() {
                *slot = parent.services.get(s).map(str::to_string);
            }
        }
        EndpointOverrides { all: parent.all.clone(), services }
    }

    /// Checks every URL; `at` is the section's path (`targets[0]`).
    pub fn validate(&self, at: &str, problems: &mut Problems) {
        check_url(&join(at, "endpoint"), self.all.as_deref(), problems);
        for s in Service::ALL {
            check_url(&join(at, &format!("endpoints.{s}")), self.services.get(s), problems);
        }
    }
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

/// An endpoint is an absolute http(s) URL with a host.
fn check_url(path: &str, url: Option<&str>, problems: &mut Problems) {
    let Some(url) = url else { return };
    let host = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    if !host.is_some_and(|h| !h.is_empty() && !h.starts_with('/')) {
        problems.add(path, format!("`{url}` is not an endpoint URL; write http://host:port or https://host"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services(glue: Option<&str>, s3: Option<&str>) -> ServiceEndpoints {
        ServiceEndpoints { glue: glue.map(Into::into), s3: s3.map(Into::into), ..Default::default() }
    }

    #[test]
    fn a_service_url_beats_the_section_url_which_covers_the_rest() {
        let o = EndpointOverrides::new(Some("http://all:1"), &services(Some("http://glue:1"), None));
        assert_eq!(o.url(Service::Glue), Some("http://glue:1"));
        assert_eq!(o.url(Service::Sqs), Some("http://all:1"));
        assert_eq!(EndpointOverrides::default().url(Service::Glue), None, "unset: the SDK resolves it");
    }

    #[test]
    fn a_subsection_inherits_only_what_it_does_not_set() {
        let parent =
            EndpointOverrides::new(Some("http://parent:1"), &services(Some("http://pglue:1"), Some("http://ps3:1")));
        let own_s3 = EndpointOverrides::new(None, &services(None, Some("http://own-s3:1")));
        let merged = own_s3.within(&parent);
        assert_eq!(merged.url(Service::S3), Some("http://own-s3:1"));
        assert_eq!(merged.url(Service::Glue), Some("http://pglue:1"));
        assert_eq!(merged.url(Service::Sqs), Some("http://parent:1"));
        // Its own `endpoint` is for every service: the parent's per-service URLs do not apply.
        let own_all = EndpointOverrides::new(Some("http://own:1"), &ServiceEndpoints::default());
        assert_eq!(own_all.within(&parent).url(Service::S3), Some("http://own:1"));
    }

    #[test]
    fn every_bad_url_is_reported_with_its_path() {
        let mut bad = services(Some("glue.internal"), Some("http://"));
        bad.dynamodb = Some("ftp://x".into());
        let mut problems = Problems::default();
        EndpointOverrides::new(Some("localhost:4566"), &bad).validate("targets[1]", &mut problems);
        let paths: Vec<_> = problems.list().iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "targets[1].endpoint",
                "targets[1].endpoints.glue",
                "targets[1].endpoints.s3",
                "targets[1].endpoints.dynamodb"
            ]
        );
        let mut none = Problems::default();
        EndpointOverrides::new(Some("http://127.0.0.1:5000"), &services(Some("https://glue.vpce.amazonaws.com"), None))
            .validate("source", &mut none);
        assert!(none.is_empty(), "{none:?}");
    }
}
