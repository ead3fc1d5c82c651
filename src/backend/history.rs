//! The event history as a backend: CloudTrail's LookupEvents, the management events of the last
//! 90 days (CloudTrail in production,
//! [`MemoryHistory`](crate::backend::memory::history::MemoryHistory) in tests).
//!
//! This module owns the shape of one lookup (a time range, an event source, a page token) and of
//! the events it returns. It must never parse an event's CloudTrail record (that is
//! `crate::capture::events`), pace calls or retry: each call is one page, one attempt, failing
//! with a classified [`AwsError`].
//!
//! # Guarantees
//! - **Pages.** A lookup answers at most `max_results` events and a token while more match;
//!   following the tokens returns every matching event once per walk.
//! - **Late, not lost.** An event may become visible minutes after its time; a later lookup over
//!   the same range returns it. Callers look back over an overlap and skip ids already seen.
//! - **No order promised** within or across pages (CloudTrail returns newest first).

use std::fmt;

use async_trait::async_trait;

use crate::backend::AwsError;

/// One page of a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// Only events of this source (`glue.amazonaws.com`).
    pub event_source: String,
    /// Inclusive range of event times (epoch ms).
    pub start_ms: i64,
    pub end_ms: i64,
    pub max_results: i32,
    /// The previous page's token; `None` for the first page.
    pub next_token: Option<String>,
}

/// One management event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEvent {
    pub event_id: String,
    /// When the call was made (epoch ms), when given.
    pub event_time_ms: Option<i64>,
    /// The CloudTrail record as JSON.
    pub cloudtrail_event: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryPage {
    pub events: Vec<HistoryEvent>,
    /// Set while more events match.
    pub next_token: Option<String>,
}

/// The event history. See the module docs for what every implementation guarantees.
#[async_trait]
pub trait EventHistory: Send + Sync + fmt::Debug {
    async fn lookup(&self, lookup: &Lookup) -> Result<HistoryPage, AwsError>;
}
