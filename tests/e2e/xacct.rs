//! A target in another account, end to end on two emulator accounts. moto picks the account a
//! request acts in from its credentials: AssumeRole into `arn:aws:iam::222222222222:role/...`
//! returns keys that moto files under account 222222222222 (moto/sts/models.py `assume_role`,
//! moto/core/responses.py `get_current_account`), so a target with `assume_role` writes into
//! that account's catalog, and the test reads it back with credentials it assumed itself.

use std::sync::Arc;

use aws_sdk_glue::config::{Credentials, Region};
use lakelog::aws::glue::GlueCatalog;
use lakelog::backend::catalog::Catalog;
use lakelog::commands::status::status;
use lakelog::commands::sync::{sync, SyncOptions};
use lakelog::config::PipelineConfig;
use lakelog::connect::Pipeline;
use lakelog::model::{
    CatalogObject, Cause, CauseKind, ChangeRecord, Column, Database, DatabaseIdentifier, Partition, StorageDescriptor,
    Table, TableIdentifier,
};
use lakelog::simulate::catalog::GeneratedCatalog;
use lakelog::state::deadletter::DeadLetter;

use crate::emulator::Emulator;
use crate::{config_yaml, CatalogDump, Names, ACCOUNT, SOURCE_REGION, TARGET_REGION};

const TARGET_ACCOUNT: &str = "222222222222";
const THIRD_ACCOUNT: &str = "333333333333";
const ROLE: &str = "arn:aws:iam::222222222222:role/lakelog-target";

/// The test config with the target reached through [`ROLE`] (no `catalog_id`: the role's account).
fn xacct_yaml(emu: &Emulator, name: &str, principals: &str) -> String {
    let role = format!(
        "  - name: dr\n    assume_role: {{ role_arn: \"{ROLE}\", external_id: \"xacct-external-id-42\", duration: 15m }}\n{principals}"
    );
    config_yaml(emu, name, "", "").replace("  - name: dr\n", &role)
}

/// A Glue client acting in `account` (through its own AssumeRole, independent of lakelog's).
async fn glue_in(emu: &Emulator, account: &str, region: &str) -> Arc<dyn Catalog> {
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_sts::config::Region::new(SOURCE_REGION))
            .endpoint_url(&emu.moto_url)
            .credentials_provider(aws_sdk_sts::config::Credentials::new("testing", "testing", None, None, "test"))
            .build(),
    );
    let out = sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/reader"))
        .role_session_name("xacct-test")
        .send()
        .await
        .expect("assume role");
    let c = out.credentials.expect("credentials");
    let creds = Credentials::new(c.access_key_id, c.secret_access_key, Some(c.session_token), None, "assumed");
    let glue = aws_sdk_glue::Client::from_conf(
        aws_sdk_glue::Config::builder()
            .behavior_version_latest()
            .region(Region::new(region.to_string()))
            .endpoint_url(&emu.moto_url)
            .credentials_provider(creds)
            .build(),
    );
    GlueCatalog::retrying(glue, account)
}

/// A database with a partitioned table, and resource links: into the source catalog (to be
/// re-pointed at the target) and into a third account (kept).
fn catalog(prefix: &str, bucket: &str) -> GeneratedCatalog {
    let db = format!("{prefix}_db");
    let link_db = |name: &str, catalog: &str, database: &str, region: &str| Database {
        name: format!("{prefix}_{name}"),
        target_database: Some(DatabaseIdentifier {
            catalog_id: Some(catalog.into()),
            database_name: Some(database.into()),
            region: Some(region.into()),
        }),
        ..Default::default()
    };
    let link_table = |name: &str, catalog: &str, database: &str, table: &str, region: &str| Table {
        database_name: db.clone(),
        name: name.into(),
        target_table: Some(TableIdentifier {
            catalog_id: Some(catalog.into()),
            database_name: Some(database.into()),
            name: Some(table.into()),
            region: Some(region.into()),
        }),
        ..Default::default()
    };
    let sd = |at: &str| StorageDescriptor {
        location: Some(format!("s3://{bucket}/{at}")),
        columns: vec![Column { name: "id".into(), type_: Some("bigint".into()), ..Default::default() }],
        ..Default::default()
    };
    let events = Table {
        database_name: db.clone(),
        name: "events".into(),
        table_type: Some("EXTERNAL_TABLE".into()),
        partition_keys: vec![Column { name: "dt".into(), type_: Some("string".into()), ..Default::default() }],
        storage_descriptor: Some(sd("events/")),
        ..Default::default()
    };
    let partitions = ["2026-01-01", "2026-01-02"]
        .map(|dt| Partition {
            database_name: db.clone(),
            table_name: "events".into(),
            values: vec![dt.into()],
            storage_descriptor: Some(sd(&format!("events/dt={dt}/"))),
            ..Default::default()
        })
        .to_vec();
    GeneratedCatalog {
        databases: vec![
            Database { name: db.clone(), location_uri: Some(format!("s3://{bucket}/db/")), ..Default::default() },
            link_db("link", ACCOUNT, &db, SOURCE_REGION),
            link_db("third", THIRD_ACCOUNT, "shared", "eu-west-1"),
        ],
        tables: vec![
            events,
            link_table("events_link", ACCOUNT, &db, "events", SOURCE_REGION),
            link_table("third_link", THIRD_ACCOUNT, "shared", "t", "eu-west-1"),
        ],
        partitions,
    }
}

