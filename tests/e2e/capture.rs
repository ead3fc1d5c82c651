//! Capture never loses an event: one failing event in an SQS batch, a CloudTrail log file or a
//! LookupEvents poll fails alone (parked once, with its reason) while the rest of its batch is
//! published and deleted (the file finished, the cursor moved); an event id is
//! remembered as done only once its records are on the stream (SQS, CloudTrail log files and
//! LookupEvents alike); reconciliation forgets a dropped table's partitions.
//!
//! Everything runs on the emulator, except CloudTrail LookupEvents, which no emulator implements:
//! the `..._in_memory_lookup_events` tests answer LookupEvents from an in-memory history
//! (`MemoryHistory`) and use the emulator for the rest.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_glue::types::{Column, StorageDescriptor, TableInput};
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use lakelog::aws::client::Endpoint;
use lakelog::aws::s3::S3Store;
use lakelog::aws::sqs::SqsQueue;
use lakelog::backend::history::HistoryEvent;
use lakelog::backend::memory::history::MemoryHistory;
use lakelog::backend::queue::{EventQueue, Receive};
use lakelog::backend::state::SharedStore;
use lakelog::capture::events::cloudtrail::CloudTrailCapture;
use lakelog::capture::events::hint::Hint;
use lakelog::capture::events::lookup::{LookupCapture, LookupReader};
use lakelog::capture::events::queue::{QueueCapture, QueueStats, SeenEvents};
use lakelog::capture::resolve::Resolver;
use lakelog::capture::scan::reconcile::Reconciler;
use lakelog::config::{CloudTrailConfig, CloudTrailLookupConfig, EventsConfig, PipelineConfig};
use lakelog::connect::Pipeline;
use lakelog::model::{Cause, CauseKind, ObjectKey};
use lakelog::simulate::events::GlueEvent;
use lakelog::state::deadletter::{DeadLetter, DeadLetterStore, CAPTURE_EVENTS};
use lakelog::stream::admin::ensure_stream;
use lakelog::stream::producer::Producer;
use lakelog::stream::publisher::Publisher;

use crate::emulator::Emulator;
use crate::run::{converges, route, run_config, start};
use crate::{config_yaml, seed, ACCOUNT, SOURCE_REGION, TARGET_REGION};

/// The body SQS holds for a Glue event that EventBridge delivered (the envelope AWS documents).
fn eventbridge_body(event: &GlueEvent, id: &str) -> String {
    serde_json::json!({
        "version": "0",
        "id": id,
        "detail-type": event.detail_type,
        "source": "aws.glue",
        "account": ACCOUNT,
        "time": "2026-12-01T10:00:00Z",
        "region": SOURCE_REGION,
        "resources": [],
        "detail": event.detail,
    })
    .to_string()
}

/// Sends the bodies in ONE SendMessageBatch, so lakelog receives them in one batch.
async fn send_batch(sqs: &aws_sdk_sqs::Client, queue: &str, bodies: &[String]) {
    let entries: Vec<_> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| {
            SendMessageBatchRequestEntry::builder().id(format!("m{i}")).message_body(b).build().expect("entry")
        })
        .collect();
    let out = sqs.send_message_batch().queue_url(queue).set_entries(Some(entries)).send().await.expect("send batch");
    assert!(out.failed.is_empty(), "{:?}", out.failed);
}

fn state_bucket(s3: aws_sdk_s3::Client, name: &str) -> SharedStore {
    Arc::new(S3Store::new(s3, &format!("lakelog-{name}-state"), "lakelog/"))
}

async fn capture_dead_letters(emu: &Emulator, name: &str) -> Vec<(String, DeadLetter)> {
    let s3 = Endpoint::new(SOURCE_REGION, Some(&emu.moto_url)).s3().await;
    DeadLetterStore::new(state_bucket(s3, name)).list(CAPTURE_EVENTS).await.expect("list dead letters")
}

