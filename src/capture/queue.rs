//! Event capture from the SQS queue that EventBridge rules feed with Glue events.
//!
//! Per receive batch: parse every message; dead-letter (and delete) what cannot be parsed;
//! re-read the source for the hints of the rest; publish; and only then delete the messages.
//! A message whose records were not acknowledged by Kinesis is not deleted, so SQS redelivers it
//! after its visibility timeout — at-least-once, never lost. While the work runs, the messages'
//! visibility is extended. Events seen before (same event id) are acknowledged without work.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry};
use futures::{StreamExt, TryStreamExt};
use tokio::sync::watch;
use tracing::{debug, warn};

use super::events::parse_eventbridge;
use super::hint::Hint;
use super::resolve::Resolver;
use crate::aws::AwsError;
use crate::config::EventsConfig;
use crate::deadletter::{DeadLetter, DeadLetterStore};
use crate::metrics as m;
use crate::model::{Cause, CauseKind};
use crate::stream::publisher::Publisher;

/// Events of one receive batch re-read at the same time.
const RESOLVE_CONCURRENCY: usize = 4;

/// Event ids remembered for de-duplication.
const SEEN_CAPACITY: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("event queue {queue}: {source}")]
    Aws { queue: String, source: AwsError },
    #[error("event queue: cannot park a malformed event: {0}")]
    DeadLetter(AwsError),
    #[error("re-reading the source for events: {0}")]
    Capture(#[from] super::CaptureError),
    #[error("publishing event records: {0}")]
    Stream(#[from] crate::stream::StreamError),
}

/// Counts for reports and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub messages: u64,
    pub duplicates: u64,
    pub malformed: u64,
    pub records: u64,
}

pub struct QueueCapture {
    pub sqs: aws_sdk_sqs::Client,
    /// Resolved with [`queue_url`].
    pub queue_url: String,
    pub config: EventsConfig,
    pub resolver: Resolver,
    pub publisher: Arc<Publisher>,
    pub dead_letters: DeadLetterStore,
}

struct Seen {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl Seen {
    fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        self.set.insert(id.to_string());
        self.order.push_back(id.to_string());
        if self.order.len() > SEEN_CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

/// The queue URL the config names (directly, or by name through GetQueueUrl).
pub async fn queue_url(sqs: &aws_sdk_sqs::Client, config: &EventsConfig) -> Result<String, QueueError> {
    if let Some(url) = &config.queue_url {
        return Ok(url.clone());
    }
    let name = config.queue_name.clone().unwrap_or_default();
    let req = sqs.get_queue_url().queue_name(&name);
    let out = crate::aws::retry::RetryPolicy::default()
        .run(|| async { req.clone().send().await.map_err(|e| AwsError::from_sdk("sqs", "GetQueueUrl", e)) })
        .await
        .map_err(|source| QueueError::Aws { queue: name.clone(), source })?;
    out.queue_url.ok_or_else(|| QueueError::Aws {
        queue: name,
        source: AwsError::invalid_response("sqs", "GetQueueUrl", "no URL"),
    })
}

impl QueueCapture {
    fn aws(&self, source: AwsError) -> QueueError {
        QueueError::Aws { queue: self.queue_url.clone(), source }
    }

    /// Runs until `stop` turns true; the batch in hand is finished first.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) -> Result<QueueStats, QueueError> {
        let mut stats = QueueStats::default();
        let mut seen = Seen { set: HashSet::new(), order: VecDeque::new() };
        let mut backoff = Duration::from_millis(500);
        while !*stop.borrow() {
            let receive = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(self.config.wait_seconds)
                .visibility_timeout(self.config.visibility_timeout_seconds)
                .send();
            let out = tokio::select! {
                r = receive => r,
                _ = stop.changed() => break,
            };
            let messages = match out {
                Ok(o) => o.messages.unwrap_or_default(),
                Err(e) => {
                    let err = AwsError::from_sdk("sqs", "ReceiveMessage", e);
                    if !err.class.is_retryable() {
                        return Err(self.aws(err));
                    }
                    warn!(error = %err, "receiving events failed, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue;
                }
            };
            backoff = Duration::from_millis(500);
            if messages.is_empty() {
                continue;
            }
            match self.handle(&messages, &mut seen, &mut stats).await {
                Ok(()) => {}
                // Not deleted: SQS redelivers them after the visibility timeout.
                Err(e) => warn!(error = %e, messages = messages.len(), "event batch failed; SQS will redeliver it"),
            }
        }
        Ok(stats)
    }

