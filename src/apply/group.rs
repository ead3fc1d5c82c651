//! Consumer groups: one per target (and one for the archive), reading every shard of the
//! change log and handing each batch to the group's [`Sink`]: a target's applier, or the archive.
//!
//! One task per shard. A child shard (after a reshard) is read only after its parents are read
//! to their end, so per-key order survives resharding; the shards are listed again whenever a
//! shard's task ends, so a split or merge made while the group runs is followed in the same run
//! (`crate::stream::lineage` keeps the books). A checkpoint is saved after each batch,
//! only once the batch is applied or dead-lettered.
//!
//! Each shard task reports how far it has read to the applier's
//! [`Watermark`](crate::apply::watermark::Watermark): a child whose parent is missing waits while
//! any shard may still hold that parent, and is dead-lettered only once none can.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::apply::applier::Applier;
use crate::apply::lag::{LagRecorder, LagSummary};
use crate::apply::stats::ApplyStats;
use crate::apply::watermark::Watermark;
use crate::apply::ApplyError;
use crate::backend::changelog::{ChangeLog, ShardInfo};
use crate::lease::worker::Worker;
use crate::lease::Fence;
use crate::metrics::{self as m, ShardClocks};
use crate::model::seqno::SeqNo;
use crate::model::{codec, now_millis, ChangeRecord, ObjectKind, Op};
use crate::progress::Progress;
use crate::state::checkpoint::{next_checkpoint, Checkpoint, CheckpointError, CheckpointStore};
use crate::state::deadletter::{DeadLetter, DeadLetterStore};
use crate::stream::admin::list_shards;
use crate::stream::consumer::{ReadBatch, ShardReader};
use crate::stream::lineage::Lineage;

/// When a consumer group stops.
#[derive(Debug, Clone)]
pub enum StopWhen {
    /// Once the producer is done (`Some(last sequence per shard)`) and every shard has been read
    /// up to that point; shards the producer did not write to stop when caught up.
    Drained(watch::Receiver<Option<BTreeMap<String, SeqNo>>>),
    /// When the value turns true (shutdown); the current batch is finished and checkpointed first.
    Signal(watch::Receiver<bool>),
}

/// What one shard's consumer did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ShardReport {
    pub shard: String,
    /// The checkpoint the run resumed after (`None`: started at the trim horizon).
    pub resumed_after: Option<String>,
    /// The last sequence number checkpointed.
    pub checkpoint: Option<String>,
    pub frames: u64,
    pub records: u64,
    pub batches: u64,
}

/// What a consumer group did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GroupReport {
    pub stats: ApplyStats,
    pub shards: Vec<ShardReport>,
    /// From capture to applied, per record.
    pub lag_from_capture: LagSummary,
    /// From the source's change time (events, CloudTrail) to applied, per record.
    pub lag_from_change: LagSummary,
}

/// Where a consumer group's records go. The group checkpoints a shard only up to what the sink
/// says is durable, so a sink that buffers (the archive) is never checkpointed past its buffer.
#[async_trait::async_trait]
pub trait Sink: Send + Sync {
    /// The group's name: its checkpoints and metric labels.
    fn name(&self) -> &str;
    /// How far the group has read each shard (children whose parent is missing wait on it).
    fn watermark(&self) -> &Arc<Watermark>;
    /// Takes one batch of `shard`'s records, read up to `last`; returns what is now durable.
    async fn take(&self, shard: &str, records: Vec<Taken>, last: &SeqNo) -> Result<Durable, ApplyError>;
    /// An idle moment (`force`: the end of the run): buffered records may become durable.
    async fn idle(&self, shard: &str, force: bool) -> Result<Option<SeqNo>, ApplyError>;
    /// The shard is read again from its checkpoint: forget anything buffered for it.
    async fn opened(&self, _shard: &str) {}
}

/// One record as the group read it, with its stream position (shared by the records packed in
/// one Kinesis record).
#[derive(Debug, Clone)]
pub struct Taken {
    pub sequence: SeqNo,
    pub record: ChangeRecord,
}

/// What a sink made durable with one batch.
#[derive(Debug, Clone, Default)]
pub struct Durable {
    /// The group may checkpoint up to here (`None`: nothing new is durable yet).
    pub through: Option<SeqNo>,
    pub stats: ApplyStats,
}

/// A target's applier as a sink: a batch is durable once applied (or dead-lettered).
#[async_trait::async_trait]
impl Sink for Applier {
    fn name(&self) -> &str {
        Applier::name(self)
    }

