//! Lake Formation's CloudTrail records (`eventSource` `lakeformation.amazonaws.com`) as hints.
//!
//! `requestParameters` is the request in camelCase (`principal.dataLakePrincipalIdentifier`,
//! `resource.table.databaseName`, ...). Each call names the object it changed; capture re-reads
//! it into full state ([`Hint::LakeFormation`]):
//!
//! | `eventName` | re-read |
//! | --- | --- |
//! | `GrantPermissions`, `RevokePermissions`, `BatchGrantPermissions`, `BatchRevokePermissions` | the grant of each principal on each resource |
//! | `CreateLFTag`, `UpdateLFTag`, `DeleteLFTag` | the LF-tag (a delete also unassigns it everywhere: reconciliation re-reads those) |
//! | `CreateLFTagExpression`, `UpdateLFTagExpression`, `DeleteLFTagExpression` | the expression |
//! | `AddLFTagsToResource`, `RemoveLFTagsFromResource` | the tags of the database or table |
//! | `CreateDataCellsFilter`, `UpdateDataCellsFilter`, `DeleteDataCellsFilter` | the filter |
//! | `PutDataLakeSettings` | the settings |
//! | `RegisterResource`, `UpdateResource`, `DeregisterResource` | the location |
//! | `CreateLakeFormationOptIn`, `DeleteLakeFormationOptIn` | the opt-in |
//!
//! Any other Lake Formation call (reads, transactions, credentials) has no hints. A record of a
//! listed call that lacks what it must name is an error (counted, never silently dropped).

use serde_json::{Map, Value};

use super::hint::Hint;
use super::parse::EventError;
use crate::model::lakeformation::{ColumnSelection, LfKey, LfResource, LfTagPair};

/// The CloudTrail `eventSource` of Lake Formation API calls.
pub const LF_EVENT_SOURCE: &str = "lakeformation.amazonaws.com";
/// The EventBridge `source` of Lake Formation's "AWS API Call via CloudTrail" events.
pub const LF_SOURCE: &str = "aws.lakeformation";

/// Every Lake Formation call capture re-reads (the table above). The single list: [`hints`]
/// answers no other name, and the EventBridge rule in `infra/cloudformation/lakelog.yaml`
/// forwards exactly these (checked by `tests/e2e/infra.rs`).
pub const LF_EVENT_NAMES: [&str; 21] = [
    "GrantPermissions",
    "RevokePermissions",
    "BatchGrantPermissions",
    "BatchRevokePermissions",
    "CreateLFTag",
    "UpdateLFTag",
    "DeleteLFTag",
    "CreateLFTagExpression",
    "UpdateLFTagExpression",
    "DeleteLFTagExpression",
    "AddLFTagsToResource",
    "RemoveLFTagsFromResource",
    "CreateDataCellsFilter",
    "UpdateDataCellsFilter",
    "DeleteDataCellsFilter",
    "PutDataLakeSettings",
    "RegisterResource",
    "UpdateResource",
    "DeregisterResource",
    "CreateLakeFormationOptIn",
    "DeleteLakeFormationOptIn",
];

const RECORD: &str = "Lake Formation CloudTrail record";

fn missing(field: &'static str) -> EventError {
    EventError::MissingField { field, detail_type: RECORD.to_string() }
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Database and table names as Glue stores them.
fn name(v: &Value, key: &str) -> Option<String> {
    s(v, key).map(str::to_lowercase)
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn tags(v: Option<&Value>) -> Vec<LfTagPair> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|t| Some(LfTagPair::new(s(t, "tagKey")?, strings(t.get("tagValues"))))).collect())
        .unwrap_or_default()
}

