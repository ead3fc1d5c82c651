//! The dead-letter store: records a target could not apply, parked with their reason so nothing is
//! lost and they can be inspected and replayed.
//!
//! Layout: `dead-letter/<target>/<ms>-<hash>.json` in the state store, one JSON document per record: the
//! time it was parked and a hash of the document, or, for what must be parked once only
//! ([`DeadLetterStore::park_once`]), a stable time and a hash of a stable id.
//! Writing a dead letter is durable before the checkpoint moves past its record.

use serde::{Deserialize, Serialize};

use crate::backend::state::{each_key, PutOutcome, SharedStore};
use crate::backend::AwsError;
use crate::model::{now_millis, ChangeRecord};

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
    /// The source principal no mapping rule maps, for an [`UNMAPPED_PRINCIPAL`] entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    pub parked_at: i64,
}

/// The class of a grant parked because no rule maps its principal into the target
/// (`model::principal`): never granted, listed by `lakelog status`, applied by `dlq replay` once
/// a rule maps it.
pub const UNMAPPED_PRINCIPAL: &str = "unmapped_principal";

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
            principal: None,
            parked_at: now_millis(),
        }
    }

    /// A record (a grant) whose source principal no rule maps into `target`; `reason` is the
    /// mapping's (it names the principal and the config key that would map it).
    pub fn unmapped_principal(target: &str, record: &ChangeRecord, principal: &str, reason: String) -> DeadLetter {
        DeadLetter {
            class: UNMAPPED_PRINCIPAL.to_string(),
            principal: Some(principal.to_string()),
            ..DeadLetter::for_record(target, record, reason, None)
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
            principal: None,
            parked_at: now_millis(),
        }
    }
}

/// Where capture parks events it cannot parse (not a valid target name, so it never collides).
pub use crate::metrics::CAPTURE_EVENTS;

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
            principal: None,
            parked_at: now_millis(),
        }
    }
}

/// Dead letters in the state store.
#[derive(Debug, Clone)]
pub struct DeadLetterStore {
    store: SharedStore,
}

fn encode(dl: &DeadLetter) -> Result<Vec<u8>, AwsError> {
    serde_json::to_vec_pretty(dl).map_err(|e| AwsError::invalid_response("state", "PutObject", &e.to_string()))
}

impl DeadLetterStore {
    pub fn new(store: SharedStore) -> DeadLetterStore {
        DeadLetterStore { store }
    }

    fn prefix(target: &str) -> String {
        format!("dead-letter/{target}/")
    }

    /// Parks one dead letter durably; returns its key. An unmapped principal is counted
    /// (`lakelog_unmapped_principals_total`) here, whoever parks it.
    pub async fn park(&self, dl: &DeadLetter) -> Result<String, AwsError> {
        let body = encode(dl)?;
        let id = xxhash_rust::xxh3::xxh3_64(&body);
        let key = format!("{}{:013}-{id:016x}.json", Self::prefix(&dl.target), dl.parked_at);
        self.store.put(&key, body).await?;
        if dl.class == UNMAPPED_PRINCIPAL {
            crate::metrics::unmapped_principals(&dl.target, 1);
        }
        Ok(key)
    }

    /// Parks a dead letter once: under a name made of `at_ms` and a hash of `id` (both stable for
    /// the thing parked, e.g. an SQS message's sent time and MessageId), written only if no
    /// object has that name yet (put-if-absent). Parking the same thing again (a redelivered
    /// message) writes nothing. Returns whether this call wrote it.
    pub async fn park_once(&self, dl: &DeadLetter, at_ms: i64, id: &str) -> Result<bool, AwsError> {
        let key =
            format!("{}{at_ms:013}-{:016x}.json", Self::prefix(&dl.target), xxhash_rust::xxh3::xxh3_64(id.as_bytes()));
        Ok(self.store.put_if_absent(&key, encode(dl)?).await? != PutOutcome::Conflict)
    }

