//! CloudTrail capture through `LookupEvents` (an option when the trail's log files cannot be
//! read). AWS allows 2 LookupEvents calls per second per account and Region, 50 events a call:
//! calls are spaced at least 500 ms apart. Each poll looks from the cursor minus an overlap
//! (events become visible late) to now; events already seen are skipped by `eventID`. The cursor
//! (the newest event time, and the ids seen inside the overlap) is durable in the state bucket,
//! written conditionally once every event of the poll is done.
//!
//! Each event succeeds or fails on its own, as on the log-file path
//! ([`capture_events`](super::cloudtrail::capture_events)): one that fails for good is parked once (named by its
//! `eventID`) and the cursor moves past it with the others; a transient failure (throttling,
//! 5xx, the stream missing) leaves the cursor where it was, so the next poll looks again over the
//! same window and retries.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use tracing::warn;

use super::cloudtrail::{capture_events, CloudTrailError, PollStats};
use super::hint::ParsedEvent;
use super::parse::parse_cloudtrail_record;
use crate::backend::history::{EventHistory, Lookup};
use crate::backend::retry::RetryPolicy;
use crate::backend::state::SharedStore;
use crate::backend::AwsError;
use crate::capture::resolve::Resolver;
use crate::config::CloudTrailLookupConfig;
use crate::model::now_millis;
use crate::state::cursor::{CursorError, Held, LOOKUP_KEY};
use crate::state::deadletter::DeadLetterStore;
use crate::stream::publisher::Publisher;

/// AWS's LookupEvents rate: 2 calls per second.
pub const MIN_CALL_SPACING: Duration = Duration::from_millis(500);
const MAX_RESULTS: i32 = 50;
/// Only Glue's events.
const EVENT_SOURCE: &str = "glue.amazonaws.com";

/// Durable position of the lookup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupCursor {
    /// Newest event time seen (epoch ms); 0 before the first poll.
    pub newest_ms: i64,
    /// Event ids seen, with their times, kept while inside the overlap window.
    pub seen: BTreeMap<String, i64>,
}

/// Reads Glue events with LookupEvents.
pub struct LookupReader {
    pub history: Arc<dyn EventHistory>,
    pub config: CloudTrailLookupConfig,
}

impl LookupReader {
    /// Every Glue event in [cursor − overlap, now] not seen before, paging with NextToken at most
    /// 2 calls/s. Updates `cursor` (not yet saved).
    pub async fn fetch(&self, now_ms: i64, cursor: &mut LookupCursor) -> Result<(Vec<ParsedEvent>, u64), AwsError> {
        let overlap = i64::try_from(self.config.overlap_seconds).unwrap_or(i64::MAX / 2).saturating_mul(1000);
        let start = if cursor.newest_ms == 0 { now_ms - overlap } else { cursor.newest_ms - overlap };
        let mut limiter = tokio::time::interval(MIN_CALL_SPACING);
        limiter.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut token: Option<String> = None;
        let (mut events, mut bad) = (Vec::new(), 0u64);
        loop {
            limiter.tick().await;
            let lookup = Lookup {
                event_source: EVENT_SOURCE.to_string(),
                start_ms: start,
                end_ms: now_ms,
                max_results: MAX_RESULTS,
                next_token: token.clone(),
            };
            let out = RetryPolicy::default().run(|| self.history.lookup(&lookup)).await?;
            for e in &out.events {
                let (id, json) = (e.event_id.as_str(), e.cloudtrail_event.as_str());
                let time = e.event_time_ms.unwrap_or(now_ms);
                if cursor.seen.contains_key(id) {
                    continue;
                }
                cursor.seen.insert(id.to_string(), time);
                cursor.newest_ms = cursor.newest_ms.max(time);
                match serde_json::from_str::<serde_json::Value>(json).map(|v| parse_cloudtrail_record(&v)) {
                    Ok(Ok(Some(ev))) => events.push(ev),
                    Ok(Ok(None)) => {}
                    Ok(Err(err)) => {
                        bad += 1;
                        warn!(event = id, error = %err, "unusable CloudTrail event");
                    }
                    Err(err) => {
                        bad += 1;
                        warn!(event = id, error = %err, "CloudTrail event is not JSON");
                    }
                }
            }
            token = out.next_token;
            if token.is_none() {
                break;
            }
        }
        let keep_after = cursor.newest_ms - overlap;
        cursor.seen.retain(|_, t| *t >= keep_after);
        Ok((events, bad))
    }
}

/// LookupEvents capture: fetch, re-read, publish, then save the cursor.
pub struct LookupCapture {
    pub reader: LookupReader,
    pub resolver: Resolver,
    pub publisher: Arc<Publisher>,
    pub state: SharedStore,
    /// Where events that fail for good are parked.
    pub dead_letters: DeadLetterStore,
}