/// A `Resource` of a request, normalized as the model keys it.
pub fn resource(r: &Value) -> Option<LfResource> {
    let out = if r.get("catalog").is_some() {
        LfResource::Catalog
    } else if let Some(d) = r.get("database") {
        LfResource::Database { database: name(d, "name")? }
    } else if let Some(t) = r.get("table") {
        let database = name(t, "databaseName")?;
        match (t.get("tableWildcard"), name(t, "name")) {
            (None, Some(table)) => LfResource::Table { database, table },
            _ => LfResource::TableWildcard { database },
        }
    } else if let Some(t) = r.get("tableWithColumns") {
        let columns = match t.get("columnWildcard") {
            Some(w) => ColumnSelection::Wildcard { excluded: strings(w.get("excludedColumnNames")) },
            None => ColumnSelection::Names { names: strings(t.get("columnNames")) },
        };
        LfResource::TableWithColumns { database: name(t, "databaseName")?, table: name(t, "name")?, columns }
    } else if let Some(l) = r.get("dataLocation") {
        LfResource::DataLocation { arn: s(l, "resourceArn")?.to_string() }
    } else if let Some(f) = r.get("dataCellsFilter") {
        LfResource::DataCellsFilter {
            database: name(f, "databaseName")?,
            table: name(f, "tableName")?,
            name: s(f, "name")?.to_string(),
        }
    } else if let Some(t) = r.get("lFTag").or_else(|| r.get("lfTag")) {
        LfResource::LfTag { key: s(t, "tagKey")?.to_string(), values: strings(t.get("tagValues")) }
    } else if let Some(p) = r.get("lFTagPolicy").or_else(|| r.get("lfTagPolicy")) {
        let resource_type = s(p, "resourceType")?.to_string();
        match s(p, "expressionName") {
            Some(e) => LfResource::LfTagExpression { resource_type: Some(resource_type), name: e.to_string() },
            None => LfResource::LfTagPolicy { resource_type, expression: tags(p.get("expression")) },
        }
    } else if let Some(e) = r.get("lFTagExpression").or_else(|| r.get("lfTagExpression")) {
        LfResource::LfTagExpression { resource_type: None, name: s(e, "name")?.to_string() }
    } else {
        return None;
    };
    Some(out.normalized())
}

fn principal(v: &Value) -> Option<String> {
    v.get("principal").and_then(|p| s(p, "dataLakePrincipalIdentifier")).map(str::to_string)
}

/// The grant a request (or batch entry) names.
fn grant(v: &Value) -> Result<Hint, EventError> {
    let principal = principal(v).ok_or_else(|| missing("requestParameters.principal"))?;
    let resource = v.get("resource").and_then(resource).ok_or_else(|| missing("requestParameters.resource"))?;
    Ok(Hint::LakeFormation { lf: LfKey::Permission { principal, resource } })
}