/// The test catalog of `n`, written to the source account.
async fn seed_source(emu: &Emulator, n: &Names) {
    let generated = catalog(&n.prefix, &n.data_bucket);
    lakelog::simulate::seed::write_catalog(&*crate::catalog(emu, SOURCE_REGION).await, &generated).await.expect("seed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_in_another_account_is_written_through_its_role_with_links_re_pointed() {
    let emu = Emulator::start();
    let name = "xacct-sync";
    let n = Names::new(name);
    seed_source(&emu, &n).await;

    let config = PipelineConfig::from_yaml(&xacct_yaml(&emu, name, ""), name).expect("valid config");
    let pipeline = Pipeline::connect(config).await.expect("connect");
    assert_eq!(pipeline.targets[0].catalog_id, TARGET_ACCOUNT, "the catalog is the assumed role's account");
    let report = sync(&pipeline, &SyncOptions::default()).await.expect("sync");
    assert_eq!(report.targets["dr"].stats.total().dead_lettered, 0);

    // Everything is in account 222222222222's catalog, and nothing in the source account's
    // catalog of the target Region.
    let source = CatalogDump::read(&emu, SOURCE_REGION, &n.prefix).await;
    let target = CatalogDump::of(glue_in(&emu, TARGET_ACCOUNT, TARGET_REGION).await, &n.prefix).await.expect("read");
    assert!(CatalogDump::read(&emu, TARGET_REGION, &n.prefix).await.databases.is_empty());
    assert_eq!((source.databases.len(), source.tables.len(), source.partitions.len()), (3, 3, 2));

    // What the target must hold: the source, locations rewritten, and links into the source
    // catalog re-pointed at the target catalog and Region; the third account's link kept.
    let mut want = source.rewritten(&format!("s3://{}", n.data_bucket), &format!("s3://{}-dr", n.data_bucket));
    let link = want.databases.get_mut(&format!("{}_link", n.prefix)).expect("link");
    if let Some(t) = link.target_database.as_mut() {
        t.catalog_id = Some(TARGET_ACCOUNT.into());
        t.region = Some(TARGET_REGION.into());
    }
    let db = format!("{}_db", n.prefix);
    let table_link = want.tables.get_mut(&(db.clone(), "events_link".to_string())).expect("table link");
    if let Some(t) = table_link.target_table.as_mut() {
        t.catalog_id = Some(TARGET_ACCOUNT.into());
        t.region = Some(TARGET_REGION.into());
    }
    want.assert_same(&target);
    let third = &target.databases[&format!("{}_third", n.prefix)];
    assert_eq!(third.target_database.as_ref().and_then(|t| t.catalog_id.as_deref()), Some(THIRD_ACCOUNT));
    let third = &target.tables[&(db, "third_link".to_string())];
    assert_eq!(third.target_table.as_ref().and_then(|t| t.region.as_deref()), Some("eu-west-1"));

    // The role's credentials carry their expiry (15m asked), which is when the SDK's identity
    // cache asks for new ones (shortly before).
    use aws_credential_types::provider::ProvideCredentials;
    let t = &pipeline.config.targets[0];
    let role = t.assume_role.as_ref().expect("assume_role");
    let ep = lakelog::aws::client::Endpoint::with(&t.region, t.overrides());
    let credentials = lakelog::aws::credentials::TargetRole::provider(&ep, &t.name, role)
        .await
        .provide_credentials()
        .await
        .expect("assumed credentials");
    let left = credentials.expiry().expect("an expiry").duration_since(std::time::SystemTime::now()).expect("future");
    assert!((840..=900).contains(&left.as_secs()), "{left:?}");

    // A second sync through the role (a new process: its own request counts) writes nothing.
    let config = PipelineConfig::from_yaml(&xacct_yaml(&emu, name, ""), name).expect("valid config");
    let pipeline = Pipeline::connect(config).await.expect("connect");
    let again = sync(&pipeline, &SyncOptions::default()).await.expect("sync again");
    assert_eq!(again.targets["dr"].write_calls, 0, "{:?}", again.targets["dr"].api_calls);
}

/// `lakelog status` lists the principals parked as unmapped, grouped, with the key that maps them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lists_unmapped_principals_from_the_dead_letter_store() {
    let emu = Emulator::start();
    let name = "xacct-status";
    let principals = "    principals: { account_map: { \"123456789012\": \"222222222222\" } }\n";
    let config = PipelineConfig::from_yaml(&xacct_yaml(&emu, name, principals), name).expect("valid config");
    let pipeline = Pipeline::connect(config).await.expect("connect");
    pipeline.publisher().await.expect("the stream");

    // The grants lf's applier parks: their principals as the target's map leaves them.
    let map = &pipeline.applier(&pipeline.targets[0], true).expect("applier").transform().principals.clone();
    let db = CatalogObject::Database(Database { name: "db".into(), ..Default::default() });
    let record = ChangeRecord::upsert(db, &pipeline.origin, Cause { kind: CauseKind::Snapshot, event_id: None }, 1_000);
    let unmapped = ["arn:aws:organizations::123456789012:ou/o-abc123/ou-ab12-cdef", "arn:aws:iam::444444444444:role/x"];
    for (i, p) in unmapped.iter().chain(&unmapped[..1]).enumerate() {
        let lakelog::model::principal::Mapped::Unmapped { reason } = map.map(p) else { panic!("{p} is mapped") };
        let mut dl = DeadLetter::unmapped_principal("dr", &record, p, reason);
        dl.parked_at += i as i64;
        pipeline.dead_letters.park(&dl).await.expect("park");
    }
    assert!(matches!(
        map.map("arn:aws:iam::123456789012:role/analyst"),
        lakelog::model::principal::Mapped::To(t) if t == "arn:aws:iam::222222222222:role/analyst"
    ));

    let report = status(&pipeline, None, 100).await.expect("status");
    let dr = &report.targets[0];
    assert_eq!(dr.dead_letters, 3);
    let listed: Vec<(&str, usize)> = dr.unmapped_principals.iter().map(|u| (u.principal.as_str(), u.grants)).collect();
    assert_eq!(listed, [(unmapped[1], 1), (unmapped[0], 2)]);
    assert!(dr.unmapped_principals[0].reason.contains("targets[dr].principals.account_map"), "{:?}", dr);
    assert!(dr.unmapped_principals[1].reason.contains("targets[dr].principals.map"), "{:?}", dr);
    let text = report.to_string();
    assert!(text.contains(&format!("unmapped principal {}: 2 grant(s) not made", unmapped[0])), "{text}");
}

