//! CloudTrail capture: Glue API calls read from the trail's log files in S3
//! (`<prefix>AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/*.json.gz`).
//!
//! CloudTrail delivers files about every five minutes, sometimes late and out of name order, so a
//! "start after the last key" cursor would skip files. Each poll lists yesterday's and today's
//! folders and processes every file not processed before. The set of processed files (the last
//! two days') is the durable cursor, kept in the state bucket and written conditionally, only
//! after the file is done. Events are also de-duplicated by `eventID`.
//!
//! Every event succeeds or fails on its own, by the rule of the SQS path ([`resolve_and_publish`]:
//! one publish call for the file, event by event only when that fails):
//! - **Published**: its records are acknowledged by Kinesis; only now is its id remembered.
//! - **Permanent failure of its own** (a re-read the source refuses, records the stream cannot
//!   take): parked in the `capture.events` dead-letter store with its reason, once (named by its
//!   `eventID` and time, written only if absent), and remembered as done.
//! - **Transient failure** (throttling, 5xx, the stream missing): the file stays unprocessed and
//!   the poll ends with [`CloudTrailError::Retried`]; the next poll reads the file again and
//!   retries the events not yet done.
//!
//! A file is done, and enters the cursor, once each of its events is published or parked.
//! [`capture_events`] applies this rule for LookupEvents too.

use std::collections::{BTreeSet, HashSet};
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::watch;
use tracing::warn;

use super::hint::ParsedEvent;
use super::parse::parse_cloudtrail_file;
use super::queue::{resolve_and_publish, Outcome};
use crate::backend::state::{each_key, SharedStore};
use crate::backend::AwsError;
use crate::capture::resolve::Resolver;
use crate::config::CloudTrailConfig;
use crate::metrics as m;
use crate::model::CauseKind;
use crate::state::cursor::{trail_files_key, CursorError, Held};
use crate::state::deadletter::{DeadLetter, DeadLetterStore, CAPTURE_EVENTS};
use crate::stream::publisher::Publisher;

#[derive(Debug, thiserror::Error)]
pub enum CloudTrailError {
    #[error("CloudTrail bucket {bucket}: {source}")]
    Aws { bucket: String, source: AwsError },
    #[error(transparent)]
    Cursor(#[from] CursorError),
    #[error(
        "{what}: {events} event(s) failed transiently and are retried at the next poll; the first, {event}: {reason}"
    )]
    Retried { what: String, events: usize, event: String, reason: String },
}

/// The durable cursor: files already processed (last two days).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub processed: BTreeSet<String>,
}

/// Counts of one poll.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PollStats {
    pub files: u64,
    pub events: u64,
    pub duplicates: u64,
    pub bad_records: u64,
    /// Events parked after a failure of their own (the rest of their file or poll went on).
    pub failed: u64,
    pub records: u64,
}

pub struct CloudTrailCapture {
    /// The trail's bucket (read only: listed and read).
    pub trail: SharedStore,
    pub config: CloudTrailConfig,
    /// Account and region whose logs are read (the source's).
    pub account: String,
    pub region: String,
    pub resolver: Resolver,
    pub publisher: Arc<Publisher>,
    /// Where the cursor lives.
    pub state: SharedStore,
    /// Where events that fail for good are parked.
    pub dead_letters: DeadLetterStore,
}

/// What became of the events of one log file or one LookupEvents poll.
#[derive(Debug, Default)]
pub(super) struct Settled {
    /// Ids of the events published or parked: done, never to be captured again.
    pub done: Vec<String>,
    pub records: u64,
    /// Events parked.
    pub failed: u64,
    /// Events to retry at the next poll (id, reason), in order.
    pub retried: Vec<(String, String)>,
}

impl Settled {
    /// Ok when nothing is left to retry; else the error that keeps the cursor where it is.
    pub fn finished(&self, what: impl FnOnce() -> String) -> Result<(), CloudTrailError> {
        match self.retried.first() {
            None => Ok(()),
            Some((event, reason)) => Err(CloudTrailError::Retried {
                what: what(),
                events: self.retried.len(),
                event: event.clone(),
                reason: reason.clone(),
            }),
        }
    }
}

/// Re-reads and publishes CloudTrail events; each is published, parked (a failure of its own
/// that retrying cannot fix), or left to retry (see the module docs).
pub(super) async fn capture_events(
    resolver: &Resolver,
    publisher: &Publisher,
    dead_letters: &DeadLetterStore,
    events: &[ParsedEvent],
) -> Settled {
    let refs: Vec<&ParsedEvent> = events.iter().collect();
    let outcomes = resolve_and_publish(resolver, publisher, CauseKind::Cloudtrail, &refs).await;
    let mut settled = Settled::default();
    for (ev, outcome) in events.iter().zip(outcomes) {
        match outcome {
            Outcome::Published(n) => {
                settled.records += n;
                settled.done.push(ev.id.clone());
            }
            Outcome::Retry(reason) => {
                warn!(event = %ev.id, error = %reason, "CloudTrail event failed; retrying at the next poll");
                settled.retried.push((ev.id.clone(), reason));
            }
            Outcome::Park { reason, class, code } => {
                warn!(event = %ev.id, error = %reason, "CloudTrail event failed for good, dead-lettering");
                // The parsed event (id, time, what to re-read) is what a replay needs.
                let body = serde_json::to_string(ev).unwrap_or_else(|_| ev.id.clone());
                let dl = DeadLetter::failed_event(&ev.id, &body, reason, class, code);
                // Named by the event's own id and time: a re-read file or an overlapping
                // lookup parks it once.
                match dead_letters.park_once(&dl, ev.time_ms.unwrap_or(0), &ev.id).await {
                    Ok(new) => {
                        if new {
                            m::dead_letters(CAPTURE_EVENTS, "event", 1);
                        }
                        settled.failed += 1;
                        settled.done.push(ev.id.clone());
                    }
                    Err(e) => {
                        warn!(event = %ev.id, error = %e, "cannot park the CloudTrail event; retrying at the next poll");
                        settled.retried.push((ev.id.clone(), format!("parking it failed: {e}")));
                    }
                }
            }
        }
    }
    settled
}

