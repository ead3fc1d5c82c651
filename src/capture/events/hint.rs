//! Hints: what a Glue event or CloudTrail record says changed.
//!
//! Events are hints, never truth: they carry names only (never definitions), may be lost,
//! duplicated or reordered. Capture turns each hint into a fresh read of the source and emits the
//! object's *current* full state (or a delete when it is gone), so applying the hints of
//! duplicated or reordered events still converges.

use serde::{Deserialize, Serialize};

use crate::model::lakeformation::LfKey;

/// One thing to re-read in the source.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Hint {
    /// Re-read the database (a delete record when it is gone).
    Database { database: String },
    /// Re-read the table (a delete record when it is gone).
    Table { database: String, table: String },
    /// Re-read these partitions of a table (delete records for those that are gone).
    Partitions { database: String, table: String, values: Vec<Vec<String>> },
    /// Re-read the table and every partition of it: for changes whose extent is unknown
    /// (an unknown `typeOfChange`, a partition event without its partition list).
    TableDeep { database: String, table: String },
    /// Re-read one Lake Formation object (a delete record when it is gone).
    LakeFormation { lf: LfKey },
}

/// A parsed event: its id (for de-duplication and the record's cause), its time, its hints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedEvent {
    pub id: String,
    /// When the change happened according to the event (epoch ms).
    pub time_ms: Option<i64>,
    pub hints: Vec<Hint>,
}
