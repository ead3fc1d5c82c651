//! Event capture from the SQS queue that EventBridge rules feed with Glue events.
//!
//! Per receive batch: parse every message; dead-letter (and delete) what cannot be parsed;
//! re-read the source for the hints of the rest; publish; and only then delete the messages.
//! While the work runs, the messages' visibility is extended.
//!
//! Every event succeeds or fails on its own; one never fails the others of its batch:
//! - **Published**: its records are acknowledged by Kinesis; its messages are deleted and only
//!   now does its id enter the de-duplication set (a redelivered copy is then deleted unread).
//! - **Transient failure** (throttling, 5xx, an unreachable source or stream): its message is
//!   left in the queue and SQS redelivers it after the visibility timeout — at-least-once.
//! - **Permanent failure of its own** (a re-read the source refuses, records the stream cannot
//!   take): parked in the `capture.events` dead-letter store with its reason, then deleted.
//!   Parking is idempotent per SQS message (named by its sent time and MessageId, written only
//!   if absent), so a redelivered message is never parked twice.
//!
//! The batch is published in one call; only when that fails are its events published one by one
//! to find the one at fault; whole-table re-reads then stream their partitions a page at a time,
//! and their event is published only once they all are. A refusal the stream gives every event (access denied, say) is not
//! blamed on any: nothing is parked and SQS redelivers.
//!
//! That rule is [`resolve_and_publish`], which the CloudTrail paths (log files, LookupEvents)
//! call too: every capture path decides an event's fate the same way.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;
use tracing::{debug, warn};

use super::hint::ParsedEvent;
use super::parse::parse_eventbridge;
use crate::backend::queue::{EventQueue, QueueMessage, Receive, MAX_BATCH};
use crate::backend::retry::RetryPolicy;
use crate::backend::{AwsError, ErrorClass};
use crate::capture::resolve::{Resolution, Resolver, WholeTableError};
use crate::capture::CaptureError;
use crate::config::EventsConfig;
use crate::metrics as m;
use crate::model::{Cause, CauseKind, ChangeRecord};
use crate::state::deadletter::{DeadLetter, DeadLetterStore};
use crate::stream::publisher::Publisher;
use crate::stream::StreamError;

/// Events of one receive batch re-read at the same time.
const RESOLVE_CONCURRENCY: usize = 4;

/// Event ids remembered for de-duplication.
const SEEN_CAPACITY: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("event queue {queue}: {source}")]
    Aws { queue: String, source: AwsError },
}

/// Counts for reports and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueStats {
    pub messages: u64,
    pub duplicates: u64,
    pub malformed: u64,
    /// Events parked after a failure of their own (their messages deleted).
    pub failed: u64,
    /// Events left in the queue after a transient failure (SQS redelivers them).
    pub retried: u64,
    pub records: u64,
}

pub struct QueueCapture {
    pub queue: Arc<dyn EventQueue>,
    /// Resolved with [`queue_url`].
    pub queue_url: String,
    pub config: EventsConfig,
    pub resolver: Resolver,
    pub publisher: Arc<Publisher>,
    pub dead_letters: DeadLetterStore,
}

/// Event ids already published (bounded: the oldest are forgotten first).
#[derive(Debug, Default)]
pub struct SeenEvents {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl SeenEvents {
    fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

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
pub async fn queue_url(queue: &dyn EventQueue, config: &EventsConfig) -> Result<String, QueueError> {
    if let Some(url) = &config.queue_url {
        return Ok(url.clone());
    }
    let name = config.queue_name.clone().unwrap_or_default();
    RetryPolicy::default()
        .run(|| queue.queue_url(&name))
        .await
        .map_err(|source| QueueError::Aws { queue: name, source })
}

/// One event of a batch, with every delivery of it in the batch.
struct Work {
    event: ParsedEvent,
    deliveries: Vec<QueueMessage>,
}

/// What became of one event.
pub(super) enum Outcome {
    /// Its records (this many) are on the stream: delete its messages.
    Published(u64),
    /// A transient failure (throttling, 5xx, an unreachable service): leave its messages in the
    /// queue; SQS redelivers them after the visibility timeout.
    Retry(String),
    /// A failure of this event alone that retrying cannot fix: park it, then delete it.
    Park { reason: String, class: &'static str, code: Option<String> },
}

impl Outcome {
    /// The outcome of an event whose re-read of the source failed.
    fn of_read(e: &CaptureError) -> Outcome {
        match e {
            CaptureError::Aws { source, .. } if !source.class.is_retryable() => {
                Outcome::Park { reason: e.to_string(), class: source.class.as_str(), code: source.code.clone() }
            }
            _ => Outcome::Retry(e.to_string()),
        }
    }

