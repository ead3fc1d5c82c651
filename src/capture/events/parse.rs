//! Parsing the events capture receives into [`ParsedEvent`]s.
//!
//! Three inputs, in the shapes AWS documents (fixtures in `tests/fixtures/events/`, whose README
//! names the pages):
//!
//! - **EventBridge events** (one per SQS message body, [`parse_eventbridge`]). The envelope has
//!   `version`, `id`, `detail-type`, `source`, `account`, `time` (RFC 3339), `region`,
//!   `resources` and `detail`. lakelog requires only `source` (`aws.glue`), `detail-type`, `id`
//!   and `detail`: `account` in particular is never required (the local emulator omits it), and a
//!   missing or unreadable `time` only leaves [`ParsedEvent::time_ms`] empty.
//!   - "Glue Data Catalog Table State Change": `detail.databaseName`, `tableName`,
//!     `typeOfChange` and, for partition changes, `changedPartitions` (see below).
//!   - "Glue Data Catalog Database State Change": `detail.databaseName`, `typeOfChange` and,
//!     for table creation and deletion, `changedTables` (table names).
//!   - "AWS API Call via CloudTrail" (with `source` `aws.glue`): `detail` is a CloudTrail record.
//! - **CloudTrail records** ([`parse_cloudtrail_record`]): `eventSource`, `eventName`, `eventID`,
//!   `eventTime`, `requestParameters`, `errorCode`, `readOnly`... Only successful, mutating calls
//!   to `glue.amazonaws.com` and `lakeformation.amazonaws.com` (see `super::lakeformation`,
//!   also through EventBridge with `source` `aws.lakeformation`) are changes; every other record
//!   is `Ok(None)`.
//! - **CloudTrail log files** ([`parse_cloudtrail_file`]): `{"Records": [...]}` (gzip in S3; the
//!   caller decompresses).
//!
//! Names are lower-cased (Glue stores database and table names in lower case); partition values
//! are kept as they are.
//!
//! # `changedPartitions`
//!
//! Glue writes each changed partition as ONE string: its values joined by `", "` inside brackets,
//! e.g. `"[2026-01-01, us]"`. The format has no escaping, so a value that itself contains `", "`
//! cannot be told apart from two values. lakelog never guesses: when the list cannot be read
//! unambiguously it asks for the whole table to be re-read ([`Hint::TableDeep`]) instead of
//! naming partitions. That happens when the list is missing or empty, when an entry is not a
//! bracketed string (the Glue developer guide's own example shows `"2018,01"`, with neither
//! brackets nor space), when an entry has no value (`"[]"`), and when the entries of one event do
//! not all have the same number of values (every partition of a table has one value per partition
//! key, so differing counts mean some value contained `", "`). A single entry whose value contains
//! `", "` is indistinguishable from a well-formed one with more values; re-reading that "partition"
//! finds nothing, and the next reconciliation repairs the miss.
//!
//! # `typeOfChange`
//!
//! | `typeOfChange` | hints |
//! | --- | --- |
//! | `CreateDatabase`, `UpdateDatabase`, `DeleteDatabase` | [`Hint::Database`] |
//! | `CreateTable`, `UpdateTable`, `DeleteTable`, `BatchDeleteTable` | [`Hint::Table`] for each table in `tableName` and `changedTables` |
//! | `CreatePartition`, `BatchCreatePartition`, `UpdatePartition`, `BatchUpdatePartition`, `DeletePartition`, `BatchDeletePartition` | [`Hint::Partitions`], or [`Hint::TableDeep`] when `changedPartitions` cannot be read (above) |
//! | anything else | [`Hint::TableDeep`] for each table named, else [`Hint::Database`] |

use serde_json::{Map, Value};
use thiserror::Error;

use super::hint::{Hint, ParsedEvent};
use super::lakeformation::{LF_EVENT_SOURCE, LF_SOURCE};

/// Largest message body accepted (SQS allows 256 KiB; anything larger is not an AWS event).
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// The EventBridge `source` of Glue's events.
pub const GLUE_SOURCE: &str = "aws.glue";
/// The CloudTrail `eventSource` of Glue API calls.
pub const GLUE_EVENT_SOURCE: &str = "glue.amazonaws.com";

pub const TABLE_STATE_CHANGE: &str = "Glue Data Catalog Table State Change";
pub const DATABASE_STATE_CHANGE: &str = "Glue Data Catalog Database State Change";
pub const CLOUDTRAIL_API_CALL: &str = "AWS API Call via CloudTrail";

/// What a [`EventError::MissingField`] names when the problem is in a CloudTrail record.
const CLOUDTRAIL_RECORD: &str = "CloudTrail record";
/// What a [`EventError::MissingField`] names when the problem is in a CloudTrail log file.
const CLOUDTRAIL_FILE: &str = "CloudTrail log file";

