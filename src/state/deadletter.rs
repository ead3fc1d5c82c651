//! The dead-letter store: records a target could not apply, parked with their reason so nothing is
//! lost and they can be inspected and replayed.
//!
//! Layout: `<prefix>dead-letter/<target>/<ms>-<hash>.json`, one JSON document per record: the
//! time it was parked and a hash of the document, or, for what must be parked once only
//! ([`DeadLetterStore::park_once`]), a stable time and a hash of a stable id.
//! Writing a dead letter is durable before the checkpoint moves past its record.

use aws_sdk_s3::primitives::ByteStream;
use serde::{Deserialize, Serialize};

use crate::backend::retry::RetryPolicy;
use crate::backend::AwsError;
use crate::model::{now_millis, ChangeRecord};
use crate::state::{PutOutcome, StateBucket};

/// One parked record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub target: String,
    /// The object, as `catalog/db/table[/values]`.
    pub key: String,
    /// Why it could not be applied, in words a person can act on.
    pub reason: String,
    /// `permanent`, `not_found`, ... (see `ErrorClass`), or `undecodable`.
    pub class: String,
    /// The AWS error code, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The record, when it could be decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<ChangeRecord>,
    /// The raw frame as hex, when it could not be decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_hex: Option<String>,
    /// The message body, for an event that could not be parsed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub parked_at: i64,
}

impl DeadLetter {
    pub fn for_record(target: &str, record: &ChangeRecord, reason: String, err: Option<&AwsError>) -> DeadLetter {
        DeadLetter {
            target: target.to_string(),
            key: record.key.to_string(),
            reason,
            class: err.map_or("dependency", |e| e.class.as_str()).to_string(),
            code: err.and_then(|e| e.code.clone()),
            record: Some(record.clone()),
            raw_hex: None,
            body: None,
            parked_at: now_millis(),
        }
    }

    pub fn undecodable(target: &str, shard: &str, seq: &str, raw: &[u8], reason: String) -> DeadLetter {
        DeadLetter {
            target: target.to_string(),
            key: format!("{shard}@{seq}"),
            reason,
            class: "undecodable".to_string(),
            code: None,
            record: None,
            raw_hex: Some(raw.iter().map(|b| format!("{b:02x}")).collect()),
            body: None,
            parked_at: now_millis(),
        }
    }
}

/// Where capture parks events it cannot parse (not a valid target name, so it never collides).
pub const CAPTURE_EVENTS: &str = "capture.events";

impl DeadLetter {
    /// An event (SQS message) that could not be parsed; kept whole.
    pub fn malformed_event(message_id: &str, body: &str, reason: String) -> DeadLetter {
        DeadLetter::failed_event(message_id, body, reason, "malformed_event", None)
    }

    /// An event (SQS message) that failed for good (its re-read or its records were refused);
    /// kept whole, with the class (see `ErrorClass`) and AWS error code of the failure.
    pub fn failed_event(message_id: &str, body: &str, reason: String, class: &str, code: Option<String>) -> DeadLetter {
        DeadLetter {
            target: CAPTURE_EVENTS.to_string(),
            key: message_id.to_string(),
            reason,
            class: class.to_string(),
            code,
            record: None,
            raw_hex: None,
            body: Some(body.to_string()),
            parked_at: now_millis(),
        }
    }
}

/// Dead letters in S3.
#[derive(Debug, Clone)]
pub struct DeadLetterStore {
    state: StateBucket,
}

impl DeadLetterStore {
    pub fn new(state: StateBucket) -> DeadLetterStore {
        DeadLetterStore { state }
    }

    fn prefix(&self, target: &str) -> String {
        self.state.key(&format!("dead-letter/{target}/"))
    }

    /// Parks one dead letter durably; returns its object key.
    pub async fn park(&self, dl: &DeadLetter) -> Result<String, AwsError> {
        let body =
            serde_json::to_vec_pretty(dl).map_err(|e| AwsError::invalid_response("s3", "PutObject", &e.to_string()))?;
        let id = xxhash_rust::xxh3::xxh3_64(&body);
        let key = format!("{}{:013}-{id:016x}.json", self.prefix(&dl.target), dl.parked_at);
        let put = || async {
            self.state
                .s3
                .put_object()
                .bucket(&self.state.bucket)
                .key(&key)
                .content_type("application/json")
                .body(ByteStream::from(body.clone()))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("s3", "PutObject", e))
        };
        RetryPolicy::default().run(put).await?;
        Ok(key)
    }

    /// Parks a dead letter once: under a name made of `at_ms` and a hash of `id` (both stable for
    /// the thing parked, e.g. an SQS message's sent time and MessageId), written only if no
    /// object has that name yet (S3 `If-None-Match: *`). Parking the same thing again (a
    /// redelivered message) writes nothing. Returns whether this call wrote it.
    pub async fn park_once(&self, dl: &DeadLetter, at_ms: i64, id: &str) -> Result<bool, AwsError> {
        let body =
            serde_json::to_vec_pretty(dl).map_err(|e| AwsError::invalid_response("s3", "PutObject", &e.to_string()))?;
        let name =
            format!("dead-letter/{}/{at_ms:013}-{:016x}.json", dl.target, xxhash_rust::xxh3::xxh3_64(id.as_bytes()));
        match self.state.put_if(&name, body, None).await? {
            PutOutcome::Written(_) => Ok(true),
            PutOutcome::Conflict => Ok(false),
        }
    }

    /// The object keys of a target's dead letters, oldest first.
    pub async fn keys(&self, target: &str) -> Result<Vec<String>, AwsError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let req = self
                .state
                .s3
                .list_objects_v2()
                .bucket(&self.state.bucket)
                .prefix(self.prefix(target))
                .set_continuation_token(token.clone());
            let page = RetryPolicy::default().send("s3", "ListObjectsV2", || req.clone().send()).await?;
            keys.extend(page.contents().iter().filter_map(|o| o.key.clone()));
            token = page.next_continuation_token.filter(|t| page.is_truncated == Some(true) && !t.is_empty());
            if token.is_none() {
                break;
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// Every dead letter of a target, oldest first, with its object key.
    pub async fn list(&self, target: &str) -> Result<Vec<(String, DeadLetter)>, AwsError> {
        use futures::{StreamExt, TryStreamExt};
        let keys = self.keys(target).await?;
        let read = |key: String| async move {
            let req = self.state.s3.get_object().bucket(&self.state.bucket).key(&key);
            let obj = RetryPolicy::default().send("s3", "GetObject", || req.clone().send()).await?;
            let bytes = obj
                .body
                .collect()
                .await
                .map_err(|e| AwsError::invalid_response("s3", "GetObject", &e.to_string()))?
                .into_bytes();
            Ok::<_, AwsError>((key, bytes))
        };
        let bodies: Vec<(String, bytes::Bytes)> =
            futures::stream::iter(keys.into_iter().map(read)).buffered(16).try_collect().await?;
        let mut out = Vec::with_capacity(bodies.len());
        for (key, bytes) in bodies {
            match serde_json::from_slice(&bytes) {
                Ok(dl) => out.push((key, dl)),
                Err(e) => tracing::warn!(key = %key, error = %e, "skipping unreadable dead letter"),
            }
        }
        Ok(out)
    }

    /// Removes a dead letter (after a successful replay).
    pub async fn remove(&self, key: &str) -> Result<(), AwsError> {
        let req = self.state.s3.delete_object().bucket(&self.state.bucket).key(key);
        RetryPolicy::default().send("s3", "DeleteObject", || req.clone().send()).await?;
        Ok(())
    }
}
