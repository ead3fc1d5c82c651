//! Delivering Glue's EventBridge events on the local emulator, in AWS's documented shape, the way
//! Glue would: the emulator never emits them itself. Also a crawler-like burst that makes Glue
//! changes and delivers the matching events, with an optional deliberate loss rate (events are
//! best effort in AWS too).
//!
//! Note: AWS itself refuses `PutEvents` with an `aws.*` source from customers; this is a tool for
//! the emulator, the tests and the benchmarks.

use serde_json::json;

use super::catalog::GeneratedCatalog;
use crate::aws::eventbridge::{BusEvent, EventBridge};
use crate::backend::catalog::{Catalog, PARTITION_WRITE_CHUNK};
use crate::backend::{AwsError, ErrorClass};

/// An EventBridge rule matching Glue's events, delivering to an SQS queue.
pub type EventRoute = crate::aws::eventbridge::QueueRoute;

/// Creates (or reuses) queue `name` and a rule `name` sending every `aws.glue` event to it.
pub async fn route_glue_events(eventbridge: &EventBridge, name: &str) -> Result<EventRoute, AwsError> {
    eventbridge.route_to_queue(name, &json!({ "source": ["aws.glue"] })).await
}

/// One Glue event: its detail-type and detail, as Glue documents them.
#[derive(Debug, Clone, PartialEq)]
pub struct GlueEvent {
    pub detail_type: &'static str,
    pub detail: serde_json::Value,
}

pub const TABLE_STATE_CHANGE: &str = "Glue Data Catalog Table State Change";
pub const DATABASE_STATE_CHANGE: &str = "Glue Data Catalog Database State Change";

impl GlueEvent {
    /// A "Database State Change": CreateDatabase, UpdateDatabase, DeleteDatabase (no tables), or
    /// CreateTable, DeleteTable, BatchDeleteTable (with the tables).
    pub fn database(type_of_change: &str, database: &str, changed_tables: &[&str]) -> GlueEvent {
        let mut detail = json!({ "databaseName": database, "typeOfChange": type_of_change });
        if !changed_tables.is_empty() {
            detail["changedTables"] = json!(changed_tables);
        }
        GlueEvent { detail_type: DATABASE_STATE_CHANGE, detail }
    }

    /// A "Table State Change": UpdateTable (no partitions) or a partition change, with the
    /// partitions written as Glue writes them: `"[v1, v2]"`.
    pub fn table(type_of_change: &str, database: &str, table: &str, partitions: &[Vec<String>]) -> GlueEvent {
        let mut detail = json!({ "databaseName": database, "tableName": table, "typeOfChange": type_of_change });
        if !partitions.is_empty() {
            let changed: Vec<String> = partitions.iter().map(|v| format!("[{}]", v.join(", "))).collect();
            detail["changedPartitions"] = json!(changed);
        }
        GlueEvent { detail_type: TABLE_STATE_CHANGE, detail }
    }
}

/// Sends events through EventBridge (PutEvents, 10 entries a call).
pub async fn deliver(eventbridge: &EventBridge, events: &[GlueEvent]) -> Result<(), AwsError> {
    for chunk in events.chunks(10) {
        let entries: Vec<BusEvent> = chunk
            .iter()
            .map(|e| BusEvent {
                source: "aws.glue".into(),
                detail_type: e.detail_type.into(),
                detail: e.detail.to_string(),
            })
            .collect();
        let failed = eventbridge.put_events(&entries).await?;
        if failed > 0 {
            return Err(AwsError {
                service: "eventbridge",
                operation: "PutEvents",
                class: ErrorClass::Retryable,
                code: None,
                message: format!("{failed} of {} entries failed", chunk.len()),
            });
        }
    }
    Ok(())
}

/// What a burst did.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Burst {
    pub tables: u64,
    pub partitions: u64,
    pub events_sent: u64,
    pub events_dropped: u64,
}

/// Writes `catalog` the way a crawler's run would (database, tables, partitions in batches of
/// 100) and delivers the event Glue would send for each write. Every `drop_every`-th event
/// (0 = none) is deliberately not delivered.
pub async fn crawler_burst(
    target: &dyn Catalog,
    eventbridge: &EventBridge,
    catalog: &GeneratedCatalog,
    drop_every: usize,
) -> Result<Burst, AwsError> {
    let mut events = Vec::new();
    let mut burst = Burst::default();
    for db in &catalog.databases {
        match target.create_database(db).await {
            Err(e) if e.class != ErrorClass::AlreadyExists => return Err(e),
            _ => events.push(GlueEvent::database("CreateDatabase", &db.name, &[])),
        }
    }
    for t in &catalog.tables {
        match target.create_table(t).await {
            Err(e) if e.class != ErrorClass::AlreadyExists => return Err(e),
            _ => events.push(GlueEvent::database("CreateTable", &t.database_name, &[&t.name])),
        }
        burst.tables += 1;
    }
    let mut by_table: std::collections::BTreeMap<(&str, &str), Vec<_>> = Default::default();
    for p in &catalog.partitions {
        by_table.entry((p.database_name.as_str(), p.table_name.as_str())).or_default().push(p.clone());
    }
    let mut sent = 0usize;
    let mut flush = |events: &mut Vec<GlueEvent>, burst: &mut Burst| {
        let mut keep = Vec::with_capacity(events.len());
        for e in events.drain(..) {
            sent += 1;
            if drop_every > 0 && sent % drop_every == 0 {
                burst.events_dropped += 1;
            } else {
                keep.push(e);
            }
        }
        keep
    };
    let first = flush(&mut events, &mut burst);
    deliver(eventbridge, &first).await?;
    burst.events_sent += first.len() as u64;
    for ((db, t), parts) in by_table {
        for chunk in parts.chunks(PARTITION_WRITE_CHUNK) {
            let errors = target.create_partitions(db, t, chunk).await?;
            if let Some(e) = errors.into_iter().find(|e| e.error.class != ErrorClass::AlreadyExists) {
                return Err(e.error);
            }
            burst.partitions += chunk.len() as u64;
            let values: Vec<Vec<String>> = chunk.iter().map(|p| p.values.clone()).collect();
            events.push(GlueEvent::table("BatchCreatePartition", db, t, &values));
            if events.len() >= 10 {
                let batch = flush(&mut events, &mut burst);
                deliver(eventbridge, &batch).await?;
                burst.events_sent += batch.len() as u64;
            }
        }
    }
    let rest = flush(&mut events, &mut burst);
    deliver(eventbridge, &rest).await?;
    burst.events_sent += rest.len() as u64;
    Ok(burst)
}