    fn watermark(&self) -> &Arc<Watermark> {
        Applier::watermark(self)
    }

    async fn take(&self, shard: &str, records: Vec<Taken>, last: &SeqNo) -> Result<Durable, ApplyError> {
        let stats = self.apply_from(Some(shard), records.into_iter().map(|t| t.record).collect()).await?;
        Ok(Durable { through: Some(last.clone()), stats })
    }

    async fn idle(&self, _shard: &str, _force: bool) -> Result<Option<SeqNo>, ApplyError> {
        Ok(None)
    }
}

/// Reads the stream and hands it to one sink.
pub struct ConsumerGroup {
    pub log: Arc<dyn ChangeLog>,
    pub sink: Arc<dyn Sink>,
    pub checkpoints: Arc<dyn CheckpointStore>,
    pub dead_letters: DeadLetterStore,
    /// GetRecords limit (Kinesis records per batch).
    pub batch_limit: i32,
    pub progress: Progress,
    /// Log every batch that changed the target (long-running mode).
    pub log_batches: bool,
    /// The `/readyz` component this group reports ready once it reads every shard (`lakelog run`).
    pub health: Option<String>,
    /// How this process shares the group's shards with other processes.
    pub coordination: Coordination,
}

/// How a consumer group shares its shards with other processes.
#[derive(Clone, Default)]
pub enum Coordination {
    /// This process reads every shard, a child after its parents; `Some`: writes are fenced by
    /// the single-writer lock (`None`: unfenced, for one-off readers and unit tests).
    Single(Option<Arc<dyn Fence>>),
    /// Only the shards this worker leases; a child's lease is handed out once its parents ended
    /// (by whichever worker read them), and a lost lease stops its shard before the next write.
    Leases(Arc<Worker>),
    /// No fence and no lock (the default of groups built outside a command).
    #[default]
    Unfenced,
}

impl Coordination {
    fn fence(&self) -> Option<&dyn Fence> {
        match self {
            Coordination::Single(f) => f.as_deref(),
            Coordination::Leases(w) => Some(&**w),
            Coordination::Unfenced => None,
        }
    }
}

impl ConsumerGroup {
    fn group(&self) -> &str {
        self.sink.name()
    }

    /// Consumes every shard until `stop` says so, and the shards a reshard adds meanwhile.
    pub async fn run(self: Arc<Self>, stop: StopWhen) -> Result<GroupReport, ApplyError> {
        let mut lineage = Lineage::new(list_shards(self.log.as_ref()).await?);
        if let Some(component) = &self.health {
            crate::metrics::serve::Health::global().ready(component);
        }
        let watermark = self.sink.watermark().clone();
        watermark.attach(lineage.known().map(|(s, waits)| (s.shard_id.clone(), waits)));
        let report = match &self.coordination {
            Coordination::Leases(worker) => {
                tokio::select! {
                    report = self.read_lineage(&mut lineage, &stop) => report,
                    never = follow_others(worker, &watermark) => match never {},
                }
            }
            _ => self.read_lineage(&mut lineage, &stop).await,
        };
        watermark.detach();
        report
    }