/// `lakelog diff` says what it does not replicate rather than skipping it: on the emulator,
/// which answers GetPartitionIndexes (with none) but implements neither GetCatalogs,
/// GetColumnStatisticsForTable nor GetUserDefinedFunctions, those kinds are reported as not
/// checked, and the exit codes stay diff's (0 in sync, 3 drift).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_lists_what_it_cannot_check_and_keeps_its_exit_codes() {
    let emu = Emulator::start();
    let name = "xacct-scope";
    let n = Names::new(name);
    seed_source(&emu, &n).await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("pipeline.yaml");
    std::fs::write(&path, xacct_yaml(&emu, name, "")).expect("write config");
    let (code, _) = crate::errors::lakelog_json(&path, &["sync"]);
    assert_eq!(code, 0);

    let (code, diff) = crate::errors::lakelog_json(&path, &["diff", "--target", "dr"]);
    assert_eq!(code, 0, "in sync: {diff}");
    let scope = &diff["not_replicated"];
    let unchecked: Vec<&str> =
        scope["not_checked"].as_object().expect("not_checked").keys().map(String::as_str).collect();
    assert_eq!(unchecked, ["catalog", "column statistics", "user-defined function"], "{scope}");
    assert_eq!(scope["objects"].as_array().map(Vec::len), Some(0), "{scope}");

    // Drift in the target's account still exits 3.
    let target = glue_in(&emu, TARGET_ACCOUNT, TARGET_REGION).await;
    target.delete_table(&format!("{}_db", n.prefix), "events_link").await.expect("delete");
    let (code, diff) = crate::errors::lakelog_json(&path, &["diff", "--target", "dr"]);
    assert_eq!(code, 3, "{diff}");
    assert_eq!(diff["missing"][0]["object"], format!("{}_db.events_link", n.prefix));
}

