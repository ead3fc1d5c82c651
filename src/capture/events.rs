//! Parsing the events capture receives into [`ParsedEvent`]s.
//!
//! Shapes, as AWS documents them:
//! - EventBridge envelope: `version`, `id`, `detail-type`, `source`, `account` (optional here: the
//!   local emulator omits it), `time` (RFC 3339), `region`, `resources`, `detail`.
//! - "Glue Data Catalog Table State Change": `detail.databaseName`, `tableName`, `typeOfChange`,
//!   and for partition changes `changedPartitions`, strings like `"[2026-01-01, us]"`.
//! - "Glue Data Catalog Database State Change": `detail.databaseName`, `typeOfChange`, and
//!   `changedTables` for table creation/deletion.
//! - "AWS API Call via CloudTrail" (source `aws.glue`): `detail` is a CloudTrail record
//!   (`eventSource`, `eventName`, `eventID`, `eventTime`, `requestParameters`, `errorCode`).
//!
//! An unknown `typeOfChange` is handled generically (re-read the table, or the database).

use serde_json::Value;
use thiserror::Error;

use super::hint::{Hint, ParsedEvent};

/// Largest message body accepted (SQS allows 256 KiB; anything larger is not an AWS event).
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

pub const TABLE_STATE_CHANGE: &str = "Glue Data Catalog Table State Change";
pub const DATABASE_STATE_CHANGE: &str = "Glue Data Catalog Database State Change";
pub const CLOUDTRAIL_API_CALL: &str = "AWS API Call via CloudTrail";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum EventError {
    #[error("event is not JSON ({reason}); lakelog expects EventBridge events from Glue")]
    NotJson { reason: String },
    #[error("event is {bytes} bytes, over the {limit}-byte limit of an SQS message; not an AWS event")]
    TooLarge { bytes: usize, limit: usize },
    #[error("`{detail_type}` event lacks `{field}`")]
    MissingField { field: &'static str, detail_type: String },
    #[error("unknown event type `{detail_type}`; the queue's EventBridge rule should send only Glue Data Catalog state changes and Glue API calls")]
    UnknownDetailType { detail_type: String },
    #[error("event from `{found}`, not aws.glue; check the EventBridge rule's pattern")]
    WrongSource { found: String },
}

fn str_field<'a>(v: &'a Value, field: &'static str, detail_type: &str) -> Result<&'a str, EventError> {
    v.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| EventError::MissingField { field, detail_type: detail_type.to_string() })
}

fn time_ms(v: Option<&Value>) -> Option<i64> {
    let t = v?.as_str()?;
    let parsed = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).ok()
}

fn names(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_lowercase).collect())
        .unwrap_or_default()
}

/// `"[a, b]"` → `["a", "b"]`. `None` when the text is not bracketed.
fn partition_values(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    if inner.is_empty() {
        return Some(Vec::new());
    }
    Some(inner.split(", ").map(str::to_string).collect())
}

/// Parses one SQS message body holding an EventBridge event.
pub fn parse_eventbridge(body: &str) -> Result<ParsedEvent, EventError> {
    if body.len() > MAX_EVENT_BYTES {
        return Err(EventError::TooLarge { bytes: body.len(), limit: MAX_EVENT_BYTES });
    }
    let v: Value = serde_json::from_str(body).map_err(|e| EventError::NotJson { reason: e.to_string() })?;
    let detail_type = str_field(&v, "detail-type", "(unknown)")?.to_string();
    let source = str_field(&v, "source", &detail_type)?;
    if source != "aws.glue" {
        return Err(EventError::WrongSource { found: source.to_string() });
    }
    let id = str_field(&v, "id", &detail_type)?.to_string();
    let detail = v.get("detail").filter(|d| d.is_object()).ok_or(EventError::MissingField { field: "detail", detail_type: detail_type.clone() })?;
    let time = time_ms(v.get("time"));
    let hints = match detail_type.as_str() {
        TABLE_STATE_CHANGE | DATABASE_STATE_CHANGE => state_change_hints(detail, &detail_type)?,
        CLOUDTRAIL_API_CALL => {
            return Ok(match parse_cloudtrail_record(detail)? {
                Some(mut ev) => {
                    ev.time_ms = ev.time_ms.or(time);
                    ev
                }
                None => ParsedEvent { id, time_ms: time, hints: Vec::new() },
            })
        }
        _ => return Err(EventError::UnknownDetailType { detail_type }),
    };
    Ok(ParsedEvent { id, time_ms: time, hints })
}