    async fn handle(
        &self,
        messages: &[aws_sdk_sqs::types::Message],
        seen: &mut Seen,
        stats: &mut QueueStats,
    ) -> Result<(), QueueError> {
        let mut done = Vec::new();
        let mut work: Vec<(String, Option<i64>, Vec<Hint>)> = Vec::new();
        for msg in messages {
            stats.messages += 1;
            let (Some(handle), body) = (msg.receipt_handle.clone(), msg.body.as_deref().unwrap_or_default()) else {
                continue;
            };
            let id = msg.message_id.clone().unwrap_or_default();
            match parse_eventbridge(body) {
                Ok(ev) => {
                    if seen.insert(&ev.id) {
                        work.push((ev.id, ev.time_ms, ev.hints));
                    } else {
                        stats.duplicates += 1;
                        m::events_received("duplicate", 1);
                    }
                }
                Err(e) => {
                    warn!(message = %id, error = %e, "malformed event, dead-lettering");
                    let dl = DeadLetter::malformed_event(&id, body, e.to_string());
                    self.dead_letters.park(&dl).await.map_err(QueueError::DeadLetter)?;
                    stats.malformed += 1;
                    m::events_received("malformed", 1);
                    m::dead_letters(crate::deadletter::CAPTURE_EVENTS, "event", 1);
                }
            }
            done.push(handle);
        }
        let events = work.len() as u64;
        let heartbeat = self.keep_invisible(&done);
        let resolve_and_publish = async {
            // Re-reads of a batch's events run concurrently; `buffered` keeps their order, and
            // the publisher's ordering rule settles any overlap between them.
            let resolver = &self.resolver;
            let resolved: Vec<_> = futures::stream::iter(work.into_iter().map(|(id, time, hints)| async move {
                let cause = Cause { kind: CauseKind::Event, event_id: Some(id) };
                let mut rs = resolver.resolve(&hints, &cause).await?;
                for r in &mut rs {
                    r.changed_at = time;
                }
                Ok::<_, QueueError>(rs)
            }))
            .buffered(RESOLVE_CONCURRENCY)
            .try_collect()
            .await?;
            let records: Vec<_> = resolved.into_iter().flatten().collect();
            let n = records.len() as u64;
            crate::metrics::records_captured_of(&records);
            self.publisher.publish(records).await?;
            Ok::<u64, QueueError>(n)
        };
        let published = tokio::select! {
            r = resolve_and_publish => r?,
            never = heartbeat => match never {},
        };
        stats.records += published;
        m::events_received("ok", events);
        self.delete(&done).await
    }

    /// Extends the visibility of `handles` every third of the timeout, forever (cancelled by the caller).
    async fn keep_invisible(&self, handles: &[String]) -> std::convert::Infallible {
        let period = Duration::from_secs((self.config.visibility_timeout_seconds / 3).max(1) as u64);
        loop {
            tokio::time::sleep(period).await;
            let entries: Vec<_> = handles
                .iter()
                .enumerate()
                .filter_map(|(i, h)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(h)
                        .visibility_timeout(self.config.visibility_timeout_seconds)
                        .build()
                        .ok()
                })
                .collect();
            let r = self
                .sqs
                .change_message_visibility_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await;
            if let Err(e) = r {
                debug!(error = %AwsError::from_sdk("sqs", "ChangeMessageVisibilityBatch", e), "could not extend visibility");
            }
        }
    }

    async fn delete(&self, handles: &[String]) -> Result<(), QueueError> {
        for chunk in handles.chunks(10) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, h)| {
                    DeleteMessageBatchRequestEntry::builder().id(i.to_string()).receipt_handle(h).build().ok()
                })
                .collect();
            let req = self.sqs.delete_message_batch().queue_url(&self.queue_url).set_entries(Some(entries));
            crate::aws::retry::RetryPolicy::default()
                .run(|| async {
                    req.clone().send().await.map_err(|e| AwsError::from_sdk("sqs", "DeleteMessageBatch", e))
                })
                .await
                .map_err(|e| self.aws(e))?;
        }
        Ok(())
    }
}