/// Messages in the queue, visible or in flight.
async fn queue_depth(sqs: &aws_sdk_sqs::Client, queue: &str) -> u64 {
    let out = sqs
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("queue attributes");
    out.attributes.unwrap_or_default().values().map(|v| v.parse::<u64>().unwrap_or(0)).sum()
}

fn table_input(name: &str, parameter_bytes: usize) -> TableInput {
    let col = Column::builder().name("id").r#type("string").build().expect("col");
    let mut t = TableInput::builder()
        .name(name)
        .storage_descriptor(StorageDescriptor::builder().columns(col).location(format!("s3://x/{name}/")).build());
    if parameter_bytes > 0 {
        // Varied text, so no encoding could shrink it under the frame limit.
        let text: String = (0..parameter_bytes).map(|i| char::from(b'a' + ((i * 7 + i / 26) % 26) as u8)).collect();
        t = t.parameters("notes", text);
    }
    t.build().expect("table")
}

async fn target_has_table(emu: &Emulator, db: &str, table: &str) -> bool {
    crate::glue(emu, TARGET_REGION).await.get_table().database_name(db).name(table).send().await.is_ok()
}

async fn wait_for_table(emu: &Emulator, db: &str, table: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if target_has_table(emu, db, table).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    false
}

/// A poison event (its table's record exceeds the stream's frame limit, a permanent failure of
/// that event alone) sent in one SendMessageBatch with a valid CreateTable event: the valid table
/// reaches the target at once, long before any reconciliation, and the poison event is parked
/// exactly once even though SQS would redeliver an undeleted message within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_fails_alone_and_its_batch_mate_is_applied_at_once() {
    let emu = Emulator::start();
    let name = "poison";
    let catalog = seed(&emu, name, 1, 1, 1).await;
    let db = catalog.databases[0].name.clone();
    let (_eb, sqs, queue) = route(&emu, name).await;
    // A small frame limit makes a 40 KB table definition too large for one Kinesis record; the
    // shortest visibility timeout lakelog accepts (10 s) redelivers any message lakelog leaves in
    // the queue while we watch.
    let yaml = run_config(&emu, name, &queue, 3600)
        .replace("  create_if_missing: true\n", "  create_if_missing: true\n  frame_bytes: 16384\n")
        .replace("visibility_timeout_seconds: 30", "visibility_timeout_seconds: 10");
    let running = start(&yaml).await;
    converges(&emu, name, Duration::from_secs(60)).await;

    let glue = crate::glue(&emu, SOURCE_REGION).await;
    for (table, bytes) in [("huge", 40_000), ("fresh", 0)] {
        glue.create_table().database_name(&db).table_input(table_input(table, bytes)).send().await.expect("create");
    }
    let huge = GlueEvent::database("CreateTable", &db, &["huge"]);
    let fresh = GlueEvent::database("CreateTable", &db, &["fresh"]);
    send_batch(&sqs, &queue, &[eventbridge_body(&huge, "ev-huge"), eventbridge_body(&fresh, "ev-fresh")]).await;

    assert!(
        wait_for_table(&emu, &db, "fresh", Duration::from_secs(20)).await,
        "the valid event of the batch must be applied without waiting for a reconciliation pass"
    );
    // Past a visibility timeout: a message left in the queue would have been redelivered.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(queue_depth(&sqs, &queue).await, 0, "both messages are deleted");
    let report = running.stop().await;
    let letters = capture_dead_letters(&emu, name).await;
    assert_eq!(letters.len(), 1, "the poison event is parked exactly once: {letters:#?}");
    let letter = &letters[0].1;
    assert!(letter.body.as_deref().is_some_and(|b| b.contains("ev-huge")), "{letter:?}");
    assert!(letter.reason.contains("huge") && letter.reason.contains("frame limit"), "{}", letter.reason);
    assert!(!target_has_table(&emu, &db, "huge").await);
    assert_eq!(report.events.messages, 2, "{:?}", report.events);
}