fn state_change_hints(detail: &Value, detail_type: &str) -> Result<Vec<Hint>, EventError> {
    let database = str_field(detail, "databaseName", detail_type)?.to_lowercase();
    let change = str_field(detail, "typeOfChange", detail_type)?;
    let table = detail.get("tableName").and_then(Value::as_str).map(str::to_lowercase);
    let mut tables = names(detail.get("changedTables"));
    if let Some(t) = &table {
        if !tables.contains(t) {
            tables.insert(0, t.clone());
        }
    }
    let table_hints = |tables: Vec<String>| tables.into_iter().map(|t| Hint::Table { database: database.clone(), table: t }).collect();
    Ok(match change {
        "CreateDatabase" | "UpdateDatabase" | "DeleteDatabase" => vec![Hint::Database { database }],
        "CreateTable" | "UpdateTable" | "DeleteTable" | "BatchDeleteTable" if !tables.is_empty() => table_hints(tables),
        "CreatePartition" | "BatchCreatePartition" | "UpdatePartition" | "BatchUpdatePartition" | "DeletePartition"
        | "BatchDeletePartition" => {
            let Some(table) = table else {
                return Err(EventError::MissingField { field: "tableName", detail_type: detail_type.to_string() });
            };
            let texts: Vec<&str> = detail
                .get("changedPartitions")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let parsed: Option<Vec<Vec<String>>> = texts.iter().map(|t| partition_values(t)).collect();
            match parsed {
                Some(values) if !values.is_empty() && values.iter().all(|v| !v.is_empty()) => {
                    vec![Hint::Partitions { database, table, values }]
                }
                // No list, or one that cannot be read unambiguously: re-read the whole table.
                _ => vec![Hint::TableDeep { database, table }],
            }
        }
        // Unknown change types (or table changes without a table): re-read what is named.
        _ => match table {
            Some(t) => vec![Hint::TableDeep { database, table: t }],
            None if !tables.is_empty() => tables.into_iter().map(|t| Hint::TableDeep { database: database.clone(), table: t }).collect(),
            None => vec![Hint::Database { database }],
        },
    })
}

fn values_of(v: Option<&Value>) -> Option<Vec<String>> {
    let a = v?.as_array()?;
    Some(a.iter().filter_map(Value::as_str).map(str::to_string).collect())
}

