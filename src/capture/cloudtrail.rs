//! CloudTrail capture: Glue API calls read from the trail's log files in S3
//! (`<prefix>AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/*.json.gz`).
//!
//! CloudTrail delivers files about every five minutes, sometimes late and out of name order, so a
//! "start after the last key" cursor would skip files. Each poll lists yesterday's and today's
//! folders and processes every file not processed before. The set of processed files (the last
//! two days') is the durable cursor, kept in the state bucket and written conditionally, only
//! after the file's records are published. Events are also de-duplicated by `eventID` (an id is
//! remembered only once its file's records are published).

use std::collections::{BTreeSet, HashSet};
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::watch;
use tracing::warn;

use super::events::parse_cloudtrail_file;
use super::resolve::{Resolver, WholeTableError};
use super::CaptureError;
use crate::aws::AwsError;
use crate::config::CloudTrailConfig;
use crate::model::{Cause, CauseKind};
use crate::state::{PutOutcome, StateBucket};
use crate::stream::publisher::Publisher;
use crate::stream::StreamError;

#[derive(Debug, thiserror::Error)]
pub enum CloudTrailError {
    #[error("CloudTrail bucket {bucket}: {source}")]
    Aws { bucket: String, source: AwsError },
    #[error("CloudTrail cursor {key} was changed by another lakelog process; only one may read a trail")]
    CursorConflict { key: String },
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error(transparent)]
    WholeTable(#[from] WholeTableError),
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
    /// Client for the trail's bucket.
    pub s3: aws_sdk_s3::Client,
    pub config: CloudTrailConfig,
    /// Account and region whose logs are read (the source's).
    pub account: String,
    pub region: String,
    pub resolver: Resolver,
    pub publisher: Arc<Publisher>,
    /// Where the cursor lives.
    pub state: StateBucket,
}

fn day_prefix(config: &CloudTrailConfig, account: &str, region: &str, day: OffsetDateTime) -> String {
    format!(
        "{}AWSLogs/{account}/CloudTrail/{region}/{:04}/{:02}/{:02}/",
        config.prefix,
        day.year(),
        u8::from(day.month()),
        day.day()
    )
}

impl CloudTrailCapture {
    fn cursor_key(&self) -> String {
        format!("cursors/cloudtrail/{}.json", self.config.bucket)
    }

    fn aws(&self, source: AwsError) -> CloudTrailError {
        CloudTrailError::Aws { bucket: self.config.bucket.clone(), source }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, CloudTrailError> {
        let mut pages = self.s3.list_objects_v2().bucket(&self.config.bucket).prefix(prefix).into_paginator().send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.aws(AwsError::from_sdk("s3", "ListObjectsV2", e)))?;
            keys.extend(page.contents().iter().filter_map(|o| o.key.clone()).filter(|k| k.ends_with(".json.gz")));
        }
        keys.sort();
        Ok(keys)
    }

    async fn read_file(&self, key: &str) -> Result<String, CloudTrailError> {
        let req = self.s3.get_object().bucket(&self.config.bucket).key(key);
        let obj = crate::aws::retry::RetryPolicy::default()
            .run(|| async { req.clone().send().await.map_err(|e| AwsError::from_sdk("s3", "GetObject", e)) })
            .await
            .map_err(|e| self.aws(e))?;
        let bytes = obj
            .body
            .collect()
            .await
            .map_err(|e| self.aws(AwsError::invalid_response("s3", "GetObject", &e.to_string())))?
            .into_bytes();
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
        let (mut cursor, mut etag) = match self.state.get_bytes(&self.cursor_key()).await.map_err(|e| self.aws(e))? {
            Some((body, etag)) => (serde_json::from_slice::<Cursor>(&body).unwrap_or_default(), etag),
            None => (Cursor::default(), None),
        };
        let days = [now - time::Duration::days(1), now];
        let prefixes: Vec<String> =
            days.iter().map(|d| day_prefix(&self.config, &self.account, &self.region, *d)).collect();
        for prefix in &prefixes {
            for key in self.list(prefix).await? {
                if cursor.processed.contains(&key) {
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
                let mut records = Vec::new();
                let mut whole = Vec::new();
                // Remembered as done only once the file's records are on the stream: a failed
                // publish reads the file again at the next poll, and its events must not then
                // count as duplicates.
                let mut file_ids: HashSet<String> = HashSet::new();
                for ev in events {
                    if seen_events.contains(&ev.id) || !file_ids.insert(ev.id.clone()) {
                        stats.duplicates += 1;
                        continue;
                    }
                    stats.events += 1;
                    let cause = Cause { kind: CauseKind::Cloudtrail, event_id: Some(ev.id.clone()) };
                    let resolved = self.resolver.resolve_split(&ev.hints, &cause).await?;
                    records.extend(resolved.records.into_iter().map(|mut r| {
                        r.changed_at = ev.time_ms;
                        r
                    }));
                    whole.extend(resolved.whole_tables.into_iter().map(|t| (t, cause.clone(), ev.time_ms)));
                }
                stats.records += records.len() as u64;
                crate::metrics::records_captured_of(&records);
                self.publisher.publish(records).await?;
                // Whole-table re-reads stream after the tables' own records.
                for ((db, t), cause, at) in &whole {
                    stats.records += self.resolver.publish_whole_table(db, t, cause, *at, &self.publisher).await?;
                }
                seen_events.extend(file_ids);
                // Durable only now: the file's changes are in the change log.
                cursor.processed.insert(key);
                cursor.processed.retain(|k| prefixes.iter().any(|p| k.starts_with(p)));
                let body = serde_json::to_vec(&cursor)
                    .map_err(|e| self.aws(AwsError::invalid_response("s3", "PutObject", &e.to_string())))?;
                match self.state.put_if(&self.cursor_key(), body, etag.as_deref()).await.map_err(|e| self.aws(e))? {
                    PutOutcome::Written(new) => etag = new,
                    PutOutcome::Conflict => return Err(CloudTrailError::CursorConflict { key: self.cursor_key() }),
                }
                stats.files += 1;
            }
        }
        Ok(stats)
    }

    /// Polls every `poll_seconds` until `stop` turns true.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) -> Result<PollStats, CloudTrailError> {
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
                Err(e @ CloudTrailError::CursorConflict { .. }) => return Err(e),
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
