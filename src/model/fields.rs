//! Field-level differences between two states of an object: the paths (`a.b[2].c`) where they
//! differ, down to the first differing level, with the old and new values. `diff` names drifted
//! fields with it, `history` shows what each change changed, and a restore plan what it will
//! change.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use super::catalog::CatalogObject;

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub path: String,
    /// `null` when the field is absent.
    pub old: Value,
    pub new: Value,
}

/// An object as JSON, the way it is compared.
pub fn json(object: &CatalogObject) -> Value {
    let value = match object {
        CatalogObject::Database(d) => serde_json::to_value(d),
        CatalogObject::Table(t) => serde_json::to_value(t),
        CatalogObject::Partition(p) => serde_json::to_value(p),
        CatalogObject::LakeFormation { lf } => serde_json::to_value(lf),
    };
    value.unwrap_or(Value::Null)
}

/// Every field where `old` and `new` differ, in path order.
pub fn changes(old: &Value, new: &Value) -> Vec<FieldChange> {
    let mut out = Vec::new();
    walk(old, new, "", &mut out);
    out
}

/// The paths where `a` and `b` differ.
pub fn paths(a: &Value, b: &Value) -> Vec<String> {
    changes(a, b).into_iter().map(|c| c.path).collect()
}

fn walk(a: &Value, b: &Value, path: &str, out: &mut Vec<FieldChange>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let (va, vb) = (x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null));
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                walk(va, vb, &p, out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                walk(va, vb, &format!("{path}[{i}]"), out);
            }
        }
        _ if a != b => out.push(FieldChange {
            path: if path.is_empty() { "(whole object)".into() } else { path.to_string() },
            old: a.clone(),
            new: b.clone(),
        }),
        _ => {}
    }
}

/// A value for one line of text: strings unquoted when short, anything else as compact JSON,
/// cut at `max` characters.
pub fn short(value: &Value, max: usize) -> String {
    let text = match value {
        Value::Null => "(none)".to_string(),
        other => other.to_string(),
    };
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_name_the_nested_paths_with_old_and_new_values() {
        let a = serde_json::json!({"name": "t", "sd": {"location": "s3://a", "cols": [{"n": "x"}, {"n": "y"}]}, "p": {"k": "1"}});
        let b =
            serde_json::json!({"name": "t", "sd": {"location": "s3://b", "cols": [{"n": "x"}, {"n": "z"}]}, "p": {}});
        assert_eq!(paths(&a, &b), vec!["p.k", "sd.cols[1].n", "sd.location"]);
        let c = changes(&a, &b);
        assert_eq!((c[2].old.clone(), c[2].new.clone()), (Value::from("s3://a"), Value::from("s3://b")));
        assert_eq!(c[0].new, Value::Null, "a removed field is null");
        assert_eq!(paths(&serde_json::json!({"c": [1]}), &serde_json::json!({"c": [1, 2]})), vec!["c"]);
        assert_eq!(short(&Value::from("x".repeat(100)), 10), format!("\"{}…", "x".repeat(9)));
    }
}