/// Parses one CloudTrail record; `Ok(None)` when it is not a successful, mutating Glue call.
pub fn parse_cloudtrail_record(record: &Value) -> Result<Option<ParsedEvent>, EventError> {
    let kind = "CloudTrail record";
    if record.get("eventSource").and_then(Value::as_str) != Some("glue.amazonaws.com") || record.get("errorCode").is_some_and(|c| !c.is_null()) {
        return Ok(None);
    }
    let name = str_field(record, "eventName", kind)?;
    if ["Get", "List", "Search", "BatchGet"].iter().any(|p| name.starts_with(p)) {
        return Ok(None);
    }
    let id = str_field(record, "eventID", kind)?.to_string();
    let empty = Value::Null;
    let p = record.get("requestParameters").unwrap_or(&empty);
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_lowercase);
    let db = s(p.get("databaseName"));
    let table = s(p.get("tableName"));
    let deep = |db: Option<String>, t: Option<String>| match (db, t) {
        (Some(database), Some(table)) => vec![Hint::TableDeep { database, table }],
        (Some(database), None) => vec![Hint::Database { database }],
        _ => Vec::new(),
    };
    let parts = |values: Vec<Vec<String>>| match (db.clone(), table.clone()) {
        (Some(database), Some(table)) if !values.is_empty() => vec![Hint::Partitions { database, table, values }],
        (d, t) => deep(d, t),
    };
    let list = |field: &str, inner: &str| -> Vec<Vec<String>> {
        p.get(field)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|x| values_of(x.get(inner))).collect())
            .unwrap_or_default()
    };
    let hints = match name {
        "CreateDatabase" => s(p.get("databaseInput").and_then(|d| d.get("name"))).map(|database| vec![Hint::Database { database }]).unwrap_or_default(),
        "UpdateDatabase" | "DeleteDatabase" => s(p.get("name")).map(|database| vec![Hint::Database { database }]).unwrap_or_default(),
        "CreateTable" | "UpdateTable" => match (db.clone(), s(p.get("tableInput").and_then(|t| t.get("name")))) {
            (Some(database), Some(table)) => vec![Hint::Table { database, table }],
            _ => Vec::new(),
        },
        "DeleteTable" => match (db.clone(), s(p.get("name"))) {
            (Some(database), Some(table)) => vec![Hint::Table { database, table }],
            _ => Vec::new(),
        },
        "BatchDeleteTable" => match db.clone() {
            Some(database) => names(p.get("tablesToDelete")).into_iter().map(|table| Hint::Table { database: database.clone(), table }).collect(),
            None => Vec::new(),
        },
        "CreatePartition" => parts(values_of(p.get("partitionInput").and_then(|x| x.get("values"))).into_iter().collect()),
        "BatchCreatePartition" => parts(list("partitionInputList", "values")),
        "UpdatePartition" => {
            let mut v: Vec<Vec<String>> = values_of(p.get("partitionValueList")).into_iter().collect();
            if let Some(new) = values_of(p.get("partitionInput").and_then(|x| x.get("values"))) {
                if !v.contains(&new) {
                    v.push(new);
                }
            }
            parts(v)
        }
        "BatchUpdatePartition" => parts(list("entries", "partitionValueList")),
        "DeletePartition" => parts(values_of(p.get("partitionValues")).into_iter().collect()),
        "BatchDeletePartition" => parts(list("partitionsToDelete", "values")),
        _ => deep(db, table),
    };
    if hints.is_empty() {
        return Ok(None);
    }
    Ok(Some(ParsedEvent { id, time_ms: time_ms(record.get("eventTime")), hints }))
}