fn day_prefix(config: &CloudTrailConfig, account: &str, region: &str, day: OffsetDateTime) -> String {
    // The trail's S3KeyPrefix, as CloudTrail takes it: `logs` and `logs/` both mean `logs/AWSLogs/...`.
    let prefix = config.prefix.trim_matches('/');
    format!(
        "{prefix}{}AWSLogs/{account}/CloudTrail/{region}/{:04}/{:02}/{:02}/",
        if prefix.is_empty() { "" } else { "/" },
        day.year(),
        u8::from(day.month()),
        day.day()
    )
}

impl CloudTrailCapture {
    fn aws(&self, source: AwsError) -> CloudTrailError {
        CloudTrailError::Aws { bucket: self.config.bucket.clone(), source }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, CloudTrailError> {
        let mut keys = Vec::new();
        each_key(&*self.trail, prefix, |page| keys.extend(page.into_iter().filter(|k| k.ends_with(".json.gz"))))
            .await
            .map_err(|e| self.aws(e))?;
        Ok(keys)
    }

    async fn read_file(&self, key: &str) -> Result<String, CloudTrailError> {
        let Some(stored) = self.trail.get(key).await.map_err(|e| self.aws(e))? else {
            return Err(self.aws(AwsError::invalid_response(
                "s3",
                "GetObject",
                &format!("{key} vanished after listing"),
            )));
        };
        let bytes = stored.bytes;
        let mut text = String::new();
        flate2::read::GzDecoder::new(&bytes[..]).read_to_string(&mut text).map_err(|e| {
            self.aws(AwsError::invalid_response("s3", "GetObject", &format!("{key} is not gzip JSON: {e}")))
        })?;
        Ok(text)
    }

    /// Processes every new log file of yesterday and today (UTC, relative to `now`).
    pub async fn poll_once(
        &self,
        now: OffsetDateTime,
        seen_events: &mut HashSet<String>,
    ) -> Result<PollStats, CloudTrailError> {
        let mut stats = PollStats::default();
        let mut cursor = Held::<Cursor>::load(&*self.state, &trail_files_key(&self.config.bucket)).await?;
        let days = [now - time::Duration::days(1), now];
        let prefixes: Vec<String> =
            days.iter().map(|d| day_prefix(&self.config, &self.account, &self.region, *d)).collect();
        for prefix in &prefixes {
            for key in self.list(prefix).await? {
                if cursor.value.processed.contains(&key) {
                    continue;
                }
                let text = self.read_file(&key).await?;
                let (events, errors) = match parse_cloudtrail_file(&text) {
                    Ok(parsed) => parsed,
                    Err(e) => {
                        warn!(file = %key, error = %e, "unreadable CloudTrail log file, skipping it");
                        (Vec::new(), vec![e])
                    }
                };
                stats.bad_records += errors.len() as u64;
                let mut file_ids: HashSet<&str> = HashSet::new();
                let mut fresh = Vec::new();
                for ev in &events {
                    if seen_events.contains(&ev.id) || !file_ids.insert(&ev.id) {
                        stats.duplicates += 1;
                    } else {
                        fresh.push(ev.clone());
                    }
                }
                stats.events += fresh.len() as u64;
                let settled = capture_events(&self.resolver, &self.publisher, &self.dead_letters, &fresh).await;
                stats.records += settled.records;
                stats.failed += settled.failed;
                // Remembered as done only once published or parked: a file read again at the next
                // poll retries only the events not yet done.
                seen_events.extend(settled.done.iter().cloned());
                settled.finished(|| format!("CloudTrail log file {key}"))?;
                // Durable only now: the file's changes are in the change log.
                cursor.value.processed.insert(key);
                cursor.value.processed.retain(|k| prefixes.iter().any(|p| k.starts_with(p)));
                cursor.save(&*self.state).await?;
                stats.files += 1;
            }
        }
        Ok(stats)
    }

    /// Polls every `poll_seconds` until `stop` turns true.
    async fn run_loop(&self, mut stop: watch::Receiver<bool>) -> Result<PollStats, CloudTrailError> {
        let mut total = PollStats::default();
        let mut seen = HashSet::new();
        while !*stop.borrow() {
            match self.poll_once(OffsetDateTime::now_utc(), &mut seen).await {
                Ok(s) => {
                    total.files += s.files;
                    total.events += s.events;
                    total.duplicates += s.duplicates;
                    total.bad_records += s.bad_records;
                    total.failed += s.failed;
                    total.records += s.records;
                }
                Err(e @ CloudTrailError::Cursor(CursorError::Conflict { .. })) => return Err(e),
                Err(e) => warn!(error = %e, "CloudTrail poll failed; retrying at the next poll"),
            }
            if seen.len() > 200_000 {
                seen.clear();
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(self.config.poll_seconds)) => {}
                _ = stop.changed() => {}
            }
        }
        Ok(total)
    }
}

#[async_trait::async_trait]
impl crate::capture::Source for CloudTrailCapture {
    type Report = PollStats;
    type Error = CloudTrailError;

    fn name(&self) -> &'static str {
        "CloudTrail capture"
    }

    async fn run(&self, stop: watch::Receiver<bool>) -> Result<PollStats, CloudTrailError> {
        self.run_loop(stop).await
    }
}