/// The external id reaches STS and nothing else: a `sync` through the role, every crate logging
/// at trace level (the SDK's requests included), never shows it, nor does `validate`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_external_id_never_reaches_a_log_or_printed_output() {
    let emu = Emulator::start();
    let name = "xacct-secret";
    let n = Names::new(name);
    seed_source(&emu, &n).await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("pipeline.yaml");
    std::fs::write(&path, xacct_yaml(&emu, name, "")).expect("write config");
    let secret = "xacct-external-id-42";
    for args in [&["--log-json", "sync"][..], &["--output", "json", "validate"][..]] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_lakelog"))
            .args(["-c"])
            .arg(&path)
            .args(args)
            .env("LAKELOG_LOG", "trace")
            .output()
            .expect("run lakelog");
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{args:?}: {stderr}");
        if args[0] == "--log-json" {
            assert!(stderr.contains("AssumeRole"), "the role was assumed with the SDK tracing it: {stderr}");
        }
        assert!(!stdout.contains(secret) && !stderr.contains(secret), "{args:?} showed the external id");
    }
    let target = CatalogDump::of(glue_in(&emu, TARGET_ACCOUNT, TARGET_REGION).await, &n.prefix).await.expect("read");
    assert_eq!(target.tables.len(), 3, "the sync went through the role");
}

const ANALYST: &str = "arn:aws:iam::123456789012:role/analyst";
const PARTNER: &str = "arn:aws:iam::444444444444:role/partner";
/// Where `account_map` sends [`ANALYST`]; [`PARTNER`] is in an account no rule maps.
const ANALYST_IN_TARGET: &str = "arn:aws:iam::222222222222:role/analyst";
const ACCOUNT_MAP: &str = "    principals: { account_map: { \"123456789012\": \"222222222222\" } }\n";

/// A Lake Formation client acting in `account`, through lakelog's own credentials for the
/// target (`Endpoint::for_target`) or the source's.
async fn lf_of(config: &PipelineConfig, target: bool) -> Arc<dyn lakelog::backend::lakeformation::LakeFormation> {
    use lakelog::aws::client::Endpoint;
    let (ep, account) = match target {
        true => (Endpoint::for_target(&config.targets[0]).await, TARGET_ACCOUNT),
        false => (Endpoint::with(SOURCE_REGION, config.source.overrides()), ACCOUNT),
    };
    let client = aws_sdk_lakeformation::Client::new(&ep.sdk_config(lakelog::config::Service::LakeFormation).await);
    Arc::new(lakelog::aws::lakeformation::LfCatalog::new(client, account))
}

/// Every grant of a catalog: (principal, resource, permissions).
async fn grants_of(lf: &dyn lakelog::backend::lakeformation::LakeFormation) -> Vec<(String, String, Vec<String>)> {
    let page = lf.permissions_page(None, None).await.expect("list permissions");
    let mut out: Vec<_> =
        page.items.into_iter().map(|p| (p.principal, p.resource.to_string(), p.permissions)).collect();
    out.sort();
    out
}

/// A source catalog with two grants on its database, one to a principal `account_map` maps and
/// one to a principal no rule maps, and a config file whose target (in account 222222222222)
/// receives Lake Formation with `principals` rules.
struct LfSetup {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    yaml: String,
    config: PipelineConfig,
    db: String,
}

