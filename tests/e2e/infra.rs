//! The checked-in operations files: the CloudFormation templates pass cfn-lint, the alert rules
//! pass `promtool check rules` and their unit tests (both tools installed by scripts/tools.sh),
//! and the IAM policy documents are valid JSON without wildcard actions.

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

/// Runs a bundled checker in `dir` and fails with its output unless it succeeds.
fn check(tool: &str, args: &[&std::ffi::OsStr], dir: &Path) {
    let path = crate::emulator::dev_dir().join("bin").join(tool);
    assert!(path.exists(), "{} is missing; run scripts/tools.sh install", path.display());
    let out = Command::new(&path).args(args).current_dir(dir).output().unwrap_or_else(|e| panic!("run {tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn cloudformation_templates_pass_cfn_lint() {
    let templates = files(&root().join("infra").join("cloudformation"), "yaml");
    let args: Vec<&std::ffi::OsStr> = templates.iter().map(|p| p.as_os_str()).collect();
    check("cfn-lint", &args, &root());
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let grafana = root().join("grafana");
    check("promtool", &["check".as_ref(), "rules".as_ref(), "alerts.yaml".as_ref()], &grafana);
    check("promtool", &["test".as_ref(), "rules".as_ref(), "alerts_test.yaml".as_ref()], &grafana);
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

/// The EventBridge rules of a template that send "AWS API Call via CloudTrail" events of
/// `source`: (logical id, the rule's `detail.eventName` list, if it has one).
fn api_call_rules(template: &str, source: &str) -> Vec<(String, Option<Vec<String>>)> {
    let path = root().join("infra").join("cloudformation").join(template);
    let text = std::fs::read_to_string(&path).expect("read");
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{template}: {e}"));
    let strings = |v: &serde_yaml_ng::Value| -> Vec<String> {
        v.as_sequence().map(|s| s.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default()
    };
    let mut out = Vec::new();
    for (id, resource) in doc["Resources"].as_mapping().expect("Resources") {
        if resource["Type"].as_str() != Some("AWS::Events::Rule") {
            continue;
        }
        let pattern = &resource["Properties"]["EventPattern"];
        let api_calls = strings(&pattern["detail-type"]).iter().any(|d| d == "AWS API Call via CloudTrail");
        if api_calls && strings(&pattern["source"]).iter().any(|s| s == source) {
            let names = pattern["detail"].get("eventName").map(strings);
            out.push((id.as_str().unwrap_or_default().to_string(), names));
        }
    }
    out
}

/// The queue's Lake Formation rule forwards exactly the calls capture re-reads
/// (`LF_EVENT_NAMES`): a call added to the code but not to the rule would never arrive, one in
/// the rule only would fill the queue with events capture drops. The forwarding template
/// (another Region) passes every Lake Formation API call on to that rule.
#[test]
fn the_lake_formation_rule_forwards_exactly_the_calls_capture_understands() {
    use lakelog::capture::events::lakeformation::LF_EVENT_NAMES;
    let rules = api_call_rules("lakelog.yaml", "aws.lakeformation");
    assert_eq!(rules.len(), 1, "one Lake Formation API-call rule in lakelog.yaml: {rules:?}");
    let (id, names) = &rules[0];
    let mut names = names.clone().unwrap_or_else(|| panic!("{id} has no detail.eventName list"));
    let mut code: Vec<String> = LF_EVENT_NAMES.iter().map(|s| s.to_string()).collect();
    names.sort();
    code.sort();
    assert_eq!(names, code, "{id}'s eventName list and LF_EVENT_NAMES differ");

    let text = std::fs::read_to_string(root().join("infra/cloudformation/lakelog.yaml")).expect("read");
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("yaml");
    let policy = serde_yaml_ng::to_string(&doc["Resources"]["EventsQueuePolicy"]).expect("yaml");
    assert!(policy.contains(&format!("{id}.Arn")), "the queue policy does not admit {id}: {policy}");

    let forwarded = api_call_rules("forwarding.yaml", "aws.lakeformation");
    assert!(
        matches!(&forwarded[..], [(_, None)]),
        "forwarding.yaml passes every Lake Formation API call on (lakelog.yaml's rule filters): {forwarded:?}"
    );
}

/// The `!Tag value` of a CloudFormation intrinsic, as text (`!GetAtt LeaseTable.Arn`).
fn intrinsic(v: &serde_yaml_ng::Value) -> String {
    match v {
        serde_yaml_ng::Value::Tagged(t) => format!("{} {}", t.tag, t.value.as_str().unwrap_or_default()),
        other => format!("{other:?}"),
    }
}

/// The actions of an IAM statement (a string or a list).
fn actions(statement: &serde_json::Value) -> std::collections::BTreeSet<String> {
    match &statement["Action"] {
        serde_json::Value::String(a) => [a.clone()].into(),
        serde_json::Value::Array(a) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        _ => Default::default(),
    }
}

/// The DynamoDB operations the lease adapter sends (its `send("dynamodb", "<Operation>", …)`).
fn adapter_calls() -> std::collections::BTreeSet<String> {
    let code = std::fs::read_to_string(root().join("src/aws/dynamodb.rs")).expect("read the adapter");
    code.split("send(\"dynamodb\", \"").skip(1).filter_map(|rest| rest.split('"').next()).map(str::to_string).collect()
}

/// The lease table as the template provisions it, the IAM granted on it, and the DynamoDB calls
/// of `src/aws/dynamodb.rs` cannot drift apart: every call the adapter makes is granted on the
/// table (and nothing else), except the local-only CreateTable; the key schema is the adapter's.
#[test]
fn the_lease_table_its_policies_and_the_adapters_calls_agree() {
    use lakelog::aws::dynamodb::{ACTIONS, KEY, LOCAL_ONLY_ACTIONS};
    use std::collections::BTreeSet;
    let calls = adapter_calls();
    let declared: BTreeSet<String> = ACTIONS.iter().chain(&LOCAL_ONLY_ACTIONS).map(|a| a.to_string()).collect();
    assert_eq!(calls, declared, "src/aws/dynamodb.rs calls other operations than its ACTIONS + LOCAL_ONLY_ACTIONS");
    let granted: BTreeSet<String> = ACTIONS.iter().map(|a| format!("dynamodb:{a}")).collect();

    let text = std::fs::read_to_string(root().join("infra/cloudformation/lakelog.yaml")).expect("template");
    let t: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("the template is YAML");
    let r = &t["Resources"];
    let table = &r["LeaseTable"];
    assert_eq!(table["Type"].as_str(), Some("AWS::DynamoDB::Table"));
    let p = &table["Properties"];
    assert_eq!(p["BillingMode"].as_str(), Some("PAY_PER_REQUEST"), "on-demand");
    assert_eq!(p["SSESpecification"]["SSEEnabled"].as_bool(), Some(true), "encrypted");
    assert_eq!(p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(), Some(true));
    let schema = p["KeySchema"].as_sequence().expect("KeySchema");
    assert_eq!(schema.len(), 1, "only a hash key: {schema:?}");
    assert_eq!((schema[0]["AttributeName"].as_str(), schema[0]["KeyType"].as_str()), (Some(KEY), Some("HASH")));
    let attrs = p["AttributeDefinitions"].as_sequence().expect("AttributeDefinitions");
    assert_eq!(attrs.len(), 1);
    assert_eq!((attrs[0]["AttributeName"].as_str(), attrs[0]["AttributeType"].as_str()), (Some(KEY), Some("S")));

    // Every statement of the task role that grants a DynamoDB action grants exactly the
    // adapter's, on the table alone.
    let mut dynamo = BTreeSet::new();
    for policy in r["TaskRole"]["Properties"]["Policies"].as_sequence().expect("Policies") {
        let Some(statements) = policy["PolicyDocument"]["Statement"].as_sequence() else { continue };
        for s in statements {
            let json: serde_json::Value = serde_json::to_value(s).unwrap_or_default();
            let acts: BTreeSet<String> = actions(&json).into_iter().filter(|a| a.starts_with("dynamodb:")).collect();
            if acts.is_empty() {
                continue;
            }
            assert_eq!(acts, granted, "{}: not the adapter's calls", policy["PolicyName"].as_str().unwrap_or("?"));
            assert_eq!(intrinsic(&s["Resource"]), "!GetAtt LeaseTable.Arn", "only the lease table");
            dynamo.extend(acts);
        }
    }
    assert_eq!(dynamo, granted, "the task role can use the lease table");

    // Two tasks, configured for leases (the table reaches pipeline.yaml as LAKELOG_LEASE_TABLE).
    assert!(r["Service"]["Properties"]["DesiredCount"].as_u64() >= Some(2), "the service runs two workers");
    let env = r["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]["Environment"].as_sequence().expect("env");
    let lease_env =
        env.iter().find(|e| e["Name"].as_str() == Some("LAKELOG_LEASE_TABLE")).expect("LAKELOG_LEASE_TABLE");
    assert_eq!(intrinsic(&lease_env["Value"]), "!Ref LeaseTable");
    let readme = std::fs::read_to_string(root().join("infra/README.md")).expect("README");
    assert!(
        readme.contains(r#"coordination: { mode: leases, table: "${LAKELOG_LEASE_TABLE}" }"#),
        "infra/README.md shows the pipeline.yaml line that puts the service in lease mode"
    );

    // The JSON policies for running outside the stack: the workers' grants the same, the
    // operator's a read-only subset.
    let doc = |f: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(root().join("infra/iam").join(f)).expect("read")).expect("JSON")
    };
    let of = |d: &serde_json::Value| -> BTreeSet<String> {
        d["Statement"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(actions)
            .filter(|a| a.starts_with("dynamodb:"))
            .collect()
    };
    assert_eq!(of(&doc("lease-table.json")), granted);
    let operator = of(&doc("operator-read.json"));
    assert!(
        !operator.is_empty() && operator.is_subset(&granted) && !operator.contains("dynamodb:PutItem"),
        "{operator:?}"
    );
}