/// An unknown `typeOfChange` and a partition event without `changedPartitions`, both naming
/// tables dropped from the source, in one batch with a valid event: the dropped tables are
/// deleted in the target, the valid event is applied, nothing is parked and the queue drains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_table_rereads_of_dropped_tables_publish_their_deletes() {
    let emu = Emulator::start();
    let name = "dropped";
    let catalog = seed(&emu, name, 1, 3, 2).await;
    let db = catalog.databases[0].name.clone();
    let partitioned: Vec<String> = catalog
        .tables
        .iter()
        .filter(|t| catalog.partitions.iter().any(|p| p.table_name == t.name))
        .map(|t| t.name.clone())
        .collect();
    assert!(partitioned.len() >= 2, "the seed has partitioned tables: {partitioned:?}");
    let (gone_a, gone_b) = (partitioned[0].clone(), partitioned[1].clone());
    let (_eb, sqs, queue) = route(&emu, name).await;
    let running = start(&run_config(&emu, name, &queue, 3600)).await;
    converges(&emu, name, Duration::from_secs(60)).await;

    let glue = crate::glue(&emu, SOURCE_REGION).await;
    for t in [&gone_a, &gone_b] {
        glue.delete_table().database_name(&db).name(t).send().await.expect("drop");
    }
    glue.create_table().database_name(&db).table_input(table_input("fresh", 0)).send().await.expect("create");
    let unknown = GlueEvent::table("SomeFutureChange", &db, &gone_a, &[]);
    let no_partitions = GlueEvent::table("BatchCreatePartition", &db, &gone_b, &[]);
    let fresh = GlueEvent::database("CreateTable", &db, &["fresh"]);
    send_batch(
        &sqs,
        &queue,
        &[
            eventbridge_body(&unknown, "ev-unknown"),
            eventbridge_body(&no_partitions, "ev-nopart"),
            eventbridge_body(&fresh, "ev-fresh"),
        ],
    )
    .await;

    // Reconciliation is an hour away: only the events can make this converge.
    converges(&emu, name, Duration::from_secs(30)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while queue_depth(&sqs, &queue).await > 0 {
        assert!(Instant::now() < deadline, "the batch is wedged in the queue");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    running.stop().await;
    assert!(capture_dead_letters(&emu, name).await.is_empty(), "nothing failed, nothing is parked");
}

/// The same malformed message delivered three times (as SQS does while its batch is not deleted)
/// is parked once; every delivery is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_delivered_three_times_is_parked_once() {
    let emu = Emulator::start();
    let name = "parkonce";
    let cfg = PipelineConfig::from_yaml(&config_yaml(&emu, name, "", ""), name).expect("config");
    let pipeline = Pipeline::connect(cfg).await.expect("connect");
    let sqs = Endpoint::new(SOURCE_REGION, Some(&emu.moto_url)).sqs().await;
    let queue =
        sqs.create_queue().queue_name("lakelog-parkonce").send().await.expect("queue").queue_url.expect("queue url");
    sqs.send_message().queue_url(&queue).message_body("{not json").send().await.expect("send");
    // Three deliveries of one message: each receive makes it visible again at once.
    let events_queue = Arc::new(SqsQueue::new(sqs.clone()));
    let receive = Receive { max_messages: 10, wait_seconds: 0, visibility_timeout_seconds: 0 };
    let mut deliveries = Vec::new();
    while deliveries.len() < 3 {
        deliveries.extend(events_queue.receive(&queue, receive).await.expect("receive"));
    }
    assert!(deliveries.iter().all(|m| m.message_id == deliveries[0].message_id));
    assert!(deliveries.iter().all(|m| m.sent_ms > 0 && m.sent_ms == deliveries[0].sent_ms), "{deliveries:?}");

    let capture = QueueCapture {
        queue: events_queue,
        queue_url: queue.clone(),
        config: EventsConfig {
            queue_url: Some(queue.clone()),
            queue_name: None,
            wait_seconds: 0,
            visibility_timeout_seconds: 30,
        },
        resolver: Resolver::new(
            crate::catalog(&emu, SOURCE_REGION).await,
            pipeline.origin.clone(),
            pipeline.source_filter.clone(),
        ),
        publisher: Arc::new(Publisher::new(Producer::new(pipeline.log.clone(), 100_000))),
        dead_letters: pipeline.dead_letters.clone(),
    };
    let (mut seen, mut stats) = (SeenEvents::default(), QueueStats::default());
    for delivery in &deliveries {
        capture.handle_batch(std::slice::from_ref(delivery), &mut seen, &mut stats).await.expect("handled");
    }
    let letters = pipeline.dead_letters.list(CAPTURE_EVENTS).await.expect("list");
    assert_eq!(letters.len(), 1, "{letters:#?}");
    assert_eq!(letters[0].1.key, deliveries[0].message_id);
    assert_eq!(queue_depth(&sqs, &queue).await, 0, "the message is deleted");
}