async fn lf_setup(emu: &Emulator, name: &str) -> LfSetup {
    use lakelog::model::lakeformation::{LfResource, Permission};
    let n = Names::new(name);
    seed_source(emu, &n).await;
    let yaml = xacct_yaml(emu, name, ACCOUNT_MAP)
        .replace("  partition_segments: 1\n", "  partition_segments: 1\n  lakeformation: true\n");
    let config = PipelineConfig::from_yaml(&yaml, name).expect("valid config");
    let db = format!("{}_db", n.prefix);
    let on_db = LfResource::Database { database: db.clone() };
    let grants: Vec<Permission> = [ANALYST, PARTNER]
        .map(|p| Permission::new(p.into(), on_db.clone(), vec!["DESCRIBE".into()], vec![], None))
        .to_vec();
    assert!(lf_of(&config, false).await.grant(&grants).await.expect("source grants").is_empty());
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("pipeline.yaml");
    std::fs::write(&path, &yaml).expect("write config");
    LfSetup { _dir: dir, path, yaml, config, db }
}

/// Lake Formation in the target's account through `lakelog sync`: the grant goes to the mapped
/// principal in account 222222222222 (not to the source account's Lake Formation of the target
/// Region), the unmapped one is not granted, and a re-sync writes nothing. `lakelog diff`
/// compares the grants after mapping: in sync it exits 0 (the unmapped grant listed as not
/// replicated), and a grant revoked only at the target is drift, exit 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lake_formation_grants_go_to_mapped_principals_in_the_target_account() {
    let emu = Emulator::start();
    let s = lf_setup(&emu, "xacct-lf").await;
    let on_db = format!("database {}", s.db);

    let (code, report) = crate::errors::lakelog_json(&s.path, &["sync"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["targets"]["dr"]["stats"]["permission"]["dead_lettered"], 1, "the unmapped one: {report}");
    let target = lf_of(&s.config, true).await;
    let describe = vec!["DESCRIBE".to_string()];
    assert_eq!(grants_of(&*target).await, [(ANALYST_IN_TARGET.to_string(), on_db.clone(), describe.clone())]);
    // The source account's Lake Formation in the target Region holds nothing: the grant went
    // to account 222222222222, not to the Region.
    let ep = lakelog::aws::client::Endpoint::with(TARGET_REGION, s.config.source.overrides());
    let client = aws_sdk_lakeformation::Client::new(&ep.sdk_config(lakelog::config::Service::LakeFormation).await);
    let own_account = lakelog::aws::lakeformation::LfCatalog::new(client, ACCOUNT);
    assert_eq!(grants_of(&own_account).await, []);
    let source = grants_of(&*lf_of(&s.config, false).await).await;
    assert_eq!(source.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(), [ANALYST, PARTNER], "source untouched");

    let (code, again) = crate::errors::lakelog_json(&s.path, &["sync"]);
    assert_eq!(code, 0, "{again}");
    assert_eq!(again["targets"]["dr"]["write_calls"], 0, "a re-sync wrote: {}", again["targets"]["dr"]["api_calls"]);

    let (code, diff) = crate::errors::lakelog_json(&s.path, &["diff", "--target", "dr"]);
    assert_eq!(code, 0, "in sync: {diff}");
    assert!(diff["counts"]["permission"]["in_sync"].as_u64() >= Some(1), "{diff}");
    let unmapped: Vec<&serde_json::Value> = diff["not_replicated"]["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .filter(|o| o["kind"] == "unmapped principal")
        .collect();
    assert_eq!(unmapped.len(), 1, "{diff}");
    assert_eq!(unmapped[0]["object"], format!("permission of {PARTNER} on {on_db}"), "{diff}");

    // Revoked only at the target: drift, named as the target names it.
    let revoked = lakelog::model::lakeformation::Permission::new(
        ANALYST_IN_TARGET.into(),
        lakelog::model::lakeformation::LfResource::Database { database: s.db.clone() },
        describe,
        vec![],
        None,
    );
    assert!(target.revoke(&[revoked]).await.expect("revoke at the target").is_empty());
    let (code, diff) = crate::errors::lakelog_json(&s.path, &["diff", "--target", "dr"]);
    assert_eq!(code, 3, "drift: {diff}");
    assert_eq!(diff["counts"]["permission"]["missing"], 1, "{diff}");
    assert_eq!(diff["missing"][0]["kind"], "permission", "{diff}");
    assert_eq!(diff["missing"][0]["object"], format!("permission of {ANALYST_IN_TARGET} on {on_db}"), "{diff}");
}

/// The unmapped principal's promise through the binary: `sync` parks its grant as "unmapped
/// principal" and `status` lists it; `dlq replay` while no rule maps it keeps the entry (same
/// id) and grants nothing (exit 3); once the config maps it, `dlq replay` grants it in the
/// target account, once, and removes the entry; a second replay has nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmapped_principal_is_granted_by_dlq_replay_once_a_rule_maps_it() {
    let emu = Emulator::start();
    let s = lf_setup(&emu, "xacct-replay").await;
    let on_db = format!("database {}", s.db);
    let (code, report) = crate::errors::lakelog_json(&s.path, &["sync"]);
    assert_eq!(code, 0, "{report}");
    let target = lf_of(&s.config, true).await;
    let principals = |grants: Vec<(String, String, Vec<String>)>| grants.into_iter().map(|g| g.0).collect::<Vec<_>>();
    assert_eq!(principals(grants_of(&*target).await), [ANALYST_IN_TARGET]);

    let (_, status) = crate::errors::lakelog_json(&s.path, &["status"]);
    let listed = &status["targets"][0]["unmapped_principals"];
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{status}");
    assert_eq!(listed[0]["principal"], PARTNER, "{status}");
    let (_, parked) = crate::errors::lakelog_json(&s.path, &["dlq", "list", "--target", "dr"]);
    assert_eq!(parked.as_array().map(Vec::len), Some(1), "{parked}");
    assert_eq!(parked[0]["class"], "unmapped_principal", "{parked}");
    let id = parked[0]["id"].as_str().expect("id").to_string();

    // Still unmapped: kept parked as it is, nothing granted.
    let (code, replay) = crate::errors::lakelog_json(&s.path, &["dlq", "replay", "--target", "dr"]);
    assert_eq!(code, 3, "still failing: {replay}");
    assert_eq!((replay["replayed"].as_u64(), replay["still_unmapped"][0]["id"].as_str()), (Some(0), Some(id.as_str())));
    let (_, still) = crate::errors::lakelog_json(&s.path, &["dlq", "list", "--target", "dr"]);
    assert_eq!(still.as_array().map(|a| a.iter().map(|e| e["id"].clone()).collect::<Vec<_>>()), Some(vec![id.into()]));
    assert_eq!(principals(grants_of(&*target).await), [ANALYST_IN_TARGET]);

    // A rule for it, then the replay grants it in account 222222222222 and removes the entry.
    let partner_in_target = "arn:aws:iam::222222222222:role/partner-dr";
    let mapped = s.yaml.replace(
        ACCOUNT_MAP,
        &format!(
            "    principals: {{ account_map: {{ \"123456789012\": \"222222222222\" }}, map: {{ \"{PARTNER}\": \"{partner_in_target}\" }} }}\n"
        ),
    );
    assert_ne!(mapped, s.yaml);
    std::fs::write(&s.path, &mapped).expect("write config");
    let (code, replay) = crate::errors::lakelog_json(&s.path, &["dlq", "replay", "--target", "dr"]);
    assert_eq!(code, 0, "{replay}");
    assert_eq!(replay["replayed"], 1, "{replay}");
    assert_eq!(replay["stats"]["permission"]["created"], 1, "{replay}");
    let want = |p: &str| (p.to_string(), on_db.clone(), vec!["DESCRIBE".to_string()]);
    assert_eq!(grants_of(&*target).await, [want(ANALYST_IN_TARGET), want(partner_in_target)]);
    let (_, left) = crate::errors::lakelog_json(&s.path, &["dlq", "list", "--target", "dr"]);
    assert_eq!(left.as_array().map(Vec::len), Some(0), "{left}");

    let (code, again) = crate::errors::lakelog_json(&s.path, &["dlq", "replay", "--target", "dr"]);
    assert_eq!((code, again["replayed"].as_u64()), (0, Some(0)), "{again}");
    assert_eq!(grants_of(&*target).await, [want(ANALYST_IN_TARGET), want(partner_in_target)], "granted once");
}

