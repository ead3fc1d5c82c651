//! Building SDK clients the same way for AWS and for the local emulator.
//!
//! An endpoint override comes from the config file or from the SDK's own environment variables
//! (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`); either way the request path is the one
//! production uses. S3 is switched to path-style addressing whenever an endpoint is overridden.
//!
//! The SDK makes one attempt per call: retries are lakelog's ([`crate::backend::retry`]), so that
//! `apply.max_attempts` is the number of attempts a target call gets, not a multiple of the SDK's.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

use super::counter::ApiCounter;
use crate::backend::retry::RetryPolicy;
use crate::backend::AwsError;

/// Where and how to reach one AWS service.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub region: String,
    /// Explicit endpoint override from the config file.
    pub url: Option<String>,
    /// SDK-level attempts per call: 1, because every call site retries through
    /// [`crate::backend::retry::RetryPolicy`]; more would multiply the attempts that policy allows.
    pub max_attempts: u32,
}

impl Endpoint {
    pub fn new(region: &str, url: Option<&str>) -> Endpoint {
        Endpoint { region: region.to_string(), url: url.map(str::to_string), max_attempts: 1 }
    }

    /// Shared SDK configuration (credentials chain, region, retries, timeouts, endpoint).
    pub async fn sdk_config(&self) -> SdkConfig {
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
        if let Some(url) = &self.url {
            loader = loader.endpoint_url(url);
        }
        loader.load().await
    }

    /// Whether S3 must use path-style addressing (any endpoint override).
    fn s3_path_style(&self) -> bool {
        self.url.is_some()
            || std::env::var_os("AWS_ENDPOINT_URL").is_some()
            || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
    }

    pub async fn glue(&self, counter: Option<&ApiCounter>) -> aws_sdk_glue::Client {
        let conf = self.sdk_config().await;
        let mut b = aws_sdk_glue::config::Builder::from(&conf);
        if let Some(c) = counter {
            b = b.interceptor(c.clone());
        }
        aws_sdk_glue::Client::from_conf(b.build())
    }

    pub async fn kinesis(&self) -> aws_sdk_kinesis::Client {
        aws_sdk_kinesis::Client::new(&self.sdk_config().await)
    }

    pub async fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk_config().await)
    }

    pub async fn cloudtrail(&self) -> aws_sdk_cloudtrail::Client {
        aws_sdk_cloudtrail::Client::new(&self.sdk_config().await)
    }

    pub async fn eventbridge(&self) -> aws_sdk_eventbridge::Client {
        aws_sdk_eventbridge::Client::new(&self.sdk_config().await)
    }

    pub async fn s3(&self) -> aws_sdk_s3::Client {
        let conf = self.sdk_config().await;
        let b = aws_sdk_s3::config::Builder::from(&conf).force_path_style(self.s3_path_style());
        aws_sdk_s3::Client::from_conf(b.build())
    }

    /// The configured catalog id, or else the account of the credentials in use.
    pub async fn catalog_id(&self, configured: Option<&str>) -> Result<String, AwsError> {
        match configured {
            Some(id) => Ok(id.to_string()),
            None => self.account_id().await,
        }
    }

    /// The account id of the credentials in use (STS GetCallerIdentity).
    pub async fn account_id(&self) -> Result<String, AwsError> {
        let client = aws_sdk_sts::Client::new(&self.sdk_config().await);
        let out = RetryPolicy::default()
            .run(|| async {
                client.get_caller_identity().send().await.map_err(|e| AwsError::from_sdk("sts", "GetCallerIdentity", e))
            })
            .await?;
        out.account.ok_or_else(|| AwsError::invalid_response("sts", "GetCallerIdentity", "no account in the answer"))
    }
}
