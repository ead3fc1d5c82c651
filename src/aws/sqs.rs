//! [`SqsQueue`]: the event queue on SQS. The one place SQS SDK types are converted to lakelog's
//! [`crate::backend::queue`] model. One SDK call per trait call; retries are the caller's.

use async_trait::async_trait;
use aws_sdk_sqs::types::{
    BatchResultErrorEntry, ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageSystemAttributeName, QueueAttributeName,
};

use crate::backend::queue::{EventQueue, QueueDepth, QueueMessage, Receive};
use crate::backend::AwsError;

const SERVICE: &str = "sqs";

/// SQS queues through one client.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client) -> SqsQueue {
        SqsQueue { client }
    }
}

/// Per-entry results of a batch call whose entries were given ids `0..n`.
fn per_entry(operation: &'static str, n: usize, failed: &[BatchResultErrorEntry]) -> Vec<Result<(), AwsError>> {
    (0..n)
        .map(|i| match failed.iter().find(|f| f.id == i.to_string()) {
            Some(f) => Err(AwsError::batch_item(SERVICE, operation, Some(&f.code), f.message.as_deref())),
            None => Ok(()),
        })
        .collect()
}

#[async_trait]
impl EventQueue for SqsQueue {
    async fn queue_url(&self, name: &str) -> Result<String, AwsError> {
        let out = self
            .client
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "GetQueueUrl", e))?;
        out.queue_url.ok_or_else(|| AwsError::invalid_response(SERVICE, "GetQueueUrl", "no URL"))
    }

    async fn receive(&self, queue_url: &str, receive: Receive) -> Result<Vec<QueueMessage>, AwsError> {
        let out = self
            .client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(receive.max_messages)
            .wait_time_seconds(receive.wait_seconds)
            .visibility_timeout(receive.visibility_timeout_seconds)
            // Stable across redeliveries: names a parked message's dead letter.
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "ReceiveMessage", e))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            // A message without a receipt handle cannot be deleted: leave it to its redelivery.
            .filter_map(|m| {
                let sent_ms = m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                Some(QueueMessage {
                    receipt_handle: m.receipt_handle?,
                    message_id: m.message_id.unwrap_or_default(),
                    body: m.body.unwrap_or_default(),
                    sent_ms,
                })
            })
            .collect())
    }

    async fn delete(&self, queue_url: &str, handles: &[String]) -> Result<Vec<Result<(), AwsError>>, AwsError> {
        let mut entries = Vec::with_capacity(handles.len());
        for (i, h) in handles.iter().enumerate() {
            let entry = DeleteMessageBatchRequestEntry::builder().id(i.to_string()).receipt_handle(h).build();
            entries.push(entry.map_err(|e| AwsError::invalid_response(SERVICE, "DeleteMessageBatch", &e.to_string()))?);
        }
        let req = self.client.delete_message_batch().queue_url(queue_url).set_entries(Some(entries));
        let out = req.send().await.map_err(|e| AwsError::from_sdk(SERVICE, "DeleteMessageBatch", e))?;
        Ok(per_entry("DeleteMessageBatch", handles.len(), &out.failed))
    }

    async fn extend(
        &self,
        queue_url: &str,
        handles: &[String],
        timeout_seconds: i32,
    ) -> Result<Vec<Result<(), AwsError>>, AwsError> {
        const OP: &str = "ChangeMessageVisibilityBatch";
        let mut entries = Vec::with_capacity(handles.len());
        for (i, h) in handles.iter().enumerate() {
            let entry = ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(h)
                .visibility_timeout(timeout_seconds)
                .build();
            entries.push(entry.map_err(|e| AwsError::invalid_response(SERVICE, OP, &e.to_string()))?);
        }
        let req = self.client.change_message_visibility_batch().queue_url(queue_url).set_entries(Some(entries));
        let out = req.send().await.map_err(|e| AwsError::from_sdk(SERVICE, OP, e))?;
        Ok(per_entry(OP, handles.len(), &out.failed))
    }

    async fn depth(&self, queue_url: &str) -> Result<QueueDepth, AwsError> {
        use QueueAttributeName as A;
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "GetQueueAttributes", e))?;
        let attrs = out.attributes.unwrap_or_default();
        let count = |a: A| attrs.get(&a).and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok(QueueDepth {
            waiting: count(A::ApproximateNumberOfMessages),
            in_flight: count(A::ApproximateNumberOfMessagesNotVisible),
        })
    }
}
