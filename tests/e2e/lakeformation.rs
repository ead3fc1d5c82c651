//! Lake Formation through `sync` on the emulator (same account, two Regions): grants, LF-tags and
//! their assignments replicate; revokes and removed tags follow; a grant waits for its table; a
//! re-sync of an unchanged source makes no Lake Formation write (counted by the target's API
//! counter, the one `sync` reports).
//!
//! moto stores grants on catalogs, databases, tables, table wildcards, columns and locations, and
//! LF-tags on databases and tables; what it lacks (filters, expressions, tag policies, opt-ins)
//! is tested with mocked responses in `src/aws/lakeformation.rs`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use lakelog::aws::client::Endpoint;
use lakelog::aws::lakeformation::LfCatalog;
use lakelog::backend::changelog::{LogEntry, PutResult};
use lakelog::backend::lakeformation::LakeFormation;
use lakelog::commands::sync::{sync, SyncOptions, SyncReport};
use lakelog::config::PipelineConfig;
use lakelog::connect::Pipeline;
use lakelog::model::codec::encode;
use lakelog::model::lakeformation::{ColumnSelection, LfObject, LfResource, LfTag, LfTagPair, Permission};
use lakelog::model::{now_millis, CatalogObject, Cause, CauseKind, ChangeRecord, ObjectKind, Origin, Table};

use crate::emulator::Emulator;
use crate::{catalog, config_yaml, seed, Names, ACCOUNT, SOURCE_REGION, TARGET_REGION};

const ANALYST: &str = "arn:aws:iam::123456789012:role/analyst";
const ENGINEER: &str = "arn:aws:iam::123456789012:role/engineer";

/// The test config with `source.lakeformation: true`.
fn lf_config(emu: &Emulator, name: &str, apply_extra: &str) -> PipelineConfig {
    let yaml = config_yaml(emu, name, "", apply_extra)
        .replace("  partition_segments: 1\n", "  partition_segments: 1\n  lakeformation: true\n");
    PipelineConfig::from_yaml(&yaml, name).expect("test config is valid")
}

async fn lake_formation(emu: &Emulator, region: &str) -> Arc<dyn LakeFormation> {
    let mut ep = Endpoint::new(region, Some(&emu.moto_url));
    ep.max_attempts = 1;
    Arc::new(LfCatalog::new(ep.lakeformation(None).await, ACCOUNT))
}

/// One sync on a fresh connection (each connection counts its own requests).
async fn sync_once(emu: &Emulator, name: &str) -> SyncReport {
    let pipeline = Pipeline::connect(lf_config(emu, name, "")).await.expect("connect");
    run_sync(&pipeline).await
}

async fn run_sync(pipeline: &Pipeline) -> SyncReport {
    tokio::time::timeout(Duration::from_secs(300), sync(pipeline, &SyncOptions::default()))
        .await
        .expect("sync finished")
        .expect("sync")
}

/// Every grant of a catalog, as a set.
async fn grants(lf: &dyn LakeFormation) -> BTreeSet<(String, String, Vec<String>, Vec<String>)> {
    let page = lf.permissions_page(None, None).await.expect("list permissions");
    assert!(page.next_token.is_none(), "the emulator does not page grants");
    page.items.into_iter().map(|p| (p.principal, p.resource.to_string(), p.permissions, p.grantable)).collect()
}

fn permission(principal: &str, resource: LfResource, permissions: &[&str], grantable: &[&str]) -> Permission {
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    Permission::new(principal.into(), resource, names(permissions), names(grantable), None)
}