    /// Parks an event whose records the stream refused.
    fn park(e: &StreamError) -> Outcome {
        match e {
            StreamError::Aws(a) => {
                Outcome::Park { reason: e.to_string(), class: a.class.as_str(), code: a.code.clone() }
            }
            _ => Outcome::Park { reason: e.to_string(), class: "permanent", code: None },
        }
    }
}

/// Whose fault a failed publish is.
enum StreamFailure {
    /// The records themselves (too large, not encodable): the event's own.
    OfEvent,
    /// Retryable (throttling, 5xx) beyond the producer's own retries.
    Transient,
    /// The stream is missing or not active: nobody's records can go.
    Systemic,
    /// Refused for good (validation, access): the records' fault, or the stream's.
    Unclear,
}

fn stream_failure(e: &StreamError) -> StreamFailure {
    match e {
        StreamError::RecordTooLarge { .. } | StreamError::Encode { .. } => StreamFailure::OfEvent,
        StreamError::Aws(a) if a.class.is_retryable() => StreamFailure::Transient,
        StreamError::Aws(a) if a.class == ErrorClass::NotFound => StreamFailure::Systemic,
        StreamError::Aws(_) => StreamFailure::Unclear,
        // (An expired read never reaches a publish; it would be the stream's, not the event's.)
        StreamError::Missing { .. } | StreamError::NotActive { .. } | StreamError::Expired { .. } => {
            StreamFailure::Systemic
        }
    }
}

impl QueueCapture {
    fn aws(&self, source: AwsError) -> QueueError {
        QueueError::Aws { queue: self.queue_url.clone(), source }
    }

