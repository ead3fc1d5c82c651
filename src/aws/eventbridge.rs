//! [`EventBridge`]: the EventBridge (and SQS) calls the demo, the tests and the benchmarks use to
//! deliver Glue's events on the local emulator (`crate::simulate::events`). No backend trait: the
//! pipeline itself never talks to EventBridge (it reads the queue through
//! [`crate::backend::queue::EventQueue`]), so there is no policy to test on a fake.

use aws_sdk_eventbridge::types::{PutEventsRequestEntry, Target};
use aws_sdk_sqs::types::QueueAttributeName;

use super::client::Endpoint;
use crate::backend::AwsError;

/// One event to put: its source, detail-type and detail (JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusEvent {
    pub source: String,
    pub detail_type: String,
    pub detail: String,
}

/// A queue a rule delivers to.
#[derive(Debug, Clone)]
pub struct QueueRoute {
    pub queue_url: String,
    pub queue_arn: String,
}

/// EventBridge's default bus, and SQS for the queues its rules deliver to.
#[derive(Debug, Clone)]
pub struct EventBridge {
    eventbridge: aws_sdk_eventbridge::Client,
    sqs: aws_sdk_sqs::Client,
}

impl EventBridge {
    /// Both clients on one endpoint (the emulator serves EventBridge and SQS together).
    pub async fn connect(endpoint: &Endpoint) -> EventBridge {
        EventBridge { eventbridge: endpoint.eventbridge().await, sqs: endpoint.sqs().await }
    }

    /// Creates (or reuses) queue `name` and a rule `name` with `pattern` delivering to it.
    pub async fn route_to_queue(&self, name: &str, pattern: &serde_json::Value) -> Result<QueueRoute, AwsError> {
        let queue_url = self
            .sqs
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("sqs", "CreateQueue", e))?
            .queue_url
            .ok_or_else(|| AwsError::invalid_response("sqs", "CreateQueue", "no queue URL"))?;
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("sqs", "GetQueueAttributes", e))?;
        let queue_arn = attrs
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .ok_or_else(|| AwsError::invalid_response("sqs", "GetQueueAttributes", "no QueueArn"))?;
        self.eventbridge
            .put_rule()
            .name(name)
            .event_pattern(pattern.to_string())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("eventbridge", "PutRule", e))?;
        let target = Target::builder()
            .id("lakelog")
            .arn(&queue_arn)
            .build()
            .map_err(|e| AwsError::invalid_response("eventbridge", "PutTargets", &e.to_string()))?;
        self.eventbridge
            .put_targets()
            .rule(name)
            .targets(target)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("eventbridge", "PutTargets", e))?;
        Ok(QueueRoute { queue_url, queue_arn })
    }

    /// Puts up to 10 events in one call; how many of them EventBridge failed.
    pub async fn put_events(&self, events: &[BusEvent]) -> Result<u32, AwsError> {
        let entries: Vec<PutEventsRequestEntry> = events
            .iter()
            .map(|e| {
                PutEventsRequestEntry::builder().source(&e.source).detail_type(&e.detail_type).detail(&e.detail).build()
            })
            .collect();
        let out = self
            .eventbridge
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("eventbridge", "PutEvents", e))?;
        Ok(u32::try_from(out.failed_entry_count).unwrap_or(u32::MAX))
    }
}