/// Lake Formation requests of a sync that change something.
fn lf_writes(report: &SyncReport) -> Vec<(String, u64)> {
    const LF_WRITES: [&str; 8] = [
        "BatchGrantPermissions",
        "BatchRevokePermissions",
        "CreateLFTag",
        "UpdateLFTag",
        "DeleteLFTag",
        "AddLFTagsToResource",
        "RemoveLFTagsFromResource",
        "PutDataLakeSettings",
    ];
    report.targets["dr"]
        .api_calls
        .iter()
        .filter(|(op, _)| LF_WRITES.contains(&op.as_str()))
        .map(|(op, n)| (op.clone(), *n))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_and_tags_replicate_revokes_and_removed_tags_follow_and_a_resync_writes_nothing() {
    let emu = Emulator::start();
    let name = "lfsync";
    let seeded = seed(&emu, name, 1, 2, 1).await;
    let db = seeded.databases[0].name.clone();
    let (t0, t1) = (seeded.tables[0].name.clone(), seeded.tables[1].name.clone());
    let source = lake_formation(&emu, SOURCE_REGION).await;
    let target = lake_formation(&emu, TARGET_REGION).await;

    source.create_lf_tag(&LfTag { key: "team".into(), values: vec!["a".into(), "b".into()] }).await.expect("tag");
    source.add_resource_tags(&db, None, None, &[LfTagPair::new("team", vec!["a".into()])]).await.expect("tag db");
    source.add_resource_tags(&db, Some(&t0), None, &[LfTagPair::new("team", vec!["b".into()])]).await.expect("tag t0");
    let table = |t: &str| LfResource::Table { database: db.clone(), table: t.to_string() };
    let granted = vec![
        permission(ANALYST, table(&t0), &["SELECT"], &["SELECT"]),
        permission(ANALYST, table(&t1), &["DESCRIBE", "SELECT"], &[]),
        permission(ENGINEER, LfResource::Database { database: db.clone() }, &["ALTER", "DESCRIBE"], &[]),
        permission(ENGINEER, LfResource::TableWildcard { database: db.clone() }, &["SELECT"], &[]),
        permission(
            ENGINEER,
            LfResource::TableWithColumns {
                database: db.clone(),
                table: t1.clone(),
                columns: ColumnSelection::Names { names: vec!["id".into()] },
            },
            &["SELECT"],
            &[],
        ),
        permission(ENGINEER, LfResource::Catalog, &["CREATE_DATABASE"], &[]),
    ];
    assert!(source.grant(&granted).await.expect("grant").is_empty());

    let report = sync_once(&emu, name).await;
    let dr = &report.targets["dr"];
    assert_eq!(dr.stats.total().dead_lettered, 0, "{:?}", dr.stats);
    assert_eq!(dr.stats.kind(ObjectKind::Permission).created, granted.len() as u64, "{:?}", dr.stats);
    assert_eq!(grants(&*target).await, grants(&*source).await);
    assert_eq!(grants(&*target).await.len(), granted.len());
    // Grantable permissions survive the batch calls (scripts/moto_paging.py fixes moto's field name).
    let with_option = (ANALYST.to_string(), table(&t0).to_string(), vec!["SELECT".into()], vec!["SELECT".into()]);
    assert!(grants(&*target).await.contains(&with_option), "{:?}", grants(&*target).await);
    let tags_on = |lf: Arc<dyn LakeFormation>, t: Option<String>| {
        let db = db.clone();
        async move { lf.resource_tags(&db, t.as_deref()).await.expect("read tags").unwrap_or_default().tags }
    };
    assert_eq!(tags_on(target.clone(), None).await, vec![LfTagPair::new("team", vec!["a".into()])]);
    assert_eq!(tags_on(target.clone(), Some(t0.clone())).await, vec![LfTagPair::new("team", vec!["b".into()])]);
    assert_eq!(target.get_lf_tag("team").await.expect("get tag").map(|t| t.values), Some(vec!["a".into(), "b".into()]));
    // Six grants in few calls (one per shard batch at most), never one call per grant.
    let grant_calls = dr.api_calls.get("BatchGrantPermissions").copied().unwrap_or(0);
    assert!((1..granted.len() as u64).contains(&grant_calls), "{:?}", dr.api_calls);
    assert_eq!(dr.api_calls.get("GrantPermissions"), None);

    let again = sync_once(&emu, name).await;
    assert_eq!(lf_writes(&again), vec![], "a re-sync wrote: {:?}", again.targets["dr"].api_calls);
    assert_eq!(again.targets["dr"].write_calls, 0, "{:?}", again.targets["dr"].api_calls);

    // Revoke one grant whole and one permission of another; untag a table; drop the tag's
    // second value's only use by deleting the tag definition itself afterwards.
    let revoked = vec![
        permission(ANALYST, table(&t0), &["SELECT"], &["SELECT"]),
        permission(ANALYST, table(&t1), &["DESCRIBE"], &[]),
    ];
    assert!(source.revoke(&revoked).await.expect("revoke").is_empty());
    source
        .remove_resource_tags(&db, Some(&t0), None, &[LfTagPair::new("team", vec!["b".into()])])
        .await
        .expect("untag t0");
    let report = sync_once(&emu, name).await;
    assert_eq!(report.targets["dr"].stats.total().dead_lettered, 0, "{:?}", report.targets["dr"].stats);
    let now = grants(&*target).await;
    assert_eq!(now, grants(&*source).await);
    assert!(!now.iter().any(|g| g.0 == ANALYST && g.1.ends_with(&t0)), "{now:?}");
    assert!(now.contains(&(ANALYST.into(), table(&t1).to_string(), vec!["SELECT".into()], vec![])), "{now:?}");
    assert_eq!(tags_on(target.clone(), Some(t0.clone())).await, vec![]);
    assert_eq!(tags_on(target.clone(), None).await, vec![LfTagPair::new("team", vec!["a".into()])]);

    // An LF-tag deleted at the source is deleted at the target, its assignments with it.
    source.delete_lf_tag("team").await.expect("delete tag");
    sync_once(&emu, name).await;
    assert_eq!(target.get_lf_tag("team").await.expect("get tag"), None);
    assert_eq!(tags_on(target.clone(), None).await, vec![]);
    let last = sync_once(&emu, name).await;
    assert_eq!(lf_writes(&last), vec![], "{:?}", last.targets["dr"].api_calls);
}

/// A registered data location and a grant on it (both name S3 by ARN) reach the target under
/// the bucket its `location_rewrite` names, so nothing in the target names the source bucket;
/// a re-sync writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_locations_and_their_grants_name_the_rewritten_bucket_in_the_target() {
    use lakelog::model::lakeformation::DataLocation;
    let emu = Emulator::start();
    let name = "lfloc";
    let bucket = Names::new(name).data_bucket;
    seed(&emu, name, 1, 1, 1).await;
    let source = lake_formation(&emu, SOURCE_REGION).await;
    let target = lake_formation(&emu, TARGET_REGION).await;
    let (source_arn, target_arn) = (format!("arn:aws:s3:::{bucket}/lake"), format!("arn:aws:s3:::{bucket}-dr/lake"));
    let location = DataLocation { arn: source_arn.clone(), ..Default::default() };
    source.put_location(&location, false).await.expect("register");
    let on = |arn: &str| LfResource::DataLocation { arn: arn.to_string() };
    let access = permission(ENGINEER, on(&source_arn), &["DATA_LOCATION_ACCESS"], &[]);
    assert!(source.grant(&[access]).await.expect("grant").is_empty());

    let report = sync_once(&emu, name).await;
    let dr = &report.targets["dr"];
    assert_eq!(dr.stats.total().dead_lettered, 0, "{:?}", dr.stats);
    let registered = target.locations_page(None).await.expect("list locations").items;
    assert_eq!(registered.iter().map(|l| l.arn.as_str()).collect::<Vec<_>>(), [target_arn.as_str()]);
    let granted = grants(&*target).await;
    let want = (ENGINEER.to_string(), on(&target_arn).to_string(), vec!["DATA_LOCATION_ACCESS".to_string()], vec![]);
    assert!(granted.contains(&want), "{granted:?}");
    let named = format!("{registered:?} {granted:?}");
    assert!(!named.contains(&format!(":::{bucket}/")), "the target names the source bucket: {named}");

    let again = sync_once(&emu, name).await;
    assert_eq!(again.targets["dr"].write_calls, 0, "{:?}", again.targets["dr"].api_calls);

    // --prune removes what only the target has; the rewritten location and its grant are the
    // source's, as the target names them, and stay.
    let pipeline = Pipeline::connect(lf_config(&emu, name, "")).await.expect("connect");
    let opts = SyncOptions { prune: true, ..Default::default() };
    let pruned = tokio::time::timeout(Duration::from_secs(300), sync(&pipeline, &opts))
        .await
        .expect("sync finished")
        .expect("sync --prune");
    assert_eq!(pruned.targets["dr"].write_calls, 0, "{:?}", pruned.targets["dr"].api_calls);
    assert_eq!(target.locations_page(None).await.expect("list locations").items, registered);
    assert_eq!(grants(&*target).await, granted);
}

