//! Building SDK clients the same way for AWS and for the local emulator.
//!
//! Where a client's requests go is resolved per service ([`EndpointOverrides::url`]): the
//! section's `endpoints.<service>`, else its `endpoint`, else the SDK's own resolution. The SDK
//! resolves `AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL`, then AWS's endpoint: every
//! service's `config::Builder::from(&SdkConfig)` reads its own variable unless the `SdkConfig` was
//! given an endpoint in code, so a configured URL is set on the loader and beats the variables.
//! (`AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true` makes the SDK skip the variables.) Each client
//! loads its own `SdkConfig`, so one service's URL never leaks into another's client. Either way
//! the request path is the one production uses. S3 is switched to path-style addressing whenever
//! its endpoint is overridden (config or variables).
//!
//! The SDK makes one attempt per call: retries are lakelog's ([`crate::backend::retry`]), so that
//! `apply.max_attempts` is the number of attempts a target call gets, not a multiple of the SDK's.
//!
//! Every SDK client of the program is built here; nothing here sends a request except
//! [`account_id`].

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;

use super::counter::ApiCounter;
use crate::backend::retry::RetryPolicy;
use crate::backend::AwsError;
use crate::config::{EndpointOverrides, Service};

/// Where and how to reach the AWS services of one config section.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub region: String,
    /// The section's `endpoint` and `endpoints` (none: the SDK resolves every service).
    pub overrides: EndpointOverrides,
    /// SDK-level attempts per call: 1, because every call site retries through
    /// [`crate::backend::retry::RetryPolicy`]; more would multiply the attempts that policy allows.
    pub max_attempts: u32,
    /// Credentials of this section's own (a target's assumed role, see `aws::credentials`);
    /// `None`: the default credential chain.
    pub credentials: Option<SharedCredentialsProvider>,
}

impl Endpoint {
    /// One URL (or none) for every service: an emulator, or a test.
    pub fn new(region: &str, url: Option<&str>) -> Endpoint {
        Endpoint::with(region, EndpointOverrides { all: url.map(str::to_string), ..Default::default() })
    }

    /// A section's overrides, resolved per service.
    pub fn with(region: &str, overrides: EndpointOverrides) -> Endpoint {
        Endpoint { region: region.to_string(), overrides, max_attempts: 1, credentials: None }
    }

    /// The same endpoints, every client signing with `credentials`.
    pub fn with_credentials(mut self, credentials: SharedCredentialsProvider) -> Endpoint {
        self.credentials = Some(credentials);
        self
    }

    /// The configured URL for `service` (`None`: the SDK's environment variables, then AWS).
    pub fn url(&self, service: Service) -> Option<&str> {
        self.overrides.url(service)
    }

    /// SDK configuration for one service (credentials: the section's own or the default chain; region, retries, timeouts, and the
    /// service's configured endpoint, if any).
    pub async fn sdk_config(&self, service: Service) -> SdkConfig {
        self.load(self.url(service)).await
    }

    async fn load(&self, url: Option<&str>) -> SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(self.max_attempts)
                    .with_initial_backoff(Duration::from_millis(200))
                    .with_max_backoff(Duration::from_secs(5)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(Duration::from_secs(60))
                    .build(),
            );
        if let Some(url) = url {
            loader = loader.endpoint_url(url);
        }
        if let Some(credentials) = &self.credentials {
            loader = loader.credentials_provider(credentials.clone());
        }
        loader.load().await
    }

    /// Whether S3 must use path-style addressing (any endpoint override).
    fn s3_path_style(&self) -> bool {
        self.url(Service::S3).is_some()
            || std::env::var_os("AWS_ENDPOINT_URL").is_some()
            || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
    }

    pub async fn glue(&self, counter: Option<&ApiCounter>) -> aws_sdk_glue::Client {
        let conf = self.sdk_config(Service::Glue).await;
        let mut b = aws_sdk_glue::config::Builder::from(&conf);
        if let Some(c) = counter {
            b = b.interceptor(c.clone());
        }
        aws_sdk_glue::Client::from_conf(b.build())
    }

    pub async fn lakeformation(&self, counter: Option<&ApiCounter>) -> aws_sdk_lakeformation::Client {
        let conf = self.sdk_config(Service::LakeFormation).await;
        let mut b = aws_sdk_lakeformation::config::Builder::from(&conf);
        if let Some(c) = counter {
            b = b.interceptor(c.clone());
        }
        aws_sdk_lakeformation::Client::from_conf(b.build())
    }

    pub async fn kinesis(&self) -> aws_sdk_kinesis::Client {
        aws_sdk_kinesis::Client::new(&self.sdk_config(Service::Kinesis).await)
    }

    pub async fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk_config(Service::Sqs).await)
    }

    pub async fn cloudtrail(&self) -> aws_sdk_cloudtrail::Client {
        aws_sdk_cloudtrail::Client::new(&self.sdk_config(Service::CloudTrail).await)
    }

    /// EventBridge, for the demo's event routing only: it has no key under `endpoints` (lakelog
    /// itself never calls it), so it takes the section's `endpoint` or the SDK's resolution.
    pub async fn eventbridge(&self) -> aws_sdk_eventbridge::Client {
        aws_sdk_eventbridge::Client::new(&self.load(self.overrides.all.as_deref()).await)
    }

    pub async fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk_config(Service::DynamoDb).await)
    }

    pub async fn sts(&self) -> aws_sdk_sts::Client {
        aws_sdk_sts::Client::new(&self.sdk_config(Service::Sts).await)
    }

    pub async fn s3(&self) -> aws_sdk_s3::Client {
        let conf = self.sdk_config(Service::S3).await;
        let b = aws_sdk_s3::config::Builder::from(&conf).force_path_style(self.s3_path_style());
        aws_sdk_s3::Client::from_conf(b.build())
    }

    /// The configured catalog id, or else the account of the credentials in use.
    pub async fn catalog_id(&self, configured: Option<&str>) -> Result<String, AwsError> {
        catalog_id(configured, &self.sts().await).await
    }
}

/// The configured catalog id, or else the account of the credentials `sts` signs with.
pub async fn catalog_id(configured: Option<&str>, sts: &aws_sdk_sts::Client) -> Result<String, AwsError> {
    match configured {
        Some(id) => Ok(id.to_string()),
        None => account_id(sts).await,
    }
}

/// The account id of the credentials in use (STS GetCallerIdentity).
pub async fn account_id(sts: &aws_sdk_sts::Client) -> Result<String, AwsError> {
    let out = RetryPolicy::default().send("sts", "GetCallerIdentity", || sts.get_caller_identity().send()).await?;
    out.account.ok_or_else(|| AwsError::invalid_response("sts", "GetCallerIdentity", "no account in the answer"))
}
