//! [`MemoryQueue`]: SQS queues in memory, with visibility timeouts and redelivery (on the tokio
//! clock, so tests with paused time control them), a new receipt handle per receive, the 256 KiB
//! body limit, batches of 1 to 10 handles, and scripted receive failures. It keeps every
//! guarantee of [`EventQueue`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::backend::queue::{EventQueue, QueueDepth, QueueMessage, Receive, MAX_BATCH, MAX_BODY_BYTES};
use crate::backend::{AwsError, ErrorClass};
use crate::model::now_millis;

#[derive(Debug)]
struct Stored {
    message_id: String,
    body: String,
    sent_ms: i64,
    /// Hidden until then (received and not deleted).
    invisible_until: Option<Instant>,
    /// The handle of the latest receive; older ones no longer delete it.
    handle: Option<String>,
    receives: u32,
}

#[derive(Debug, Default)]
struct Inner {
    /// By URL.
    queues: BTreeMap<String, Vec<Stored>>,
    next_id: u64,
    receive_faults: VecDeque<AwsError>,
}

/// SQS in memory. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    inner: Mutex<Inner>,
}

fn url_of(name: &str) -> String {
    format!("memory://sqs/{name}")
}

fn missing(operation: &'static str, url: &str) -> AwsError {
    AwsError {
        service: "sqs",
        operation,
        class: ErrorClass::NotFound,
        code: Some("AWS.SimpleQueueService.NonExistentQueue".into()),
        message: format!("the queue {url} does not exist"),
    }
}

impl MemoryQueue {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// Creates queue `name` (if new) and returns its URL.
    pub fn create(&self, name: &str) -> String {
        let url = url_of(name);
        self.with(|i| {
            i.queues.entry(url.clone()).or_default();
        });
        url
    }

    /// Sends one message; returns its id. Bodies over 256 KiB are refused, as SQS does.
    pub fn send(&self, queue_url: &str, body: &str) -> Result<String, AwsError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(AwsError {
                service: "sqs",
                operation: "SendMessage",
                class: ErrorClass::Permanent,
                code: Some("InvalidParameterValue".into()),
                message: format!("the body is {} bytes, over the {MAX_BODY_BYTES}-byte limit", body.len()),
            });
        }
        self.with(|i| {
            i.next_id += 1;
            let message_id = format!("m-{}", i.next_id);
            let queue = i.queues.get_mut(queue_url).ok_or_else(|| missing("SendMessage", queue_url))?;
            queue.push(Stored {
                message_id: message_id.clone(),
                body: body.to_string(),
                sent_ms: now_millis(),
                invisible_until: None,
                handle: None,
                receives: 0,
            });
            Ok(message_id)
        })
    }

    /// Fails the next receive with `error` (faults queue up, one per call).
    pub fn fail_next_receive(&self, error: AwsError) {
        self.with(|i| i.receive_faults.push_back(error));
    }

    /// How often each message still in the queue was received, by message id.
    pub fn receive_counts(&self, queue_url: &str) -> BTreeMap<String, u32> {
        self.with(|i| {
            i.queues
                .get(queue_url)
                .map(|q| q.iter().map(|m| (m.message_id.clone(), m.receives)).collect())
                .unwrap_or_default()
        })
    }
}

#[async_trait]
impl EventQueue for MemoryQueue {
    async fn queue_url(&self, name: &str) -> Result<String, AwsError> {
        let url = url_of(name);
        self.with(|i| if i.queues.contains_key(&url) { Ok(url.clone()) } else { Err(missing("GetQueueUrl", &url)) })
    }

