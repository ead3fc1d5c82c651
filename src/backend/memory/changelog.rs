//! [`MemoryLog`]: the change log in memory, sharded like Kinesis (the MD5 of the partition key
//! into the 128-bit hash range), with resharding (split and merge leave the parents closed, with
//! children), Kinesis' PutRecords limits (a call over them fails whole), and scripted failures:
//! whole-call errors and per-entry throttles on put, errors and
//! expired cursors on read. It keeps every guarantee of [`ChangeLog`]; it never trims. Reads
//! yield to other tasks once, as a network call would, and never sleep.

use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::backend::changelog::{
    hash_key_of, ChangeLog, HashRange, LogEntry, LogPage, LogRecord, PutResult, ReadOutcome, ShardCursor, ShardInfo,
    StartAt, StreamStatus, PUT_BYTES, PUT_ENTRIES, RECORD_BYTES,
};
use crate::backend::{AwsError, ErrorClass};
use crate::model::now_millis;
use crate::model::seqno::SeqNo;

/// A scripted failure of the next put call.
#[derive(Debug, Clone)]
pub enum PutFault {
    /// The whole call fails with this error; nothing is stored.
    Call(AwsError),
    /// These entries of the call (by index) are refused as throttled; the others are stored.
    Throttle(Vec<usize>),
}

/// A scripted failure of the next read.
#[derive(Debug, Clone)]
pub enum ReadFault {
    Error(AwsError),
    /// The cursor has expired.
    Expire,
}

#[derive(Debug)]
struct Shard {
    info: ShardInfo,
    records: Vec<LogRecord>,
}

#[derive(Debug, Default)]
struct Inner {
    exists: bool,
    /// In creation order, so parents come before their children.
    shards: Vec<Shard>,
    next_seq: u128,
    next_shard: u32,
    put_faults: VecDeque<PutFault>,
    read_faults: VecDeque<ReadFault>,
    put_calls: u64,
    read_calls: u64,
}

impl Inner {
    fn add_shard(&mut self, range: HashRange, parent: Option<String>, adjacent_parent: Option<String>) -> String {
        let shard_id = format!("shardId-{:012}", self.next_shard);
        self.next_shard += 1;
        let info =
            ShardInfo { shard_id: shard_id.clone(), parent, adjacent_parent, hash_range: range, ending_sequence: None };
        self.shards.push(Shard { info, records: Vec::new() });
        shard_id
    }

    fn shard(&self, shard_id: &str, operation: &'static str) -> Result<&Shard, AwsError> {
        self.shards.iter().find(|s| s.info.shard_id == shard_id).ok_or_else(|| not_found(operation, shard_id))
    }

    fn open_shard_mut(&mut self, shard_id: &str, operation: &'static str) -> Result<&mut Shard, AwsError> {
        match self.shards.iter_mut().find(|s| s.info.shard_id == shard_id) {
            Some(s) if !s.info.is_closed() => Ok(s),
            Some(_) => Err(AwsError {
                service: "kinesis",
                operation,
                class: ErrorClass::Permanent,
                code: Some("InvalidArgumentException".into()),
                message: format!("shard {shard_id} is closed"),
            }),
            None => Err(not_found(operation, shard_id)),
        }
    }

    /// Closes a shard: its ending sequence number is reserved, so no later record can sort below it.
    fn close(&mut self, shard_id: &str) {
        let ending = SeqNo::parse(&self.next_seq.to_string());
        self.next_seq += 1;
        if let Some(s) = self.shards.iter_mut().find(|s| s.info.shard_id == shard_id) {
            s.info.ending_sequence = ending;
        }
    }
}

fn not_found(operation: &'static str, what: &str) -> AwsError {
    AwsError {
        service: "kinesis",
        operation,
        class: ErrorClass::NotFound,
        code: Some("ResourceNotFoundException".into()),
        message: format!("{what} not found"),
    }
}

/// The error Kinesis gives a throttled call or entry.
pub fn throttled(operation: &'static str) -> AwsError {
    AwsError {
        service: "kinesis",
        operation,
        class: ErrorClass::Throttled,
        code: Some("ProvisionedThroughputExceededException".into()),
        message: "Rate exceeded for shard (scripted)".into(),
    }
}

