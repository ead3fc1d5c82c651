//! Loading and validation through `PipelineConfig::from_yaml`, as a user meets them.

use super::*;

const GOOD: &str = r#"
source: { region: us-east-1, catalog_id: "123456789012" }
stream: { name: lakelog-changes, shards: 2, create_if_missing: true }
state: { bucket: lakelog-state }
targets:
  - name: dr
    region: us-west-2
    location_rewrite: [ { from: "s3://data", to: "s3://data-dr" } ]
"#;

#[test]
fn good_config_parses_with_defaults() {
    let c = PipelineConfig::from_yaml(GOOD, "t.yaml").expect("valid");
    assert_eq!(c.targets[0].name, "dr");
    assert!(c.targets[0].skip_archive);
    assert_eq!(c.state.prefix, "lakelog/");
    assert_eq!(c.apply.concurrency, 8);
    assert_eq!(c.source.partition_segments, 4);
    // Metrics are served on loopback unless configured otherwise.
    assert_eq!(c.metrics.address(), Ok(Some("127.0.0.1:9464".parse().expect("addr"))));
}

#[test]
fn metrics_listen_takes_an_address_or_off_and_names_a_bad_one() {
    assert_eq!(parse_listen("off"), Ok(None));
    assert_eq!(parse_listen("0.0.0.0:9464"), Ok(Some("0.0.0.0:9464".parse().expect("addr"))));
    let text = format!("{GOOD}metrics:\n  listen: \"localhost\"\n");
    let Err(ConfigError::Invalid { problems, .. }) = PipelineConfig::from_yaml(&text, "t.yaml") else {
        panic!("a bad listen address must be rejected")
    };
    assert_eq!(problems[0].path, "metrics.listen");
    assert!(problems[0].message.contains("127.0.0.1:9464"), "{}", problems[0].message);
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let bad = r#"
source: { region: nowhere, colour: blue }
stream: { name: "bad name!", shards: 0 }
state: { bucket: "s3://Bucket" }
targets:
  - name: dr
    region: us-west-2
    location_rewrite: [ { from: "data-bucket", to: "s3://ok" } ]
  - name: dr
    region: us-west-2
    location_rewrite: [ { from: "s3://a", to: "s3://b" }, { from: "gs://x", to: "s3://y" } ]
extra: 1
"#;
    let Err(ConfigError::Invalid { problems, .. }) = PipelineConfig::from_yaml(bad, "t.yaml") else {
        panic!("expected invalid");
    };
    let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
    for want in [
        "source.colour",
        "stream.name",
        "stream.shards",
        "state.bucket",
        "targets[0].location_rewrite[0].from",
        "targets[1].name",
        "targets[1].location_rewrite[1].from",
        "extra",
    ] {
        assert!(paths.contains(&want), "missing {want} in {paths:?}");
    }
}

#[test]
fn env_interpolation_with_default_and_missing() {
    std::env::set_var("LAKELOG_TEST_BUCKET", "from-env");
    let text =
        GOOD.replace("lakelog-state", "${LAKELOG_TEST_BUCKET}").replace("lakelog-changes", "${LAKELOG_NOPE_XYZ:-dflt}");
    let c = PipelineConfig::from_yaml(&text, "t").expect("valid");
    assert_eq!(c.state.bucket, "from-env");
    assert_eq!(c.stream.name, "dflt");
    let commented = format!("# see ${{NOT_INTERPOLATED}}\n{GOOD}");
    assert!(PipelineConfig::from_yaml(&commented, "t").is_ok());
    let text = GOOD.replace("lakelog-state", "${LAKELOG_UNSET_VAR_XYZ}");
    let err = PipelineConfig::from_yaml(&text, "t").unwrap_err().to_string();
    assert!(err.contains("LAKELOG_UNSET_VAR_XYZ is not set"), "{err}");
}

/// The problems of an invalid file (panics when it is valid).
fn problems_of(text: &str) -> Vec<Problem> {
    match PipelineConfig::from_yaml(text, "t.yaml") {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        Err(e) => panic!("expected problems, got {e}"),
        Ok(_) => panic!("expected problems, the config is valid:\n{text}"),
    }
}

