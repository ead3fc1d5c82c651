//! S3 as lakelog's [`StateStore`]: one bucket and prefix; versions are ETags, conditional writes
//! are `If-None-Match: *` / `If-Match` (S3's compare-and-set, answered 412 or 409 on a lost race).
//! Also the read side of a CloudTrail trail bucket, which is the same listing and reading.

use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};

use crate::backend::retry::RetryPolicy;
use crate::backend::state::{ListPage, PutOutcome, StateStore, Stored};
use crate::backend::{AwsError, ErrorClass};

/// A bucket and prefix.
#[derive(Debug, Clone)]
pub struct S3Store {
    s3: aws_sdk_s3::Client,
    bucket: String,
    /// Empty, or ending in `/`.
    prefix: String,
    retry: RetryPolicy,
}

enum Condition<'a> {
    None,
    Absent,
    Matches(&'a str),
}

impl Condition<'_> {
    /// Whether a failure of a write under this condition is a lost compare-and-set: S3 answers
    /// 412 (or 409) for a version that moved on, and 404 for an `If-Match` on an object deleted
    /// since it was read, which is someone else's change all the same.
    fn lost(&self, class: ErrorClass) -> bool {
        class == ErrorClass::Conflict || (matches!(self, Condition::Matches(_)) && class == ErrorClass::NotFound)
    }
}

impl S3Store {
    pub fn new(s3: aws_sdk_s3::Client, bucket: &str, prefix: &str) -> S3Store {
        let prefix = if prefix.is_empty() || prefix.ends_with('/') { prefix.to_string() } else { format!("{prefix}/") };
        S3Store { s3, bucket: bucket.to_string(), prefix, retry: RetryPolicy::default() }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    /// Checks the bucket is reachable; creates it in `region` when `create` (local runs).
    pub async fn ensure_bucket(&self, region: &str, create: bool) -> Result<(), AwsError> {
        let head = self.s3.head_bucket().bucket(&self.bucket);
        let err = match self.retry.send("s3", "HeadBucket", || head.clone().send()).await {
            Ok(_) => return Ok(()),
            Err(err) => err,
        };
        match (err.class, create) {
            (ErrorClass::NotFound, true) => {}
            (ErrorClass::NotFound, false) => {
                return Err(AwsError {
                    message: format!(
                    "state bucket {} does not exist; create it (infra/) or set state.create_bucket_if_missing: true",
                    self.bucket
                ),
                    ..err
                })
            }
            _ => return Err(err),
        }
        let mut req = self.s3.create_bucket().bucket(&self.bucket);
        if region != "us-east-1" {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region))
                    .build(),
            );
        }
        match self.retry.send("s3", "CreateBucket", || req.clone().send()).await {
            Err(err) if err.class != ErrorClass::AlreadyExists => Err(err),
            _ => Ok(()),
        }
    }

    /// One PutObject under `condition`. A retried conditional write that meets its own earlier,
    /// landed attempt as a conflict is recognised by reading the object back and finding our bytes.
    async fn put_with(&self, rest: &str, bytes: Vec<u8>, condition: Condition<'_>) -> Result<PutOutcome, AwsError> {
        let attempts = AtomicU32::new(0);
        let key = self.key(rest);
        let put = || async {
            attempts.fetch_add(1, Ordering::Relaxed);
            let mut req = self.s3.put_object().bucket(&self.bucket).key(&key).body(ByteStream::from(bytes.clone()));
            if key.ends_with(".json") {
                req = req.content_type("application/json");
            }
            let req = match condition {
                Condition::None => req,
                Condition::Absent => req.if_none_match("*"),
                Condition::Matches(v) => req.if_match(v),
            };
            req.send().await.map_err(|e| AwsError::from_sdk("s3", "PutObject", e))
        };
        match self.retry.run(put).await {
            Ok(out) => Ok(PutOutcome::Written(out.e_tag.unwrap_or_default())),
            Err(err) if condition.lost(err.class) && attempts.into_inner() > 1 => match self.get(rest).await? {
                Some(found) if found.bytes == bytes => Ok(PutOutcome::Written(found.version)),
                _ => Ok(PutOutcome::Conflict),
            },
            Err(err) if condition.lost(err.class) => Ok(PutOutcome::Conflict),
            Err(err) => Err(err),
        }
    }
}

#[async_trait]
impl StateStore for S3Store {
    fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    async fn get(&self, rest: &str) -> Result<Option<Stored>, AwsError> {
        let req = self.s3.get_object().bucket(&self.bucket).key(self.key(rest));
        let out = match self.retry.send("s3", "GetObject", || req.clone().send()).await {
            Ok(out) => out,
            Err(err) if err.class == ErrorClass::NotFound => return Ok(None),
            Err(err) => return Err(err),
        };
        let version = out.e_tag.clone().unwrap_or_default();
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| AwsError::invalid_response("s3", "GetObject", &e.to_string()))?
            .into_bytes()
            .to_vec();
        Ok(Some(Stored { bytes: body, version }))
    }

    async fn put(&self, rest: &str, bytes: Vec<u8>) -> Result<String, AwsError> {
        match self.put_with(rest, bytes, Condition::None).await? {
            PutOutcome::Written(v) => Ok(v),
            PutOutcome::Conflict => {
                Err(AwsError::invalid_response("s3", "PutObject", "unconditional write conflicted"))
            }
        }
    }

    async fn put_if_absent(&self, rest: &str, bytes: Vec<u8>) -> Result<PutOutcome, AwsError> {
        self.put_with(rest, bytes, Condition::Absent).await
    }

    async fn put_if_match(&self, rest: &str, bytes: Vec<u8>, version: &str) -> Result<PutOutcome, AwsError> {
        self.put_with(rest, bytes, Condition::Matches(version)).await
    }

    async fn list(&self, prefix: &str, after: Option<&str>) -> Result<ListPage, AwsError> {
        let req = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.key(prefix))
            .set_start_after(after.map(|a| self.key(a)));
        let page = self.retry.send("s3", "ListObjectsV2", || req.clone().send()).await?;
        let keys = page
            .contents()
            .iter()
            .filter_map(|o| o.key.as_deref())
            .filter_map(|k| k.strip_prefix(self.prefix.as_str()).map(str::to_string))
            .collect();
        Ok(ListPage { keys, more: page.is_truncated == Some(true) })
    }

    async fn exists(&self, rest: &str) -> Result<bool, AwsError> {
        let req = self.s3.head_object().bucket(&self.bucket).key(self.key(rest));
        match self.retry.send("s3", "HeadObject", || req.clone().send()).await {
            Ok(_) => Ok(true),
            Err(err) if err.class == ErrorClass::NotFound => Ok(false),
            Err(err) => Err(err),
        }
    }

    async fn delete(&self, rest: &str) -> Result<(), AwsError> {
        let req = self.s3.delete_object().bucket(&self.bucket).key(self.key(rest));
        self.retry.send("s3", "DeleteObject", || req.clone().send()).await?;
        Ok(())
    }
}
