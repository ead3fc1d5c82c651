//! lakelog's own state bucket (checkpoints, dead letters): one client, one bucket, one prefix.

pub mod checkpoint;
pub mod deadletter;

use crate::backend::retry::RetryPolicy;
use crate::backend::{AwsError, ErrorClass};

/// The S3 bucket and prefix lakelog keeps its state under.
#[derive(Debug, Clone)]
pub struct StateBucket {
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    pub prefix: String,
}

impl StateBucket {
    pub fn new(s3: aws_sdk_s3::Client, bucket: &str, prefix: &str) -> StateBucket {
        let prefix = if prefix.is_empty() || prefix.ends_with('/') { prefix.to_string() } else { format!("{prefix}/") };
        StateBucket { s3, bucket: bucket.to_string(), prefix }
    }

    /// The full object key for `rest` under the prefix.
    pub fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }
}

/// Checks the bucket is reachable; creates it when allowed (local runs).
pub async fn ensure_bucket(state: &StateBucket, region: &str, create: bool) -> Result<(), AwsError> {
    let head = state.s3.head_bucket().bucket(&state.bucket);
    let retry = RetryPolicy::default();
    match retry.run(|| async { head.clone().send().await.map_err(|e| AwsError::from_sdk("s3", "HeadBucket", e)) }).await
    {
        Ok(_) => return Ok(()),
        Err(err) => {
            if err.class != ErrorClass::NotFound || !create {
                return Err(if err.class == ErrorClass::NotFound {
                    AwsError {
                        message: format!(
                            "state bucket {} does not exist; create it (infra/) or set state.create_bucket_if_missing: true",
                            state.bucket
                        ),
                        ..err
                    }
                } else {
                    err
                });
            }
        }
    }
    let mut req = state.s3.create_bucket().bucket(&state.bucket);
    if region != "us-east-1" {
        let constraint = aws_sdk_s3::types::BucketLocationConstraint::from(region);
        req = req.create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder().location_constraint(constraint).build(),
        );
    }
    match retry.send("s3", "CreateBucket", || req.clone().send()).await {
        Ok(_) => Ok(()),
        Err(err) => {
            if err.class == ErrorClass::AlreadyExists {
                Ok(())
            } else {
                Err(err)
            }
        }
    }
}

/// Outcome of a conditional write.
#[derive(Debug)]
pub enum PutOutcome {
    /// Written; the new ETag.
    Written(Option<String>),
    /// Someone else wrote the object since the ETag we gave (or it exists when we expected none).
    Conflict,
}

impl StateBucket {
    /// Reads a JSON object: `None` when it does not exist, else its bytes and ETag.
    pub async fn get_bytes(&self, rest: &str) -> Result<Option<(Vec<u8>, Option<String>)>, AwsError> {
        let req = self.s3.get_object().bucket(&self.bucket).key(self.key(rest));
        let out = match RetryPolicy::default().send("s3", "GetObject", || req.clone().send()).await {
            Ok(out) => out,
            Err(err) => {
                return if err.class == ErrorClass::NotFound { Ok(None) } else { Err(err) };
            }
        };
        let etag = out.e_tag.clone();
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| AwsError::invalid_response("s3", "GetObject", &e.to_string()))?
            .into_bytes()
            .to_vec();
        Ok(Some((body, etag)))
    }

    /// Writes an object only if it is unchanged since `etag` (`None`: only if it does not exist).
    ///
    /// A retried write whose earlier attempt landed (its answer lost) meets its own write as a
    /// conflict; that case is recognised by reading the object back and finding our bytes.
    pub async fn put_if(&self, rest: &str, body: Vec<u8>, etag: Option<&str>) -> Result<PutOutcome, AwsError> {
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let put = || async {
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let req = self
                .s3
                .put_object()
                .bucket(&self.bucket)
                .key(self.key(rest))
                .content_type("application/json")
                .body(aws_sdk_s3::primitives::ByteStream::from(body.clone()));
            let req = match etag {
                Some(e) => req.if_match(e),
                None => req.if_none_match("*"),
            };
            req.send().await.map_err(|e| AwsError::from_sdk("s3", "PutObject", e))
        };
        match RetryPolicy::default().run(put).await {
            Ok(out) => Ok(PutOutcome::Written(out.e_tag)),
            Err(err) => {
                if err.class == ErrorClass::Conflict && attempts.into_inner() > 1 {
                    match self.get_bytes(rest).await? {
                        Some((found, etag)) if found == body => Ok(PutOutcome::Written(etag)),
                        _ => Ok(PutOutcome::Conflict),
                    }
                } else if err.class == ErrorClass::Conflict {
                    Ok(PutOutcome::Conflict)
                } else {
                    Err(err)
                }
            }
        }
    }
}