/// The problem at `path`, with every problem found in the failure message.
fn problem_at<'a>(problems: &'a [Problem], path: &str) -> &'a Problem {
    problems.iter().find(|p| p.path == path).unwrap_or_else(|| panic!("no problem at {path} in {problems:#?}"))
}

#[test]
fn a_type_error_in_a_nested_field_names_its_full_path() {
    let text = GOOD.replace("shards: 2", "shards: 1.5").replace(r#"to: "s3://data-dr""#, r#"to: [ "s3://data-dr" ]"#);
    let problems = problems_of(&text);
    let shards = problem_at(&problems, "stream.shards");
    assert!(shards.message.contains("floating point") && shards.message.contains("i32"), "{shards}");
    let to = problem_at(&problems, "targets[0].location_rewrite[0].to");
    assert!(to.message.contains("invalid type: sequence"), "{to}");
    assert_eq!(problems.len(), 2, "{problems:#?}");
}

#[test]
fn an_unknown_or_missing_nested_field_names_its_full_path() {
    let text = GOOD.replace(r#"from: "s3://data""#, r#"form: "s3://data""#).replace(
        r#"catalog_id: "123456789012" }"#,
        r#"catalog_id: "123456789012", events: { queue_name: q, wait_secs: 5 } }"#,
    );
    let problems = problems_of(&text);
    let form = problem_at(&problems, "targets[0].location_rewrite[0].form");
    assert!(form.message.contains("expected `from` or `to`"), "{form}");
    problem_at(&problems, "source.events.wait_secs");
    // Reported with it: the `from` that `form` was meant to be is missing.
    let from = problem_at(&problems, "targets[0].location_rewrite[0].from");
    assert!(from.message.contains("missing field"), "{from}");
    assert_eq!(problems.len(), 3, "{problems:#?}");

    let text = GOOD.replace("    region: us-west-2\n", "");
    let problems = problems_of(&text);
    let region = problem_at(&problems, "targets[0].region");
    assert!(region.message.contains("missing field"), "{region}");
}

#[test]
fn problems_in_different_sections_are_all_reported_at_once() {
    let text = r#"
source: { region: us-east-1, partition_segments: many }
stream: { name: lakelog-changes, shards: 0 }
state: { prefix: x/ }
apply: { concurrency: -1 }
targets:
  - { name: dr, region: us-west-2, location_rewrite: [ { from: "s3://a", to: "s3://b", note: x } ] }
  - { name: "dr 2", region: us-west-2 }
  - { name: dr3, region: us-west-2, include: 7 }
"#;
    let problems = problems_of(text);
    let mut paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "apply.concurrency",
            "source.partition_segments",
            "state.bucket",
            "stream.shards",
            "targets[0].location_rewrite[0].note",
            "targets[1].name",
            "targets[2].include",
        ],
        "{problems:#?}"
    );
}

