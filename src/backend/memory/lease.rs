//! The lease table in memory, with its guarantees (conditional writes on the counter), for unit
//! tests of taking, balancing and fencing.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::backend::lease::{Lease, LeaseStore, Swap};
use crate::backend::{AwsError, ErrorClass};

#[derive(Debug, Default)]
pub struct MemoryLeases {
    rows: Mutex<BTreeMap<String, Lease>>,
    /// Operations that fail once, next time they are called.
    failing: Mutex<Vec<&'static str>>,
}

impl MemoryLeases {
    pub fn new() -> MemoryLeases {
        MemoryLeases::default()
    }

    /// The next call of `operation` (`create`, `update`, `list`) fails as retryable.
    pub fn fail_next(&self, operation: &'static str) {
        self.failing.lock().unwrap_or_else(|e| e.into_inner()).push(operation);
    }

    /// The row as stored.
    pub fn row(&self, key: &str) -> Option<Lease> {
        self.rows().get(key).cloned()
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Lease>> {
        self.rows.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fail(&self, operation: &'static str) -> Result<(), AwsError> {
        let mut f = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        match f.iter().position(|o| *o == operation) {
            Some(i) => {
                f.remove(i);
                Err(AwsError {
                    service: "dynamodb",
                    operation,
                    class: ErrorClass::Retryable,
                    code: None,
                    message: "scripted failure".into(),
                })
            }
            None => Ok(()),
        }
    }
}

/// The row as written: stamped with the write's time, as DynamoDB's adapter does.
fn stamped(lease: &Lease) -> Lease {
    Lease { updated_at: Some(crate::model::now_millis()), ..lease.clone() }
}

#[async_trait]
impl LeaseStore for MemoryLeases {
    fn location(&self) -> String {
        "memory://leases".into()
    }

    async fn create(&self, lease: &Lease) -> Result<Swap, AwsError> {
        self.fail("create")?;
        let mut rows = self.rows();
        if rows.contains_key(&lease.key) {
            return Ok(Swap::Lost);
        }
        rows.insert(lease.key.clone(), stamped(lease));
        Ok(Swap::Done)
    }

    async fn update(&self, lease: &Lease, expected: u64) -> Result<Swap, AwsError> {
        self.fail("update")?;
        let mut rows = self.rows();
        match rows.get_mut(&lease.key) {
            Some(row) if row.counter == expected => {
                *row = stamped(lease);
                Ok(Swap::Done)
            }
            _ => Ok(Swap::Lost),
        }
    }

    async fn list(&self, group: &str) -> Result<Vec<Lease>, AwsError> {
        self.fail("list")?;
        Ok(self.rows().values().filter(|l| l.parts().0 == group).cloned().collect())
    }
}