/// After a table delete is recorded (from an event, or from a pass), the reconcile memory holds
/// none of its partitions, and the next pass publishes no partition deletes for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_forgets_the_partitions_of_a_dropped_table() {
    let emu = Emulator::start();
    let name = "forget";
    let catalog = seed(&emu, name, 1, 3, 4).await;
    let db = catalog.databases[0].name.clone();
    let partitioned: Vec<String> = catalog
        .tables
        .iter()
        .filter(|t| catalog.partitions.iter().any(|p| p.table_name == t.name))
        .map(|t| t.name.clone())
        .collect();
    let (by_event, by_pass) = (partitioned[0].clone(), partitioned[1].clone());
    let cfg = PipelineConfig::from_yaml(&config_yaml(&emu, name, "", ""), name).expect("config");
    let pipeline = Pipeline::connect(cfg).await.expect("connect");
    ensure_stream(pipeline.log.as_ref(), 1, true).await.expect("stream");
    let publisher = Arc::new(Publisher::new(Producer::new(pipeline.log.clone(), 100_000)));
    let reconciler = Reconciler {
        reader: pipeline.source.clone(),
        filter: pipeline.source_filter.clone(),
        origin: pipeline.origin.clone(),
        publisher: publisher.clone(),
    };
    let first = reconciler.pass(CauseKind::Snapshot).await.expect("snapshot");
    assert!(first.scanned.partitions >= 8, "{first:?}");

    let glue = crate::glue(&emu, SOURCE_REGION).await;
    for t in [&by_event, &by_pass] {
        glue.delete_table().database_name(&db).name(t).send().await.expect("drop");
    }
    // The DeleteTable event of one table is captured as the queue would capture it.
    let resolver = Resolver::new(
        crate::catalog(&emu, SOURCE_REGION).await,
        pipeline.origin.clone(),
        pipeline.source_filter.clone(),
    );
    let cause = Cause { kind: CauseKind::Event, event_id: Some("ev-drop".into()) };
    let records = resolver
        .resolve(&[Hint::Table { database: db.clone(), table: by_event.clone() }], &cause)
        .await
        .expect("resolve");
    publisher.publish(records).await.expect("publish");
    let partitions_of = |recorded: &std::collections::HashMap<ObjectKey, _>, table: &str| {
        recorded.keys().filter(|k| matches!(k, ObjectKey::Partition { .. }) && k.table() == Some(table)).count()
    };
    assert_eq!(partitions_of(&publisher.recorded().await, &by_event), 0, "forgotten with the event's table delete");

    // The other table's delete comes from a pass: one delete, its partitions go with it.
    let second = reconciler.pass(CauseKind::Reconcile).await.expect("second pass");
    assert_eq!(second.deleted, 1, "only the table {by_pass} is deleted: {second:?}");
    assert_eq!(partitions_of(&publisher.recorded().await, &by_pass), 0, "forgotten with the pass's table delete");

    let third = reconciler.pass(CauseKind::Reconcile).await.expect("third pass");
    assert_eq!((third.changed, third.deleted), (0, 0), "nothing is left to delete: {third:?}");
}

