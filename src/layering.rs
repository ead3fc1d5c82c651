//! The layering rule of `lib.rs`, checked over the source: a module imports only from lower
//! layers (or from inside itself: `crate::x`, `crate::{x, y}` and `super::` chains that climb to the
//! root all count), no file outside `src/aws/` names an AWS SDK type, and no file
//! outside the classifier compares AWS error codes.

use std::path::{Path, PathBuf};

/// Every top-level module with its layer, lowest first. Modules of one layer never import each
/// other.
pub const LAYERS: &[(&str, u8)] = &[
    ("model", 0),
    ("metrics", 1),
    ("progress", 1),
    ("resources", 1),
    ("config", 2),
    ("backend", 3),
    ("aws", 4),
    ("catalog", 5),
    ("stream", 5),
    ("lease", 5),
    ("state", 6),
    ("capture", 7),
    ("apply", 7),
    ("archive", 8),
    ("simulate", 7),
    ("connect", 9),
    ("commands", 10),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src").flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/capture/events/queue.rs` → `capture`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("component").as_os_str().to_string_lossy().to_string();
    first.trim_end_matches(".rs").to_string()
}

/// How deep a file's module is below the crate root (`capture/events/queue.rs` → 3,
/// `capture/mod.rs` → 1): the number of `super::` that climb from it to the root.
fn depth(path: &str) -> usize {
    let parts = path.split('/').count();
    if path.ends_with("/mod.rs") {
        parts - 1
    } else {
        parts
    }
}

/// The identifiers a path names at `rest`, each with its offset in `rest`: `x` of `x::..`, each
/// `x`, `y` of `{x::.., y}` (a group may span lines, as rustfmt writes long ones).
fn named(rest: &str) -> Vec<(usize, String)> {
    let ident = |s: &str| s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
    let start = rest.len() - rest.trim_start().len();
    let Some(group) = rest[start..].strip_prefix('{') else { return vec![(start, ident(&rest[start..]))] };
    let group_at = start + 1;
    let mut names = Vec::new();
    let (mut level, mut item_start) = (1, true);
    for (i, c) in group.char_indices() {
        match c {
            '{' => level += 1,
            '}' if level == 1 => break,
            '}' => level -= 1,
            ',' if level == 1 => item_start = true,
            c if c.is_whitespace() => {}
            _ if item_start && level == 1 => {
                names.push((group_at + i, ident(&group[i..])));
                item_start = false;
            }
            _ => {}
        }
    }
    names
}

/// The top-level modules `code` imports, with the line each is on: `crate::x`, `crate::{x, y}`,
/// and `super::` chains long enough to climb from the file at `path` to the crate root.
fn imported(path: &str, code: &str) -> Vec<(usize, String)> {
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let mut found = Vec::new();
    let mut names_at = |from: usize| {
        let names = named(&code[from..]);
        found.extend(names.into_iter().map(|(at, name)| (line_of(from + at), name)));
    };
    for (at, _) in code.match_indices("crate::") {
        names_at(at + "crate::".len());
    }
    let mut from = 0;
    while let Some(i) = code[from..].find("super::") {
        let mut end = from + i;
        let mut supers = 0;
        while code[end..].starts_with("super::") {
            end += "super::".len();
            supers += 1;
        }
        if supers >= depth(path) {
            names_at(end);
        }
        from = end;
    }
    found
}

/// Problems of one file (its text without comments).
fn check(module: &str, path: &str, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let own = layer(module);
    let code: String = text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
    for (line, used) in imported(path, &code) {
        match (own, layer(&used)) {
            (Some(own), Some(theirs)) if used != module && theirs >= own => problems.push(format!(
                "{path}:{line}: `{module}` (layer {own}) imports `{used}` (layer {theirs}); only lower layers may be imported"
            )),
            _ => {}
        }
    }
    for (n, line) in code.lines().enumerate() {
        if module != "aws" && line.contains("aws_sdk_") {
            problems.push(format!("{path}:{}: names an AWS SDK type outside src/aws/", n + 1));
        }
        let compares_code =
            line.contains("code ==") || line.contains("code() ==") || line.contains("code.as_deref() == Some(\"");
        if compares_code && path != "aws/error.rs" {
            problems.push(format!("{path}:{}: compares an error code outside the classifier (aws/error.rs)", n + 1));
        }
    }
    problems
}

#[test]
fn no_import_runs_up_the_layers_and_sdk_types_stay_in_aws() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut problems = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        if matches!(module.as_str(), "lib" | "main" | "layering") {
            continue;
        }
        assert!(layer(&module).is_some(), "module `{module}` is missing from LAYERS (and from the lib.rs layout)");
        let text = std::fs::read_to_string(file).expect("read");
        let rel = file.strip_prefix(&src).expect("under src").to_string_lossy().to_string();
        problems.extend(check(&module, &rel, &text));
    }
    assert!(problems.is_empty(), "{} layering problem(s):\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn the_checker_catches_what_it_is_for() {
    assert_eq!(check("stream", "stream/x.rs", "use crate::apply::Applier;").len(), 1);
    assert_eq!(check("capture", "capture/x.rs", "use crate::apply::Applier;").len(), 1, "siblings");
    assert!(check("apply", "apply/x.rs", "use crate::stream::x; use crate::apply::y;").is_empty());
    assert_eq!(check("apply", "apply/x.rs", "fn f(c: aws_sdk_glue::Client) {}").len(), 1);
    assert!(check("aws", "aws/glue.rs", "fn f(c: aws_sdk_glue::Client) {}").is_empty());
    assert_eq!(check("stream", "stream/c.rs", r#"if err.code.as_deref() == Some("Expired") {}"#).len(), 1);
    assert!(check("stream", "stream/c.rs", "// use crate::commands::x;").is_empty(), "comments are skipped");
}

#[test]
fn grouped_imports_and_super_chains_to_the_root_are_checked_too() {
    let grouped = "use crate::{\n    model::Table,\n    apply::{x, y},\n};";
    assert_eq!(
        check("stream", "stream/x.rs", grouped),
        ["stream/x.rs:3: `stream` (layer 5) imports `apply` (layer 7); only lower layers may be imported"]
    );
    assert!(check("stream", "stream/x.rs", "use crate::{model::{a, b}, backend::c};").is_empty());
    // Three levels down, three `super::` are the crate root; two are still inside `capture`.
    assert_eq!(check("capture", "capture/events/q.rs", "use super::super::super::apply::Applier;").len(), 1);
    assert!(check("capture", "capture/events/q.rs", "use super::super::apply::x;").is_empty());
    assert_eq!(check("catalog", "catalog/mod.rs", "use super::{model::T, commands::run};").len(), 1);
}

#[test]
fn lib_rs_documents_every_module_in_its_layer() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).expect("lib.rs");
    let doc: String = lib.lines().filter(|l| l.starts_with("//!")).collect::<Vec<_>>().join("\n");
    for module in lib.lines().filter_map(|l| l.strip_prefix("pub mod ")).map(|m| m.trim_end_matches(';')) {
        assert!(doc.contains(&format!("[`{module}`]")), "lib.rs's Layout does not describe `{module}`");
        assert!(layer(module).is_some(), "`{module}` has no layer in LAYERS");
    }
}