#[test]
fn cloudtrail_lookup_is_checked() {
    let with_source = |extra: &str| {
        GOOD.replace(r#"catalog_id: "123456789012" }"#, &format!(r#"catalog_id: "123456789012", {extra} }}"#))
    };
    let c = PipelineConfig::from_yaml(&with_source("cloudtrail_lookup: {}"), "t").expect("the defaults are valid");
    let lookup = c.source.cloudtrail_lookup.expect("configured");
    assert_eq!((lookup.poll_seconds, lookup.overlap_seconds), (60, 900));

    let problems = problems_of(&with_source("cloudtrail_lookup: { poll_seconds: 0, overlap_seconds: 60 }"));
    assert_eq!(problem_at(&problems, "source.cloudtrail_lookup.poll_seconds").message, "must be at least 1");
    let overlap = problem_at(&problems, "source.cloudtrail_lookup.overlap_seconds");
    assert!(overlap.message.contains("use 300 to 7776000"), "{overlap}");
    assert_eq!(problems.len(), 2, "{problems:#?}");

    let problems = problems_of(&with_source("cloudtrail_lookup: { overlap_seconds: 7776001 }"));
    problem_at(&problems, "source.cloudtrail_lookup.overlap_seconds");
    assert_eq!(problems.len(), 1, "{problems:#?}");

    // Both together are allowed (LookupEvents as a second path beside the trail's files): an
    // event seen twice republishes a full state, which apply absorbs.
    PipelineConfig::from_yaml(&with_source("cloudtrail: { bucket: trail-logs }, cloudtrail_lookup: {}"), "t")
        .expect("both sources at once");
}

#[test]
fn the_cloudtrail_bucket_region_and_prefix_are_checked() {
    let with_trail = |trail: &str| {
        GOOD.replace(
            r#"catalog_id: "123456789012" }"#,
            &format!(r#"catalog_id: "123456789012", cloudtrail: {{ bucket: trail-logs, {trail} }} }}"#),
        )
    };
    let c = PipelineConfig::from_yaml(&with_trail(r#"region: eu-west-1, prefix: "org/""#), "t").expect("valid");
    assert_eq!(c.source.cloudtrail.expect("configured").region.as_deref(), Some("eu-west-1"));
    PipelineConfig::from_yaml(&with_trail(r#"prefix: org"#), "t").expect("the prefix as CloudTrail shows it");

    let problems = problems_of(&with_trail("region: Ireland, prefix: /org, poll_seconds: 0"));
    let region = problem_at(&problems, "source.cloudtrail.region");
    assert!(region.message.contains("`Ireland` is not an AWS Region"), "{region}");
    let prefix = problem_at(&problems, "source.cloudtrail.prefix");
    assert!(prefix.message.contains("(`org`)"), "{prefix}");
    problem_at(&problems, "source.cloudtrail.poll_seconds");
    assert_eq!(problems.len(), 3, "{problems:#?}");
}

#[test]
fn endpoints_take_a_url_per_service_and_every_bad_one_is_reported() {
    let text = GOOD
        .replace(
            "stream: { name: lakelog-changes,",
            "stream: { endpoints: { kinesis: \"kinesis.local\" }, name: lakelog-changes,",
        )
        .replace(
            "region: us-west-2\n",
            "region: us-west-2\n    endpoints: { glue: \"http://glue:1\", sts: \"ftp://x\" }\n",
        );
    let Err(ConfigError::Invalid { problems, .. }) = PipelineConfig::from_yaml(&text, "t.yaml") else {
        panic!("bad endpoint URLs must be rejected")
    };
    let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["stream.endpoints.kinesis", "targets[0].endpoints.sts"]);

    let good = GOOD.replace("region: us-west-2\n", "region: us-west-2\n    endpoints: { glue: \"http://glue:1\" }\n");
    let c = PipelineConfig::from_yaml(&good, "t.yaml").expect("valid");
    assert_eq!(c.targets[0].overrides().url(Service::Glue), Some("http://glue:1"));
    assert_eq!(c.targets[0].overrides().url(Service::Sts), None);

    let unknown =
        GOOD.replace("region: us-west-2\n", "region: us-west-2\n    endpoints: { gleu: \"http://glue:1\" }\n");
    let err = PipelineConfig::from_yaml(&unknown, "t.yaml").unwrap_err().to_string();
    assert!(err.contains("gleu") && err.contains("targets[0]"), "{err}");
}

#[test]
fn the_archive_section_has_defaults_and_every_bad_value_is_named() {
    let c = PipelineConfig::from_yaml(GOOD, "t").expect("valid");
    assert!(c.archive.enabled);
    assert_eq!(c.archive.retention(), std::time::Duration::from_secs(30 * 86_400));
    let text =
        format!("{GOOD}archive: {{ retention: 2d, head: 3d, tombstone_retention: forever, segment_records: 0 }}\n");
    let problems = problems_of(&text);
    assert!(problem_at(&problems, "archive.head").message.contains("longer than the retention"));
    assert!(problem_at(&problems, "archive.tombstone_retention").message.contains("not a duration"));
    problem_at(&problems, "archive.segment_records");
    let typed = problems_of(&format!("{GOOD}archive: {{ segment_mib: lots }}\n"));
    assert!(problem_at(&typed, "archive.segment_mib").message.contains("invalid type"), "{typed:?}");
}

#[test]
fn every_problem_inside_one_section_is_reported_at_once() {
    let text = r#"
source: { region: us-east-1, partition_segments: 1.5, colour: blue, events: { queue_name: q, wait_seconds: ten } }
stream: { name: s, shards: 2.0, endpoints: { kinesis: "http://127.0.0.1:2", glue: 5, lambda: "http://x" } }
state: { bucket: lakelog-state }
targets:
  - name: dr
    region: us-west-2
    location_rewrite: [ { from: "s3://a", to: "s3://x", form: 3 }, { from: "s3://a", to: [ "s3://b" ] } ]
  - { name: 5, region: [ us-west-2 ] }
  # A missing field cannot be taken out: it ends the parse of its target (`to` is not reached).
  - { name: dr3, region: us-west-2, location_rewrite: [ { form: "s3://a" } ] }
apply: { concurrency: -1, max_attempts: 3.7 }
"#;
    let problems = problems_of(text);
    let mut paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "apply.concurrency",
            "apply.max_attempts",
            "source.colour",
            "source.events.wait_seconds",
            "source.partition_segments",
            "stream.endpoints.glue",
            "stream.endpoints.lambda",
            "stream.shards",
            "targets[0].location_rewrite[0].form",
            "targets[0].location_rewrite[1].to",
            // A required field of the wrong type is reported once, not again as missing.
            "targets[1].name",
            "targets[1].region",
            "targets[2].location_rewrite[0].form",
            "targets[2].location_rewrite[0].from",
        ],
        "{problems:#?}"
    );
    assert!(problem_at(&problems, "apply.max_attempts").message.contains("floating point `3.7`"));
}

/// A target's role and principal rules: checked with their full paths, and the external id
/// (a secret) is never shown, neither in a problem nor in the config printed back.
#[test]
fn assume_role_and_principals_are_checked_and_the_external_id_never_shown() {
    let target = |extra: &str| GOOD.replace("region: us-west-2\n", &format!("region: us-west-2\n{extra}"));
    let good = target(
        "    assume_role: { role_arn: \"arn:aws:iam::222222222222:role/lakelog-target\", external_id: \"ext-id-0123456789\" }\n    \
         principals: { account_map: { \"123456789012\": \"222222222222\" }, keep_identity_center: true }\n",
    );
    let c = PipelineConfig::from_yaml(&good, "t.yaml").expect("valid");
    let role = c.targets[0].assume_role.as_ref().expect("role");
    assert_eq!(role.external_id.as_ref().map(|s| s.expose()), Some("ext-id-0123456789"));
    assert_eq!((role.session_name("dr"), role.duration().as_secs()), ("lakelog-dr".to_string(), 3600));
    let printed = format!("{} {c:?}", serde_json::to_string(&c).expect("json"));
    assert!(!printed.contains("ext-id-0123456789") && printed.contains("<redacted>"), "{printed}");

    let bad = target(
        "    assume_role: { role_arn: \"arn:aws:iam::2222:user/x\", external_id: \"s3cr3t value!\", session_name: \"a b\", duration: 13h }\n    \
         principals: { account_map: { \"123456789012\": \"22\" }, map: { \"arn:aws:iam::123456789012:role/a\": \"IAMAllowedPrincipals\" } }\n",
    );
    let Err(ConfigError::Invalid { problems, .. }) = PipelineConfig::from_yaml(&bad, "t.yaml") else {
        panic!("bad role and rules must be rejected")
    };
    let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "targets[0].assume_role.role_arn",
            "targets[0].assume_role.external_id",
            "targets[0].assume_role.session_name",
            "targets[0].assume_role.duration",
            "targets[0].principals.account_map",
            "targets[0].principals.map",
        ]
    );
    let text = problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n");
    assert!(!text.contains("s3cr3t"), "{text}");
}
