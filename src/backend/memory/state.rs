//! An in-memory [`StateStore`] with S3's semantics (a version is the MD5 of the bytes, as the
//! ETag of a plain upload is, so rewriting the same bytes keeps it; conditional writes are
//! compare-and-set; listings ordered and paged) and scripted failures, for unit tests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::backend::state::{ListPage, PutOutcome, StateStore, Stored};
use crate::backend::{AwsError, ErrorClass};

/// Keys per listing page (S3 returns up to 1,000; smaller here so tests page).
pub const PAGE: usize = 100;

#[derive(Debug, Default)]
struct Inner {
    objects: BTreeMap<String, Stored>,
    writes: u64,
    /// Failures to come: (operation, calls of it to let through first, class).
    faults: Vec<(&'static str, u32, ErrorClass)>,
}

/// The fake store.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// The next call of `operation` (`"get"`, `"put"`, `"list"`, `"delete"`) fails with `class`.
    pub fn fail_next(&self, operation: &'static str, class: ErrorClass) {
        self.fail_nth(operation, 0, class);
    }

    /// The call of `operation` after the next `n` fails with `class` (a crash `n` writes in).
    pub fn fail_nth(&self, operation: &'static str, n: u32, class: ErrorClass) {
        self.lock().faults.push((operation, n, class));
    }

    /// Every key, in order.
    pub fn keys(&self) -> Vec<String> {
        self.lock().objects.keys().cloned().collect()
    }

    /// Writes that succeeded.
    pub fn writes(&self) -> u64 {
        self.lock().writes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fault(inner: &mut Inner, operation: &'static str) -> Result<(), AwsError> {
        let mut due = None;
        for (i, (op, skip, _)) in inner.faults.iter_mut().enumerate() {
            if *op == operation {
                if *skip == 0 {
                    due = Some(i);
                    break;
                }
                *skip -= 1;
            }
        }
        match due {
            Some(i) => {
                let (_, _, class) = inner.faults.remove(i);
                Err(AwsError {
                    service: "memory",
                    operation,
                    class,
                    code: None,
                    message: format!("scripted {} failure", class.as_str()),
                })
            }
            None => Ok(()),
        }
    }

    fn write(inner: &mut Inner, key: &str, bytes: Vec<u8>) -> String {
        use md5::Digest;
        inner.writes += 1;
        let md5: [u8; 16] = md5::Md5::digest(&bytes).into();
        let version = format!("\"{:032x}\"", u128::from_be_bytes(md5));
        inner.objects.insert(key.to_string(), Stored { bytes, version: version.clone() });
        version
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    fn location(&self) -> String {
        "memory://".into()
    }

    async fn get(&self, key: &str) -> Result<Option<Stored>, AwsError> {
        let mut inner = self.lock();
        Self::fault(&mut inner, "get")?;
        Ok(inner.objects.get(key).cloned())
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<String, AwsError> {
        let mut inner = self.lock();
        Self::fault(&mut inner, "put")?;
        Ok(Self::write(&mut inner, key, bytes))
    }

    async fn put_if_absent(&self, key: &str, bytes: Vec<u8>) -> Result<PutOutcome, AwsError> {
        let mut inner = self.lock();
        Self::fault(&mut inner, "put")?;
        if inner.objects.contains_key(key) {
            return Ok(PutOutcome::Conflict);
        }
        Ok(PutOutcome::Written(Self::write(&mut inner, key, bytes)))
    }

    async fn put_if_match(&self, key: &str, bytes: Vec<u8>, version: &str) -> Result<PutOutcome, AwsError> {
        let mut inner = self.lock();
        Self::fault(&mut inner, "put")?;
        if inner.objects.get(key).map(|o| o.version.as_str()) != Some(version) {
            return Ok(PutOutcome::Conflict);
        }
        Ok(PutOutcome::Written(Self::write(&mut inner, key, bytes)))
    }

    async fn list(&self, prefix: &str, after: Option<&str>) -> Result<ListPage, AwsError> {
        let mut inner = self.lock();
        Self::fault(&mut inner, "list")?;
        let mut keys = inner
            .objects
            .range(prefix.to_string()..)
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(prefix))
            .filter(|k| after.is_none_or(|a| k.as_str() > a))
            .take(PAGE + 1)
            .cloned()
            .collect::<Vec<_>>();
        let more = keys.len() > PAGE;
        keys.truncate(PAGE);
        Ok(ListPage { keys, more })
    }

    async fn delete(&self, key: &str) -> Result<(), AwsError> {
        let mut inner = self.lock();
        Self::fault(&mut inner, "delete")?;
        inner.objects.remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::state::{each_key, put_if};

    #[tokio::test]
    async fn conditional_writes_are_compare_and_set() {
        let store = MemoryStore::new();
        let PutOutcome::Written(v1) = put_if(&store, "a", b"1".to_vec(), None).await.unwrap() else {
            panic!("first create must win")
        };
        assert_eq!(put_if(&store, "a", b"2".to_vec(), None).await.unwrap(), PutOutcome::Conflict);
        let PutOutcome::Written(v2) = put_if(&store, "a", b"2".to_vec(), Some(&v1)).await.unwrap() else {
            panic!("a write from the current version must win")
        };
        assert_ne!(v1, v2);
        assert_eq!(put_if(&store, "a", b"3".to_vec(), Some(&v1)).await.unwrap(), PutOutcome::Conflict);
        assert_eq!(store.get("a").await.unwrap().unwrap().bytes, b"2");
    }

    #[tokio::test]
    async fn listing_pages_in_order_under_a_prefix() {
        let store = MemoryStore::new();
        for i in (0..250).rev() {
            store.put(&format!("p/{i:04}"), vec![]).await.unwrap();
        }
        store.put("q/0", vec![]).await.unwrap();
        let mut pages = Vec::new();
        each_key(&store, "p/", |keys| pages.push(keys)).await.unwrap();
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [100, 100, 50]);
        let all = pages.concat();
        assert_eq!(all, (0..250).map(|i| format!("p/{i:04}")).collect::<Vec<_>>());
        let after = store.list("p/", Some("p/0247")).await.unwrap();
        assert_eq!((after.keys, after.more), (vec!["p/0248".to_string(), "p/0249".to_string()], false));
    }

    #[tokio::test]
    async fn a_version_names_the_bytes_as_an_s3_etag_does() {
        let store = MemoryStore::new();
        let v1 = store.put("a", b"1".to_vec()).await.unwrap();
        // S3 keeps the ETag when the same bytes are written again (tests/e2e/state.rs): a caller
        // must not take an unchanged version for "nobody wrote".
        assert_eq!(store.put("a", b"1".to_vec()).await.unwrap(), v1);
        assert_ne!(store.put("a", b"2".to_vec()).await.unwrap(), v1);
        assert_eq!(store.get("b").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_conditional_write_to_a_deleted_object_conflicts_and_deleting_twice_succeeds() {
        let store = MemoryStore::new();
        let v = store.put("a", b"1".to_vec()).await.unwrap();
        store.delete("a").await.unwrap();
        store.delete("a").await.expect("removing a missing object succeeds");
        assert_eq!(put_if(&store, "a", b"2".to_vec(), Some(&v)).await.unwrap(), PutOutcome::Conflict);
        assert_eq!(store.get("a").await.unwrap(), None);
    }
}
