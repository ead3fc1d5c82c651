//! Cursors: how far an event source (CloudTrail trail files, LookupEvents) has been read, as a
//! JSON document in the state store, held with the version it was read at and saved only if
//! nobody wrote it since — two processes reading one trail notice each other instead of both
//! moving the cursor.

use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::warn;

use super::{save_json, DocError};
use crate::backend::state::{PutOutcome, StateStore};
use crate::backend::AwsError;

/// The key of the trail-files cursor of one trail bucket.
pub fn trail_files_key(bucket: &str) -> String {
    format!("cursors/cloudtrail/{bucket}.json")
}

/// The key of the LookupEvents cursor.
pub const LOOKUP_KEY: &str = "cursors/cloudtrail-lookup.json";

#[derive(Debug, thiserror::Error)]
pub enum CursorError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("cursor {key} was changed by another lakelog process; only one may read an event source")]
    Conflict { key: String },
    #[error("cursor {key}: {reason}")]
    Unwritable { key: String, reason: String },
}

/// A cursor as read, with the version a save must still find.
#[derive(Debug, Clone)]
pub struct Held<T> {
    pub value: T,
    key: String,
    version: Option<String>,
}

impl<T: Default + Serialize + DeserializeOwned> Held<T> {
    /// The cursor at `key`; the default (start over) when there is none, or when it cannot be
    /// read — events read again are recognised downstream by their ids and content, so starting
    /// over duplicates work but loses nothing.
    pub async fn load(store: &dyn StateStore, key: &str) -> Result<Held<T>, CursorError> {
        let Some(stored) = store.get(key).await? else {
            return Ok(Held { value: T::default(), key: key.to_string(), version: None });
        };
        let value = serde_json::from_slice(&stored.bytes).unwrap_or_else(|e| {
            warn!(cursor = %key, error = %e, "unreadable cursor, starting over");
            T::default()
        });
        Ok(Held { value, key: key.to_string(), version: Some(stored.version) })
    }

    /// Saves the value if the stored cursor is still the one loaded (or last saved here).
    pub async fn save(&mut self, store: &dyn StateStore) -> Result<(), CursorError> {
        match save_json(store, &self.key, &self.value, self.version.as_deref()).await {
            Ok(PutOutcome::Written(version)) => {
                self.version = Some(version);
                Ok(())
            }
            Ok(PutOutcome::Conflict) => Err(CursorError::Conflict { key: self.key.clone() }),
            Err(DocError::Aws(e)) => Err(CursorError::Aws(e)),
            Err(DocError::Corrupt { reason, .. }) => Err(CursorError::Unwritable { key: self.key.clone(), reason }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::memory::state::MemoryStore;

    #[tokio::test]
    async fn a_second_reader_of_the_same_cursor_is_refused_not_overwritten() {
        let store = MemoryStore::new();
        let mut first = Held::<Vec<u32>>::load(&store, LOOKUP_KEY).await.unwrap();
        let mut second = Held::<Vec<u32>>::load(&store, LOOKUP_KEY).await.unwrap();
        first.value.push(1);
        first.save(&store).await.unwrap();
        second.value.push(2);
        assert!(matches!(second.save(&store).await, Err(CursorError::Conflict { .. })));
        first.value.push(3);
        first.save(&store).await.expect("the holder keeps saving");
        assert_eq!(Held::<Vec<u32>>::load(&store, LOOKUP_KEY).await.unwrap().value, [1, 3]);
    }

    #[tokio::test]
    async fn an_unreadable_cursor_starts_over_and_is_replaced() {
        let store = MemoryStore::new();
        store.put(LOOKUP_KEY, b"not json".to_vec()).await.unwrap();
        let mut held = Held::<Vec<u32>>::load(&store, LOOKUP_KEY).await.unwrap();
        assert!(held.value.is_empty());
        held.value.push(7);
        held.save(&store).await.expect("replaces the unreadable document");
        assert_eq!(Held::<Vec<u32>>::load(&store, LOOKUP_KEY).await.unwrap().value, [7]);
    }
}
