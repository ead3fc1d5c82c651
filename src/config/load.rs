//! From text to sections: `${ENV}` interpolation, YAML parsing, and deserialising each section
//! (and each target) on its own, so that a bad section or target leaves the others to be parsed
//! and validated. Every error carries its full path, found by `serde_path_to_error` while
//! deserialising; this module never judges values (that is `validate`).

use serde::de::DeserializeOwned;
use serde_yaml_ng::{Mapping, Value};

use super::sections::{
    ApplyConfig, ArchiveConfig, MetricsConfig, SourceConfig, StateConfig, StreamConfig, TargetConfig,
};
use super::{PipelineConfig, Problems};

/// The top-level keys of a pipeline file.
const SECTIONS: [&str; 7] = ["source", "stream", "state", "targets", "apply", "metrics", "archive"];

/// Whatever parsed; a section that did not is `None` (its problems are already recorded).
pub(super) struct Sections {
    pub source: Option<SourceConfig>,
    pub stream: Option<StreamConfig>,
    pub state: Option<StateConfig>,
    /// The targets that parsed, with their index in the file (for their paths).
    pub targets: Vec<(usize, TargetConfig)>,
    /// Whether every target in the file parsed (and there is at least one).
    pub targets_complete: bool,
    pub apply: Option<ApplyConfig>,
    pub metrics: Option<MetricsConfig>,
    pub archive: Option<ArchiveConfig>,
}

impl Sections {
    fn empty() -> Sections {
        Sections {
            source: None,
            stream: None,
            state: None,
            targets: Vec::new(),
            targets_complete: false,
            apply: None,
            metrics: None,
            archive: None,
        }
    }

    /// Interpolates, parses and deserialises `text`, recording every problem met on the way.
    pub fn parse(text: &str, problems: &mut Problems) -> Sections {
        let text = interpolate_env(text, problems);
        let root: Value = match serde_yaml_ng::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                problems.add("(file)", format!("not valid YAML: {e}"));
                return Sections::empty();
            }
        };
        let Some(map) = root.as_mapping() else {
            problems.add("(file)", "expected a mapping with source, stream, state and targets");
            return Sections::empty();
        };
        for key in map.keys() {
            let name = key.as_str().unwrap_or("?");
            if !SECTIONS.contains(&name) {
                problems.add(name, format!("unknown section; expected one of {}", SECTIONS.join(", ")));
            }
        }
        // In the order of a typical file, so the problems read top to bottom.
        let source = required(map, "source", problems);
        let stream = required(map, "stream", problems);
        let state = required(map, "state", problems);
        let (targets, targets_complete) = parse_targets(map.get("targets"), problems);
        let apply = optional(map, "apply", problems);
        let metrics = optional(map, "metrics", problems);
        let archive = optional(map, "archive", problems);
        Sections { source, stream, state, targets, targets_complete, apply, metrics, archive }
    }

    /// The pipeline, when every required section and every target parsed.
    pub fn complete(self) -> Option<PipelineConfig> {
        if !self.targets_complete {
            return None;
        }
        Some(PipelineConfig {
            source: self.source?,
            stream: self.stream?,
            state: self.state?,
            targets: self.targets.into_iter().map(|(_, t)| t).collect(),
            apply: self.apply?,
            metrics: self.metrics?,
            archive: self.archive?,
        })
    }
}

fn required<T: DeserializeOwned>(map: &Mapping, name: &str, problems: &mut Problems) -> Option<T> {
    match map.get(name) {
        Some(v) => parse_at(v, name, problems),
        None => {
            problems.add(name, "missing section");
            None
        }
    }
}

fn optional<T: DeserializeOwned + Default>(map: &Mapping, name: &str, problems: &mut Problems) -> Option<T> {
    match map.get(name) {
        Some(v) => parse_at(v, name, problems),
        None => Some(T::default()),
    }
}

