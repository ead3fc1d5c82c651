//! DynamoDB as lakelog's [`LeaseStore`]: one table, hash key `leaseKey` (S), rows in the KCL's
//! attribute names. Every update is a `PutItem` of the whole row with
//! `ConditionExpression: leaseCounter = :expected`; a create is conditional on
//! `attribute_not_exists(leaseKey)`. A lost condition (`ConditionalCheckFailedException`) is read
//! back once, strongly consistent: a row already holding what we wrote means an earlier attempt
//! landed and its answer was lost, which is success.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};

use crate::backend::lease::{Lease, LeaseStore, Swap};
use crate::backend::retry::RetryPolicy;
use crate::backend::{AwsError, ErrorClass};

/// The table's hash key (S): `<group>:<shardId>`; the only key attribute.
pub const KEY: &str = "leaseKey";
const OWNER: &str = "leaseOwner";
const COUNTER: &str = "leaseCounter";
const CHECKPOINT: &str = "checkpoint";
const CHECKPOINT_SUB: &str = "checkpointSubSequenceNumber";
const OWNER_SWITCHES: &str = "ownerSwitchesSinceCheckpoint";
const PARENTS: &str = "parentShardId";
const CHILDREN: &str = "childShardId";
const STARTING_HASH_KEY: &str = "startingHashKey";
const ENDING_HASH_KEY: &str = "endingHashKey";
const CHECKPOINT_AT: &str = "lakelogCheckpointAt";
const RECORDS: &str = "lakelogRecords";
const NEWEST_CAPTURED_AT: &str = "lakelogNewestCapturedAt";
const CAUGHT_UP_AT: &str = "lakelogCaughtUpAt";
const UPDATED_AT: &str = "lakelogUpdatedAt";

/// The DynamoDB operations this adapter sends on the lease table in AWS: its IAM policy grants
/// exactly these (`infra/`; `tests/e2e/infra.rs` checks them against this file's calls and the
/// policy).
pub const ACTIONS: [&str; 4] = ["DescribeTable", "GetItem", "PutItem", "Scan"];
/// Sent only with `state.coordination.create_table_if_missing: true` (local runs; in AWS the
/// table comes from `infra/`), so not granted there.
pub const LOCAL_ONLY_ACTIONS: [&str; 1] = ["CreateTable"];

/// The lease table.
#[derive(Debug, Clone)]
pub struct DynamoLeases {
    client: aws_sdk_dynamodb::Client,
    table: String,
    retry: RetryPolicy,
}

type Item = HashMap<String, AttributeValue>;

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn to_item(l: &Lease) -> Item {
    let mut item = Item::new();
    item.insert(KEY.into(), s(&l.key));
    if let Some(o) = &l.owner {
        item.insert(OWNER.into(), s(o));
    }
    item.insert(COUNTER.into(), n(l.counter));
    item.insert(CHECKPOINT.into(), s(&l.checkpoint));
    item.insert(CHECKPOINT_SUB.into(), n(l.checkpoint_sub));
    item.insert(OWNER_SWITCHES.into(), n(l.owner_switches));
    // DynamoDB refuses an empty set: an empty list is no attribute, as in the KCL.
    if !l.parents.is_empty() {
        item.insert(PARENTS.into(), AttributeValue::Ss(l.parents.clone()));
    }
    if !l.children.is_empty() {
        item.insert(CHILDREN.into(), AttributeValue::Ss(l.children.clone()));
    }
    if let Some((start, end)) = &l.hash_range {
        item.insert(STARTING_HASH_KEY.into(), s(start));
        item.insert(ENDING_HASH_KEY.into(), s(end));
    }
    if let Some(at) = l.checkpoint_at {
        item.insert(CHECKPOINT_AT.into(), n(at));
    }
    item.insert(RECORDS.into(), n(l.records));
    if let Some(at) = l.newest_captured_at {
        item.insert(NEWEST_CAPTURED_AT.into(), n(at));
    }
    if let Some(at) = l.caught_up_at {
        item.insert(CAUGHT_UP_AT.into(), n(at));
    }
    if let Some(at) = l.updated_at {
        item.insert(UPDATED_AT.into(), n(at));
    }
    item
}

fn from_item(item: &Item) -> Result<Lease, String> {
    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    let number = |k: &str| -> Result<Option<i128>, String> {
        match item.get(k) {
            None => Ok(None),
            Some(v) => match v.as_n() {
                Ok(t) => t.parse::<i128>().map(Some).map_err(|_| format!("{k} is not a whole number: {t}")),
                Err(_) => Err(format!("{k} is not a number")),
            },
        }
    };
    let unsigned = |k: &str| -> Result<u64, String> { Ok(number(k)?.map_or(0, |v| u64::try_from(v).unwrap_or(0))) };
    let set = |k: &str| item.get(k).and_then(|v| v.as_ss().ok()).cloned().unwrap_or_default();
    let key = text(KEY).ok_or("the row has no leaseKey")?;
    Ok(Lease {
        key,
        owner: text(OWNER),
        counter: unsigned(COUNTER)?,
        checkpoint: text(CHECKPOINT).unwrap_or_default(),
        checkpoint_sub: unsigned(CHECKPOINT_SUB)?,
        owner_switches: unsigned(OWNER_SWITCHES)?,
        parents: set(PARENTS),
        children: set(CHILDREN),
        hash_range: text(STARTING_HASH_KEY).zip(text(ENDING_HASH_KEY)),
        checkpoint_at: number(CHECKPOINT_AT)?.map(|v| v as i64),
        records: unsigned(RECORDS)?,
        newest_captured_at: number(NEWEST_CAPTURED_AT)?.map(|v| v as i64),
        caught_up_at: number(CAUGHT_UP_AT)?.map(|v| v as i64),
        updated_at: number(UPDATED_AT)?.map(|v| v as i64),
    })
}