/// The hints of a successful Lake Formation call `event` with `params`; `None` for calls that
/// change nothing lakelog replicates.
pub fn hints(event: &str, params: &Map<String, Value>) -> Result<Option<Vec<Hint>>, EventError> {
    if !LF_EVENT_NAMES.contains(&event) {
        return Ok(None);
    }
    let p = Value::Object(params.clone());
    let lf = |lf| vec![Hint::LakeFormation { lf }];
    let text = |key: &'static str| s(&p, key).map(str::to_string).ok_or_else(|| missing(key));
    let hints = match event {
        "GrantPermissions" | "RevokePermissions" => vec![grant(&p)?],
        "BatchGrantPermissions" | "BatchRevokePermissions" => {
            let entries =
                p.get("entries").and_then(Value::as_array).ok_or_else(|| missing("requestParameters.entries"))?;
            let mut out = Vec::new();
            for e in entries {
                let h = grant(e)?;
                if !out.contains(&h) {
                    out.push(h);
                }
            }
            out
        }
        "CreateLFTag" | "UpdateLFTag" | "DeleteLFTag" => lf(LfKey::LfTag { key: text("tagKey")? }),
        "CreateLFTagExpression" | "UpdateLFTagExpression" | "DeleteLFTagExpression" => {
            lf(LfKey::LfTagExpression { name: text("name")? })
        }
        "AddLFTagsToResource" | "RemoveLFTagsFromResource" => {
            let r = p.get("resource").and_then(resource).ok_or_else(|| missing("requestParameters.resource"))?;
            match (r.database(), r.table()) {
                (Some(d), t) => lf(LfKey::ResourceTags { database: d.to_string(), table: t.map(str::to_string) }),
                // Tags are assigned to databases, tables and columns only.
                (None, _) => return Ok(None),
            }
        }
        "CreateDataCellsFilter" | "UpdateDataCellsFilter" => {
            let t = p.get("tableData").ok_or_else(|| missing("requestParameters.tableData"))?;
            let (Some(database), Some(table), Some(n)) = (name(t, "databaseName"), name(t, "tableName"), s(t, "name"))
            else {
                return Err(missing("requestParameters.tableData.name"));
            };
            lf(LfKey::DataCellsFilter { database, table, name: n.to_string() })
        }
        "DeleteDataCellsFilter" => {
            let (Some(database), Some(table), Some(n)) =
                (name(&p, "databaseName"), name(&p, "tableName"), s(&p, "name"))
            else {
                return Err(missing("requestParameters.name"));
            };
            lf(LfKey::DataCellsFilter { database, table, name: n.to_string() })
        }
        "PutDataLakeSettings" => lf(LfKey::DataLakeSettings),
        "RegisterResource" | "UpdateResource" | "DeregisterResource" => {
            lf(LfKey::DataLocation { arn: text("resourceArn")? })
        }
        "CreateLakeFormationOptIn" | "DeleteLakeFormationOptIn" => {
            let principal = principal(&p).ok_or_else(|| missing("requestParameters.principal"))?;
            let resource = p.get("resource").and_then(resource).ok_or_else(|| missing("requestParameters.resource"))?;
            lf(LfKey::OptIn { principal, resource })
        }
        // Not in `LF_EVENT_NAMES` (returned above); a listed name without an arm here is caught
        // by the test that every listed call is understood.
        _ => return Ok(None),
    };
    Ok(Some(hints))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("an object")
    }

    /// Every listed call is understood: with empty parameters it is either a hint (settings) or
    /// an error naming what it lacks, never "nothing to re-read"; an unlisted one is nothing.
    #[test]
    fn every_listed_call_is_understood_and_no_other() {
        for name in LF_EVENT_NAMES {
            assert!(!matches!(hints(name, &Map::new()), Ok(None)), "{name} is listed but has no hints");
        }
        assert_eq!(
            hints("PutDataLakeSettings", &Map::new()).expect("parses"),
            Some(vec![Hint::LakeFormation { lf: LfKey::DataLakeSettings }])
        );
        for name in ["GetDataLakeSettings", "ListPermissions", "StartTransaction", "GetTemporaryGlueTableCredentials"] {
            assert_eq!(hints(name, &Map::new()).expect("parses"), None, "{name}");
        }
    }

    #[test]
    fn a_batch_grant_names_each_grant_once_with_names_lower_cased() {
        let entry = json!({"id": "1", "principal": {"dataLakePrincipalIdentifier": "arn:aws:iam::1:role/a"},
            "resource": {"table": {"catalogId": "1", "databaseName": "Sales", "name": "Orders"}},
            "permissions": ["SELECT"]});
        let p = params(json!({"catalogId": "1", "entries": [entry.clone(), entry]}));
        let hints = hints("BatchGrantPermissions", &p).expect("parses").expect("hints");
        assert_eq!(
            hints,
            vec![Hint::LakeFormation {
                lf: LfKey::Permission {
                    principal: "arn:aws:iam::1:role/a".into(),
                    resource: LfResource::Table { database: "sales".into(), table: "orders".into() },
                }
            }]
        );
    }

    #[test]
    fn tag_assignments_on_columns_re_read_the_table_and_reads_have_no_hints() {
        let p =
            params(json!({"resource": {"tableWithColumns": {"databaseName": "d", "name": "t", "columnNames": ["c"]}},
            "lFTags": [{"tagKey": "k", "tagValues": ["v"]}]}));
        assert_eq!(
            hints("AddLFTagsToResource", &p).expect("parses"),
            Some(vec![Hint::LakeFormation {
                lf: LfKey::ResourceTags { database: "d".into(), table: Some("t".into()) }
            }])
        );
        assert_eq!(hints("ListPermissions", &Map::new()).expect("parses"), None);
        assert!(hints("GrantPermissions", &params(json!({"resource": {"catalog": {}}}))).is_err());
    }
}