/// Why an event (or record, or log file) could not be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum EventError {
    #[error("event is not JSON ({reason}); lakelog expects EventBridge events from Glue or CloudTrail log files")]
    NotJson { reason: String },
    #[error("{what} is JSON but not an object; lakelog expects a JSON object")]
    NotAnObject { what: &'static str },
    #[error("event is {bytes} bytes, over the {limit}-byte limit of an SQS message; not an AWS event")]
    TooLarge { bytes: usize, limit: usize },
    #[error("`{detail_type}` lacks `{field}` (or it has the wrong JSON type); lakelog expects it as AWS documents it")]
    MissingField { field: &'static str, detail_type: String },
    #[error("unknown event type `{detail_type}`; lakelog expects `{TABLE_STATE_CHANGE}`, `{DATABASE_STATE_CHANGE}` or `{CLOUDTRAIL_API_CALL}` (check the EventBridge rule's pattern)")]
    UnknownDetailType { detail_type: String },
    // Named `found`, not `source`: thiserror would take a field named `source` for the error's
    // cause.
    #[error("event from source `{found}`, not `{GLUE_SOURCE}`; check the EventBridge rule's pattern")]
    WrongSource { found: String },
}

/// Parses one SQS message body holding an EventBridge event.
///
/// A recognised event that names no change (a CloudTrail record of a read, a failed call or
/// another service) gives a [`ParsedEvent`] without hints, not an error.
pub fn parse_eventbridge(body: &str) -> Result<ParsedEvent, EventError> {
    if body.len() > MAX_EVENT_BYTES {
        return Err(EventError::TooLarge { bytes: body.len(), limit: MAX_EVENT_BYTES });
    }
    let value: Value = serde_json::from_str(body).map_err(|e| EventError::NotJson { reason: e.to_string() })?;
    let envelope = value.as_object().ok_or(EventError::NotAnObject { what: "EventBridge event" })?;
    let detail_type = envelope.get("detail-type").and_then(Value::as_str);
    let label = detail_type.unwrap_or("EventBridge event");
    let source = required_str(envelope, "source", label)?;
    let detail_type = detail_type.ok_or_else(|| missing("detail-type", label))?;
    // Lake Formation's calls come as "AWS API Call via CloudTrail" with their own source.
    let lake_formation = source == LF_SOURCE && detail_type == CLOUDTRAIL_API_CALL;
    if source != GLUE_SOURCE && !lake_formation {
        return Err(EventError::WrongSource { found: source.to_string() });
    }
    if ![TABLE_STATE_CHANGE, DATABASE_STATE_CHANGE, CLOUDTRAIL_API_CALL].contains(&detail_type) {
        return Err(EventError::UnknownDetailType { detail_type: detail_type.to_string() });
    }
    let id = required_str(envelope, "id", detail_type)?;
    let detail = envelope.get("detail").and_then(Value::as_object).ok_or_else(|| missing("detail", detail_type))?;
    let time_ms = envelope.get("time").and_then(rfc3339_ms);
    if detail_type == CLOUDTRAIL_API_CALL {
        let hints = cloudtrail_hints(detail)?.unwrap_or_default();
        // The record's own id and time when it has them: the same call then has the same id
        // whether it arrives through EventBridge or a log file.
        let id = detail.get("eventID").and_then(Value::as_str).unwrap_or(id);
        let time_ms = detail.get("eventTime").and_then(rfc3339_ms).or(time_ms);
        return Ok(ParsedEvent { id: id.to_string(), time_ms, hints });
    }
    Ok(ParsedEvent { id: id.to_string(), time_ms, hints: state_change_hints(detail, detail_type)? })
}

/// Parses one CloudTrail record (from an EventBridge "AWS API Call via CloudTrail" event or a log
/// file); `Ok(None)` when it is not a successful, mutating Glue call.
pub fn parse_cloudtrail_record(record: &Value) -> Result<Option<ParsedEvent>, EventError> {
    let record = record.as_object().ok_or(EventError::NotAnObject { what: CLOUDTRAIL_RECORD })?;
    let Some(hints) = cloudtrail_hints(record)? else {
        return Ok(None);
    };
    let id = required_str(record, "eventID", CLOUDTRAIL_RECORD)?;
    Ok(Some(ParsedEvent { id: id.to_string(), time_ms: record.get("eventTime").and_then(rfc3339_ms), hints }))
}

/// Parses a CloudTrail log file's JSON (already decompressed): every Glue change in it, and the
/// errors of records that could not be parsed (a bad record never hides the good ones).
pub fn parse_cloudtrail_file(json: &str) -> Result<(Vec<ParsedEvent>, Vec<EventError>), EventError> {
    let value: Value = serde_json::from_str(json).map_err(|e| EventError::NotJson { reason: e.to_string() })?;
    let file = value.as_object().ok_or(EventError::NotAnObject { what: CLOUDTRAIL_FILE })?;
    let records = file.get("Records").and_then(Value::as_array).ok_or_else(|| missing("Records", CLOUDTRAIL_FILE))?;
    let mut events = Vec::new();
    let mut errors = Vec::new();
    for record in records {
        match parse_cloudtrail_record(record) {
            Ok(Some(event)) => events.push(event),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    Ok((events, errors))
}

// ---------------------------------------------------------------------------------------------
// Glue Data Catalog state changes

const DATABASE_CHANGES: [&str; 3] = ["CreateDatabase", "UpdateDatabase", "DeleteDatabase"];
const TABLE_CHANGES: [&str; 4] = ["CreateTable", "UpdateTable", "DeleteTable", "BatchDeleteTable"];
const PARTITION_CHANGES: [&str; 6] = [
    "CreatePartition",
    "BatchCreatePartition",
    "UpdatePartition",
    "BatchUpdatePartition",
    "DeletePartition",
    "BatchDeletePartition",
];

/// Hints of a "Table State Change" or "Database State Change" `detail` (both share one shape).
fn state_change_hints(detail: &Map<String, Value>, detail_type: &str) -> Result<Vec<Hint>, EventError> {
    let database = name(required_str(detail, "databaseName", detail_type)?);
    let change = required_str(detail, "typeOfChange", detail_type)?;
    let table = detail.get("tableName").and_then(Value::as_str).filter(|t| !t.is_empty()).map(name);
    let changed_tables = match detail.get("changedTables") {
        None | Some(Value::Null) => None,
        Some(v) => Some(string_list(v).ok_or_else(|| missing("changedTables", detail_type))?),
    };
    let mut tables: Vec<String> = Vec::new();
    for t in table.iter().cloned().chain(changed_tables.iter().flatten().map(|t| name(t))) {
        if !t.is_empty() && !tables.contains(&t) {
            tables.push(t);
        }
    }

    if DATABASE_CHANGES.contains(&change) {
        return Ok(vec![Hint::Database { database }]);
    }
    if TABLE_CHANGES.contains(&change) {
        if tables.is_empty() {
            if changed_tables.is_none() {
                return Err(missing("changedTables", detail_type));
            }
            // An explicitly empty list names nothing: re-read the database, the event's subject.
            return Ok(vec![Hint::Database { database }]);
        }
        return Ok(tables.into_iter().map(|table| Hint::Table { database: database.clone(), table }).collect());
    }
    if PARTITION_CHANGES.contains(&change) {
        let table = table.ok_or_else(|| missing("tableName", detail_type))?;
        return Ok(vec![match changed_partitions(detail.get("changedPartitions")) {
            Some(values) => Hint::Partitions { database, table, values },
            None => Hint::TableDeep { database, table },
        }]);
    }
    // A change lakelog does not know: re-read everything it names.
    if tables.is_empty() {
        return Ok(vec![Hint::Database { database }]);
    }
    Ok(tables.into_iter().map(|table| Hint::TableDeep { database: database.clone(), table }).collect())
}

/// The partitions of `changedPartitions`, or `None` when the list is missing, empty or cannot be
/// read unambiguously (see the module documentation).
fn changed_partitions(list: Option<&Value>) -> Option<Vec<Vec<String>>> {
    let list = list?.as_array()?;
    let mut out: Vec<Vec<String>> = Vec::with_capacity(list.len());
    for entry in list {
        let values = partition_values(entry.as_str()?)?;
        if values.is_empty() {
            return None;
        }
        if out.first().is_some_and(|first| first.len() != values.len()) {
            return None;
        }
        if !out.contains(&values) {
            out.push(values);
        }
    }
    if out.is_empty() {
        return None;
    }
    Some(out)
}

/// `"[a, b]"` → `["a", "b"]`; `"[]"` → `[]`; `None` when the text is not bracketed.
fn partition_values(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    if inner.is_empty() {
        return Some(Vec::new());
    }
    Some(inner.split(", ").map(str::to_string).collect())
}

// ---------------------------------------------------------------------------------------------
// CloudTrail records

/// Prefixes of Glue's read-only operations.
const READ_PREFIXES: [&str; 4] = ["Get", "List", "Search", "BatchGet"];

/// The hints of a CloudTrail record, `None` when it is not a successful, mutating Glue call.
fn cloudtrail_hints(record: &Map<String, Value>) -> Result<Option<Vec<Hint>>, EventError> {
    let source = record.get("eventSource").and_then(Value::as_str);
    if source != Some(GLUE_EVENT_SOURCE) && source != Some(LF_EVENT_SOURCE) {
        return Ok(None);
    }
    // The call failed: nothing changed.
    match record.get("errorCode") {
        None | Some(Value::Null) => {}
        Some(Value::String(code)) if code.is_empty() => {}
        Some(_) => return Ok(None),
    }
    if record.get("readOnly").and_then(Value::as_bool) == Some(true) {
        return Ok(None);
    }
    let event = required_str(record, "eventName", CLOUDTRAIL_RECORD)?;
    if READ_PREFIXES.iter().any(|p| event.starts_with(p)) {
        return Ok(None);
    }
    let empty = Map::new();
    let params = record.get("requestParameters").and_then(Value::as_object).unwrap_or(&empty);
    if source == Some(LF_EVENT_SOURCE) {
        return super::lakeformation::hints(event, params);
    }
    let p = Params { params };
    let hints = match event {
        "CreateDatabase" => vec![Hint::Database {
            database: p.name_at(&["databaseInput", "name"], "requestParameters.databaseInput.name")?,
        }],
        "UpdateDatabase" | "DeleteDatabase" => {
            vec![Hint::Database { database: p.name_at(&["name"], "requestParameters.name")? }]
        }
        "CreateTable" | "UpdateTable" => vec![Hint::Table {
            database: p.database()?,
            table: p.name_at(&["tableInput", "name"], "requestParameters.tableInput.name")?,
        }],
        "DeleteTable" => {
            vec![Hint::Table { database: p.database()?, table: p.name_at(&["name"], "requestParameters.name")? }]
        }
        "BatchDeleteTable" => {
            let database = p.database()?;
            let tables = params
                .get("tablesToDelete")
                .and_then(string_list)
                .ok_or_else(|| missing("requestParameters.tablesToDelete", CLOUDTRAIL_RECORD))?;
            let mut hints: Vec<Hint> = Vec::new();
            for table in tables.iter().map(|t| name(t)).filter(|t| !t.is_empty()) {
                let hint = Hint::Table { database: database.clone(), table };
                if !hints.contains(&hint) {
                    hints.push(hint);
                }
            }
            hints
        }
        "CreatePartition" => p.partitions(vec![params.get("partitionInput").and_then(|i| i.get("values"))])?,
        "BatchCreatePartition" => p.partitions(each(params.get("partitionInputList"), |e| e.get("values")))?,
        "UpdatePartition" => p.partitions(vec![
            params.get("partitionValueList"),
            params.get("partitionInput").and_then(|i| i.get("values")),
        ])?,
        "BatchUpdatePartition" => p.partitions(
            each(params.get("entries"), |e| e.get("partitionValueList"))
                .into_iter()
                .chain(each(params.get("entries"), |e| e.get("partitionInput").and_then(|i| i.get("values"))))
                .collect(),
        )?,
        "DeletePartition" => p.partitions(vec![params.get("partitionValues")])?,
        "BatchDeletePartition" => p.partitions(each(params.get("partitionsToDelete"), |e| e.get("values")))?,
        // Another mutating call (Glue has many that touch no catalog object: crawlers, jobs,
        // connections...): re-read what it names, if anything.
        _ => match (p.optional("databaseName"), p.optional("tableName")) {
            (Some(database), Some(table)) => vec![Hint::TableDeep { database, table }],
            (Some(database), None) => vec![Hint::Database { database }],
            _ => return Ok(None),
        },
    };
    Ok(Some(hints))
}

/// A CloudTrail record's `requestParameters`.
struct Params<'a> {
    params: &'a Map<String, Value>,
}

impl Params<'_> {
    /// A non-empty name at a path, lower-cased.
    fn name_at(&self, path: &[&str], field: &'static str) -> Result<String, EventError> {
        let mut value = path.first().and_then(|key| self.params.get(*key));
        for key in path.iter().skip(1) {
            value = value.and_then(|v| v.get(*key));
        }
        value
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(name)
            .ok_or_else(|| missing(field, CLOUDTRAIL_RECORD))
    }

    fn optional(&self, key: &str) -> Option<String> {
        self.params.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(name)
    }

    fn database(&self) -> Result<String, EventError> {
        self.name_at(&["databaseName"], "requestParameters.databaseName")
    }

    /// The partitions of a partition call: each candidate is a list of values. The table is
    /// re-read whole when no candidate is a usable list (CloudTrail truncates large parameters).
    fn partitions(&self, candidates: Vec<Option<&Value>>) -> Result<Vec<Hint>, EventError> {
        let database = self.database()?;
        let table = self.name_at(&["tableName"], "requestParameters.tableName")?;
        let mut values: Vec<Vec<String>> = Vec::new();
        for candidate in candidates {
            match candidate.and_then(string_list) {
                Some(v) if !v.is_empty() => {
                    if !values.contains(&v) {
                        values.push(v);
                    }
                }
                _ => return Ok(vec![Hint::TableDeep { database, table }]),
            }
        }
        if values.is_empty() {
            return Ok(vec![Hint::TableDeep { database, table }]);
        }
        Ok(vec![Hint::Partitions { database, table, values }])
    }
}

/// `f` of each element of a list; a single `None` when there is no list.
fn each<'a>(list: Option<&'a Value>, f: impl Fn(&'a Value) -> Option<&'a Value>) -> Vec<Option<&'a Value>> {
    match list.and_then(Value::as_array) {
        Some(items) => items.iter().map(f).collect(),
        None => vec![None],
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn missing(field: &'static str, detail_type: &str) -> EventError {
    EventError::MissingField { field, detail_type: detail_type.to_string() }
}

fn required_str<'a>(
    object: &'a Map<String, Value>,
    field: &'static str,
    detail_type: &str,
) -> Result<&'a str, EventError> {
    object.get(field).and_then(Value::as_str).ok_or_else(|| missing(field, detail_type))
}