impl LookupCapture {
    /// One poll: fetch from the durable cursor, re-read, publish (or park), then save the cursor.
    pub async fn poll_once(&self) -> Result<PollStats, CloudTrailError> {
        let aws = |source| CloudTrailError::Aws { bucket: self.state.location(), source };
        let mut cursor = Held::<LookupCursor>::load(&*self.state, LOOKUP_KEY).await?;
        // `fetch` marks the events seen in this in-memory copy only; the copy is saved after the
        // publish below, so a failed poll leaves them unseen for the next one.
        let (events, bad) = self.reader.fetch(now_millis(), &mut cursor.value).await.map_err(aws)?;
        let settled = capture_events(&self.resolver, &self.publisher, &self.dead_letters, &events).await;
        let stats = PollStats {
            events: events.len() as u64,
            bad_records: bad,
            failed: settled.failed,
            records: settled.records,
            ..Default::default()
        };
        // Not saved while an event is left to retry: the next poll looks over the same window
        // (re-publishing the others is harmless: records are full states).
        settled.finished(|| "CloudTrail LookupEvents poll".to_string())?;
        cursor.save(&*self.state).await?;
        Ok(stats)
    }

    /// Polls until `stop` turns true.
    async fn run_loop(&self, mut stop: watch::Receiver<bool>) -> Result<PollStats, CloudTrailError> {
        let mut total = PollStats::default();
        while !*stop.borrow() {
            match self.poll_once().await {
                Ok(s) => {
                    total.events += s.events;
                    total.bad_records += s.bad_records;
                    total.failed += s.failed;
                    total.records += s.records;
                }
                Err(e @ CloudTrailError::Cursor(CursorError::Conflict { .. })) => return Err(e),
                Err(e) => warn!(error = %e, "CloudTrail LookupEvents poll failed; retrying at the next poll"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(self.reader.config.poll_seconds)) => {}
                _ = stop.changed() => {}
            }
        }
        Ok(total)
    }
}

#[async_trait::async_trait]
impl crate::capture::Source for LookupCapture {
    type Report = PollStats;
    type Error = CloudTrailError;

    fn name(&self) -> &'static str {
        "CloudTrail LookupEvents capture"
    }

    async fn run(&self, stop: watch::Receiver<bool>) -> Result<PollStats, CloudTrailError> {
        self.run_loop(stop).await
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;
    use crate::backend::history::HistoryEvent;
    use crate::backend::memory::history::MemoryHistory;
    use crate::capture::events::hint::Hint;

    const EVENT_MS: i64 = 1_763_805_600_000;

    fn event(id: &str, name: &str, table: &str) -> HistoryEvent {
        let record = serde_json::json!({
            "eventVersion": "1.08", "eventSource": "glue.amazonaws.com", "eventName": name, "eventID": id,
            "eventTime": "2026-11-22T10:00:00Z", "awsRegion": "us-east-1",
            "requestParameters": {"databaseName": "db", "name": table, "tableInput": {"name": table}}
        });
        HistoryEvent { event_id: id.into(), event_time_ms: Some(EVENT_MS), cloudtrail_event: record.to_string() }
    }

    fn reader(history: &Arc<MemoryHistory>) -> LookupReader {
        LookupReader {
            history: history.clone(),
            config: CloudTrailLookupConfig { poll_seconds: 60, overlap_seconds: 900 },
        }
    }

    #[tokio::test(start_paused = true)]
    async fn pages_are_followed_at_most_two_calls_per_second() {
        let history = Arc::new(MemoryHistory::new(1));
        for page in 0..5 {
            history.record("glue.amazonaws.com", event(&format!("id-{page}"), "CreateTable", &format!("t{page}")));
        }
        history.record("s3.amazonaws.com", event("other", "CreateTable", "t"));
        let mut cursor = LookupCursor::default();
        let started = Instant::now();
        let (events, bad) = reader(&history).fetch(EVENT_MS + 100_000, &mut cursor).await.expect("fetch");
        let lookups = history.lookups();
        assert_eq!(lookups.len(), 5);
        assert!(lookups.iter().all(|l| l.event_source == "glue.amazonaws.com" && l.max_results == 50));
        assert_eq!(lookups[1].next_token.as_deref(), Some("1"), "the next page follows the token");
        assert_eq!(events.len(), 5, "only Glue's events");
        assert_eq!(bad, 0);
        assert_eq!(events[0].hints, vec![Hint::Table { database: "db".into(), table: "t0".into() }]);
        // Virtual time (the runtime's clock is paused): 5 calls need at least 4 spacings.
        assert!(started.elapsed() >= MIN_CALL_SPACING * 4, "{:?}", started.elapsed());
        assert_eq!(cursor.newest_ms, EVENT_MS);
    }

    #[tokio::test(start_paused = true)]
    async fn events_seen_in_an_earlier_poll_are_skipped_and_reads_ignored() {
        let history = Arc::new(MemoryHistory::new(50));
        history.record("glue.amazonaws.com", event("same", "DeleteTable", "t"));
        history.record("glue.amazonaws.com", event("read", "GetTable", "t"));
        let reader = reader(&history);
        let mut cursor = LookupCursor::default();
        let (first, _) = reader.fetch(EVENT_MS + 100_000, &mut cursor).await.expect("first");
        assert_eq!(first.len(), 1, "GetTable is not a change");
        let (second, _) = reader.fetch(EVENT_MS + 160_000, &mut cursor).await.expect("second");
        assert!(second.is_empty(), "the overlap re-reads the same event; it is not published twice");
        assert!(cursor.seen.contains_key("same"));
        let lookups = history.lookups();
        assert_eq!(lookups[1].start_ms, EVENT_MS - 900_000, "the second poll looks back over the overlap");
    }
}
