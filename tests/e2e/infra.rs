//! infra/: the CloudFormation templates pass cfn-lint (installed by scripts/tools.sh), and the
//! IAM policy documents are valid JSON without wildcard actions.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no *.{ext} in {}", dir.display());
    out
}

#[test]
fn cloudformation_templates_pass_cfn_lint() {
    let dev = std::env::var_os("LAKELOG_DEV_DIR").map(PathBuf::from).unwrap_or_else(|| root().join(".lakelog-dev"));
    let cfn_lint = dev.join("bin").join("cfn-lint");
    assert!(cfn_lint.exists(), "{} is missing; run scripts/tools.sh install", cfn_lint.display());
    let templates = files(&root().join("infra").join("cloudformation"), "yaml");
    let out = Command::new(&cfn_lint).args(&templates).output().expect("run cfn-lint");
    assert!(
        out.status.success(),
        "cfn-lint found problems:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn iam_policies_are_json_without_wildcard_actions() {
    for path in files(&root().join("infra").join("iam"), "json") {
        let text = std::fs::read_to_string(&path).expect("read");
        let doc: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
        let statements = doc["Statement"].as_array().unwrap_or_else(|| panic!("{}: no Statement list", path.display()));
        for s in statements {
            let actions: Vec<&str> = match &s["Action"] {
                serde_json::Value::String(a) => vec![a.as_str()],
                serde_json::Value::Array(a) => a.iter().filter_map(|v| v.as_str()).collect(),
                _ => panic!("{}: statement without Action: {s}", path.display()),
            };
            for a in actions {
                assert!(a != "*" && !a.ends_with(":*"), "{}: wildcard action {a}", path.display());
            }
        }
    }
}