/// Each target on its own, so one with a typo does not hide the problems of the others.
fn parse_targets(value: Option<&Value>, problems: &mut Problems) -> (Vec<(usize, TargetConfig)>, bool) {
    let items = match value {
        Some(Value::Sequence(items)) if items.is_empty() => {
            problems.add("targets", "add at least one target");
            return (Vec::new(), false);
        }
        Some(Value::Sequence(items)) => items,
        Some(_) => {
            problems.add("targets", "expected a list of targets (`- name: ...`)");
            return (Vec::new(), false);
        }
        None => {
            problems.add("targets", "missing; add at least one target with name and region");
            return (Vec::new(), false);
        }
    };
    let targets: Vec<_> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| parse_at::<TargetConfig>(item, &format!("targets[{i}]"), problems).map(|t| (i, t)))
        .collect();
    let complete = targets.len() == items.len();
    (targets, complete)
}

/// Deserialises the value found at `at`; every failure is recorded with the full path of the
/// field. serde stops at the first bad field, so a bad field is taken out and the rest parsed
/// again, until nothing more is wrong or what is wrong cannot be taken out (a missing field, a
/// bad list item): each round removes a key, so this ends.
fn parse_at<T: DeserializeOwned>(value: &Value, at: &str, problems: &mut Problems) -> Option<T> {
    let mut value = value.clone();
    let mut removed: Vec<String> = Vec::new();
    loop {
        let e = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(v) if removed.is_empty() => return Some(v),
            Ok(_) => return None,
            Err(e) => e,
        };
        let message = e.inner().to_string();
        let mut path = join(at, &e.path().to_string());
        // serde raises a missing field once the mapping that should hold it has ended, so the
        // path stops at the mapping and the field's name is only in the message. (An unknown
        // field's key is already the path's last segment.)
        let missing = missing_field(&message).map(str::to_string);
        if let Some(field) = &missing {
            path = join(&path, field);
        }
        // A required field taken out for its bad value is missing now: it is reported already.
        if !removed.contains(&path) {
            problems.add(path.clone(), message);
        }
        if missing.is_some() || !remove(&mut value, e.path()) {
            return None;
        }
        removed.push(path);
    }
}

/// Takes the mapping entry at `path` out of `value`; false when `path` does not end in a key of a
/// mapping found by keys and list indexes.
fn remove(value: &mut Value, path: &serde_path_to_error::Path) -> bool {
    use serde_path_to_error::Segment;
    let segments: Vec<&Segment> = path.iter().collect();
    let Some((Segment::Map { key }, parents)) = segments.split_last() else { return false };
    let mut at = value;
    for segment in parents {
        let next = match (segment, at) {
            (Segment::Map { key }, Value::Mapping(m)) => m.get_mut(key.as_str()),
            (Segment::Seq { index }, Value::Sequence(items)) => items.get_mut(*index),
            _ => None,
        };
        match next {
            Some(v) => at = v,
            None => return false,
        }
    }
    at.as_mapping_mut().is_some_and(|m| m.remove(key.as_str()).is_some())
}

/// `at` followed by a path relative to it (`.` is serde_path_to_error's empty path).
fn join(at: &str, relative: &str) -> String {
    match relative {
        "" | "." => at.to_string(),
        r if r.starts_with('[') => format!("{at}{r}"),
        r => format!("{at}.{r}"),
    }
}

/// The field of serde's "missing field `x`".
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next())
}

/// Replaces `${NAME}` and `${NAME:-default}` with environment values, except on comment lines;
/// `$${` escapes a literal `${`.
fn interpolate_env(text: &str, problems: &mut Problems) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
        } else {
            out.push_str(&interpolate_line(line, problems));
        }
    }
    out
}

fn interpolate_line(text: &str, problems: &mut Problems) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("${") {
        if pos > 0 && rest.as_bytes()[pos - 1] == b'$' {
            out.push_str(&rest[..pos - 1]);
            out.push_str("${");
            rest = &rest[pos + 2..];
            continue;
        }
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        let Some(end) = after.find('}') else {
            problems.add("(file)", "unterminated `${` in config");
            out.push_str(&rest[pos..]);
            return out;
        };
        let expr = &after[..end];
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (expr, None),
        };
        match (std::env::var(name), default) {
            (Ok(v), _) if !v.is_empty() => out.push_str(&v),
            (_, Some(d)) => out.push_str(d),
            (Ok(v), None) => out.push_str(&v),
            (Err(_), None) => problems.add(
                format!("${{{name}}}"),
                format!("environment variable {name} is not set; set it or write ${{{name}:-default}}"),
            ),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}