/// A list of strings; `None` when it is not a list or holds anything but strings.
fn string_list(value: &Value) -> Option<Vec<String>> {
    value.as_array()?.iter().map(|v| v.as_str().map(str::to_string)).collect()
}

/// A database or table name as Glue stores it.
fn name(text: &str) -> String {
    text.to_lowercase()
}

/// An RFC 3339 time as epoch milliseconds; `None` when it is not one.
fn rfc3339_ms(value: &Value) -> Option<i64> {
    let parsed = time::OffsetDateTime::parse(value.as_str()?, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// A fixture's text, read at compile time.
    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/events/", $name))
        };
    }

    /// A fixture parsed as an EventBridge event that must be accepted.
    macro_rules! parse_fixture {
        ($name:literal) => {
            parse_eventbridge(fixture!($name)).unwrap_or_else(|e| panic!("{}: {e}", $name))
        };
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn db(database: &str) -> Hint {
        Hint::Database { database: database.into() }
    }

    fn table(database: &str, table: &str) -> Hint {
        Hint::Table { database: database.into(), table: table.into() }
    }

    fn deep(database: &str, table: &str) -> Hint {
        Hint::TableDeep { database: database.into(), table: table.into() }
    }

    fn parts(database: &str, table: &str, values: &[&[&str]]) -> Hint {
        Hint::Partitions {
            database: database.into(),
            table: table.into(),
            values: values.iter().map(|v| s(v)).collect(),
        }
    }

    /// An EventBridge event as documented, without `account` (as the emulator sends them).
    fn envelope(detail_type: &str, detail: Value) -> String {
        json!({
            "version": "0", "id": "e-1", "detail-type": detail_type, "source": "aws.glue",
            "time": "2026-01-02T03:04:05Z", "region": "us-east-1", "resources": [], "detail": detail
        })
        .to_string()
    }

    fn table_change(change: &str, partitions: Option<Value>) -> Result<Vec<Hint>, EventError> {
        let mut detail = json!({"databaseName": "Sales", "tableName": "Orders", "typeOfChange": change});
        if let Some(p) = partitions {
            detail["changedPartitions"] = p;
        }
        parse_eventbridge(&envelope(TABLE_STATE_CHANGE, detail)).map(|e| e.hints)
    }

    fn database_change(change: &str, tables: Option<Value>) -> Result<Vec<Hint>, EventError> {
        let mut detail = json!({"databaseName": "Sales", "typeOfChange": change});
        if let Some(t) = tables {
            detail["changedTables"] = t;
        }
        parse_eventbridge(&envelope(DATABASE_STATE_CHANGE, detail)).map(|e| e.hints)
    }

    fn record(event: &str, params: Value) -> Value {
        json!({
            "eventVersion": "1.08", "eventTime": "2026-01-02T03:04:05Z", "eventSource": "glue.amazonaws.com",
            "eventName": event, "awsRegion": "us-east-1", "requestParameters": params,
            "responseElements": null, "requestID": "r-1", "eventID": "ct-1", "eventType": "AwsApiCall"
        })
    }

    fn record_hints(event: &str, params: Value) -> Option<Vec<Hint>> {
        parse_cloudtrail_record(&record(event, params)).unwrap_or_else(|e| panic!("{event}: {e}")).map(|e| e.hints)
    }

    // --- Fixtures -------------------------------------------------------------------------

    #[test]
    fn fixture_table_batch_create_partition() {
        let ev = parse_fixture!("table-batch-create-partition.json");
        assert_eq!(ev.id, "5b1f2c3d-1a2b-3c4d-5e6f-0a1b2c3d4e5f");
        assert_eq!(ev.time_ms, Some(1_767_323_045_000));
        assert_eq!(ev.hints, vec![parts("sales", "orders", &[&["2026-01-01", "us"], &["2026-01-01", "eu"]])]);
    }

    #[test]
    fn fixture_documented_unbracketed_partitions_reread_the_table() {
        let ev = parse_fixture!("table-batch-create-partition-unbracketed.json");
        assert_eq!(ev.hints, vec![deep("sales", "orders")]);
    }

    #[test]
    fn fixture_table_update_partition_lowercases_names_not_values() {
        let ev = parse_fixture!("table-update-partition.json");
        assert_eq!(ev.hints, vec![parts("sales", "daily_totals", &[&["2026-01-01"]])]);
    }

    #[test]
    fn fixture_table_batch_delete_partition() {
        let ev = parse_fixture!("table-batch-delete-partition.json");
        assert_eq!(
            ev.hints,
            vec![parts("sales", "orders", &[&["2025-12-30", "us"], &["2025-12-31", "us"], &["2025-12-31", "eu"]])]
        );
    }

    #[test]
    fn fixture_table_update_table() {
        assert_eq!(parse_fixture!("table-update-table.json").hints, vec![table("sales", "orders")]);
    }

    #[test]
    fn fixture_database_changes() {
        assert_eq!(parse_fixture!("database-create-table.json").hints, vec![table("sales", "returns")]);
        assert_eq!(
            parse_fixture!("database-batch-delete-table.json").hints,
            vec![table("sales", "tmp_orders_1"), table("sales", "tmp_orders_2")]
        );
        assert_eq!(parse_fixture!("database-create-database.json").hints, vec![db("marketing")]);
    }

    #[test]
    fn fixture_without_account_parses() {
        assert!(!fixture!("emulator-no-account.json").contains("\"account\""));
        let ev = parse_fixture!("emulator-no-account.json");
        assert_eq!(ev.hints, vec![parts("sales", "orders", &[&["2026-01-03", "us"]])]);
    }

    #[test]
    fn fixture_cloudtrail_api_call() {
        let ev = parse_fixture!("cloudtrail-create-table.json");
        assert_eq!(ev.id, "c0ffee00-1111-2222-3333-444455556666", "the record's eventID");
        assert_eq!(ev.time_ms, Some(1_767_323_098_000), "the record's eventTime");
        assert_eq!(ev.hints, vec![table("sales", "refunds")]);
    }

    #[test]
    fn cloudtrail_api_call_of_a_read_has_no_hints() {
        let mut v: Value = serde_json::from_str(fixture!("cloudtrail-create-table.json")).expect("json");
        v["detail"]["eventName"] = json!("GetTable");
        v["detail"]["requestParameters"] = json!({"databaseName": "sales", "name": "refunds"});
        let ev = parse_eventbridge(&v.to_string()).expect("a read is not an error");
        assert!(ev.hints.is_empty());
        assert_eq!(ev.id, "c0ffee00-1111-2222-3333-444455556666");
        // No eventID nor eventTime in the record: the envelope's.
        let detail = v["detail"].as_object_mut().expect("object");
        detail.remove("eventID");
        detail.remove("eventTime");
        let ev = parse_eventbridge(&v.to_string()).expect("parses");
        assert_eq!(ev.id, "8a9b0c1d-2e3f-4a5b-6c7d-8e9f0a1b2c3d");
        assert_eq!(ev.time_ms, Some(1_767_323_100_000));
    }

    #[test]
    fn fixture_cloudtrail_log_file() {
        let (events, errors) = parse_cloudtrail_file(fixture!("cloudtrail-log-file.json")).expect("file");
        assert!(errors.is_empty(), "{errors:?}");
        let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(
            ids,
            ["e0000001-aaaa-bbbb-cccc-ddddeeeeffff", "e0000005-aaaa-bbbb-cccc-ddddeeeeffff"],
            "GetTable, the S3 call and the failed DeleteTable are ignored"
        );
        assert_eq!(events[0].hints, vec![parts("sales", "orders", &[&["2026-01-02", "us"], &["2026-01-02", "eu"]])]);
        assert_eq!(events[0].time_ms, Some(1_767_323_400_000));
        assert_eq!(events[1].hints, vec![table("sales", "tmp_orders_3")]);
    }

    #[test]
    fn fixture_malformed_events() {
        assert!(matches!(parse_eventbridge(fixture!("bad-json.txt")), Err(EventError::NotJson { .. })));
        assert_eq!(
            parse_eventbridge(fixture!("missing-detail.json")),
            Err(EventError::MissingField { field: "detail", detail_type: TABLE_STATE_CHANGE.into() })
        );
        assert_eq!(
            parse_eventbridge(fixture!("unknown-detail-type.json")),
            Err(EventError::UnknownDetailType { detail_type: "Glue Job State Change".into() })
        );
        assert_eq!(
            parse_eventbridge(fixture!("wrong-source.json")),
            Err(EventError::WrongSource { found: "aws.s3".into() })
        );
    }

    // --- typeOfChange ---------------------------------------------------------------------

    #[test]
    fn database_type_of_change() {
        for change in ["CreateDatabase", "UpdateDatabase", "DeleteDatabase"] {
            assert_eq!(database_change(change, None), Ok(vec![db("sales")]), "{change}");
        }
    }

    #[test]
    fn table_type_of_change() {
        for change in ["CreateTable", "UpdateTable", "DeleteTable", "BatchDeleteTable"] {
            assert_eq!(
                database_change(change, Some(json!(["A", "b", "a"]))),
                Ok(vec![table("sales", "a"), table("sales", "b")]),
                "{change} through changedTables"
            );
            assert_eq!(table_change(change, None), Ok(vec![table("sales", "orders")]), "{change} through tableName");
            assert_eq!(
                database_change(change, None),
                Err(EventError::MissingField { field: "changedTables", detail_type: DATABASE_STATE_CHANGE.into() }),
                "{change} naming no table"
            );
            assert_eq!(database_change(change, Some(json!([]))), Ok(vec![db("sales")]));
        }
    }

    #[test]
    fn partition_type_of_change() {
        for change in PARTITION_CHANGES {
            assert_eq!(
                table_change(change, Some(json!(["[2026-01-01, us]", "[2026-01-02, eu]"]))),
                Ok(vec![parts("sales", "orders", &[&["2026-01-01", "us"], &["2026-01-02", "eu"]])]),
                "{change}"
            );
            assert_eq!(table_change(change, None), Ok(vec![deep("sales", "orders")]), "{change} without list");
            assert_eq!(
                table_change(change, Some(json!([]))),
                Ok(vec![deep("sales", "orders")]),
                "{change} with an empty list"
            );
            let no_table = json!({"databaseName": "sales", "typeOfChange": change, "changedPartitions": ["[1]"]});
            assert_eq!(
                parse_eventbridge(&envelope(TABLE_STATE_CHANGE, no_table)),
                Err(EventError::MissingField { field: "tableName", detail_type: TABLE_STATE_CHANGE.into() })
            );
        }
    }

    #[test]
    fn unknown_type_of_change() {
        assert_eq!(table_change("SomethingNew", None), Ok(vec![deep("sales", "orders")]));
        assert_eq!(database_change("SomethingNew", None), Ok(vec![db("sales")]));
        assert_eq!(
            database_change("SomethingNew", Some(json!(["t1", "t2"]))),
            Ok(vec![deep("sales", "t1"), deep("sales", "t2")])
        );
    }

    // --- changedPartitions ----------------------------------------------------------------

    #[test]
    fn partition_value_text() {
        assert_eq!(partition_values("[2026-01-01]"), Some(s(&["2026-01-01"])));
        assert_eq!(partition_values("[2026-01-01, us, 7]"), Some(s(&["2026-01-01", "us", "7"])));
        assert_eq!(
            partition_values("[1, 2021-05-23 00:00:00]"),
            Some(s(&["1", "2021-05-23 00:00:00"])),
            "spaces inside a value stay"
        );
        assert_eq!(partition_values("[a,b]"), Some(s(&["a,b"])), "a comma without space is in the value");
        assert_eq!(partition_values("[]"), Some(Vec::new()));
        assert_eq!(partition_values("2018,01"), None);
        assert_eq!(partition_values("[2018"), None);
    }

    #[test]
    fn unreadable_partition_lists_reread_the_table() {
        let whole = Ok(vec![deep("sales", "orders")]);
        // Differing widths: some value contained ", ".
        assert_eq!(table_change("BatchCreatePartition", Some(json!(["[a, b]", "[a, b, c]"]))), whole);
        assert_eq!(table_change("CreatePartition", Some(json!(["[]"]))), whole, "empty brackets");
        assert_eq!(table_change("CreatePartition", Some(json!(["2026"]))), whole, "no brackets");
        assert_eq!(table_change("CreatePartition", Some(json!([["2026"]]))), whole, "not a string");
        assert_eq!(table_change("CreatePartition", Some(json!("[2026]"))), whole, "not a list");
        // Duplicates are named once.
        assert_eq!(
            table_change("BatchUpdatePartition", Some(json!(["[x]", "[x]"]))),
            Ok(vec![parts("sales", "orders", &[&["x"]])])
        );
    }

    // --- CloudTrail records ---------------------------------------------------------------

    #[test]
    fn cloudtrail_event_names() {
        assert_eq!(record_hints("CreateDatabase", json!({"databaseInput": {"name": "Mkt"}})), Some(vec![db("mkt")]));
        assert_eq!(
            record_hints("UpdateDatabase", json!({"name": "mkt", "databaseInput": {"name": "mkt"}})),
            Some(vec![db("mkt")])
        );
        assert_eq!(record_hints("DeleteDatabase", json!({"name": "mkt"})), Some(vec![db("mkt")]));
        for event in ["CreateTable", "UpdateTable"] {
            assert_eq!(
                record_hints(event, json!({"databaseName": "Sales", "tableInput": {"name": "Orders"}})),
                Some(vec![table("sales", "orders")]),
                "{event}"
            );
        }
        assert_eq!(
            record_hints("DeleteTable", json!({"databaseName": "sales", "name": "orders"})),
            Some(vec![table("sales", "orders")])
        );
        assert_eq!(
            record_hints("BatchDeleteTable", json!({"databaseName": "sales", "tablesToDelete": ["a", "B"]})),
            Some(vec![table("sales", "a"), table("sales", "b")])
        );
        let t = json!({"databaseName": "sales", "tableName": "orders"});
        let with = |extra: Value| {
            let mut v = t.clone();
            if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
                o.extend(e.clone());
            }
            v
        };
        assert_eq!(
            record_hints("CreatePartition", with(json!({"partitionInput": {"values": ["1", "us"]}}))),
            Some(vec![parts("sales", "orders", &[&["1", "us"]])])
        );
        assert_eq!(
            record_hints(
                "BatchCreatePartition",
                with(json!({"partitionInputList": [{"values": ["1"]}, {"values": ["2"]}]}))
            ),
            Some(vec![parts("sales", "orders", &[&["1"], &["2"]])])
        );
        assert_eq!(
            record_hints(
                "UpdatePartition",
                with(json!({"partitionValueList": ["1"], "partitionInput": {"values": ["1"]}}))
            ),
            Some(vec![parts("sales", "orders", &[&["1"]])])
        );
        assert_eq!(
            record_hints(
                "UpdatePartition",
                with(json!({"partitionValueList": ["1"], "partitionInput": {"values": ["2"]}}))
            ),
            Some(vec![parts("sales", "orders", &[&["1"], &["2"]])]),
            "old and new values when they differ"
        );
        assert_eq!(
            record_hints(
                "BatchUpdatePartition",
                with(json!({"entries": [
                    {"partitionValueList": ["1"], "partitionInput": {"values": ["1"]}},
                    {"partitionValueList": ["2"], "partitionInput": {"values": ["2"]}}
                ]}))
            ),
            Some(vec![parts("sales", "orders", &[&["1"], &["2"]])])
        );
        assert_eq!(
            record_hints("DeletePartition", with(json!({"partitionValues": ["1"]}))),
            Some(vec![parts("sales", "orders", &[&["1"]])])
        );
        assert_eq!(
            record_hints(
                "BatchDeletePartition",
                with(json!({"partitionsToDelete": [{"values": ["1"]}, {"values": ["2"]}]}))
            ),
            Some(vec![parts("sales", "orders", &[&["1"], &["2"]])])
        );
        // Values lost (CloudTrail truncates large parameters) or unusable: the whole table.
        assert_eq!(record_hints("BatchCreatePartition", t.clone()), Some(vec![deep("sales", "orders")]));
        assert_eq!(
            record_hints("DeletePartition", with(json!({"partitionValues": [1]}))),
            Some(vec![deep("sales", "orders")])
        );
    }

    #[test]
    fn cloudtrail_other_mutating_calls() {
        assert_eq!(
            record_hints("DeleteTableVersion", json!({"databaseName": "S", "tableName": "T", "versionId": "3"})),
            Some(vec![deep("s", "t")])
        );
        assert_eq!(
            record_hints("CreateUserDefinedFunction", json!({"databaseName": "s", "functionInput": {}})),
            Some(vec![db("s")])
        );
        assert_eq!(record_hints("DeleteCrawler", json!({"name": "tes-alpha"})), None);
        assert_eq!(record_hints("StartCrawler", json!(null)), None);
    }

    #[test]
    fn cloudtrail_records_that_are_not_changes() {
        for event in ["GetTable", "GetPartitions", "ListSchemas", "SearchTables", "BatchGetPartition"] {
            assert_eq!(record_hints(event, json!({"databaseName": "s", "tableName": "t"})), None, "{event}");
        }
        let mut r = record("DeleteTable", json!({"databaseName": "s", "name": "t"}));
        r["readOnly"] = json!(true);
        assert_eq!(parse_cloudtrail_record(&r), Ok(None), "readOnly");
        r["readOnly"] = json!(false);
        r["errorCode"] = json!("AccessDeniedException");
        assert_eq!(parse_cloudtrail_record(&r), Ok(None), "failed");
        r["errorCode"] = Value::Null;
        assert!(matches!(parse_cloudtrail_record(&r), Ok(Some(_))), "errorCode null is success");
        r["eventSource"] = json!("s3.amazonaws.com");
        assert_eq!(parse_cloudtrail_record(&r), Ok(None), "another service");
    }

    #[test]
    fn cloudtrail_malformed_records() {
        let mut r = record("DeleteTable", json!({"databaseName": "s", "name": "t"}));
        if let Some(o) = r.as_object_mut() {
            o.remove("eventID");
        }
        assert_eq!(
            parse_cloudtrail_record(&r),
            Err(EventError::MissingField { field: "eventID", detail_type: CLOUDTRAIL_RECORD.into() })
        );
        assert_eq!(
            parse_cloudtrail_record(&record("CreateTable", json!({"databaseName": "s"}))),
            Err(EventError::MissingField {
                field: "requestParameters.tableInput.name",
                detail_type: CLOUDTRAIL_RECORD.into()
            })
        );
        assert_eq!(
            parse_cloudtrail_record(&record("CreatePartition", Value::Null)),
            Err(EventError::MissingField {
                field: "requestParameters.databaseName",
                detail_type: CLOUDTRAIL_RECORD.into()
            })
        );
        assert_eq!(parse_cloudtrail_record(&json!("text")), Err(EventError::NotAnObject { what: CLOUDTRAIL_RECORD }));
    }

    #[test]
    fn cloudtrail_file_keeps_good_records_past_bad_ones() {
        let file = json!({"Records": [
            record("CreateTable", json!({"databaseName": "s"})),
            7,
            record("DeleteTable", json!({"databaseName": "s", "name": "t"})),
        ]});
        let (events, errors) = parse_cloudtrail_file(&file.to_string()).expect("file");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].hints, vec![table("s", "t")]);
        assert_eq!(errors.len(), 2);
        assert_eq!(
            parse_cloudtrail_file(r#"{"records": []}"#),
            Err(EventError::MissingField { field: "Records", detail_type: CLOUDTRAIL_FILE.into() })
        );
        assert!(matches!(parse_cloudtrail_file("{"), Err(EventError::NotJson { .. })));
        assert_eq!(parse_cloudtrail_file(r#"{"Records": []}"#), Ok((Vec::new(), Vec::new())));
    }

    // --- Envelope -------------------------------------------------------------------------

    #[test]
    fn envelope_errors() {
        assert_eq!(
            parse_eventbridge(&"x".repeat(MAX_EVENT_BYTES + 1)),
            Err(EventError::TooLarge { bytes: MAX_EVENT_BYTES + 1, limit: MAX_EVENT_BYTES })
        );
        assert_eq!(parse_eventbridge("[1, 2]"), Err(EventError::NotAnObject { what: "EventBridge event" }));
        let mut v: Value = serde_json::from_str(&envelope(TABLE_STATE_CHANGE, json!({}))).expect("json");
        if let Some(o) = v.as_object_mut() {
            o.remove("source");
        }
        assert_eq!(
            parse_eventbridge(&v.to_string()),
            Err(EventError::MissingField { field: "source", detail_type: TABLE_STATE_CHANGE.into() })
        );
        let no_id = envelope(TABLE_STATE_CHANGE, json!({"databaseName": "s", "typeOfChange": "UpdateTable"}))
            .replace("\"id\":\"e-1\",", "");
        assert_eq!(
            parse_eventbridge(&no_id),
            Err(EventError::MissingField { field: "id", detail_type: TABLE_STATE_CHANGE.into() })
        );
        assert_eq!(
            parse_eventbridge(&envelope(TABLE_STATE_CHANGE, json!({"tableName": "t", "typeOfChange": "UpdateTable"}))),
            Err(EventError::MissingField { field: "databaseName", detail_type: TABLE_STATE_CHANGE.into() })
        );
        // An unreadable time is not an error: the event is still a hint.
        let odd_time = envelope(DATABASE_STATE_CHANGE, json!({"databaseName": "s", "typeOfChange": "CreateDatabase"}))
            .replace("2026-01-02T03:04:05Z", "yesterday");
        assert_eq!(parse_eventbridge(&odd_time).map(|e| e.time_ms), Ok(None));
        // The messages say what lakelog expected.
        let msg = EventError::WrongSource { found: "aws.s3".into() }.to_string();
        assert!(msg.contains("aws.glue") && msg.contains("aws.s3"), "{msg}");
    }

    #[test]
    fn largest_accepted_body() {
        let detail = json!({"databaseName": "s", "typeOfChange": "CreateDatabase"});
        let body = envelope(DATABASE_STATE_CHANGE, detail);
        let padded = format!("{body}{}", " ".repeat(MAX_EVENT_BYTES - body.len()));
        assert_eq!(padded.len(), MAX_EVENT_BYTES);
        assert!(parse_eventbridge(&padded).is_ok());
    }

    // --- Never panics ---------------------------------------------------------------------

    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[a-zA-Z\\[\\], ]{0,12}".prop_map(Value::String),
            prop::sample::select(vec![
                "CreatePartition",
                "BatchDeleteTable",
                "UpdateDatabase",
                "glue.amazonaws.com",
                "[1, 2]",
            ])
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop::sample::select(vec![
                        "databaseName",
                        "tableName",
                        "typeOfChange",
                        "changedPartitions",
                        "changedTables",
                        "eventSource",
                        "eventName",
                        "eventID",
                        "requestParameters",
                        "tableInput",
                        "name",
                        "values",
                        "partitionInputList",
                        "entries",
                        "errorCode",
                    ])
                    .prop_map(str::to_string),
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(body in ".{0,400}") {
            let _ = parse_eventbridge(&body);
        }

        #[test]
        fn arbitrary_details_never_panic(
            detail_type in prop::sample::select(vec![TABLE_STATE_CHANGE, DATABASE_STATE_CHANGE, CLOUDTRAIL_API_CALL]),
            detail in arbitrary_json(),
        ) {
            let _ = parse_eventbridge(&envelope(detail_type, detail.clone()));
            let _ = parse_cloudtrail_record(&detail);
            let _ = parse_cloudtrail_file(&json!({"Records": [detail]}).to_string());
        }
    }
}