/// Hash keys at the two ends of the key space: the first and the second of two shards.
const SHARD_A: &str = "0";
const SHARD_B: &str = "340282366920938463463374607431768211455";

async fn put(pipeline: &Pipeline, hash_key: &str, records: &[ChangeRecord]) {
    for r in records {
        let entry = LogEntry {
            partition_key: r.key.stream_partition_key(),
            explicit_hash_key: Some(hash_key.to_string()),
            data: encode(std::slice::from_ref(r)).expect("encode"),
        };
        let put = pipeline.log.put(&[entry]).await.expect("put record");
        assert!(matches!(put[..], [PutResult::Stored { .. }]), "{put:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_whose_table_reaches_the_target_later_is_applied_once_it_exists() {
    let emu = Emulator::start();
    let name = "lflate";
    let prefix = Names::new(name).prefix;
    let db = format!("{prefix}_sales");
    // The target has the database; the table comes later, behind a backlog on the other shard.
    catalog(&emu, TARGET_REGION)
        .await
        .create_database(&lakelog::model::Database { name: db.clone(), ..Default::default() })
        .await
        .expect("target database");
    let pipeline = Pipeline::connect(lf_config(&emu, name, "  dependency_wait_seconds: 2\n  batch_records: 5"))
        .await
        .expect("connect");
    lakelog::stream::admin::ensure_stream(pipeline.log.as_ref(), 2, true).await.expect("stream");
    let origin = Origin { account: ACCOUNT.into(), region: SOURCE_REGION.into(), catalog_id: ACCOUNT.into() };
    let cause = Cause { kind: CauseKind::Snapshot, event_id: None };
    let t0 = now_millis();
    let grant =
        permission(ANALYST, LfResource::Table { database: db.clone(), table: "orders".into() }, &["SELECT"], &[]);
    // The source holds the grant too (moto does not check the table exists), as it would have:
    // a target grant the source scan does not see is revoked by the sync.
    let source = lake_formation(&emu, SOURCE_REGION).await;
    assert!(source.grant(std::slice::from_ref(&grant)).await.expect("grant").is_empty());
    let state = CatalogObject::LakeFormation { lf: LfObject::Permission(grant) };
    put(&pipeline, SHARD_A, &[ChangeRecord::upsert(state, &origin, cause.clone(), t0 + 10)]).await;
    let mut backlog: Vec<ChangeRecord> = (0..60)
        .map(|i| {
            let filler = lakelog::model::Database { name: format!("{prefix}_filler_{i:02}"), ..Default::default() };
            ChangeRecord::upsert(CatalogObject::Database(filler), &origin, cause.clone(), t0 - 1_000 + i)
        })
        .collect();
    let table = Table { database_name: db.clone(), name: "orders".into(), ..Default::default() };
    backlog.push(ChangeRecord::upsert(CatalogObject::Table(table), &origin, cause.clone(), t0));
    put(&pipeline, SHARD_B, &backlog).await;

    let report = run_sync(&pipeline).await;
    let dr = &report.targets["dr"];
    // The grant put behind the table, and the scan's own record of it: both applied or found
    // applied, neither dead-lettered.
    assert!(dr.stats.kind(ObjectKind::Permission).created >= 1, "{:?}", dr.stats);
    assert_eq!(dr.stats.total().dead_lettered, 0, "{:?}", dr.stats);
    let target = lake_formation(&emu, TARGET_REGION).await;
    assert_eq!(grants(&*target).await, grants(&*source).await);
    assert!(catalog(&emu, TARGET_REGION).await.get_table(&db, "orders").await.expect("read").is_some());
}

/// A CloudTrail record of a Lake Formation call (the shape of the CloudTrail docs: the request in
/// camelCase under `requestParameters`).
fn revoke_record(id: &str, principal: &str, db: &str, table: &str) -> serde_json::Value {
    serde_json::json!({
        "eventVersion": "1.08", "eventSource": "lakeformation.amazonaws.com", "eventName": "RevokePermissions",
        "eventID": id, "eventTime": "2026-12-01T10:00:00Z", "awsRegion": SOURCE_REGION,
        "requestParameters": {
            "catalogId": ACCOUNT,
            "principal": {"dataLakePrincipalIdentifier": principal},
            "resource": {"table": {"catalogId": ACCOUNT, "databaseName": db, "name": table}},
            "permissions": ["SELECT"]
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloudtrail_revoke_is_re_read_into_a_delete_and_reconciliation_deletes_a_revoke_it_missed() {
    use lakelog::capture::events::parse::parse_cloudtrail_record;
    use lakelog::capture::scan::reconcile::Reconciler;
    use lakelog::model::lakeformation::LfKey;
    use lakelog::model::{ObjectKey, Op};
    use lakelog::stream::producer::Producer;
    use lakelog::stream::publisher::Publisher;

    let emu = Emulator::start();
    let name = "lfevents";
    let seeded = seed(&emu, name, 1, 2, 1).await;
    let db = seeded.databases[0].name.clone();
    let (t0, t1) = (seeded.tables[0].name.clone(), seeded.tables[1].name.clone());
    let source = lake_formation(&emu, SOURCE_REGION).await;
    let on = |t: &str| LfResource::Table { database: db.clone(), table: t.to_string() };
    let (by_event, by_pass) =
        (permission(ANALYST, on(&t0), &["SELECT"], &[]), permission(ENGINEER, on(&t1), &["SELECT"], &[]));
    assert!(source.grant(&[by_event.clone(), by_pass.clone()]).await.expect("grant").is_empty());

    let pipeline = Pipeline::connect(lf_config(&emu, name, "")).await.expect("connect");
    lakelog::stream::admin::ensure_stream(pipeline.log.as_ref(), 2, true).await.expect("stream");
    let publisher = Arc::new(Publisher::new(Producer::new(pipeline.log.clone(), 100_000)));
    let reconciler = Reconciler {
        reader: pipeline.source.clone(),
        filter: pipeline.source_filter.clone(),
        origin: pipeline.origin.clone(),
        publisher: publisher.clone(),
    };
    let first = reconciler.pass(CauseKind::Snapshot).await.expect("snapshot");
    // Two grants and the settings.
    assert_eq!(first.scanned.lake_formation, 3, "{first:?}");

    // One revoke arrives as a CloudTrail record: re-read, it is a delete of that grant.
    assert!(source.revoke(std::slice::from_ref(&by_event)).await.expect("revoke").is_empty());
    let parsed = parse_cloudtrail_record(&revoke_record("ev-1", ANALYST, &db, &t0)).expect("parses").expect("a change");
    let cause = Cause { kind: CauseKind::Event, event_id: Some(parsed.id.clone()) };
    let records = pipeline.resolver().resolve(&parsed.hints, &cause).await.expect("resolve");
    let key = |p: &Permission| ObjectKey::LakeFormation {
        catalog: ACCOUNT.into(),
        lf: LfKey::Permission { principal: p.principal.clone(), resource: p.resource.clone() },
    };
    assert_eq!(records.iter().map(|r| (r.op, r.key.clone())).collect::<Vec<_>>(), vec![(Op::Delete, key(&by_event))]);
    publisher.publish(records).await.expect("publish");

    // The other revoke has no event: the next pass finds the grant gone and deletes it.
    assert!(source.revoke(std::slice::from_ref(&by_pass)).await.expect("revoke").is_empty());
    let second = reconciler.pass(CauseKind::Reconcile).await.expect("second pass");
    assert_eq!((second.changed, second.deleted), (0, 1), "{second:?}");
    // Both are recorded as deleted (a delete is remembered without a state).
    let recorded = publisher.recorded().await;
    for p in [&by_event, &by_pass] {
        assert_eq!(recorded.get(&key(p)).map(|r| r.hash), Some(None), "{}", p.principal);
    }
}

/// The test config with Lake Formation on, as YAML (for the `lakelog` binary).
fn lf_yaml(emu: &Emulator, name: &str) -> String {
    config_yaml(emu, name, "", "")
        .replace("  partition_segments: 1\n", "  partition_segments: 1\n  lakeformation: true\n")
}

/// Plan lines as (action, object).
type Lines = BTreeSet<(String, String)>;

/// The plan lines of a restore report (JSON) as (action, object).
fn plan_lines(report: &serde_json::Value) -> Vec<(String, String)> {
    report["plan"]
        .as_array()
        .expect("plan")
        .iter()
        .map(|l| {
            (l["action"].as_str().unwrap_or_default().to_string(), l["object"].as_str().unwrap_or_default().into())
        })
        .collect()
}

/// The kinds of change (`created`, `deleted` ...) `history` lists, in its JSON and its text, for
/// the related Lake Formation object named `object`.
fn related_changes(history: &serde_json::Value, text: &str, object: &str) -> Vec<String> {
    let related = history["lake_formation"].as_array().unwrap_or_else(|| panic!("no lake_formation: {history:#}"));
    let entry = related
        .iter()
        .find(|r| r["object"].as_str().is_some_and(|o| o.ends_with(object)))
        .unwrap_or_else(|| panic!("{object} not in lake_formation: {history:#}"));
    let whats: Vec<String> = entry["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(|c| c["what"].as_str().map(str::to_string))
        .collect();
    let heading = format!("{object}: {} recorded changes", whats.len());
    assert!(text.lines().any(|l| l.ends_with(&heading)), "{heading} not in the text:\n{text}");
    whats
}

/// `lakelog restore --at T` brings the Lake Formation state of T back into a target, as it does
/// the Glue catalog's: a grant and an LF-tag assignment revoked and removed at the source after T
/// are granted and assigned again; a grant and an LF-tag created after T are revoked and deleted;
/// what did not change is not written; the dry run names exactly those changes and writes none.
/// `lakelog history` lists the grants and tags of a table and of the catalog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_brings_back_the_grants_and_tags_of_that_time_and_history_lists_their_changes() {
    use crate::archive::{lakelog, lakelog_json, write_config};
    use lakelog::commands::restore::rfc3339;

    let emu = Emulator::start();
    let name = "lfrestore";
    let seeded = seed(&emu, name, 1, 2, 1).await;
    let db = seeded.databases[0].name.clone();
    let (t0, t1) = (seeded.tables[0].name.clone(), seeded.tables[1].name.clone());
    let source = lake_formation(&emu, SOURCE_REGION).await;
    let target = lake_formation(&emu, TARGET_REGION).await;
    let table = |t: &str| LfResource::Table { database: db.clone(), table: t.to_string() };
    let team_a = vec![LfTagPair::new("team", vec!["a".into()])];
    source.create_lf_tag(&LfTag { key: "team".into(), values: vec!["a".into(), "b".into()] }).await.expect("tag");
    source.add_resource_tags(&db, Some(&t0), None, &team_a).await.expect("tag t0");
    let revoked_later = permission(ANALYST, table(&t0), &["SELECT"], &[]);
    let kept = permission(ENGINEER, LfResource::Database { database: db.clone() }, &["DESCRIBE"], &[]);
    assert!(source.grant(&[revoked_later.clone(), kept]).await.expect("grant").is_empty());

    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(&dir, &lf_yaml(&emu, name));
    lakelog(&config, &["sync", "--target", "dr"]);
    let at_t = grants(&*source).await;
    assert_eq!(grants(&*target).await, at_t, "the first sync copied the grants");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let at = rfc3339(now_millis());
    tokio::time::sleep(Duration::from_millis(50)).await;

    // After T: one grant revoked, the table's tag removed, a grant and an LF-tag created.
    assert!(source.revoke(std::slice::from_ref(&revoked_later)).await.expect("revoke").is_empty());
    source.remove_resource_tags(&db, Some(&t0), None, &team_a).await.expect("untag t0");
    let created_later = permission(ENGINEER, table(&t1), &["SELECT"], &[]);
    assert!(source.grant(std::slice::from_ref(&created_later)).await.expect("grant").is_empty());
    source.create_lf_tag(&LfTag { key: "tier".into(), values: vec!["gold".into()] }).await.expect("tag tier");
    lakelog(&config, &["sync", "--target", "dr"]);
    let now = grants(&*source).await;
    assert_eq!(grants(&*target).await, now, "the second sync followed the source");
    assert_ne!(now, at_t);
    let tags_on_t0 =
        || async { target.resource_tags(&db, Some(&t0)).await.expect("read tags").unwrap_or_default().tags };
    assert_eq!(tags_on_t0().await, vec![]);

    // Under a new name, the grants and tags of T go to the copy (the live database keeps today's),
    // and catalog-level objects are left alone. Before, they were applied to the live database.
    let copy = format!("{db}_copy");
    lakelog(&config, &["restore", "--at", &at, "--target", "dr", "--rename-database", &format!("{db}={copy}")]);
    let mut with_copy = now.clone();
    with_copy.insert((ANALYST.into(), format!("table {copy}.{t0}"), vec!["SELECT".into()], vec![]));
    with_copy.insert((ENGINEER.into(), format!("database {copy}"), vec!["DESCRIBE".into()], vec![]));
    assert_eq!(grants(&*target).await, with_copy);
    assert_eq!(tags_on_t0().await, vec![], "the live table keeps today's tags");
    let copy_tags = target.resource_tags(&copy, Some(&t0)).await.expect("read tags").unwrap_or_default().tags;
    assert_eq!(copy_tags, team_a);
    assert!(target.get_lf_tag("tier").await.expect("get tag").is_some(), "a renamed restore left the catalog's");

    // The plan names the four changes to the live database and the catalog, and only them, and
    // the copy's grants (the whole-catalog restore drops the copy, which T did not have);
    // nothing is written.
    let text = lakelog(&config, &["restore", "--at", &at, "--target", "dr", "--dry-run"]);
    let plan = lakelog_json(&config, &["restore", "--at", &at, "--target", "dr", "--dry-run"]);
    assert_eq!(grants(&*target).await, with_copy, "a dry run wrote");
    assert!(target.get_lf_tag("tier").await.expect("get tag").is_some(), "a dry run deleted");
    let (of_copy, lf_lines): (Lines, Lines) = plan_lines(&plan)
        .into_iter()
        .filter(|(_, o)| o.contains("permission of") || o.contains("LF-tag") || o.contains("data lake"))
        .map(|(a, o)| (a, o.split_once(": ").map(|(_, rest)| rest.to_string()).unwrap_or(o)))
        .partition(|(_, o)| o.contains(&copy));
    let copy_grants = [
        ("delete".to_string(), format!("permission of {ANALYST} on table {copy}.{t0}")),
        ("delete".to_string(), format!("permission of {ENGINEER} on database {copy}")),
    ];
    assert_eq!(of_copy, copy_grants.into_iter().collect(), "{text}");
    let want: Lines = [
        ("create", format!("permission of {ANALYST} on table {db}.{t0}")),
        ("create", format!("LF-tags on table {db}.{t0}")),
        ("delete", format!("permission of {ENGINEER} on table {db}.{t1}")),
        ("delete", "LF-tag tier".to_string()),
    ]
    .into_iter()
    .map(|(a, o)| (a.to_string(), o))
    .collect();
    assert_eq!(lf_lines, want, "{text}");
    for (_, object) in &want {
        assert!(text.contains(object.as_str()), "the text plan names {object}:\n{text}");
    }

    // The restore itself: the target's Lake Formation is the source's at T.
    let restored = lakelog_json(&config, &["restore", "--at", &at, "--target", "dr"]);
    assert_eq!(grants(&*target).await, at_t, "{restored:#}");
    assert_eq!(tags_on_t0().await, team_a);
    assert_eq!(target.get_lf_tag("tier").await.expect("get tag"), None, "{restored:#}");
    assert!(target.get_lf_tag("team").await.expect("get tag").is_some());
    assert_eq!(grants(&*source).await, now, "the source is untouched");
    let stats = &restored["stats"];
    assert_eq!(stats["permission"]["created"], 1, "{stats:#}");
    assert_eq!(stats["permission"]["deleted"], 3, "{stats:#}");
    assert_eq!(stats["lf_tag"]["deleted"], 1, "{stats:#}");
    // Restoring the same time again changes no Lake Formation object.
    let again = lakelog_json(&config, &["restore", "--at", &at, "--target", "dr"]);
    for kind in ["permission", "lf_tag", "lf_tag_assignment", "data_lake_settings"] {
        let c = &again["stats"][kind];
        for what in ["created", "updated", "deleted", "dead_lettered"] {
            assert!(c[what].as_u64().unwrap_or(0) == 0, "{kind} {what}: {:#}", again["stats"]);
        }
    }
    assert!(plan_lines(&lakelog_json(&config, &["restore", "--at", &at, "--target", "dr", "--dry-run"]))
        .iter()
        .all(|(_, o)| !o.contains("permission of") && !o.contains("LF-tag")));

    // History: the table's grants and tags with it, the catalog's LF-tags by name.
    let object = format!("{db}.{t0}");
    let text = lakelog(&config, &["history", &object]);
    let json = lakelog_json(&config, &["history", &object]);
    let grant = related_changes(&json, &text, &format!("permission of {ANALYST} on table {db}.{t0}"));
    assert_eq!(
        (grant.first().map(String::as_str), grant.last().map(String::as_str)),
        (Some("created"), Some("deleted"))
    );
    let tags = related_changes(&json, &text, &format!("LF-tags on table {db}.{t0}"));
    assert_eq!((tags.first().map(String::as_str), tags.last().map(String::as_str)), (Some("created"), Some("deleted")));
    assert!(!text.contains(&format!("{db}.{t1}")), "another table's grant is not listed:\n{text}");
    let on_db = lakelog(&config, &["history", &db]);
    assert!(on_db.contains(&format!("permission of {ENGINEER} on database {db}")), "{on_db}");
    let tier = lakelog_json(&config, &["history", "--lf-tag", "tier"]);
    let whats: Vec<&str> =
        tier["changes"].as_array().expect("changes").iter().filter_map(|c| c["what"].as_str()).collect();
    assert_eq!(whats.first(), Some(&"created"), "{tier:#}");
    let catalog_level = lakelog(&config, &["history", "--catalog"]);
    assert!(catalog_level.contains("LF-tag team") && catalog_level.contains("LF-tag tier"), "{catalog_level}");
}

/// An archive written while Lake Formation was not captured holds no Lake Formation state: a
/// restore from it with `source.lakeformation` on since leaves the target's grants as they are
/// (and says so), instead of revoking every one the state "lacks".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_from_an_archive_without_lake_formation_leaves_the_targets_grants() {
    use crate::archive::{lakelog, lakelog_json, write_config};
    use lakelog::commands::restore::rfc3339;

    let emu = Emulator::start();
    let name = "lfnotarchived";
    let seeded = seed(&emu, name, 1, 1, 1).await;
    let (db, t0) = (seeded.databases[0].name.clone(), seeded.tables[0].name.clone());
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(&dir, &config_yaml(&emu, name, "", ""));
    lakelog(&config, &["sync", "--target", "dr"]);
    let target = lake_formation(&emu, TARGET_REGION).await;
    let on = LfResource::Table { database: db, table: t0 };
    assert!(target.grant(&[permission(ANALYST, on, &["SELECT"], &[])]).await.expect("grant").is_empty());
    let before = grants(&*target).await;
    assert_eq!(before.len(), 1);

    let config = write_config(&dir, &lf_yaml(&emu, name));
    let at = rfc3339(now_millis());
    let report = lakelog_json(&config, &["restore", "--at", &at, "--target", "dr"]);
    assert_eq!(grants(&*target).await, before, "{report:#}");
    assert_eq!(report["lf_not_archived"], true, "{report:#}");
    let text = lakelog(&config, &["restore", "--at", &at, "--target", "dr", "--dry-run"]);
    assert!(text.contains("no Lake Formation state"), "{text}");
}