/// The change log in memory. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct MemoryLog {
    stream: String,
    inner: Mutex<Inner>,
}

impl MemoryLog {
    /// An ACTIVE stream of `shards` shards splitting the hash range evenly.
    pub fn new(stream: &str, shards: u32) -> MemoryLog {
        let log = MemoryLog::missing(stream);
        log.with(|i| {
            i.exists = true;
            add_even_shards(i, shards);
        });
        log
    }

    /// A stream that does not exist yet ([`ChangeLog::create`] makes it).
    pub fn missing(stream: &str) -> MemoryLog {
        MemoryLog { stream: stream.to_string(), inner: Mutex::new(Inner { next_seq: 1, ..Default::default() }) }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        // A panic elsewhere while holding the lock leaves the data as it was: keep using it.
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// Fails the next put call as scripted (faults queue up, one per call).
    pub fn push_put_fault(&self, fault: PutFault) {
        self.with(|i| i.put_faults.push_back(fault));
    }

    /// Fails the next read as scripted (faults queue up, one per call).
    pub fn push_read_fault(&self, fault: ReadFault) {
        self.with(|i| i.read_faults.push_back(fault));
    }

    /// Put calls answered so far (failed ones included).
    pub fn put_calls(&self) -> u64 {
        self.with(|i| i.put_calls)
    }

    /// Read calls answered so far (failed ones included).
    pub fn read_calls(&self) -> u64 {
        self.with(|i| i.read_calls)
    }

    /// Every record stored in `shard_id`, in order.
    pub fn records(&self, shard_id: &str) -> Vec<LogRecord> {
        self.with(|i| i.shards.iter().find(|s| s.info.shard_id == shard_id).map(|s| s.records.clone()))
            .unwrap_or_default()
    }

    /// The shard that takes `partition_key` now.
    pub fn shard_of(&self, partition_key: &str) -> Option<String> {
        let hash = hash_key_of(partition_key);
        self.with(|i| {
            i.shards
                .iter()
                .find(|s| !s.info.is_closed() && s.info.hash_range.contains(hash))
                .map(|s| s.info.shard_id.clone())
        })
    }

    /// Splits an open shard at `at` (the first hash key of the second child): the parent is
    /// closed and two children take its range. Returns the children's ids, lower range first.
    pub fn split(&self, shard_id: &str, at: u128) -> Result<(String, String), AwsError> {
        self.with(|i| {
            let range = i.open_shard_mut(shard_id, "SplitShard")?.info.hash_range;
            if at <= range.start || at > range.end {
                return Err(AwsError::invalid_response("kinesis", "SplitShard", "the hash key is outside the shard"));
            }
            i.close(shard_id);
            let low = i.add_shard(HashRange { start: range.start, end: at - 1 }, Some(shard_id.to_string()), None);
            let high = i.add_shard(HashRange { start: at, end: range.end }, Some(shard_id.to_string()), None);
            Ok((low, high))
        })
    }

    /// Merges two open shards with adjacent ranges: both are closed and one child takes both
    /// ranges (`shard_id` its parent, `adjacent` its adjacent parent). Returns the child's id.
    pub fn merge(&self, shard_id: &str, adjacent: &str) -> Result<String, AwsError> {
        self.with(|i| {
            let a = i.open_shard_mut(shard_id, "MergeShards")?.info.hash_range;
            let b = i.open_shard_mut(adjacent, "MergeShards")?.info.hash_range;
            let (low, high) = if a.start < b.start { (a, b) } else { (b, a) };
            if low.end.checked_add(1) != Some(high.start) {
                return Err(AwsError::invalid_response("kinesis", "MergeShards", "the shards are not adjacent"));
            }
            i.close(shard_id);
            i.close(adjacent);
            let range = HashRange { start: low.start, end: high.end };
            Ok(i.add_shard(range, Some(shard_id.to_string()), Some(adjacent.to_string())))
        })
    }
}

/// Kinesis refuses a whole PutRecords call over its limits (ValidationException): nothing of it
/// is stored.
fn over_put_limits(entries: &[LogEntry]) -> Result<(), AwsError> {
    let size = |e: &LogEntry| e.data.len() + e.partition_key.len();
    let problem = if entries.len() > PUT_ENTRIES {
        Some(format!("{} records, at most {PUT_ENTRIES} per call", entries.len()))
    } else if let Some((k, e)) = entries.iter().enumerate().find(|(_, e)| size(e) > RECORD_BYTES) {
        Some(format!("record {k} is {} bytes with its key, at most {RECORD_BYTES}", size(e)))
    } else if entries.iter().map(size).sum::<usize>() > PUT_BYTES {
        Some(format!("the records are {} bytes together, at most {PUT_BYTES}", entries.iter().map(size).sum::<usize>()))
    } else {
        None
    };
    match problem {
        Some(message) => Err(AwsError {
            service: "kinesis",
            operation: "PutRecords",
            class: ErrorClass::Permanent,
            code: Some("ValidationException".into()),
            message,
        }),
        None => Ok(()),
    }
}

fn add_even_shards(i: &mut Inner, shards: u32) {
    let n = u128::from(shards.max(1));
    let width = u128::MAX / n;
    for k in 0..n {
        let start = k * width;
        let end = if k == n - 1 { u128::MAX } else { (k + 1) * width - 1 };
        i.add_shard(HashRange { start, end }, None, None);
    }
}

fn cursor(shard_id: &str, index: usize) -> ShardCursor {
    ShardCursor(format!("{shard_id}#{index}"))
}

fn parse_cursor(c: &ShardCursor) -> Option<(&str, usize)> {
    let (shard, index) = c.0.rsplit_once('#')?;
    Some((shard, index.parse().ok()?))
}

#[async_trait]
impl ChangeLog for MemoryLog {
    fn stream(&self) -> &str {
        &self.stream
    }

