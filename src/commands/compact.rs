//! `lakelog compact`: fold the archive's raw tail into a new snapshot now (normally `lakelog run`
//! does it when the tail is large), and apply retention.

use std::fmt;

use crate::archive::compact::{compact, CompactOptions, CompactReport};
use crate::archive::ArchiveError;
use crate::commands::restore::rfc3339;
use crate::connect::Pipeline;
use crate::model::now_millis;

/// Compacts when due, or always with `force`.
pub async fn compact_now(pipeline: &Pipeline, force: bool) -> Result<CompactReport, ArchiveError> {
    let opts = CompactOptions::from_config(&pipeline.config.archive);
    compact(&pipeline.state, &pipeline.config.stream.name, now_millis(), &opts, force).await
}

impl fmt::Display for CompactReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.snapshot {
            Some(id) => writeln!(
                f,
                "snapshot {id}: {} raw segments ({} records) folded; {} objects and {} tombstones in {} parts ({} bytes); {} expired tombstones dropped",
                self.segments_folded, self.records_in, self.keys, self.tombstones, self.parts, self.bytes, self.tombstones_expired
            )?,
            None => writeln!(f, "nothing to compact (the raw tail is small, or all of it is newer than archive.head)")?,
        }
        if self.snapshots_removed + self.segments_removed > 0 {
            writeln!(
                f,
                "retention removed {} snapshots and {} raw segments",
                self.snapshots_removed, self.segments_removed
            )?;
        }
        match self.earliest_restorable {
            Some(t) => writeln!(f, "restorable from {}", rfc3339(t)),
            None => writeln!(f, "the archive is empty"),
        }
    }
}