/// A CloudTrail record of a Glue `CreateTable` call (the shape of the CloudTrail docs).
fn create_table_record(id: &str, db: &str, table: &str) -> serde_json::Value {
    serde_json::json!({
        "eventVersion": "1.08", "eventSource": "glue.amazonaws.com", "eventName": "CreateTable",
        "eventID": id, "eventTime": "2026-12-01T10:00:00Z", "awsRegion": SOURCE_REGION,
        "requestParameters": {"databaseName": db, "tableInput": {"name": table}}
    })
}

/// What a CloudTrail capture test runs against: a seeded source catalog (one database, one table)
/// and a connected pipeline whose stream does not exist yet.
struct TrailSetUp {
    pipeline: Pipeline,
    s3: aws_sdk_s3::Client,
    db: String,
    table: String,
}

impl TrailSetUp {
    async fn new(emu: &Emulator, name: &str) -> TrailSetUp {
        let catalog = seed(emu, name, 1, 1, 1).await;
        let cfg = PipelineConfig::from_yaml(&config_yaml(emu, name, "", ""), name).expect("config");
        TrailSetUp {
            pipeline: Pipeline::connect(cfg).await.expect("connect"),
            s3: Endpoint::new(SOURCE_REGION, Some(&emu.moto_url)).s3().await,
            db: catalog.databases[0].name.clone(),
            table: catalog.tables[0].name.clone(),
        }
    }

    async fn resolver(&self, emu: &Emulator) -> Resolver {
        Resolver::new(
            crate::catalog(emu, SOURCE_REGION).await,
            self.pipeline.origin.clone(),
            self.pipeline.source_filter.clone(),
        )
    }

    /// A publisher to the pipeline's stream whose records may be at most `frame_bytes` long.
    fn publisher(&self, frame_bytes: usize) -> Arc<Publisher> {
        Arc::new(Publisher::new(Producer::new(self.pipeline.log.clone(), frame_bytes)))
    }

    async fn create_stream(&self) {
        ensure_stream(self.pipeline.log.as_ref(), 1, true).await.expect("stream");
    }

    /// Creates tables in the source database: `(name, bytes of table definition padding)`.
    async fn create_tables(&self, emu: &Emulator, tables: &[(&str, usize)]) {
        let glue = crate::glue(emu, SOURCE_REGION).await;
        for (table, bytes) in tables {
            glue.create_table()
                .database_name(&self.db)
                .table_input(table_input(table, *bytes))
                .send()
                .await
                .expect("create");
        }
    }

    /// A capture of the trail bucket `lakelog-<name>-trail`, holding one log file of today (UTC
    /// `now`) with `records`.
    async fn trail(
        &self,
        emu: &Emulator,
        name: &str,
        now: time::OffsetDateTime,
        records: &[serde_json::Value],
        frame_bytes: usize,
    ) -> CloudTrailCapture {
        let trail = format!("lakelog-{name}-trail");
        self.s3.create_bucket().bucket(&trail).send().await.expect("trail bucket");
        let key = format!(
            "AWSLogs/{ACCOUNT}/CloudTrail/{SOURCE_REGION}/{:04}/{:02}/{:02}/{ACCOUNT}_CloudTrail_{SOURCE_REGION}_1.json.gz",
            now.year(),
            u8::from(now.month()),
            now.day()
        );
        let file = serde_json::json!({ "Records": records });
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(file.to_string().as_bytes()).expect("gzip");
        let body = gz.finish().expect("gzip");
        self.s3.put_object().bucket(&trail).key(&key).body(body.into()).send().await.expect("put log file");
        CloudTrailCapture {
            trail: Arc::new(S3Store::new(self.s3.clone(), &trail, "")),
            config: CloudTrailConfig {
                bucket: trail,
                prefix: String::new(),
                region: None,
                endpoint: None,
                endpoints: Default::default(),
                poll_seconds: 60,
            },
            account: ACCOUNT.into(),
            region: SOURCE_REGION.into(),
            resolver: self.resolver(emu).await,
            publisher: self.publisher(frame_bytes),
            state: self.pipeline.state.clone(),
            dead_letters: self.pipeline.dead_letters.clone(),
        }
    }

