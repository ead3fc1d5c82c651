//! [`CloudTrailHistory`]: the event history on CloudTrail `LookupEvents`. The one place CloudTrail
//! SDK types are converted to lakelog's [`crate::backend::history`] model. One SDK call per
//! lookup; pacing (2 calls/s) and retries are the caller's.
//!
//! (Reading the trail's log files from S3 is `crate::capture::events::cloudtrail`'s, through the
//! state backend.)

use async_trait::async_trait;
use aws_sdk_cloudtrail::types::{LookupAttribute, LookupAttributeKey};
use aws_smithy_types::DateTime;

use crate::backend::history::{EventHistory, HistoryEvent, HistoryPage, Lookup};
use crate::backend::AwsError;

const SERVICE: &str = "cloudtrail";

/// LookupEvents through one client.
#[derive(Debug, Clone)]
pub struct CloudTrailHistory {
    client: aws_sdk_cloudtrail::Client,
}

impl CloudTrailHistory {
    pub fn new(client: aws_sdk_cloudtrail::Client) -> CloudTrailHistory {
        CloudTrailHistory { client }
    }
}

#[async_trait]
impl EventHistory for CloudTrailHistory {
    async fn lookup(&self, lookup: &Lookup) -> Result<HistoryPage, AwsError> {
        let attribute = LookupAttribute::builder()
            .attribute_key(LookupAttributeKey::EventSource)
            .attribute_value(&lookup.event_source)
            .build()
            .map_err(|e| AwsError::invalid_response(SERVICE, "LookupEvents", &e.to_string()))?;
        let out = self
            .client
            .lookup_events()
            .lookup_attributes(attribute)
            .start_time(DateTime::from_millis(lookup.start_ms))
            .end_time(DateTime::from_millis(lookup.end_ms))
            .max_results(lookup.max_results)
            .set_next_token(lookup.next_token.clone())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "LookupEvents", e))?;
        let events = out
            .events
            .unwrap_or_default()
            .into_iter()
            // Without an id or a record there is nothing to de-duplicate or parse.
            .filter_map(|e| {
                Some(HistoryEvent {
                    event_time_ms: e.event_time.and_then(|t| t.to_millis().ok()),
                    event_id: e.event_id?,
                    cloudtrail_event: e.cloud_trail_event?,
                })
            })
            .collect();
        Ok(HistoryPage { events, next_token: out.next_token })
    }
}

/// LookupEvents is not implemented by any local emulator: these tests pin the request and answer
/// shapes of the API reference with canned responses.
#[cfg(test)]
mod tests {
    use aws_sdk_cloudtrail::operation::lookup_events::LookupEventsOutput;
    use aws_sdk_cloudtrail::types::Event;
    use aws_sdk_cloudtrail::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    use super::*;

    #[tokio::test]
    async fn a_lookup_asks_for_the_source_range_and_page_and_keeps_events_with_an_id_and_a_record() {
        let rule = mock!(Client::lookup_events)
            .match_requests(|r| {
                r.max_results() == Some(50)
                    && r.next_token() == Some("page-2")
                    && r.start_time().map(|t| t.to_millis().ok()) == Some(Some(1_000))
                    && r.end_time().map(|t| t.to_millis().ok()) == Some(Some(2_000))
                    && r.lookup_attributes().first().is_some_and(|a| {
                        a.attribute_key == LookupAttributeKey::EventSource && a.attribute_value == "glue.amazonaws.com"
                    })
            })
            .then_output(|| {
                LookupEventsOutput::builder()
                    .events(
                        Event::builder()
                            .event_id("id-1")
                            .event_time(DateTime::from_millis(1_500))
                            .cloud_trail_event("{}")
                            .build(),
                    )
                    .events(Event::builder().event_id("no-record").build())
                    .next_token("page-3")
                    .build()
            });
        let history = CloudTrailHistory::new(mock_client!(aws_sdk_cloudtrail, RuleMode::MatchAny, &[&rule]));
        let lookup = Lookup {
            event_source: "glue.amazonaws.com".into(),
            start_ms: 1_000,
            end_ms: 2_000,
            max_results: 50,
            next_token: Some("page-2".into()),
        };
        let page = history.lookup(&lookup).await.expect("lookup");
        assert_eq!(rule.num_calls(), 1);
        assert_eq!(page.next_token.as_deref(), Some("page-3"));
        assert_eq!(
            page.events,
            vec![HistoryEvent { event_id: "id-1".into(), event_time_ms: Some(1_500), cloudtrail_event: "{}".into() }]
        );
    }
}
