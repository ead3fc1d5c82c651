//! The event queue as a backend: the SQS queue EventBridge fills with Glue's events (SQS in
//! production, [`MemoryQueue`](crate::backend::memory::queue::MemoryQueue) in tests).
//!
//! This module owns the shape of that conversation (messages with receipt handles, per-entry
//! results of batch calls, the queue's depth). It must never parse a message (that is
//! `crate::capture::events`), nor retry: each method makes one attempt and fails with a classified
//! [`AwsError`].
//!
//! # Guarantees
//! - **At least once.** A received message stays in the queue, invisible for the visibility
//!   timeout, until it is deleted with the receipt handle of its latest receive; not deleted in
//!   time, it is delivered again (with a new handle). Messages may also come twice without that.
//! - **No order.** Messages come in any order (a standard queue).
//! - **Bodies** are at most 256 KiB.
//! - **Batch calls answer per entry.** Deleting or extending ten handles may succeed for some and
//!   fail for others; `Err` means the call as a whole failed.

use std::fmt;

use async_trait::async_trait;

use crate::backend::AwsError;

/// Largest message body SQS takes.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Handles of one [`EventQueue::delete`] or [`EventQueue::extend`]: 1 to this many (SQS refuses
/// an empty batch or a larger one as a whole).
pub const MAX_BATCH: usize = 10;

/// One received copy of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    /// Names this receive: deletes and visibility changes use it.
    pub receipt_handle: String,
    pub message_id: String,
    pub body: String,
    /// When the queue first received the message (epoch ms; stable across redeliveries); 0 when
    /// not known.
    pub sent_ms: i64,
}

/// How a receive waits and hides what it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receive {
    /// At most this many messages (SQS: 1 to 10).
    pub max_messages: i32,
    /// Long polling: wait up to this long for a first message.
    pub wait_seconds: i32,
    pub visibility_timeout_seconds: i32,
}

/// How many messages wait, and how many are received but not yet deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub waiting: u64,
    pub in_flight: u64,
}

/// The event queue. See the module docs for what every implementation guarantees.
#[async_trait]
pub trait EventQueue: Send + Sync + fmt::Debug {
    /// The URL of the queue named `name`.
    async fn queue_url(&self, name: &str) -> Result<String, AwsError>;

    /// Up to `receive.max_messages` messages, hidden for the visibility timeout.
    async fn receive(&self, queue_url: &str, receive: Receive) -> Result<Vec<QueueMessage>, AwsError>;

    /// Deletes messages by receipt handle (1 to [`MAX_BATCH`]); one result per handle, in order.
    async fn delete(&self, queue_url: &str, handles: &[String]) -> Result<Vec<Result<(), AwsError>>, AwsError>;

    /// Hides messages for `timeout_seconds` more from now (1 to [`MAX_BATCH`]); one result per
    /// handle.
    async fn extend(
        &self,
        queue_url: &str,
        handles: &[String],
        timeout_seconds: i32,
    ) -> Result<Vec<Result<(), AwsError>>, AwsError>;

    /// The queue's approximate depth (for `lakelog status`).
    async fn depth(&self, queue_url: &str) -> Result<QueueDepth, AwsError>;
}