    /// One task per shard: a child's once its parents' tasks are done (single process), or every
    /// shard's at once, each waiting for its lease (the worker leases a child only once its
    /// parents ended). Whenever a task ends, the shards are listed again, so the children of a
    /// reshard done during the run are read in this run; under leases also every
    /// [`RELIST_EVERY`], for the shards other workers ended. The first failure aborts the other
    /// tasks and is the group's error.
    async fn read_lineage(self: &Arc<Self>, lineage: &mut Lineage, stop: &StopWhen) -> Result<GroupReport, ApplyError> {
        let leased = matches!(self.coordination, Coordination::Leases(_));
        let mut tasks = JoinSet::new();
        self.spawn_ready(lineage, &mut tasks, stop);
        let (mut report, mut lag, mut first_error) = (GroupReport::default(), LagRecorder::default(), None);
        // A listing is due (a task ended) and has not succeeded yet.
        let mut relist = false;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + RELIST_EVERY, RELIST_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if tasks.is_empty() && (!relist || first_error.is_some()) {
                break;
            }
            let joined = tokio::select! {
                Some(joined) = tasks.join_next() => joined,
                _ = tick.tick(), if leased || relist => {
                    relist |= leased;
                    if first_error.is_none() && relist && self.learn(lineage).await {
                        relist = false;
                        self.spawn_ready(lineage, &mut tasks, stop);
                    }
                    continue;
                }
                else => break,
            };
            match joined {
                Ok((id, Ok((stats, shard, shard_lag)))) => {
                    report.stats.merge(&stats);
                    report.shards.push(shard);
                    lag.merge(&shard_lag);
                    lineage.finished(&id);
                    relist = !self.learn(lineage).await;
                    if first_error.is_none() {
                        self.spawn_ready(lineage, &mut tasks, stop);
                    }
                }
                Ok((_, Err(e))) => {
                    first_error.get_or_insert(e);
                    tasks.abort_all();
                }
                Err(e) if e.is_cancelled() => {}
                Err(e) => {
                    warn!(error = %e, "shard task ended abnormally");
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        report.shards.sort_by(|a, b| a.shard.cmp(&b.shard));
        report.lag_from_capture = lag.from_capture();
        report.lag_from_change = lag.from_change();
        Ok(report)
    }

    /// Lists the shards again and takes in the new ones (the watermark counts them; under
    /// leases their rows are made now, so a child can be leased at once). `false`: the listing
    /// failed, and is tried again later.
    async fn learn(&self, lineage: &mut Lineage) -> bool {
        let listed = match list_shards(self.log.as_ref()).await {
            Ok(listed) => listed,
            Err(e) => {
                warn!(target = %self.group(), error = %e, "cannot list the stream's shards for new ones; retrying");
                return false;
            }
        };
        let new = lineage.learn(listed);
        if new.is_empty() {
            return true;
        }
        let ids: Vec<&str> = new.iter().map(|s| s.shard_id.as_str()).collect();
        info!(target = %self.group(), shards = ?ids, "the stream was resharded; the new shards are read after their parents");
        self.sink.watermark().learned(new.iter().map(|s| (s.shard_id.clone(), lineage.waits_for_parents(s))));
        if let Coordination::Leases(worker) = &self.coordination {
            if let Err(e) = worker.ensure(&new).await {
                warn!(target = %self.group(), error = %e, "cannot create the lease rows of the new shards; the worker retries");
            }
        }
        true
    }

    /// Starts the shards that may be read now (see [`ConsumerGroup::read_lineage`]).
    fn spawn_ready(
        self: &Arc<Self>,
        lineage: &mut Lineage,
        tasks: &mut JoinSet<(String, ShardOutcome)>,
        stop: &StopWhen,
    ) {
        let ready = match &self.coordination {
            Coordination::Leases(_) => lineage.unstarted(),
            _ => lineage.ready(),
        };
        for shard in ready {
            let (me, stop) = (self.clone(), stop.clone());
            tasks.spawn(async move {
                let outcome = match &me.coordination {
                    Coordination::Leases(worker) => me.run_leased(&shard, stop, worker).await,
                    _ => me.run_shard(&shard, stop).await,
                };
                (shard.shard_id, outcome)
            });
        }
    }

    /// Reads `shard` whenever this worker holds its lease, until `stop` or the shard's end; a
    /// lost lease stops the reading before its next write, and it resumes if the lease comes
    /// back.
    async fn run_leased(&self, shard: &ShardInfo, stop: StopWhen, worker: &Worker) -> ShardOutcome {
        let id = &shard.shard_id;
        let mut total =
            (ApplyStats::default(), ShardReport { shard: id.clone(), ..Default::default() }, LagRecorder::default());
        loop {
            tokio::select! {
                _ = worker.wait_held(id) => {}
                _ = stop.finished() => return Ok(total),
            }
            match self.run_shard(shard, stop.clone()).await {
                Ok((stats, report, lag)) => {
                    total.0.merge(&stats);
                    total.1 = report;
                    total.2.merge(&lag);
                    return Ok(total);
                }
                Err(ApplyError::Fenced { .. } | ApplyError::Checkpoint(CheckpointError::Conflict { .. })) => {
                    warn!(target = %self.group(), shard = %id, worker = worker.id(), "lease lost; stopped reading the shard before its next write");
                    worker.forget(id);
                    self.sink.watermark().released(id);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One line per batch that changed the target (what an operator watches arrive).
    fn log_changes(&self, shard: &str, t: &crate::apply::stats::KindCounts, lag: Option<f64>) {
        if self.log_batches {
            info!(target = %self.group(), shard, created = t.created, updated = t.updated, deleted = t.deleted, lag_seconds = lag.unwrap_or(0.0), "applied changes");
        }
    }

    /// Reads one shard from its checkpoint, applying and checkpointing batch by batch, until the
    /// shard ends or `stop` says so.
    async fn run_shard(
        &self,
        shard: &ShardInfo,
        stop: StopWhen,
    ) -> Result<(ApplyStats, ShardReport, LagRecorder), ApplyError> {
        let mut run = ShardRun::open(self, &shard.shard_id).await?;
        loop {
            let batch = run.reader.next_batch().await?;
            let arrival = run.arrived(&batch);
            let empty = batch.records.is_empty();
            if empty {
                run.idle(&arrival);
            } else {
                run.apply(&batch, &arrival).await?;
            }
            // At its end, or read to where the producer stopped: nothing more will reach this
            // shard in this run, so a child elsewhere must not wait for it (it would wait forever).
            let caught_up = empty && arrival.behind == 0;
            if batch.end_of_shard || stop.reached(run.id, run.read.as_ref(), caught_up) {
                run.settle(true).await?;
                if batch.end_of_shard {
                    run.ended().await?;
                }
                run.watermark.ended(run.id);
                break;
            }
            if empty {
                run.settle(false).await?;
                // GetRecords allows 5 calls/s per shard; an idle shard is polled gently.
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        Ok((run.stats, run.report, run.lag))
    }
}

/// Under leases: the shards other workers read count by their lease rows (as the worker last
/// listed them, every renewal interval), so a child here waits for a parent only while another
/// worker may still hold it unapplied.
async fn follow_others(worker: &Worker, watermark: &Watermark) -> std::convert::Infallible {
    loop {
        for l in worker.others() {
            watermark.elsewhere(l.shard(), l.newest_captured_at, l.caught_up_at, l.ended());
        }
        tokio::time::sleep(worker.renew_interval()).await;
    }
}

/// What one shard's task returns.
type ShardOutcome = Result<(ApplyStats, ShardReport, LagRecorder), ApplyError>;

/// How often a group under leases lists the shards for new ones (children of shards that other
/// workers read to their end): one call per group every 10 s is far below ListShards' limit.
const RELIST_EVERY: Duration = Duration::from_secs(10);

impl StopWhen {
    /// Returns once the stop is decided (the producer's end is known, or the signal is on); a
    /// leased shard that is not this worker's has nothing to drain then.
    async fn finished(&self) {
        let closed = match self {
            StopWhen::Drained(end) => end.clone().wait_for(|e| e.is_some()).await.is_err(),
            StopWhen::Signal(sig) => sig.clone().wait_for(|s| *s).await.is_err(),
        };
        if closed {
            std::future::pending::<()>().await;
        }
    }

    /// Whether `shard`, applied up to `position` (and `caught_up` with the stream's tip), is done.
    fn reached(&self, shard: &str, position: Option<&SeqNo>, caught_up: bool) -> bool {
        match self {
            StopWhen::Drained(end) => match &*end.borrow() {
                None => false,
                Some(ends) => match ends.get(shard) {
                    Some(end_seq) => position.is_some_and(|p| p >= end_seq),
                    None => caught_up,
                },
            },
            StopWhen::Signal(sig) => *sig.borrow(),
        }
    }
}

/// When a batch was read, and how far behind the stream's tip the shard was.
struct Arrival {
    read_at: i64,
    /// Milliseconds behind the tip (0 when the stream did not say).
    behind: i64,
    /// Not yet read, but waiting in the stream: about as old as we are behind its tip.
    waiting_since: Option<i64>,
}

/// One shard's consumer while it runs: its reader, how far it has applied and checkpointed, and
/// what it did.
struct ShardRun<'a> {
    group: &'a ConsumerGroup,
    /// The group's name (its target's).
    target: String,
    id: &'a str,
    reader: ShardReader,
    checkpoint: Option<Checkpoint>,
    /// The last sequence number checkpointed.
    position: Option<SeqNo>,
    /// The last sequence number read (ahead of `position` while the sink buffers).
    read: Option<SeqNo>,
    /// Records read but not yet durable, and the newest capture time among them.
    undurable: u64,
    undurable_newest: Option<i64>,
    watermark: Arc<Watermark>,
    clocks: &'static ShardClocks,
    stats: ApplyStats,
    lag: LagRecorder,
    report: ShardReport,
}

impl<'a> ShardRun<'a> {
    /// Opens shard `id` after its checkpoint (at the trim horizon when it has none).
    async fn open(group: &'a ConsumerGroup, id: &'a str) -> Result<ShardRun<'a>, ApplyError> {
        let target = group.group().to_string();
        let checkpoint = group.checkpoints.load(&target, id).await?;
        let start = checkpoint.as_ref().map(|c| c.sequence.clone());
        let report = ShardReport {
            shard: id.to_string(),
            resumed_after: start.as_ref().map(|s| s.to_string()),
            checkpoint: start.as_ref().map(|s| s.to_string()),
            ..Default::default()
        };
        if let Some(s) = &start {
            info!(target = %target, shard = id, after = %s, "resuming from checkpoint");
        }
        let reader = ShardReader::open(group.log.clone(), id, start.clone(), group.batch_limit).await?;
        group.sink.opened(id).await;
        let watermark = group.sink.watermark().clone();
        watermark.opened(id);
        let clocks = ShardClocks::global();
        clocks.opened(&target, id, checkpoint.as_ref().map(|c| c.updated_at));
        Ok(ShardRun {
            group,
            target,
            id,
            reader,
            checkpoint,
            read: start.clone(),
            position: start,
            undurable: 0,
            undurable_newest: None,
            watermark,
            clocks,
            stats: ApplyStats::default(),
            lag: LagRecorder::default(),
            report,
        })
    }

    fn arrived(&self, batch: &ReadBatch) -> Arrival {
        let read_at = now_millis();
        let behind = batch.millis_behind.unwrap_or(0);
        if let Some(b) = batch.millis_behind {
            m::behind_latest(&self.target, self.id, b);
        }
        Arrival { read_at, behind, waiting_since: (behind > 0).then(|| read_at - behind) }
    }

    /// An empty read: at the stream's tip, the target holds everything the shard has.
    fn idle(&self, arrival: &Arrival) {
        self.clocks.pending_since(&self.target, self.id, arrival.waiting_since);
        if arrival.behind == 0 {
            m::replication_lag(&self.target, self.id, 0.0);
            self.watermark.caught_up(self.id, arrival.read_at);
            if let Coordination::Leases(worker) = &self.group.coordination {
                worker.caught_up(self.id, arrival.read_at);
            }
        }
    }

    /// Decodes, applies and checkpoints one batch, then reports it.
    async fn apply(&mut self, batch: &ReadBatch, arrival: &Arrival) -> Result<(), ApplyError> {
        let started = Instant::now();
        let records = self.decode(batch).await?;
        let n = records.len() as u64;
        let newest = records.iter().map(|r| r.record.captured_at).max();
        let Some(last) = batch.records.last().map(|r| r.seq.clone()) else { return Ok(()) };
        let durable = self.apply_records(records, &last, newest, arrival).await?;
        let applied = durable.stats.clone();
        self.read = Some(last);
        self.undurable += n;
        self.undurable_newest = self.undurable_newest.max(newest);
        if let Some(through) = durable.through {
            self.durable(through).await?;
        }
        self.clocks.pending_since(&self.target, self.id, arrival.waiting_since);
        self.report.frames += batch.records.len() as u64;
        self.report.records += n;
        self.report.batches += 1;
        self.group.progress.inc_applied(n);
        m::apply_batch_duration(&self.target, started.elapsed().as_secs_f64());
        self.log_batch(&applied, n, newest);
        Ok(())
    }

    /// The batch's change records; a frame that does not decode is dead-lettered, and the others
    /// go on.
    async fn decode(&self, batch: &ReadBatch) -> Result<Vec<Taken>, ApplyError> {
        let (target, id) = (&self.target, self.id);
        let mut records = Vec::new();
        for r in &batch.records {
            match codec::decode(&r.data) {
                Ok(rs) => records.extend(rs.into_iter().map(|record| Taken { sequence: r.seq.clone(), record })),
                Err(e) => {
                    let dl = DeadLetter::undecodable(target, id, r.seq.as_str(), &r.data, e.to_string());
                    warn!(target = %target, shard = id, seq = %r.seq, error = %e, "undecodable change-log frame, dead-lettering");
                    self.group
                        .dead_letters
                        .park(&dl)
                        .await
                        .map_err(|source| ApplyError::DeadLetter { target: target.clone(), source })?;
                    m::dead_letters(target, "frame", 1);
                }
            }
        }
        Ok(records)
    }

    /// Applies the records (captured up to `newest`), telling the watermark, the age clocks and
    /// the lag recorder.
    async fn apply_records(
        &mut self,
        records: Vec<Taken>,
        last: &SeqNo,
        newest: Option<i64>,
        arrival: &Arrival,
    ) -> Result<Durable, ApplyError> {
        let oldest = records.iter().map(|r| r.record.captured_at).min();
        self.clocks.pending_since(&self.target, self.id, oldest.or(arrival.waiting_since));
        let times: Vec<(i64, Option<i64>)> =
            records.iter().map(|r| (r.record.captured_at, r.record.changed_at)).collect();
        self.watermark.batch_read(self.id, newest, parents_in(records.iter().map(|t| &t.record)));
        self.may_write()?;
        let durable = self.group.sink.take(self.id, records, last).await?;
        self.watermark.batch_done(self.id);
        let applied_at = now_millis();
        for (captured, changed) in times {
            self.lag.record(applied_at, captured, changed);
        }
        self.stats.merge(&durable.stats);
        Ok(durable)
    }

    /// Lets the sink make buffered records durable (`force`: it must), then checkpoints them.
    async fn settle(&mut self, force: bool) -> Result<(), ApplyError> {
        if self.undurable == 0 {
            return Ok(());
        }
        self.may_write()?;
        if let Some(through) = self.group.sink.idle(self.id, force).await? {
            self.durable(through).await?;
        }
        Ok(())
    }

    /// Records up to `through` are durable: checkpoint them.
    async fn durable(&mut self, through: SeqNo) -> Result<(), ApplyError> {
        if self.position.as_ref().is_some_and(|p| through <= *p) {
            return Ok(());
        }
        let caught_up = self.read.as_ref().is_none_or(|r| through >= *r);
        let (n, newest) = if caught_up { (self.undurable, self.undurable_newest) } else { (0, None) };
        self.checkpoint(through, n, newest).await?;
        if caught_up {
            self.undurable = 0;
            self.undurable_newest = None;
        }
        Ok(())
    }

    /// Saves the checkpoint at `seq`: the batch up to it is applied (or dead-lettered).
    async fn checkpoint(&mut self, seq: SeqNo, applied: u64, newest: Option<i64>) -> Result<(), ApplyError> {
        let next = next_checkpoint(self.checkpoint.as_ref(), seq.clone(), applied, newest);
        self.may_write()?;
        self.group.checkpoints.save(&self.target, self.id, &next).await?;
        self.clocks.checkpoint_moved(&self.target, self.id, next.updated_at);
        self.checkpoint = Some(next);
        self.report.checkpoint = Some(seq.to_string());
        self.position = Some(seq);
        Ok(())
    }

    /// The shard is read to its end and its last checkpoint written: under leases, its lease
    /// says so (`SHARD_END`), which lets its children be leased.
    async fn ended(&self) -> Result<(), ApplyError> {
        if let Coordination::Leases(worker) = &self.group.coordination {
            let fenced = || ApplyError::Fenced { group: self.target.clone(), shard: self.id.to_string() };
            let swap = worker.shard_ended(self.id).await.map_err(|source| {
                ApplyError::Checkpoint(CheckpointError::Aws {
                    group: self.target.clone(),
                    shard: self.id.to_string(),
                    source,
                })
            })?;
            if swap == crate::backend::lease::Swap::Lost {
                return Err(fenced());
            }
        }
        Ok(())
    }

    /// Stops before a write this process may no longer make (its lock or lease has lapsed).
    /// The error is the group's usual one, as the async steps around it return.
    #[allow(clippy::result_large_err)]
    fn may_write(&self) -> Result<(), ApplyError> {
        match self.group.coordination.fence() {
            Some(f) if !f.holds(self.id) => {
                warn!(target = %self.target, shard = self.id, "no longer the shard's owner; stopping before the next write");
                Err(ApplyError::Fenced { group: self.target.clone(), shard: self.id.to_string() })
            }
            _ => Ok(()),
        }
    }

    /// The batch's replication lag (from the newest capture in it) and its log lines.
    fn log_batch(&self, applied: &ApplyStats, records: u64, newest: Option<i64>) {
        let lag = newest.map(|t| ((now_millis() - t).max(0) as f64) / 1000.0);
        if let Some(lag) = lag {
            m::replication_lag(&self.target, self.id, lag);
        }
        let t = applied.total();
        debug!(target = %self.target, shard = self.id, records, created = t.created, updated = t.updated, deleted = t.deleted, unchanged = t.unchanged, lag_seconds = lag.unwrap_or(0.0), "batch applied");
        if t.changed() > 0 {
            self.group.log_changes(self.id, &t, lag);
        }
    }
}

/// The objects in a batch that others can depend on: database and table upserts.
fn parents_in<'r>(records: impl Iterator<Item = &'r ChangeRecord>) -> HashSet<crate::model::ObjectKey> {
    records.filter(|r| r.op == Op::Upsert && r.key.kind() != ObjectKind::Partition).map(|r| r.key.clone()).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::apply::transform::Transform;
    use crate::backend::changelog::LogEntry;
    use crate::backend::memory::catalog::MemoryCatalog;
    use crate::backend::memory::changelog::MemoryLog;
    use crate::backend::memory::state::MemoryStore;
    use crate::backend::ErrorClass;
    use crate::config::{ApplyConfig, TargetConfig};
    use crate::model::{CatalogObject, Cause, CauseKind, Database, Origin};
    use crate::state::checkpoint::{Checkpoint, CheckpointError};

    /// Checkpoints in memory, with every save in order.
    #[derive(Default)]
    struct Checkpoints {
        saved: Mutex<Vec<(String, SeqNo)>>,
    }

    #[async_trait::async_trait]
    impl CheckpointStore for Checkpoints {
        async fn load(&self, _group: &str, shard: &str) -> Result<Option<Checkpoint>, CheckpointError> {
            let saved = self.saved.lock().expect("lock");
            let last = saved.iter().rev().find(|(s, _)| s == shard);
            Ok(last.map(|(_, seq)| Checkpoint {
                sequence: seq.clone(),
                updated_at: 0,
                records: 0,
                newest_captured_at: None,
            }))
        }

        async fn save(&self, _group: &str, shard: &str, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
            self.saved.lock().expect("lock").push((shard.to_string(), checkpoint.sequence.clone()));
            Ok(())
        }
    }

    /// An applier whose target has no databases, creates each one it is asked to, and is
    /// unavailable for the database `unavailable`.
    fn applier(target: &Arc<MemoryCatalog>, unavailable: &str) -> Applier {
        if !unavailable.is_empty() {
            target.fail_database(unavailable, ErrorClass::Retryable);
        }
        let config: TargetConfig = serde_yaml_ng::from_str("{name: dr, region: us-east-1}").expect("target");
        let transform = Transform::new(&config, "1", "us-east-1", "2").expect("transform");
        let cfg = ApplyConfig { max_attempts: 1, ..Default::default() };
        Applier::new("dr", target.clone(), transform, unused_dead_letters(), cfg, false)
    }

    /// A store no record of these tests is dead-lettered to.
    fn unused_dead_letters() -> DeadLetterStore {
        DeadLetterStore::new(Arc::new(MemoryStore::new()))
    }

    fn database(name: &str) -> LogEntry {
        let origin = Origin { account: "1".into(), region: "us-east-1".into(), catalog_id: "1".into() };
        let db = Database { name: name.into(), ..Default::default() };
        let rec = ChangeRecord::upsert(
            CatalogObject::Database(db),
            &origin,
            Cause { kind: CauseKind::Event, event_id: None },
            1,
        );
        LogEntry::new(rec.key.stream_partition_key(), codec::encode(&[rec]).expect("encode"))
    }

    async fn put(log: &MemoryLog, names: &[String]) {
        let entries: Vec<LogEntry> = names.iter().map(|n| database(n)).collect();
        log.put(&entries).await.expect("put");
    }

    async fn group(log: Arc<MemoryLog>, applier: Applier, checkpoints: Arc<Checkpoints>) -> Arc<ConsumerGroup> {
        let dead_letters = unused_dead_letters();
        Arc::new(ConsumerGroup {
            log,
            sink: Arc::new(applier),
            checkpoints,
            dead_letters,
            batch_limit: 1,
            progress: Progress::hidden(),
            log_batches: false,
            health: None,
            coordination: Coordination::default(),
        })
    }

    /// Runs until every open shard is read to its newest record.
    async fn drain(group: Arc<ConsumerGroup>, log: &MemoryLog) -> Result<GroupReport, ApplyError> {
        let mut ends = BTreeMap::new();
        for s in log.list_shards().await.expect("shards") {
            if let Some(last) = log.records(&s.shard_id).last() {
                ends.insert(s.shard_id.clone(), last.seq.clone());
            }
        }
        let (_tx, rx) = watch::channel(Some(ends));
        group.run(StopWhen::Drained(rx)).await
    }

    fn names(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn parents_are_read_to_their_end_before_children_after_a_split_and_a_merge() {
        let log = Arc::new(MemoryLog::new("s", 1));
        put(&log, &names("p", 5)).await;
        let (low, high) = log.split("shardId-000000000000", 1 << 127).expect("split");
        put(&log, &names("q", 12)).await;
        assert!(!log.records(&low).is_empty() && !log.records(&high).is_empty(), "both children take records");
        log.merge(&low, &high).expect("merge");
        put(&log, &names("r", 5)).await;

        let target = Arc::new(MemoryCatalog::new("2"));
        let report = drain(group(log.clone(), applier(&target, ""), Arc::default()).await, &log).await.expect("group");
        assert_eq!(report.shards.len(), 4);
        let created = target.created_databases();
        assert_eq!(created.len(), 22, "{created:?}");
        let first = |p: &str| created.iter().position(|n| n.starts_with(p)).expect("some created");
        let last = |p: &str| created.iter().rposition(|n| n.starts_with(p)).expect("some created");
        assert!(last("p") < first("q"), "the split parent is read to its end first: {created:?}");
        assert!(last("q") < first("r"), "both merged parents are read to their end first: {created:?}");
    }

    /// Waits (in test time) until the target has created `n` databases; `false` if it never does.
    async fn created(target: &MemoryCatalog, n: usize) -> bool {
        for _ in 0..400 {
            if target.created_databases().len() >= n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        false
    }

    #[tokio::test(start_paused = true)]
    async fn a_split_and_a_merge_made_while_the_group_runs_are_read_in_the_same_run() {
        let log = Arc::new(MemoryLog::new("s", 1));
        let target = Arc::new(MemoryCatalog::new("2"));
        let (end_tx, end_rx) = watch::channel(None);
        let group = group(log.clone(), applier(&target, ""), Arc::default()).await;
        let running = tokio::spawn(group.run(StopWhen::Drained(end_rx)));
        put(&log, &names("p", 3)).await;
        assert!(created(&target, 3).await, "the first shard is read");
        let (low, high) = log.split("shardId-000000000000", 1 << 127).expect("split");
        put(&log, &names("q", 12)).await;
        assert!(!log.records(&low).is_empty() && !log.records(&high).is_empty(), "both children take records");
        let children_read = created(&target, 15).await;
        log.merge(&low, &high).expect("merge");
        put(&log, &names("r", 5)).await;
        let merged_read = created(&target, 20).await;

        let mut ends = BTreeMap::new();
        for s in log.list_shards().await.expect("shards") {
            if let Some(last) = log.records(&s.shard_id).last() {
                ends.insert(s.shard_id.clone(), last.seq.clone());
            }
        }
        // Ignored: a group that already returned (it stopped at the parent's end) fails below.
        let _ = end_tx.send(Some(ends));
        let report = running.await.expect("group task").expect("group");
        let created = target.created_databases();
        assert!(children_read && merged_read, "the new shards are read while the group runs: {created:?}");
        assert_eq!(report.shards.len(), 4, "{:?}", report.shards);
        let first = |p: &str| created.iter().position(|n| n.starts_with(p)).expect("some created");
        let last = |p: &str| created.iter().rposition(|n| n.starts_with(p)).expect("some created");
        assert!(last("p") < first("q") && last("q") < first("r"), "parents before children: {created:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_checkpoint_never_passes_an_unapplied_record() {
        let log = Arc::new(MemoryLog::new("s", 1));
        put(&log, &["a".into(), "b".into(), "down".into(), "c".into()]).await;
        let seqs: Vec<SeqNo> = log.records("shardId-000000000000").into_iter().map(|r| r.seq).collect();
        let checkpoints = Arc::new(Checkpoints::default());

        let target = Arc::new(MemoryCatalog::new("2"));
        let failed = drain(group(log.clone(), applier(&target, "down"), checkpoints.clone()).await, &log).await;
        assert!(failed.is_err(), "the unavailable target stops the group");
        assert_eq!(target.created_databases(), ["a", "b"]);
        let saved: Vec<SeqNo> = checkpoints.saved.lock().expect("lock").iter().map(|(_, s)| s.clone()).collect();
        assert_eq!(saved, seqs[..2].to_vec(), "checkpointed after a and b only, never past the failed record");

        // The next run resumes after b: the failed record and the rest are applied.
        let target = Arc::new(MemoryCatalog::new("2"));
        drain(group(log.clone(), applier(&target, ""), checkpoints.clone()).await, &log).await.expect("resumed");
        assert_eq!(target.created_databases(), ["down", "c"]);
        assert_eq!(checkpoints.saved.lock().expect("lock").last().map(|(_, s)| s.clone()), seqs.last().cloned());
    }
}
