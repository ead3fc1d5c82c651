//! Event sources: EventBridge events through SQS, CloudTrail trail files and LookupEvents. Each
//! event is a hint, resolved by re-reading the source (`super::resolve`).

pub mod cloudtrail;
pub mod hint;
pub mod lakeformation;
pub mod lookup;
pub mod parse;
pub mod queue;