    /// A LookupEvents capture whose history (in memory: no emulator implements LookupEvents)
    /// holds `events` (id, record), every one of them a minute old.
    async fn lookup(
        &self,
        emu: &Emulator,
        events: Vec<(String, serde_json::Value)>,
        frame_bytes: usize,
    ) -> LookupCapture {
        let event_ms = lakelog::model::now_millis() - 60_000;
        let history = Arc::new(MemoryHistory::new(50));
        for (id, record) in events {
            let event =
                HistoryEvent { event_id: id, event_time_ms: Some(event_ms), cloudtrail_event: record.to_string() };
            history.record("glue.amazonaws.com", event);
        }
        LookupCapture {
            reader: LookupReader { history, config: CloudTrailLookupConfig { poll_seconds: 60, overlap_seconds: 900 } },
            resolver: self.resolver(emu).await,
            publisher: self.publisher(frame_bytes),
            state: self.pipeline.state.clone(),
            dead_letters: self.pipeline.dead_letters.clone(),
        }
    }

    async fn dead_letters(&self) -> Vec<(String, DeadLetter)> {
        self.pipeline.dead_letters.list(CAPTURE_EVENTS).await.expect("list dead letters")
    }
}

/// Whether the publisher has put a record of table `db.table` on the stream.
async fn published_table(publisher: &Publisher, db: &str, table: &str) -> bool {
    publisher
        .recorded()
        .await
        .keys()
        .any(|k| matches!(k, ObjectKey::Table { database, table: t, .. } if database == db && t == table))
}

/// The one dead letter of a poison event: named by its eventID, its reason naming the table and
/// the frame limit.
fn assert_parked_poison(letters: &[(String, DeadLetter)], event_id: &str) {
    assert_eq!(letters.len(), 1, "the poison event is parked exactly once: {letters:#?}");
    let letter = &letters[0].1;
    assert_eq!(letter.key, event_id, "{letter:?}");
    assert!(letter.reason.contains("huge") && letter.reason.contains("frame limit"), "{}", letter.reason);
}

/// A CloudTrail log file whose publish fails (the stream is not there yet) is read again at the
/// next poll and its event published then: the event id was not remembered as done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloudtrail_file_event_whose_publish_failed_is_published_at_the_next_poll() {
    let emu = Emulator::start();
    let name = "trailretry";
    let set_up = TrailSetUp::new(&emu, name).await;
    let now = time::OffsetDateTime::now_utc();
    let record = create_table_record("trail-ev-1", &set_up.db, &set_up.table);
    let capture = set_up.trail(&emu, name, now, &[record], 100_000).await;
    let mut seen = std::collections::HashSet::new();
    capture.poll_once(now, &mut seen).await.expect_err("the stream does not exist yet");
    set_up.create_stream().await;
    let stats = capture.poll_once(now, &mut seen).await.expect("second poll");
    assert_eq!((stats.files, stats.events, stats.duplicates), (1, 1, 0), "{stats:?}");
    // The table's record, after its database's: this publisher had no record of the database.
    assert_eq!(capture.publisher.totals().await.0, 2, "the table's record is on the stream");
    assert!(published_table(&capture.publisher, &set_up.db, &set_up.table).await);
    let again = capture.poll_once(now, &mut seen).await.expect("third poll");
    assert_eq!((again.files, again.events), (0, 0), "a processed file is not read again: {again:?}");
    assert!(set_up.dead_letters().await.is_empty(), "a transient failure parks nothing");
}

