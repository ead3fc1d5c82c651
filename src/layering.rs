//! The layering rule of `lib.rs`, checked over the source: a module imports only from lower
//! layers (or from inside itself), no file outside `src/aws/` names an AWS SDK type, and no file
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
    ("state", 6),
    ("capture", 7),
    ("apply", 7),
    ("archive", 7),
    ("simulate", 7),
    ("connect", 8),
    ("commands", 9),
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

/// Problems of one file (its text without comments).
fn check(module: &str, path: &str, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let own = layer(module);
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let used: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            match (own, layer(&used)) {
                (Some(own), Some(theirs)) if used != module && theirs >= own => problems.push(format!(
                    "{path}:{}: `{module}` (layer {own}) imports `{used}` (layer {theirs}); only lower layers may be imported",
                    n + 1
                )),
                _ => {}
            }
        }
        if module != "aws" && code.contains("aws_sdk_") {
            problems.push(format!("{path}:{}: names an AWS SDK type outside src/aws/", n + 1));
        }
        let compares_code =
            code.contains("code ==") || code.contains("code() ==") || code.contains("code.as_deref() == Some(\"");
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
fn lib_rs_documents_every_module_in_its_layer() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).expect("lib.rs");
    let doc: String = lib.lines().filter(|l| l.starts_with("//!")).collect::<Vec<_>>().join("\n");
    for module in lib.lines().filter_map(|l| l.strip_prefix("pub mod ")).map(|m| m.trim_end_matches(';')) {
        assert!(doc.contains(&format!("[`{module}`]")), "lib.rs's Layout does not describe `{module}`");
        assert!(layer(module).is_some(), "`{module}` has no layer in LAYERS");
    }
}
