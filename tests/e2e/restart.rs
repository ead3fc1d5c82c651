//! `run` remembers across restarts: what an earlier run published is rebuilt from the archive at
//! start, so an object deleted in the source while `run` was stopped is deleted from the target
//! by the first reconciliation pass after the restart (before, the memory started empty and such
//! objects stayed in the target for good).

use std::time::Duration;

use lakelog::model::catalog::Table;

use crate::emulator::Emulator;
use crate::run::{converges, route, run_config, start};
use crate::{seed, ACCOUNT, SOURCE_REGION};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_deleted_while_run_was_stopped_is_deleted_from_the_target_after_the_restart() {
    let emu = Emulator::start();
    let name = "restart";
    let catalog = seed(&emu, name, 1, 3, 4).await;
    let (_eb, _sqs, queue) = route(&emu, name).await;
    // Only the initial pass reconciles (the interval is long): it is the pass under test.
    let yaml = format!("{}archive:\n  segment_age: 1s\n", run_config(&emu, name, &queue, 3600));
    let first = start(&yaml).await;
    converges(&emu, name, Duration::from_secs(90)).await;
    let report = first.stop().await;
    assert!(report.archived.is_some_and(|n| n > 0), "the run archived what it published: {report:?}");

    // While nothing runs: a table and a partition of another table are deleted in the source.
    let glue = crate::glue(&emu, SOURCE_REGION).await;
    let tables: Vec<&Table> = catalog.tables.iter().filter(|t| !t.partition_keys.is_empty()).collect();
    let (gone, trimmed) = (tables[0], tables[1]);
    glue.delete_table()
        .catalog_id(ACCOUNT)
        .database_name(&gone.database_name)
        .name(&gone.name)
        .send()
        .await
        .expect("delete table");
    let part = catalog.partitions.iter().find(|p| p.table_name == trimmed.name).expect("a partition");
    let values = aws_sdk_glue::types::PartitionValueList::builder()
        .set_values(Some(part.values.clone()))
        .build()
        .expect("values");
    glue.batch_delete_partition()
        .catalog_id(ACCOUNT)
        .database_name(&trimmed.database_name)
        .table_name(&trimmed.name)
        .partitions_to_delete(values)
        .send()
        .await
        .expect("delete partition");

    // The target equals the source again only once both deletes reached it: the first pass
    // found them missing from the source, against the memory rebuilt from the archive.
    let second = start(&yaml).await;
    converges(&emu, name, Duration::from_secs(90)).await;
    let report = second.stop().await;
    assert_eq!(report.reconcile_passes, 1, "{report:?}");
    assert!(report.last_pass.deleted >= 2, "the pass published the deletes: {report:?}");
}