    async fn receive(&self, queue_url: &str, receive: Receive) -> Result<Vec<QueueMessage>, AwsError> {
        let received = self.with(|i| {
            if let Some(e) = i.receive_faults.pop_front() {
                return Err(e);
            }
            let queue = i.queues.get_mut(queue_url).ok_or_else(|| missing("ReceiveMessage", queue_url))?;
            let now = Instant::now();
            let hide = Duration::from_secs(u64::try_from(receive.visibility_timeout_seconds).unwrap_or(0));
            let max = usize::try_from(receive.max_messages.clamp(1, 10)).unwrap_or(1);
            let mut out = Vec::new();
            for m in queue.iter_mut().filter(|m| m.invisible_until.is_none_or(|t| t <= now)).take(max) {
                m.receives += 1;
                let handle = format!("{}#{}", m.message_id, m.receives);
                m.handle = Some(handle.clone());
                m.invisible_until = Some(now + hide);
                out.push(QueueMessage {
                    receipt_handle: handle,
                    message_id: m.message_id.clone(),
                    body: m.body.clone(),
                    sent_ms: m.sent_ms,
                });
            }
            Ok(out)
        })?;
        if received.is_empty() && receive.wait_seconds > 0 {
            // Long polling: an empty answer comes after the wait (virtual time in tests).
            tokio::time::sleep(Duration::from_secs(u64::try_from(receive.wait_seconds).unwrap_or(0))).await;
        }
        Ok(received)
    }

    async fn delete(&self, queue_url: &str, handles: &[String]) -> Result<Vec<Result<(), AwsError>>, AwsError> {
        batch_size("DeleteMessageBatch", handles)?;
        self.with(|i| {
            let queue = i.queues.get_mut(queue_url).ok_or_else(|| missing("DeleteMessageBatch", queue_url))?;
            Ok(handles
                .iter()
                .map(|h| match queue.iter().position(|m| m.handle.as_ref() == Some(h)) {
                    Some(k) => {
                        queue.remove(k);
                        Ok(())
                    }
                    None => Err(stale("DeleteMessageBatch", h)),
                })
                .collect())
        })
    }

    async fn extend(
        &self,
        queue_url: &str,
        handles: &[String],
        timeout_seconds: i32,
    ) -> Result<Vec<Result<(), AwsError>>, AwsError> {
        batch_size("ChangeMessageVisibilityBatch", handles)?;
        let hide = Duration::from_secs(u64::try_from(timeout_seconds).unwrap_or(0));
        self.with(|i| {
            let queue =
                i.queues.get_mut(queue_url).ok_or_else(|| missing("ChangeMessageVisibilityBatch", queue_url))?;
            Ok(handles
                .iter()
                .map(|h| match queue.iter_mut().find(|m| m.handle.as_ref() == Some(h)) {
                    Some(m) => {
                        m.invisible_until = Some(Instant::now() + hide);
                        Ok(())
                    }
                    None => Err(stale("ChangeMessageVisibilityBatch", h)),
                })
                .collect())
        })
    }

    async fn depth(&self, queue_url: &str) -> Result<QueueDepth, AwsError> {
        self.with(|i| {
            let queue = i.queues.get(queue_url).ok_or_else(|| missing("GetQueueAttributes", queue_url))?;
            let now = Instant::now();
            let in_flight = queue.iter().filter(|m| m.invisible_until.is_some_and(|t| t > now)).count() as u64;
            Ok(QueueDepth { waiting: queue.len() as u64 - in_flight, in_flight })
        })
    }
}

/// SQS refuses an empty batch (EmptyBatchRequest) or one over ten (TooManyEntriesInBatchRequest)
/// as a whole.
fn batch_size(operation: &'static str, handles: &[String]) -> Result<(), AwsError> {
    let code = match handles.len() {
        0 => "AWS.SimpleQueueService.EmptyBatchRequest",
        n if n > MAX_BATCH => "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
        _ => return Ok(()),
    };
    Err(AwsError {
        service: "sqs",
        operation,
        class: ErrorClass::Permanent,
        code: Some(code.into()),
        message: format!("{} entries; a batch takes 1 to {MAX_BATCH}", handles.len()),
    })
}

