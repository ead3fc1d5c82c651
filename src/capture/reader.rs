//! Paginated reads of a Glue catalog into lakelog's model.
//!
//! Every list call follows `NextToken` to the end (the SDK paginators). Partitions are read in
//! `segments` parallel segments (GetPartitions `Segment`), and de-duplicated by their values: a
//! service that ignores segments (the local emulator does) then costs reads, never correctness.

use std::collections::HashSet;

use aws_sdk_glue::types::Segment;
use tokio::sync::mpsc;

use super::CaptureError;
use crate::aws::glue_convert::{database_from_sdk, partition_from_sdk, table_from_sdk};
use crate::aws::{AwsError, ErrorClass};
use crate::model::{Database, Partition, Table};

/// Reads one catalog.
#[derive(Debug, Clone)]
pub struct CatalogReader {
    glue: aws_sdk_glue::Client,
    catalog_id: String,
    segments: i32,
}

/// Partitions read per channel message.
pub type PartitionPage = Vec<Partition>;

impl CatalogReader {
    pub fn new(glue: aws_sdk_glue::Client, catalog_id: &str, segments: i32) -> CatalogReader {
        CatalogReader { glue, catalog_id: catalog_id.to_string(), segments: segments.clamp(1, 10) }
    }

    pub fn catalog_id(&self) -> &str {
        &self.catalog_id
    }

    /// Every database in the catalog.
    pub async fn databases(&self) -> Result<Vec<Database>, CaptureError> {
        let mut pages = self.glue.get_databases().catalog_id(&self.catalog_id).into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| CaptureError::aws("databases", AwsError::from_sdk("glue", "GetDatabases", e)))?;
            out.extend(page.database_list.iter().map(database_from_sdk));
        }
        Ok(out)
    }

    /// One database, or `None` when it does not exist.
    pub async fn database(&self, name: &str) -> Result<Option<Database>, AwsError> {
        match self.glue.get_database().catalog_id(&self.catalog_id).name(name).send().await {
            Ok(out) => Ok(out.database.as_ref().map(database_from_sdk)),
            Err(e) => none_if_not_found(AwsError::from_sdk("glue", "GetDatabase", e)),
        }
    }

    /// Every table of a database.
    pub async fn tables(&self, database: &str) -> Result<Vec<Table>, CaptureError> {
        let mut pages = self
            .glue
            .get_tables()
            .catalog_id(&self.catalog_id)
            .database_name(database)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                CaptureError::aws(format!("tables of {database}"), AwsError::from_sdk("glue", "GetTables", e))
            })?;
            out.extend(page.table_list().iter().map(|t| table_from_sdk(t, database)));
        }
        Ok(out)
    }

    /// One table, or `None` when it does not exist.
    pub async fn table(&self, database: &str, name: &str) -> Result<Option<Table>, AwsError> {
        match self.glue.get_table().catalog_id(&self.catalog_id).database_name(database).name(name).send().await {
            Ok(out) => Ok(out.table.as_ref().map(|t| table_from_sdk(t, database))),
            Err(e) => none_if_not_found(AwsError::from_sdk("glue", "GetTable", e)),
        }
    }

    /// Streams every partition of a table to `out`, a page at a time; returns how many were sent.
    /// Segments are read concurrently; duplicates across segments are dropped.
    pub async fn partitions(
        &self,
        database: &str,
        table: &str,
        out: &mpsc::Sender<PartitionPage>,
    ) -> Result<usize, CaptureError> {
        let (tx, mut rx) = mpsc::channel::<Result<PartitionPage, CaptureError>>(4);
        for segment in 0..self.segments {
            let (glue, tx) = (self.glue.clone(), tx.clone());
            let (catalog, db, tb, total) = (self.catalog_id.clone(), database.to_string(), table.to_string(), self.segments);
            tokio::spawn(async move {
                let mut req = glue.get_partitions().catalog_id(catalog).database_name(&db).table_name(&tb);
                if total > 1 {
                    match Segment::builder().segment_number(segment).total_segments(total).build() {
                        Ok(s) => req = req.segment(s),
                        Err(e) => {
                            let err = AwsError::invalid_response("glue", "GetPartitions", &e.to_string());
                            let _ = tx.send(Err(CaptureError::aws(format!("partitions of {db}.{tb}"), err))).await;
                            return;
                        }
                    }
                }
                let mut pages = req.into_paginator().send();
                while let Some(page) = pages.next().await {
                    let item = match page {
                        Ok(p) => Ok(p.partitions().iter().map(|p| partition_from_sdk(p, &db, &tb)).collect()),
                        Err(e) => Err(CaptureError::aws(
                            format!("partitions of {db}.{tb}"),
                            AwsError::from_sdk("glue", "GetPartitions", e),
                        )),
                    };
                    let failed = item.is_err();
                    if tx.send(item).await.is_err() || failed {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let mut seen: HashSet<Vec<String>> = HashSet::new();
        let mut sent = 0;
        while let Some(page) = rx.recv().await {
            let page: PartitionPage = page?.into_iter().filter(|p| seen.insert(p.values.clone())).collect();
            if page.is_empty() {
                continue;
            }
            sent += page.len();
            out.send(page).await.map_err(|_| CaptureError::Closed)?;
        }
        Ok(sent)
    }

    /// All partitions of a table, collected (for tests and small tables).
    pub async fn all_partitions(&self, database: &str, table: &str) -> Result<Vec<Partition>, CaptureError> {
        let (tx, mut rx) = mpsc::channel(16);
        let reader = self.clone();
        let (db, tb) = (database.to_string(), table.to_string());
        let task = tokio::spawn(async move { reader.partitions(&db, &tb, &tx).await });
        let mut all = Vec::new();
        while let Some(page) = rx.recv().await {
            all.extend(page);
        }
        match task.await {
            Ok(r) => r.map(|_| all),
            Err(_) => Err(CaptureError::Closed),
        }
    }
}

fn none_if_not_found<T>(e: AwsError) -> Result<Option<T>, AwsError> {
    if e.class == ErrorClass::NotFound {
        Ok(None)
    } else {
        Err(e)
    }
}