    /// Runs until `stop` turns true; the batch in hand is finished first.
    async fn run_loop(&self, mut stop: watch::Receiver<bool>) -> Result<QueueStats, QueueError> {
        let mut stats = QueueStats::default();
        let mut seen = SeenEvents::default();
        let mut backoff = Duration::from_millis(500);
        let receive = Receive {
            max_messages: 10,
            wait_seconds: self.config.wait_seconds,
            visibility_timeout_seconds: self.config.visibility_timeout_seconds,
        };
        while !*stop.borrow() {
            let out = tokio::select! {
                r = self.queue.receive(&self.queue_url, receive) => r,
                _ = stop.changed() => break,
            };
            let messages = match out {
                Ok(messages) => messages,
                Err(err) => {
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
            match self.handle_batch(&messages, &mut seen, &mut stats).await {
                Ok(()) => {}
                // Not deleted: SQS redelivers them after the visibility timeout.
                Err(e) => warn!(error = %e, messages = messages.len(), "event batch failed; SQS will redeliver it"),
            }
        }
        Ok(stats)
    }

    /// Handles one received batch. Each event succeeds or fails on its own: the batch's other
    /// events are published and deleted whatever happens to one of them (see the module docs).
    /// Errs only when deleting the finished messages fails (they come back and are dropped as
    /// duplicates, or parked again as no-ops).
    pub async fn handle_batch(
        &self,
        messages: &[QueueMessage],
        seen: &mut SeenEvents,
        stats: &mut QueueStats,
    ) -> Result<(), QueueError> {
        let mut finished: Vec<String> = Vec::new();
        let mut work: Vec<Work> = Vec::new();
        let (mut duplicates, mut malformed) = (0u64, 0u64);
        for delivery in messages {
            stats.messages += 1;
            let delivery = delivery.clone();
            match parse_eventbridge(&delivery.body) {
                Ok(ev) if seen.contains(&ev.id) => {
                    duplicates += 1;
                    finished.push(delivery.receipt_handle);
                }
                Ok(ev) => match work.iter_mut().find(|w| w.event.id == ev.id) {
                    // EventBridge delivered the same event twice: one piece of work, both deleted.
                    Some(w) => w.deliveries.push(delivery),
                    None => work.push(Work { event: ev, deliveries: vec![delivery] }),
                },
                Err(e) => {
                    warn!(message = %delivery.message_id, error = %e, "malformed event, dead-lettering");
                    let dl = DeadLetter::malformed_event(&delivery.message_id, &delivery.body, e.to_string());
                    if self.park(&delivery, &dl).await {
                        malformed += 1;
                        finished.push(delivery.receipt_handle);
                    }
                }
            }
        }
        stats.duplicates += duplicates;
        stats.malformed += malformed;
        m::events_received("duplicate", duplicates);
        m::events_received("malformed", malformed);

        let handles: Vec<String> = finished
            .iter()
            .cloned()
            .chain(work.iter().flat_map(|w| w.deliveries.iter().map(|d| d.receipt_handle.clone())))
            .collect();
        let events: Vec<&ParsedEvent> = work.iter().map(|w| &w.event).collect();
        let outcomes = tokio::select! {
            o = resolve_and_publish(&self.resolver, &self.publisher, CauseKind::Event, &events) => o,
            never = self.keep_invisible(&handles) => match never {},
        };
        let (mut ok, mut failed, mut retried) = (0u64, 0u64, 0u64);
        for (w, outcome) in work.into_iter().zip(outcomes) {
            match outcome {
                Outcome::Published(n) => {
                    // Only now is the event done: its records are on the stream.
                    seen.insert(&w.event.id);
                    stats.records += n;
                    ok += 1;
                    finished.extend(w.deliveries.into_iter().map(|d| d.receipt_handle));
                }
                Outcome::Retry(reason) => {
                    warn!(event = %w.event.id, error = %reason, "event failed, SQS will redeliver it");
                    retried += 1;
                }
                Outcome::Park { reason, class, code } => {
                    warn!(event = %w.event.id, error = %reason, "event failed for good, dead-lettering");
                    let mut parked = true;
                    for d in w.deliveries {
                        let dl = DeadLetter::failed_event(&d.message_id, &d.body, reason.clone(), class, code.clone());
                        if self.park(&d, &dl).await {
                            finished.push(d.receipt_handle);
                        } else {
                            parked = false;
                        }
                    }
                    if parked {
                        failed += 1;
                    }
                }
            }
        }
        stats.failed += failed;
        stats.retried += retried;
        m::events_received("ok", ok);
        m::events_received("failed", failed);
        m::events_received("retried", retried);
        self.delete(&finished).await
    }

    /// Parks a message's dead letter once (a redelivered message is not parked again); whether
    /// it is parked (and so may be deleted). A failure to park keeps the message in the queue.
    async fn park(&self, delivery: &QueueMessage, dl: &DeadLetter) -> bool {
        match self.dead_letters.park_once(dl, delivery.sent_ms, &delivery.message_id).await {
            Ok(new) => {
                if new {
                    m::dead_letters(crate::state::deadletter::CAPTURE_EVENTS, "event", 1);
                }
                true
            }
            Err(e) => {
                warn!(message = %delivery.message_id, error = %e, "cannot park the event; SQS will redeliver it");
                false
            }
        }
    }

    /// Extends the visibility of `handles` every third of the timeout, forever (cancelled by the caller).
    async fn keep_invisible(&self, handles: &[String]) -> std::convert::Infallible {
        let period = Duration::from_secs((self.config.visibility_timeout_seconds / 3).max(1) as u64);
        loop {
            tokio::time::sleep(period).await;
            for chunk in handles.chunks(MAX_BATCH) {
                let timeout = self.config.visibility_timeout_seconds;
                match self.queue.extend(&self.queue_url, chunk, timeout).await {
                    Ok(results) => {
                        for e in results.into_iter().filter_map(Result::err) {
                            debug!(error = %e, "could not extend the visibility of a message");
                        }
                    }
                    Err(e) => debug!(error = %e, "could not extend visibility"),
                }
            }
        }
    }

    async fn delete(&self, handles: &[String]) -> Result<(), QueueError> {
        for chunk in handles.chunks(MAX_BATCH) {
            let results = RetryPolicy::default()
                .run(|| self.queue.delete(&self.queue_url, chunk))
                .await
                .map_err(|e| self.aws(e))?;
            // A message not deleted comes back after its timeout and is dropped as a duplicate
            // (or parked again as a no-op).
            for e in results.into_iter().filter_map(Result::err) {
                warn!(error = %e, "could not delete a finished message; it will be redelivered and skipped");
            }
        }
        Ok(())
    }
}

/// Re-reads the source for every event, then publishes; the outcome of each event, in order.
pub(super) async fn resolve_and_publish(
    resolver: &Resolver,
    publisher: &Publisher,
    kind: CauseKind,
    events: &[&ParsedEvent],
) -> Vec<Outcome> {
    // Re-reads of a batch's events run concurrently; `buffered` keeps their order, and
    // the publisher's ordering rule settles any overlap between them.
    // Collected first: a closure over borrowed work held across the awaits would make this
    // future not `Send` for every lifetime (a compiler limitation).
    let reads: Vec<_> = events.iter().map(|ev| resolve(resolver, publisher, kind, ev)).collect();
    let resolved: Vec<Result<Resolution, CaptureError>> =
        futures::stream::iter(reads).buffered(RESOLVE_CONCURRENCY).collect().await;
    let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(events.len());
    let mut ready: Vec<(usize, Vec<ChangeRecord>)> = Vec::new();
    let mut whole: Vec<(usize, Vec<(String, String)>)> = Vec::new();
    for (i, r) in resolved.into_iter().enumerate() {
        match r {
            Ok(Resolution { records, whole_tables }) => {
                outcomes.push(None);
                ready.push((i, records));
                if !whole_tables.is_empty() {
                    whole.push((i, whole_tables));
                }
            }
            Err(e) => outcomes.push(Some(Outcome::of_read(&e))),
        }
    }
    publish_batch(publisher, &mut outcomes, ready).await;
    // Whole-table re-reads stream after the batch (their tables' records are in it): an
    // event is published only once all of its records are.
    for (i, tables) in whole {
        for (db, t) in &tables {
            let Some(Outcome::Published(n)) = outcomes[i] else { break };
            let event = events[i];
            let cause = Cause { kind, event_id: Some(event.id.clone()) };
            outcomes[i] = Some(match resolver.publish_whole_table(db, t, &cause, event.time_ms, publisher).await {
                Ok(more) => Outcome::Published(n + more),
                Err(WholeTableError::Read(e)) => Outcome::of_read(&e),
                Err(WholeTableError::Stream(e)) => match stream_failure(&e) {
                    StreamFailure::Transient | StreamFailure::Systemic => Outcome::Retry(e.to_string()),
                    // The stream took this event's other records.
                    StreamFailure::OfEvent | StreamFailure::Unclear => Outcome::park(&e),
                },
            });
        }
    }
    outcomes.into_iter().map(|o| o.unwrap_or(Outcome::Retry("not attempted".into()))).collect()
}

/// Publishes the events' records in one call, or event by event when that fails; sets the
/// outcome of each.
async fn publish_batch(
    publisher: &Publisher,
    outcomes: &mut [Option<Outcome>],
    ready: Vec<(usize, Vec<ChangeRecord>)>,
) {
    // The usual case: every record of the batch in one publish call.
    let all: Vec<ChangeRecord> = ready.iter().flat_map(|(_, rs)| rs.iter().cloned()).collect();
    let published = match publish(publisher, all).await {
        Ok(()) => {
            for (i, records) in &ready {
                outcomes[*i] = Some(Outcome::Published(records.len() as u64));
            }
            return;
        }
        Err(e) => e,
    };
    match stream_failure(&published) {
        StreamFailure::Transient | StreamFailure::Systemic => {
            for (i, _) in &ready {
                outcomes[*i] = Some(Outcome::Retry(published.to_string()));
            }
        }
        // Some event's records were refused: publish event by event to find which.
        StreamFailure::OfEvent | StreamFailure::Unclear => {
            let mut unclear = Vec::new();
            let mut stream_works = false;
            for (i, records) in ready {
                let n = records.len() as u64;
                outcomes[i] = Some(match publish(publisher, records).await {
                    Ok(()) => {
                        stream_works = true;
                        Outcome::Published(n)
                    }
                    Err(e) => match stream_failure(&e) {
                        StreamFailure::OfEvent => Outcome::park(&e),
                        StreamFailure::Unclear => {
                            unclear.push((i, e));
                            continue;
                        }
                        StreamFailure::Transient | StreamFailure::Systemic => Outcome::Retry(e.to_string()),
                    },
                });
            }
            // A refusal the stream gives one event while it takes another's is that event's
            // own; when it takes none, the stream itself may be refusing (access, KMS):
            // nothing is parked and SQS redelivers.
            for (i, e) in unclear {
                outcomes[i] = Some(if stream_works { Outcome::park(&e) } else { Outcome::Retry(e.to_string()) });
            }
        }
    }
}

async fn resolve(
    resolver: &Resolver,
    publisher: &Publisher,
    kind: CauseKind,
    event: &ParsedEvent,
) -> Result<Resolution, CaptureError> {
    let cause = Cause { kind, event_id: Some(event.id.clone()) };
    let mut resolved = resolver.resolve_split(&event.hints, &cause, Some(publisher)).await?;
    for r in &mut resolved.records {
        r.changed_at = event.time_ms;
    }
    Ok(resolved)
}

async fn publish(publisher: &Publisher, records: Vec<ChangeRecord>) -> Result<(), StreamError> {
    crate::metrics::records_captured_of(&records);
    publisher.publish(records).await.map(|_| ())
}

#[async_trait::async_trait]
impl crate::capture::Source for QueueCapture {
    type Report = QueueStats;
    type Error = QueueError;

    fn name(&self) -> &'static str {
        "event capture"
    }

    async fn run(&self, stop: watch::Receiver<bool>) -> Result<QueueStats, QueueError> {
        self.run_loop(stop).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws(code: &str) -> AwsError {
        AwsError::batch_item("glue", "GetTable", Some(code), Some("from the test"))
    }

    #[test]
    fn a_transient_source_failure_is_redelivered_and_a_permanent_one_parked() {
        for code in ["ThrottlingException", "InternalServiceException"] {
            let outcome = Outcome::of_read(&CaptureError::aws("table db.t", aws(code)));
            assert!(matches!(outcome, Outcome::Retry(_)), "{code} is retried through SQS, never parked");
        }
        let outcome = Outcome::of_read(&CaptureError::aws("table db.t", aws("AccessDeniedException")));
        match outcome {
            Outcome::Park { reason, class, code } => {
                assert!(reason.contains("db.t"), "{reason}");
                assert_eq!((class, code.as_deref()), ("permanent", Some("AccessDeniedException")));
            }
            _ => panic!("a permanent failure of one event is parked"),
        }
        assert!(matches!(Outcome::of_read(&CaptureError::Closed), Outcome::Retry(_)));
    }

    #[test]
    fn only_a_refusal_of_the_records_themselves_is_the_events_own() {
        let too_large = StreamError::RecordTooLarge { key: "1/db/t".into(), bytes: 2_000_000, limit: 1_000_000 };
        assert!(matches!(stream_failure(&too_large), StreamFailure::OfEvent));
        let throttled = StreamError::Aws(aws("ProvisionedThroughputExceededException"));
        assert!(matches!(stream_failure(&throttled), StreamFailure::Transient));
        let missing = StreamError::Aws(aws("ResourceNotFoundException"));
        assert!(matches!(stream_failure(&missing), StreamFailure::Systemic));
        // A validation error may be one event's (its key) or everyone's (access, KMS): decided by
        // whether the stream takes the batch's other events.
        assert!(matches!(stream_failure(&StreamError::Aws(aws("ValidationException"))), StreamFailure::Unclear));
    }

    use crate::backend::memory::catalog::MemoryCatalog;
    use crate::backend::memory::changelog::MemoryLog;
    use crate::backend::memory::queue::MemoryQueue;
    use crate::backend::memory::state::MemoryStore;
    use crate::capture::Source;
    use crate::model::filter::Filter;
    use crate::model::Origin;
    use crate::stream::producer::Producer;

    const UPDATE_TABLE: &str = include_str!("../../../tests/fixtures/events/table-update-table.json");

    /// A capture on `queue` whose source, stream and dead letters are never reached by these tests.
    async fn capture(queue: Arc<MemoryQueue>, queue_url: &str) -> QueueCapture {
        let origin = Origin { account: "1".into(), region: "us-east-1".into(), catalog_id: "1".into() };
        let filter = Filter::new(&[], &[]).expect("filter");
        QueueCapture {
            queue,
            queue_url: queue_url.to_string(),
            config: EventsConfig {
                queue_url: Some(queue_url.to_string()),
                queue_name: None,
                wait_seconds: 0,
                visibility_timeout_seconds: 30,
            },
            resolver: Resolver::new(Arc::new(MemoryCatalog::new("1")), origin, filter),
            publisher: Arc::new(Publisher::new(Producer::new(Arc::new(MemoryLog::new("s", 1)), 100_000))),
            dead_letters: DeadLetterStore::new(Arc::new(MemoryStore::new())),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_redelivered_event_already_published_is_deleted_unread() {
        let queue = Arc::new(MemoryQueue::default());
        let url = queue.create("events");
        queue.send(&url, UPDATE_TABLE).expect("send");
        let capture = capture(queue.clone(), &url).await;
        let receive = Receive { max_messages: 10, wait_seconds: 0, visibility_timeout_seconds: 30 };
        let messages = queue.receive(&url, receive).await.expect("receive");
        let mut seen = SeenEvents::default();
        seen.insert(&parse_eventbridge(UPDATE_TABLE).expect("fixture").id);
        let mut stats = QueueStats::default();
        capture.handle_batch(&messages, &mut seen, &mut stats).await.expect("handled");
        assert_eq!((stats.messages, stats.duplicates, stats.records), (1, 1, 0));
        assert_eq!(queue.depth(&url).await.expect("depth"), Default::default(), "deleted");
    }

    #[tokio::test(start_paused = true)]
    async fn a_transient_receive_failure_is_retried_and_a_permanent_one_stops_capture_naming_the_queue() {
        let queue = Arc::new(MemoryQueue::default());
        let url = queue.create("events");
        let mut denied = aws("AccessDeniedException");
        denied.service = "sqs";
        queue.fail_next_receive(aws("ThrottlingException"));
        queue.fail_next_receive(denied);
        let (_stop_tx, stop) = watch::channel(false);
        let err = capture(queue.clone(), &url).await.run(stop).await.expect_err("stops");
        assert!(err.to_string().contains(&url) && err.to_string().contains("AccessDenied"), "{err}");
    }

    #[test]
    fn an_event_is_seen_only_once_inserted_and_the_oldest_are_forgotten_first() {
        let mut seen = SeenEvents::default();
        assert!(!seen.contains("a"));
        assert!(seen.insert("a"));
        assert!(!seen.insert("a"));
        for i in 0..SEEN_CAPACITY {
            seen.insert(&i.to_string());
        }
        assert!(!seen.contains("a") && seen.contains("0"));
        assert_eq!(seen.set.len(), SEEN_CAPACITY);
    }
}