impl DynamoLeases {
    pub fn new(client: aws_sdk_dynamodb::Client, table: &str) -> DynamoLeases {
        DynamoLeases { client, table: table.to_string(), retry: RetryPolicy::default() }
    }

    /// Checks the table exists; creates it (on-demand, keyed by `leaseKey`) when `create`.
    pub async fn ensure_table(&self, create: bool) -> Result<(), AwsError> {
        let describe = self.client.describe_table().table_name(&self.table);
        let err = match self.retry.send("dynamodb", "DescribeTable", || describe.clone().send()).await {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        match (err.class, create) {
            (ErrorClass::NotFound, true) => {}
            (ErrorClass::NotFound, false) => {
                return Err(AwsError {
                    message: format!(
                        "lease table {} does not exist; create it (infra/) or set state.coordination.create_table_if_missing: true",
                        self.table
                    ),
                    ..err
                })
            }
            _ => return Err(err),
        }
        let key = KeySchemaElement::builder().attribute_name(KEY).key_type(KeyType::Hash).build();
        let attr = AttributeDefinition::builder().attribute_name(KEY).attribute_type(ScalarAttributeType::S).build();
        let (Ok(key), Ok(attr)) = (key, attr) else {
            return Err(AwsError::invalid_response("dynamodb", "CreateTable", "cannot build the key schema"));
        };
        let req = self
            .client
            .create_table()
            .table_name(&self.table)
            .key_schema(key)
            .attribute_definitions(attr)
            .billing_mode(BillingMode::PayPerRequest);
        match self.retry.send("dynamodb", "CreateTable", || req.clone().send()).await {
            Ok(_) => Ok(()),
            // Another worker created it first.
            Err(e) if e.class == ErrorClass::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The row of `key`, strongly consistent.
    async fn get(&self, key: &str) -> Result<Option<Lease>, AwsError> {
        let req = self.client.get_item().table_name(&self.table).key(KEY, s(key)).consistent_read(true);
        let out = self.retry.send("dynamodb", "GetItem", || req.clone().send()).await?;
        out.item().map(from_item).transpose().map_err(|e| AwsError::invalid_response("dynamodb", "GetItem", &e))
    }

    /// A lost condition, unless the row already is what we wrote (an earlier attempt landed).
    async fn lost_or_landed(&self, lease: &Lease) -> Result<Swap, AwsError> {
        match self.get(&lease.key).await? {
            Some(row) if row.counter == lease.counter && row.owner == lease.owner => Ok(Swap::Done),
            _ => Ok(Swap::Lost),
        }
    }

    async fn put(&self, lease: &Lease, condition: &str, expected: Option<u64>) -> Result<Swap, AwsError> {
        let stamped = Lease { updated_at: Some(crate::model::now_millis()), ..lease.clone() };
        let mut req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&stamped)))
            .condition_expression(condition);
        if let Some(c) = expected {
            req = req.expression_attribute_values(":expected", n(c));
        }
        match self.retry.send("dynamodb", "PutItem", || req.clone().send()).await {
            Ok(_) => Ok(Swap::Done),
            Err(e) if e.class == ErrorClass::Conflict => self.lost_or_landed(lease).await,
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl LeaseStore for DynamoLeases {
    fn location(&self) -> String {
        format!("dynamodb://{}", self.table)
    }

    async fn create(&self, lease: &Lease) -> Result<Swap, AwsError> {
        self.put(lease, &format!("attribute_not_exists({KEY})"), None).await
    }

    async fn update(&self, lease: &Lease, expected: u64) -> Result<Swap, AwsError> {
        self.put(lease, &format!("{COUNTER} = :expected"), Some(expected)).await
    }

    async fn list(&self, group: &str) -> Result<Vec<Lease>, AwsError> {
        let prefix = format!("{group}:");
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let req =
                self.client.scan().table_name(&self.table).consistent_read(true).set_exclusive_start_key(start.clone());
            let page = self.retry.send("dynamodb", "Scan", || req.clone().send()).await?;
            for item in page.items() {
                let lease = from_item(item).map_err(|e| AwsError::invalid_response("dynamodb", "Scan", &e))?;
                if lease.key.starts_with(&prefix) {
                    out.push(lease);
                }
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_row_round_trips_in_kcl_attribute_names() {
        let lease = Lease {
            key: "dr:shardId-000000000002".into(),
            owner: Some("w1".into()),
            counter: 7,
            checkpoint: "49590338271490256608559692538361571095921575989136588898".into(),
            checkpoint_sub: 0,
            owner_switches: 2,
            parents: vec!["shardId-000000000000".into()],
            children: vec![],
            hash_range: Some(("0".into(), "170141183460469231731687303715884105727".into())),
            checkpoint_at: Some(1_700_000_000_000),
            records: 12,
            newest_captured_at: None,
            caught_up_at: Some(1_700_000_000_500),
            updated_at: Some(1_700_000_001_000),
        };
        let item = to_item(&lease);
        for k in
            [KEY, OWNER, COUNTER, CHECKPOINT, CHECKPOINT_SUB, OWNER_SWITCHES, PARENTS, STARTING_HASH_KEY, UPDATED_AT]
        {
            assert!(item.contains_key(k), "{k} missing");
        }
        assert!(!item.contains_key(CHILDREN), "an empty set is no attribute");
        assert_eq!(from_item(&item), Ok(lease));
    }
}