    /// The keys of a target's dead letters, oldest first.
    pub async fn keys(&self, target: &str) -> Result<Vec<String>, AwsError> {
        let mut keys = Vec::new();
        each_key(&*self.store, &Self::prefix(target), |page| keys.extend(page)).await?;
        Ok(keys)
    }

    /// Every dead letter of a target, oldest first, with its key.
    pub async fn list(&self, target: &str) -> Result<Vec<(String, DeadLetter)>, AwsError> {
        use futures::{StreamExt, TryStreamExt};
        let keys = self.keys(target).await?;
        let read = |key: String| async move {
            let stored = self.store.get(&key).await?;
            Ok::<_, AwsError>((key, stored))
        };
        let bodies: Vec<_> = futures::stream::iter(keys.into_iter().map(read)).buffered(16).try_collect().await?;
        let mut out = Vec::with_capacity(bodies.len());
        for (key, stored) in bodies {
            // Removed since it was listed (a concurrent replay): nothing to show.
            let Some(stored) = stored else { continue };
            match serde_json::from_slice(&stored.bytes) {
                Ok(dl) => out.push((key, dl)),
                Err(e) => tracing::warn!(key = %key, error = %e, "skipping unreadable dead letter"),
            }
        }
        Ok(out)
    }

    /// Removes a dead letter (after a successful replay).
    pub async fn remove(&self, key: &str) -> Result<(), AwsError> {
        self.store.delete(key).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::backend::memory::state::MemoryStore;

    #[tokio::test]
    async fn parked_once_is_parked_once_and_listed_oldest_first() {
        let store = DeadLetterStore::new(Arc::new(MemoryStore::new()));
        let mut dl = DeadLetter::malformed_event("m-1", "{}", "not JSON".into());
        assert!(store.park_once(&dl, 2_000, "m-1").await.unwrap());
        assert!(!store.park_once(&dl, 2_000, "m-1").await.unwrap(), "a redelivery parks nothing");
        dl.parked_at = 1_000;
        dl.key = "m-0".into();
        store.park(&dl).await.unwrap();
        let listed = store.list(CAPTURE_EVENTS).await.unwrap();
        assert_eq!(listed.iter().map(|(_, d)| d.key.as_str()).collect::<Vec<_>>(), ["m-0", "m-1"]);
        store.remove(&listed[0].0).await.unwrap();
        assert_eq!(store.keys(CAPTURE_EVENTS).await.unwrap().len(), 1);
    }

    /// Parking an unmapped principal counts it for its target; other dead letters do not.
    #[test]
    fn an_unmapped_principal_is_counted_when_parked() {
        use crate::model::{CatalogObject, Cause, CauseKind, Database, Origin};
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let origin = Origin { account: "1".into(), region: "r".into(), catalog_id: "1".into() };
        let db = CatalogObject::Database(Database { name: "db".into(), ..Default::default() });
        let record = ChangeRecord::upsert(db, &origin, Cause { kind: CauseKind::Snapshot, event_id: None }, 1);
        let store = DeadLetterStore::new(Arc::new(MemoryStore::new()));
        let listed = metrics::with_local_recorder(&recorder, || {
            let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            runtime.block_on(async {
                for p in ["111111111111", "arn:aws:iam::1:role/x"] {
                    store.park(&DeadLetter::unmapped_principal("dr", &record, p, "no rule".into())).await.unwrap();
                }
                store.park(&DeadLetter::for_record("dr", &record, "rejected".into(), None)).await.unwrap();
                store.list("dr").await.unwrap()
            })
        });
        let text = handle.render();
        let line = format!("{}{{target=\"dr\"}} 2", crate::metrics::UNMAPPED_PRINCIPALS);
        assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
        assert_eq!(listed.iter().filter(|(_, d)| d.class == UNMAPPED_PRINCIPAL).count(), 2);
    }
}
