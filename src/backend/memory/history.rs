//! [`MemoryHistory`]: CloudTrail's event history in memory, paged like LookupEvents, with every
//! lookup recorded for assertions. It keeps every guarantee of [`EventHistory`].

use std::sync::Mutex;

use async_trait::async_trait;

use crate::backend::history::{EventHistory, HistoryEvent, HistoryPage, Lookup};
use crate::backend::AwsError;

#[derive(Debug, Default)]
struct Inner {
    /// With their event source.
    events: Vec<(String, HistoryEvent)>,
    lookups: Vec<Lookup>,
}

/// The event history in memory. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct MemoryHistory {
    /// Events per page at most (below a lookup's `max_results`, to exercise paging).
    page_size: usize,
    inner: Mutex<Inner>,
}

impl MemoryHistory {
    pub fn new(page_size: usize) -> MemoryHistory {
        MemoryHistory { page_size: page_size.max(1), inner: Mutex::default() }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// Records an event of `source` (it becomes visible to lookups from now on).
    pub fn record(&self, source: &str, event: HistoryEvent) {
        self.with(|i| i.events.push((source.to_string(), event)));
    }

    /// Every lookup answered so far, in order.
    pub fn lookups(&self) -> Vec<Lookup> {
        self.with(|i| i.lookups.clone())
    }
}

#[async_trait]
impl EventHistory for MemoryHistory {
    async fn lookup(&self, lookup: &Lookup) -> Result<HistoryPage, AwsError> {
        self.with(|i| {
            i.lookups.push(lookup.clone());
            let matching: Vec<&HistoryEvent> = i
                .events
                .iter()
                .filter(|(source, e)| {
                    let t = e.event_time_ms.unwrap_or(lookup.end_ms);
                    *source == lookup.event_source && lookup.start_ms <= t && t <= lookup.end_ms
                })
                .map(|(_, e)| e)
                .collect();
            let from = match &lookup.next_token {
                Some(t) => t.parse::<usize>().map_err(|_| {
                    AwsError::invalid_response("cloudtrail", "LookupEvents", "not a token of this history")
                })?,
                None => 0,
            };
            let size = self.page_size.min(usize::try_from(lookup.max_results.max(1)).unwrap_or(1));
            let to = (from + size).min(matching.len());
            Ok(HistoryPage {
                events: matching.get(from..to).unwrap_or_default().iter().map(|e| (*e).clone()).collect(),
                next_token: (to < matching.len()).then(|| to.to_string()),
            })
        })
    }
}
