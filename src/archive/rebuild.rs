//! `run` remembers across restarts: the publisher's memory (the content hash per key that
//! reconciliation compares with) rebuilt at start from the archive's newest state, so objects
//! deleted while `run` was stopped are found missing by the first reconciliation pass and
//! deleted from the targets.

use std::time::Instant;

use super::manifest::ManifestStore;
use super::replay::{sources, state_at};
use super::writer::root;
use super::ArchiveError;
use crate::backend::state::StateStore;
use crate::model::Op;
use crate::stream::publisher::Publisher;
use crate::stream::recorded::Recorded;

/// What a rebuild did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rebuilt {
    pub objects: u64,
    pub seconds: f64,
}

/// Fills `publisher`'s memory with the live objects of the archive's newest state (nothing when
/// the archive is empty).
pub async fn rebuild(
    store: &dyn StateStore,
    stream: &str,
    publisher: &Publisher,
    budget: usize,
    work_dir: Option<&std::path::Path>,
) -> Result<Rebuilt, ArchiveError> {
    let started = Instant::now();
    let (manifest, _) = ManifestStore::new(&root(stream)).load(store).await?;
    crate::metrics::archive_state(manifest.tail_bytes(), manifest.earliest_restorable());
    let Some(latest) = manifest.latest_captured_at() else { return Ok(Rebuilt::default()) };
    let src = sources(store, &manifest, latest).await?;
    let (mut rx, merging) = state_at(store, &src, |_| true, budget, work_dir, 10_000).await?;
    let mut objects = 0;
    while let Some(batch) = rx.recv().await {
        let live = batch.into_iter().filter(|e| e.record.op == Op::Upsert).map(|e| {
            let r = Recorded { captured_at: e.record.captured_at, hash: Some(e.record.content_hash) };
            (e.record.key, r)
        });
        objects += publisher.remember(live);
    }
    merging.await.map_err(|e| ArchiveError::Worker(e.to_string()))??;
    Ok(Rebuilt { objects, seconds: started.elapsed().as_secs_f64() })
}