/// A trail file with a poison event (its table's record is larger than the stream's frame limit,
/// a permanent failure of that event alone) next to a valid one: one poll publishes the valid
/// table, parks the poison event once under its eventID and finishes the file; the next poll
/// reads nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloudtrail_file_event_that_fails_for_good_is_parked_and_the_rest_of_its_file_published() {
    let emu = Emulator::start();
    let name = "trailpoison";
    let set_up = TrailSetUp::new(&emu, name).await;
    set_up.create_tables(&emu, &[("huge", 40_000), ("fresh", 0)]).await;
    set_up.create_stream().await;
    let now = time::OffsetDateTime::now_utc();
    let records = [
        create_table_record("trail-huge", &set_up.db, "huge"),
        create_table_record("trail-fresh", &set_up.db, "fresh"),
    ];
    let capture = set_up.trail(&emu, name, now, &records, 16_384).await;
    let mut seen = std::collections::HashSet::new();
    let stats = capture.poll_once(now, &mut seen).await.expect("one event's failure does not fail the poll");
    assert_eq!((stats.files, stats.events, stats.failed), (1, 2, 1), "{stats:?}");
    assert!(published_table(&capture.publisher, &set_up.db, "fresh").await, "the valid table is on the stream");
    assert!(!published_table(&capture.publisher, &set_up.db, "huge").await);
    assert_parked_poison(&set_up.dead_letters().await, "trail-huge");

    let again = capture.poll_once(now, &mut seen).await.expect("second poll");
    assert_eq!((again.files, again.events, again.failed), (0, 0, 0), "the file is done: {again:?}");
    assert_eq!(set_up.dead_letters().await.len(), 1, "parked once");
}

/// The same rule for LookupEvents (answered by an in-memory history: no emulator implements it;
/// Glue, S3 and Kinesis are the emulator's): an event whose publish failed is published by the
/// next poll, and not again by the one after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_event_whose_publish_failed_is_published_at_the_next_poll_in_memory_lookup_events() {
    let emu = Emulator::start();
    let name = "lookupretry";
    let set_up = TrailSetUp::new(&emu, name).await;
    let record = create_table_record("lookup-ev-1", &set_up.db, &set_up.table);
    let capture = set_up.lookup(&emu, vec![("lookup-ev-1".into(), record)], 100_000).await;
    capture.poll_once().await.expect_err("the stream does not exist yet");
    set_up.create_stream().await;
    let stats = capture.poll_once().await.expect("second poll");
    // The table's record, after its database's: this publisher had no record of the database.
    assert_eq!((stats.events, stats.records), (1, 2), "{stats:?}");
    let again = capture.poll_once().await.expect("third poll");
    assert_eq!((again.events, again.records), (0, 0), "seen inside the overlap: {again:?}");
    assert_eq!(capture.publisher.totals().await.0, 2);
    assert!(set_up.dead_letters().await.is_empty(), "a transient failure parks nothing");
}

/// The poison rule for LookupEvents (answered by an in-memory history; Glue, S3 and Kinesis are the
/// emulator's): one poll publishes the valid table, parks the poison event once and saves the
/// cursor; the next poll finds both events seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_event_that_fails_for_good_is_parked_and_the_rest_of_its_poll_published_in_memory_lookup_events() {
    let emu = Emulator::start();
    let name = "lookuppoison";
    let set_up = TrailSetUp::new(&emu, name).await;
    set_up.create_tables(&emu, &[("huge", 40_000), ("fresh", 0)]).await;
    set_up.create_stream().await;
    let events = vec![
        ("lookup-huge".to_string(), create_table_record("lookup-huge", &set_up.db, "huge")),
        ("lookup-fresh".to_string(), create_table_record("lookup-fresh", &set_up.db, "fresh")),
    ];
    let capture = set_up.lookup(&emu, events, 16_384).await;
    let stats = capture.poll_once().await.expect("one event's failure does not fail the poll");
    assert_eq!((stats.events, stats.failed), (2, 1), "{stats:?}");
    assert!(published_table(&capture.publisher, &set_up.db, "fresh").await, "the valid table is on the stream");
    assert!(!published_table(&capture.publisher, &set_up.db, "huge").await);
    assert_parked_poison(&set_up.dead_letters().await, "lookup-huge");

    let again = capture.poll_once().await.expect("second poll");
    assert_eq!((again.events, again.failed), (0, 0), "the cursor moved past both: {again:?}");
    assert_eq!(set_up.dead_letters().await.len(), 1, "parked once");
}