    async fn describe(&self) -> Result<Option<StreamStatus>, AwsError> {
        Ok(self.with(|i| i.exists.then_some(StreamStatus::Active)))
    }

    async fn create(&self, shards: i32) -> Result<(), AwsError> {
        self.with(|i| {
            if i.exists {
                return Err(AwsError {
                    service: "kinesis",
                    operation: "CreateStream",
                    class: ErrorClass::AlreadyExists,
                    code: Some("ResourceInUseException".into()),
                    message: format!("stream {} exists", self.stream),
                });
            }
            i.exists = true;
            add_even_shards(i, u32::try_from(shards).unwrap_or(1));
            Ok(())
        })
    }

    async fn put(&self, entries: &[LogEntry]) -> Result<Vec<PutResult>, AwsError> {
        self.with(|i| {
            i.put_calls += 1;
            if !i.exists {
                return Err(not_found("PutRecords", &format!("stream {}", self.stream)));
            }
            over_put_limits(entries)?;
            let throttle = match i.put_faults.pop_front() {
                Some(PutFault::Call(e)) => return Err(e),
                Some(PutFault::Throttle(indices)) => indices,
                None => Vec::new(),
            };
            let now = now_millis();
            let mut results = Vec::with_capacity(entries.len());
            for (k, entry) in entries.iter().enumerate() {
                if throttle.contains(&k) {
                    results.push(PutResult::Failed(throttled("PutRecords")));
                    continue;
                }
                let hash = match &entry.explicit_hash_key {
                    Some(h) => match h.parse::<u128>() {
                        Ok(h) => h,
                        Err(_) => {
                            let e = AwsError::invalid_response(
                                "kinesis",
                                "PutRecords",
                                "explicit hash key is not a 128-bit integer",
                            );
                            results.push(PutResult::Failed(e));
                            continue;
                        }
                    },
                    None => hash_key_of(&entry.partition_key),
                };
                let seq = SeqNo::parse(&i.next_seq.to_string());
                i.next_seq += 1;
                let shard = i.shards.iter_mut().find(|s| !s.info.is_closed() && s.info.hash_range.contains(hash));
                match (shard, seq) {
                    (Some(shard), Some(seq)) => {
                        shard.records.push(LogRecord {
                            seq: seq.clone(),
                            data: entry.data.clone(),
                            arrival_ms: Some(now),
                        });
                        results.push(PutResult::Stored { shard_id: shard.info.shard_id.clone(), seq });
                    }
                    _ => results.push(PutResult::Failed(AwsError::invalid_response(
                        "kinesis",
                        "PutRecords",
                        "no open shard takes the hash key",
                    ))),
                }
            }
            Ok(results)
        })
    }