/// Parses a CloudTrail log file's JSON (decompressed): every Glue change in it, and the errors of
/// records that could not be parsed (a bad record never hides the good ones).
pub fn parse_cloudtrail_file(json: &str) -> Result<(Vec<ParsedEvent>, Vec<EventError>), EventError> {
    let v: Value = serde_json::from_str(json).map_err(|e| EventError::NotJson { reason: e.to_string() })?;
    let records = v
        .get("Records")
        .and_then(Value::as_array)
        .ok_or(EventError::MissingField { field: "Records", detail_type: "CloudTrail log file".into() })?;
    let (mut events, mut errors) = (Vec::new(), Vec::new());
    for r in records {
        match parse_cloudtrail_record(r) {
            Ok(Some(e)) => events.push(e),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    Ok((events, errors))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn envelope(detail_type: &str, detail: Value) -> String {
        // As documented, without `account` (the emulator omits it).
        serde_json::json!({
            "version": "0", "id": "e-1", "detail-type": detail_type, "source": "aws.glue",
            "time": "2026-11-22T10:00:00Z", "region": "us-east-1", "resources": [], "detail": detail
        })
        .to_string()
    }

    fn table_change(change: &str, partitions: &[&str]) -> Vec<Hint> {
        let d = serde_json::json!({"databaseName": "DB", "tableName": "T", "typeOfChange": change, "changedPartitions": partitions});
        parse_eventbridge(&envelope(TABLE_STATE_CHANGE, d)).expect("parses").hints
    }

    #[test]
    fn partition_changes_carry_their_values() {
        for change in ["CreatePartition", "BatchCreatePartition", "UpdatePartition", "BatchUpdatePartition", "DeletePartition", "BatchDeletePartition"] {
            assert_eq!(
                table_change(change, &["[2026-01-01, us]", "[2026-01-02, eu]"]),
                vec![Hint::Partitions {
                    database: "db".into(),
                    table: "t".into(),
                    values: vec![vec!["2026-01-01".into(), "us".into()], vec!["2026-01-02".into(), "eu".into()]],
                }],
                "{change}"
            );
        }
        assert_eq!(table_change("BatchCreatePartition", &[]), vec![Hint::TableDeep { database: "db".into(), table: "t".into() }]);
        assert_eq!(table_change("UpdateTable", &[]), vec![Hint::Table { database: "db".into(), table: "t".into() }]);
        assert_eq!(table_change("SomethingNew", &[]), vec![Hint::TableDeep { database: "db".into(), table: "t".into() }]);
    }

    #[test]
    fn database_changes() {
        let parse = |change: &str, tables: &[&str]| {
            let d = serde_json::json!({"databaseName": "db", "typeOfChange": change, "changedTables": tables});
            parse_eventbridge(&envelope(DATABASE_STATE_CHANGE, d)).expect("parses").hints
        };
        for change in ["CreateDatabase", "UpdateDatabase", "DeleteDatabase"] {
            assert_eq!(parse(change, &[]), vec![Hint::Database { database: "db".into() }]);
        }
        for change in ["CreateTable", "DeleteTable", "BatchDeleteTable"] {
            assert_eq!(
                parse(change, &["a", "b"]),
                vec![Hint::Table { database: "db".into(), table: "a".into() }, Hint::Table { database: "db".into(), table: "b".into() }]
            );
        }
    }

    #[test]
    fn malformed_events_are_named() {
        assert!(matches!(parse_eventbridge("{not json"), Err(EventError::NotJson { .. })));
        assert!(matches!(parse_eventbridge(&"x".repeat(MAX_EVENT_BYTES + 1)), Err(EventError::TooLarge { .. })));
        let no_detail = r#"{"id":"1","detail-type":"Glue Data Catalog Table State Change","source":"aws.glue"}"#;
        assert_eq!(parse_eventbridge(no_detail), Err(EventError::MissingField { field: "detail", detail_type: TABLE_STATE_CHANGE.into() }));
        assert!(matches!(parse_eventbridge(&envelope("Glue Job State Change", serde_json::json!({}))), Err(EventError::UnknownDetailType { .. })));
        let s3 = envelope(TABLE_STATE_CHANGE, serde_json::json!({})).replace("aws.glue", "aws.s3");
        assert!(matches!(parse_eventbridge(&s3), Err(EventError::WrongSource { .. })));
    }

    #[test]
    fn cloudtrail_records_and_files() {
        let file = serde_json::json!({"Records": [
            {"eventSource": "glue.amazonaws.com", "eventName": "BatchCreatePartition", "eventID": "c1", "eventTime": "2026-11-22T10:00:00Z",
             "requestParameters": {"databaseName": "db", "tableName": "t", "partitionInputList": [{"values": ["1"]}, {"values": ["2"]}]}},
            {"eventSource": "glue.amazonaws.com", "eventName": "GetTable", "eventID": "c2", "requestParameters": {"databaseName": "db", "name": "t"}},
            {"eventSource": "s3.amazonaws.com", "eventName": "PutObject", "eventID": "c3"},
            {"eventSource": "glue.amazonaws.com", "eventName": "DeleteTable", "eventID": "c4", "errorCode": "EntityNotFoundException", "requestParameters": {"databaseName": "db", "name": "x"}},
            {"eventSource": "glue.amazonaws.com", "eventName": "DeleteTable", "eventID": "c5", "requestParameters": {"databaseName": "db", "name": "T2"}},
            {"eventSource": "glue.amazonaws.com", "eventName": "CreateTable", "requestParameters": {}}
        ]});
        let (events, errors) = parse_cloudtrail_file(&file.to_string()).expect("file");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].hints, vec![Hint::Partitions { database: "db".into(), table: "t".into(), values: vec![vec!["1".into()], vec!["2".into()]] }]);
        assert_eq!(events[1].hints, vec![Hint::Table { database: "db".into(), table: "t2".into() }]);
        assert_eq!(errors.len(), 1, "the record without eventID is reported, not fatal");
        let via_eventbridge = envelope(CLOUDTRAIL_API_CALL, file["Records"][4].clone());
        assert_eq!(parse_eventbridge(&via_eventbridge).expect("parses").hints, events[1].hints);
    }

    proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(body in ".{0,400}") {
            let _ = parse_eventbridge(&body);
        }
    }
}