fn stale(operation: &'static str, handle: &str) -> AwsError {
    AwsError {
        service: "sqs",
        operation,
        class: ErrorClass::Permanent,
        code: Some("ReceiptHandleIsInvalid".into()),
        message: format!("receipt handle {handle} is not the latest receive of a message in the queue"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECEIVE: Receive = Receive { max_messages: 10, wait_seconds: 0, visibility_timeout_seconds: 30 };

    #[tokio::test(start_paused = true)]
    async fn an_undeleted_message_comes_back_after_its_visibility_timeout_with_a_new_handle() {
        let q = MemoryQueue::default();
        let url = q.create("events");
        q.send(&url, "a").expect("send");
        let first = q.receive(&url, RECEIVE).await.expect("receive");
        assert_eq!(first.len(), 1);
        assert!(q.receive(&url, RECEIVE).await.expect("hidden").is_empty());
        assert_eq!(q.depth(&url).await.expect("depth"), QueueDepth { waiting: 0, in_flight: 1 });

        tokio::time::advance(Duration::from_secs(31)).await;
        let again = q.receive(&url, RECEIVE).await.expect("redelivered");
        assert_eq!(again[0].message_id, first[0].message_id);
        assert_ne!(again[0].receipt_handle, first[0].receipt_handle);
        assert_eq!(again[0].sent_ms, first[0].sent_ms, "the sent time is stable across redeliveries");
        let stale = q.delete(&url, std::slice::from_ref(&first[0].receipt_handle)).await.expect("call");
        assert!(stale[0].is_err(), "an old handle no longer deletes");
        let fresh = q.delete(&url, std::slice::from_ref(&again[0].receipt_handle)).await.expect("call");
        assert!(fresh[0].is_ok());
        assert_eq!(q.depth(&url).await.expect("depth"), QueueDepth::default());
    }

    #[tokio::test]
    async fn a_batch_of_more_than_ten_handles_or_none_is_refused_whole() {
        let q = MemoryQueue::default();
        let url = q.create("events");
        for n in 0..11 {
            q.send(&url, &n.to_string()).expect("send");
        }
        let mut handles: Vec<String> =
            q.receive(&url, RECEIVE).await.expect("receive").into_iter().map(|m| m.receipt_handle).collect();
        handles.extend(q.receive(&url, RECEIVE).await.expect("receive").into_iter().map(|m| m.receipt_handle));
        assert_eq!(handles.len(), 11);
        for batch in [&handles[..], &[]] {
            assert_eq!(q.delete(&url, batch).await.expect_err("refused").class, ErrorClass::Permanent);
            assert_eq!(q.extend(&url, batch, 30).await.expect_err("refused").class, ErrorClass::Permanent);
        }
        assert_eq!(q.depth(&url).await.expect("depth").in_flight, 11, "nothing of a refused batch was deleted");
        assert!(q.delete(&url, &handles[..10]).await.expect("ten at most").iter().all(Result::is_ok));
    }

    #[tokio::test(start_paused = true)]
    async fn extending_keeps_a_message_hidden_and_bodies_over_256_kib_are_refused() {
        let q = MemoryQueue::default();
        let url = q.create("events");
        q.send(&url, "a").expect("send");
        let got = q.receive(&url, RECEIVE).await.expect("receive");
        tokio::time::advance(Duration::from_secs(20)).await;
        q.extend(&url, &[got[0].receipt_handle.clone()], 30).await.expect("extend")[0].as_ref().expect("entry");
        tokio::time::advance(Duration::from_secs(20)).await;
        assert!(q.receive(&url, RECEIVE).await.expect("receive").is_empty(), "still hidden 40 s after the receive");
        assert!(q.send(&url, &"x".repeat(MAX_BODY_BYTES + 1)).is_err());
        assert!(q.send(&url, &"x".repeat(MAX_BODY_BYTES)).is_ok());
    }
}