    async fn list_shards(&self) -> Result<Vec<ShardInfo>, AwsError> {
        self.with(|i| {
            if !i.exists {
                return Err(not_found("ListShards", &format!("stream {}", self.stream)));
            }
            Ok(i.shards.iter().map(|s| s.info.clone()).collect())
        })
    }

    async fn open(&self, shard_id: &str, at: &StartAt) -> Result<Option<ShardCursor>, AwsError> {
        self.with(|i| {
            let shard = i.shard(shard_id, "GetShardIterator")?;
            let records = &shard.records;
            let index = match at {
                StartAt::TrimHorizon => 0,
                StartAt::After(seq) => records.partition_point(|r| r.seq <= *seq),
                StartAt::At(seq) => records.partition_point(|r| r.seq < *seq),
                StartAt::Latest => records.len(),
            };
            // Like Kinesis (and kinesalite): past a closed shard's last record there is still an
            // iterator; its first read is the shard's end.
            Ok(Some(cursor(shard_id, index)))
        })
    }

    async fn read(&self, at: &ShardCursor, limit: i32) -> Result<ReadOutcome, AwsError> {
        // Like a network call, a read lets other tasks run: readers of different shards
        // interleave as they would on Kinesis.
        tokio::task::yield_now().await;
        self.with(|i| {
            i.read_calls += 1;
            match i.read_faults.pop_front() {
                Some(ReadFault::Error(e)) => return Err(e),
                Some(ReadFault::Expire) => return Ok(ReadOutcome::Expired),
                None => {}
            }
            let Some((shard_id, index)) = parse_cursor(at) else {
                return Err(AwsError::invalid_response("kinesis", "GetRecords", "not a cursor of this log"));
            };
            let shard = i.shard(shard_id, "GetRecords")?;
            let take = usize::try_from(limit.max(1)).unwrap_or(1);
            let end = (index + take).min(shard.records.len());
            let records = shard.records.get(index..end).map(<[LogRecord]>::to_vec).unwrap_or_default();
            let millis_behind = match shard.records.get(end) {
                Some(next) => (now_millis() - next.arrival_ms.unwrap_or(0)).max(1),
                None => 0,
            };
            let ended = shard.info.is_closed() && end >= shard.records.len();
            let child_shards = if ended {
                i.shards
                    .iter()
                    .filter(|s| s.info.parents().any(|p| p == shard_id))
                    .map(|s| s.info.shard_id.clone())
                    .collect()
            } else {
                Vec::new()
            };
            Ok(ReadOutcome::Page(LogPage {
                records,
                next: (!ended).then(|| cursor(shard_id, end)),
                millis_behind: Some(millis_behind),
                child_shards,
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn page(log: &MemoryLog, c: &ShardCursor, limit: i32) -> LogPage {
        match log.read(c, limit).await.expect("read") {
            ReadOutcome::Page(p) => p,
            ReadOutcome::Expired => panic!("not scripted to expire"),
        }
    }

    #[tokio::test]
    async fn keys_go_to_the_shard_of_their_hash_and_keep_their_order_there() {
        let log = MemoryLog::new("s", 4);
        let shards = log.list_shards().await.expect("shards");
        assert_eq!(shards.len(), 4);
        assert_eq!((shards[0].hash_range.start, shards[3].hash_range.end), (0, u128::MAX));
        for w in shards.windows(2) {
            assert_eq!(w[0].hash_range.end + 1, w[1].hash_range.start, "the ranges tile the hash space");
        }
        let entries: Vec<LogEntry> = (0..40).map(|n| LogEntry::new(format!("k{}", n % 8), vec![n])).collect();
        let results = log.put(&entries).await.expect("put");
        for (entry, result) in entries.iter().zip(&results) {
            let PutResult::Stored { shard_id, .. } = result else { panic!("stored") };
            let range = shards.iter().find(|s| &s.shard_id == shard_id).expect("known shard").hash_range;
            assert!(range.contains(hash_key_of(&entry.partition_key)));
        }
        for s in &shards {
            let seqs: Vec<SeqNo> = log.records(&s.shard_id).into_iter().map(|r| r.seq).collect();
            assert!(seqs.windows(2).all(|w| w[0] < w[1]), "sequence numbers increase within a shard");
        }
    }

    #[tokio::test]
    async fn a_split_closes_the_parent_and_its_end_names_the_children() {
        let log = MemoryLog::new("s", 1);
        log.put(&[LogEntry::new("a", b"1".to_vec())]).await.expect("put");
        let (low, high) = log.split("shardId-000000000000", 1 << 127).expect("split");
        log.put(&[LogEntry::new("a", b"2".to_vec())]).await.expect("put");
        let shards = log.list_shards().await.expect("shards");
        assert!(shards[0].is_closed());
        assert_eq!(shards[1].parent.as_deref(), Some("shardId-000000000000"));
        assert_eq!(
            shards[0].ending_sequence.as_ref().map(|e| e > &log.records("shardId-000000000000")[0].seq),
            Some(true)
        );

        let c = log.open("shardId-000000000000", &StartAt::TrimHorizon).await.expect("open").expect("cursor");
        let p = page(&log, &c, 10).await;
        assert_eq!(p.records.len(), 1);
        assert_eq!((p.next, p.child_shards), (None, vec![low.clone(), high.clone()]));
        let after_end = StartAt::After(log.records("shardId-000000000000")[0].seq.clone());
        let resumed = log.open("shardId-000000000000", &after_end).await.expect("open").expect("a cursor at the end");
        let end = page(&log, &resumed, 10).await;
        assert!(end.records.is_empty() && end.next.is_none(), "read from its last record, the parent ends");
        let child = log.shard_of("a").expect("open shard");
        assert!(child == low || child == high);
        assert_eq!(log.records(&child).len(), 1, "after the split, the key's records go to a child");
        assert!(log.merge(&low, &high).is_ok(), "the children are adjacent");
    }

    #[tokio::test]
    async fn a_put_over_kinesis_limits_fails_as_a_whole_and_stores_nothing() {
        let log = MemoryLog::new("s", 1);
        let many: Vec<LogEntry> = (0..=PUT_ENTRIES).map(|n| LogEntry::new(format!("k{n}"), vec![0])).collect();
        let big = |n: usize| LogEntry::new("k", vec![0; n]);
        // Five records just under 1 MiB each, with their keys: over the 5 MiB of one call.
        let heavy: Vec<LogEntry> = (0..6).map(|_| big(RECORD_BYTES - 1)).collect();
        for entries in [many, vec![big(RECORD_BYTES)], heavy] {
            let e = log.put(&entries).await.expect_err("over a limit");
            assert_eq!(e.class, ErrorClass::Permanent, "{e}");
        }
        assert!(log.records("shardId-000000000000").is_empty());
        let at_limits: Vec<LogEntry> = (0..5).map(|_| big(RECORD_BYTES - 1)).collect();
        assert_eq!(log.put(&at_limits).await.expect("within the limits").len(), 5);
    }

    #[tokio::test]
    async fn scripted_faults_fail_one_call_each() {
        let log = MemoryLog::new("s", 1);
        log.push_put_fault(PutFault::Throttle(vec![1]));
        log.push_put_fault(PutFault::Call(throttled("PutRecords")));
        let entries = [LogEntry::new("a", vec![1]), LogEntry::new("b", vec![2])];
        let first = log.put(&entries).await.expect("partial");
        assert!(matches!(first[0], PutResult::Stored { .. }));
        assert!(matches!(&first[1], PutResult::Failed(e) if e.class == ErrorClass::Throttled));
        assert!(log.put(&entries).await.is_err());
        assert_eq!(log.put(&entries).await.expect("clean").len(), 2);
        assert_eq!(log.put_calls(), 3);

        log.push_read_fault(ReadFault::Expire);
        let c = log.open("shardId-000000000000", &StartAt::At(SeqNo::parse("2").expect("seq"))).await;
        let c = c.expect("open").expect("cursor");
        assert!(matches!(log.read(&c, 10).await, Ok(ReadOutcome::Expired)));
        let p = page(&log, &c, 1).await;
        assert_eq!(p.records.len(), 1);
        assert!(p.millis_behind.is_some_and(|b| b > 0), "one more record waits");
        assert_eq!(page(&log, &p.next.expect("open shard"), 10).await.records.len(), 1);
    }
}