/// `lakelog restore --at T` into the target in account 222222222222: the grant revoked at the
/// source after T comes back under the mapped principal, the one granted after T is revoked (its
/// principal mapped back to find its source key), the unmapped principal is still not granted
/// (the dry run says so), and a grant the target made itself to a principal no rule reaches
/// (a consumer account's role) is left and named in the report. A role of account 222222222222
/// is what `account_map` makes of the source's role of that name: it is not such a principal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_into_another_account_maps_principals_and_leaves_the_targets_own_grants() {
    use lakelog::model::lakeformation::{LfResource, Permission};
    const ENGINEER: &str = "arn:aws:iam::123456789012:role/engineer";
    const ENGINEER_IN_TARGET: &str = "arn:aws:iam::222222222222:role/engineer";
    const LOCAL: &str = "arn:aws:iam::333333333333:role/consumer";
    let emu = Emulator::start();
    let s = lf_setup(&emu, "xacct-restore").await;
    let on_db = LfResource::Database { database: s.db.clone() };
    let describe = |p: &str| Permission::new(p.into(), on_db.clone(), vec!["DESCRIBE".into()], vec![], None);
    let (code, report) = crate::errors::lakelog_json(&s.path, &["sync"]);
    assert_eq!(code, 0, "{report}");
    let (source, target) = (lf_of(&s.config, false).await, lf_of(&s.config, true).await);
    let at_t = grants_of(&*target).await;
    assert_eq!(at_t.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(), [ANALYST_IN_TARGET]);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let at = lakelog::commands::restore::rfc3339(lakelog::model::now_millis());
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;

    assert!(source.revoke(&[describe(ANALYST)]).await.expect("revoke").is_empty());
    assert!(source.grant(&[describe(ENGINEER)]).await.expect("grant").is_empty());
    let (code, report) = crate::errors::lakelog_json(&s.path, &["sync"]);
    assert_eq!(code, 0, "{report}");
    assert!(target.grant(&[describe(LOCAL)]).await.expect("the target's own grant").is_empty());
    let principals = |grants: Vec<(String, String, Vec<String>)>| grants.into_iter().map(|g| g.0).collect::<Vec<_>>();
    assert_eq!(principals(grants_of(&*target).await), [ENGINEER_IN_TARGET, LOCAL]);

    // Exit 3 as for any restore that parks a record: the unmapped principal's grant.
    let (code, plan) = crate::errors::lakelog_json(&s.path, &["restore", "--at", &at, "--target", "dr", "--dry-run"]);
    assert_eq!(code, 3, "{plan}");
    let lines: Vec<(String, String)> = plan["plan"]
        .as_array()
        .expect("plan")
        .iter()
        .map(|l| (l["action"].as_str().unwrap_or_default().into(), l["object"].as_str().unwrap_or_default().into()))
        .filter(|(_, o): &(String, String)| o.contains("permission of"))
        .collect();
    let line = |action: &str, principal: &str| {
        (action.to_string(), format!("{ACCOUNT}: permission of {principal} on database {}", s.db))
    };
    let mut want = vec![line("create", ANALYST), line("unmapped", PARTNER), line("delete", ENGINEER)];
    want.sort();
    let mut got = lines.clone();
    got.sort();
    assert_eq!(got, want, "{plan:#}");
    assert_eq!(principals(grants_of(&*target).await), [ENGINEER_IN_TARGET, LOCAL], "a dry run wrote");

    let (code, restored) = crate::errors::lakelog_json(&s.path, &["restore", "--at", &at, "--target", "dr"]);
    assert_eq!(code, 3, "{restored}");
    assert_eq!(restored["stats"]["permission"]["dead_lettered"], 1, "{restored:#}");
    assert_eq!(principals(grants_of(&*target).await), [ANALYST_IN_TARGET, LOCAL], "{restored:#}");
    let left = format!("permission of {LOCAL} on database {}", s.db);
    assert_eq!(
        restored["lf_left"]
            .as_array()
            .map(|l| l.iter().filter(|x| x.as_str().is_some_and(|x| x.ends_with(&left))).count()),
        Some(1),
        "{restored:#}"
    );
    assert_eq!(principals(grants_of(&*source).await), [ENGINEER, PARTNER], "the source is untouched");
}
