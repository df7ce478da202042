//! The consumer thread: polls Kafka, cuts records into per-partition
//! batches for the workers, places checkpoint barriers in the workers'
//! queues, and handles rebalances (inside `poll`, on this same thread).
//!
//! Every claim of a partition opens a new *epoch*; what is sent to the
//! workers carries it, and the coordinator commits a range only while its
//! epoch is still the partition's. So a partition fenced or claimed again
//! while a checkpoint is on its way can never have a stale range committed
//! over files that were dropped.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;

use super::messages::{Control, Event, Sent, WorkerMsg};
use crate::budget::Budget;
use crate::commit::{Claimed, OffsetReset, Wanted};
use crate::metrics::Stats;
use crate::partition::TopicPartition;
use crate::plugin::Plugin;
use crate::source::{self, Fetched, KafkaConsumer, Rebalance};

/// How often the consumer looks for fenced partitions to claim again and
/// refreshes its lag.
const HOUSEKEEPING: Duration = Duration::from_millis(500);

/// How often a partition whose last fetch says its log ends below the
/// offset to read next is checked with the broker: a recreated topic.
const END_CHECK: Duration = Duration::from_secs(5);

/// What the consumer keeps per partition of its one topic.
struct Flow {
    source: TopicPartition,
    /// The batch in the making.
    pending: Option<Fetched>,
    /// The next offset expected, since the partition was assigned.
    expected: Option<i64>,
    /// The claim the records sent now belong to; `None` while the
    /// partition is not ours (never claimed, revoked, lost or fenced): its
    /// records are skipped.
    epoch: Option<u64>,
    /// The commit log's claim behind `epoch`: staging entries name it.
    claim: u64,
    /// When the broker was last asked where this partition's log ends.
    end_checked: Option<Instant>,
    /// When another owner fenced it here, for claiming it again if Kafka
    /// keeps assigning it to this instance.
    fenced_at: Option<Instant>,
    /// The size of the last batch sent, for the next one.
    last_size: (usize, usize),
}

/// Batches in the making and what was sent since the last barrier; only the
/// consumer thread touches it, the lock is for the rebalance callback.
struct Inflight {
    /// Indexed by partition number: the hot path looks a record's
    /// partition up once, without hashing or allocating.
    flows: Vec<Option<Flow>>,
    /// What was sent to the workers, per partition, since the barrier.
    sent: BTreeMap<TopicPartition, Sent>,
    /// The number the next non-empty checkpoint gets.
    checkpoint: u64,
    /// The last epoch handed out.
    epochs: u64,
}

impl Inflight {
    fn flow(&mut self, topic: &str, partition: i32) -> &mut Flow {
        let i = partition.max(0) as usize;
        if self.flows.len() <= i {
            self.flows.resize_with(i + 1, || None);
        }
        self.flows[i].get_or_insert_with(|| Flow {
            source: TopicPartition {
                topic: topic.to_owned(),
                partition,
            },
            pending: None,
            expected: None,
            epoch: None,
            claim: 0,
            end_checked: None,
            fenced_at: None,
            last_size: (0, 0),
        })
    }

    fn flows(&mut self) -> impl Iterator<Item = &mut Flow> {
        self.flows.iter_mut().flatten()
    }

    fn claimed(&self) -> u64 {
        self.flows
            .iter()
            .flatten()
            .filter(|f| f.epoch.is_some())
            .count() as u64
    }
}

pub struct ConsumerShared {
    inflight: Mutex<Inflight>,
    workers: Vec<Sender<WorkerMsg>>,
    events: Sender<Event>,
    budget: Arc<Budget>,
    stats: Arc<Stats>,
    batch_records: usize,
    batch_bytes: usize,
    stopping: AtomicBool,
    /// A plugin loaded and checked, waiting for the next barrier.
    swap: Mutex<Option<Arc<Plugin>>>,
    /// A partition fenced here that Kafka still assigns to this instance
    /// after this long (the session timeout) is claimed again: by then a
    /// member that had really lost it would have been told.
    reclaim_after: Duration,
    /// Where to go on when Kafka no longer has the next offset.
    reset: OffsetReset,
    /// How to reach the cluster for a probe of one offset; none: a log is
    /// never taken to end below what was read.
    probing: Option<source::KafkaSettings>,
}

impl ConsumerShared {
    /// Tells every worker to stop; `wait`: even if its queue is full.
    pub fn stop_workers(&self, wait: bool) {
        for worker in &self.workers {
            let _ = if wait {
                worker.send(WorkerMsg::Stop).map_err(|_| ())
            } else {
                worker.try_send(WorkerMsg::Stop).map_err(|_| ())
            };
        }
    }

    pub fn new(
        workers: Vec<Sender<WorkerMsg>>,
        events: Sender<Event>,
        budget: Arc<Budget>,
        stats: Arc<Stats>,
        batch_records: usize,
        batch_bytes: usize,
        checkpoint: u64,
    ) -> Self {
        Self {
            inflight: Mutex::new(Inflight {
                flows: Vec::new(),
                sent: BTreeMap::new(),
                checkpoint,
                epochs: 0,
            }),
            workers,
            events,
            budget,
            stats,
            batch_records,
            batch_bytes,
            stopping: AtomicBool::new(false),
            swap: Mutex::new(None),
            reclaim_after: Duration::from_secs(45),
            reset: OffsetReset::Unset,
            probing: None,
        }
    }

    /// Probes offsets with these settings before going back over committed
    /// ones (see `source::probe`).
    pub fn probing(mut self, settings: source::KafkaSettings) -> Self {
        self.probing = Some(settings);
        self
    }

    /// Where consumption goes on when the offset to read is out of Kafka's
    /// range (the user's `auto.offset.reset`).
    pub fn resetting_to(mut self, reset: OffsetReset) -> Self {
        self.reset = reset;
        self
    }

    /// How long a partition fenced here may stay assigned here before it
    /// is claimed again: the group's session timeout.
    pub fn reclaiming_after(mut self, session_timeout: Duration) -> Self {
        self.reclaim_after = session_timeout;
        self
    }

    fn worker(&self, tp: &TopicPartition) -> &Sender<WorkerMsg> {
        &self.workers[tp.partition.unsigned_abs() as usize % self.workers.len()]
    }

    fn send(&self, sent: &mut BTreeMap<TopicPartition, Sent>, epoch: u64, batch: Fetched) {
        if let Some(last) = batch.last_offset() {
            sent.insert(batch.source.clone(), Sent { epoch, last });
        }
        self.budget.fetched(batch.bytes());
        let _ = self.worker(&batch.source).send(WorkerMsg::Batch(batch));
    }

    fn push(&self, consumer: &KafkaConsumer, m: &rdkafka::message::BorrowedMessage<'_>) {
        let (topic, partition, offset) = (m.topic(), m.partition(), m.offset());
        let Some(next) = self.take(topic, partition, offset, false, |b| b.push_message(m)) else {
            return;
        };
        let tp = TopicPartition {
            topic: topic.to_owned(),
            partition,
        };
        if offset > next {
            // Past the next offset: a gap Kafka left (a transaction marker,
            // a compacted record), unless its log start passed it, which
            // the last fetch says (or, from a broker whose fetches do not,
            // the leader, at most every few seconds).
            let passed = match source::cached_watermarks(consumer, &tp).0 {
                Some(low) => low > next,
                None => self.check_due(&tp),
            };
            if !(passed && self.moved_on(consumer, &tp, next)) {
                self.take(topic, partition, offset, true, |b| b.push_message(m));
            }
            return;
        }
        // Below it: a broker that serves a record again (tansu 0.6 does)
        // must not break exactly once; but the log may have restarted
        // below what was read, which only the broker can say.
        if !(self.check_due(&tp) && self.moved_on(consumer, &tp, next)) {
            self.stats.redelivered.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(partition = %tp, offset, expected = next, "broker served an offset already consumed; skipping it");
        }
    }

    /// Whether the partition's log may be asked about again now (at most
    /// every END_CHECK), marking it asked.
    fn check_due(&self, tp: &TopicPartition) -> bool {
        let mut inflight = self.inflight.lock().expect("inflight lock");
        let flow = inflight.flow(&tp.topic, tp.partition);
        let due = flow.end_checked.is_none_or(|t| t.elapsed() >= END_CHECK);
        if due {
            flow.end_checked = Some(Instant::now());
        }
        due
    }

    /// Takes the record at `offset` of a partition into its batch, with
    /// `append`, if it is the partition's to take and the one it expects
    /// (or one past it, with `gap`). Returns the offset expected instead
    /// when it is not.
    fn take(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        gap: bool,
        append: impl FnOnce(&mut Fetched),
    ) -> Option<i64> {
        let mut guard = self.inflight.lock().expect("inflight lock");
        let inflight = &mut *guard;
        let flow = inflight.flow(topic, partition);
        let epoch = flow.epoch?;
        if let Some(next) = flow
            .expected
            .filter(|next| offset < *next || (offset > *next && !gap))
        {
            return Some(next);
        }
        flow.expected = Some(offset + 1);
        self.stats.consumed.fetch_add(1, Ordering::Relaxed);
        let claim = flow.claim;
        let batch = flow.pending.get_or_insert_with(|| {
            Fetched::with_capacity(flow.source.clone(), claim, flow.last_size)
        });
        append(batch);
        if batch.len() >= self.batch_records || batch.bytes() >= self.batch_bytes {
            let batch = flow.pending.take().expect("just filled");
            // Records in full, bytes up to 1 MiB: a batch that is flushed
            // early with a few records, or follows one huge record, should
            // not hold more than that unused.
            let (records, bytes) = batch.size();
            flow.last_size = (records, bytes.min(1 << 20));
            self.send(&mut inflight.sent, epoch, batch);
        }
        None
    }

    /// Sends every partial batch on: when Kafka is idle, latency matters
    /// more than batch size.
    fn flush(&self) {
        let mut guard = self.inflight.lock().expect("inflight lock");
        let inflight = &mut *guard;
        let batches: Vec<(u64, Fetched)> = inflight
            .flows()
            .filter_map(|f| Some((f.epoch?, f.pending.take()?)))
            .collect();
        for (epoch, batch) in batches {
            self.send(&mut inflight.sent, epoch, batch);
        }
    }

    /// Places a barrier after everything sent so far. Returns false when
    /// nothing was consumed since the last one (no checkpoint needed); `done`
    /// then fires once the checkpoints already on their way are committed.
    fn barrier(&self, done: Option<Sender<()>>) -> bool {
        self.flush();
        let mut inflight = self.inflight.lock().expect("inflight lock");
        if inflight.sent.is_empty() {
            // Every worker has sealed all it was sent: a swap can happen
            // here as well as after a seal.
            self.hand_over_plugin();
            if let Some(done) = done {
                let _ = self.events.send(Event::Drained { done });
            }
            return false;
        }
        let checkpoint = inflight.checkpoint;
        inflight.checkpoint += 1;
        for worker in &self.workers {
            let _ = worker.send(WorkerMsg::Seal { checkpoint });
        }
        let sent = std::mem::take(&mut inflight.sent);
        let _ = self.events.send(Event::Barrier {
            checkpoint,
            sent,
            done,
        });
        self.hand_over_plugin();
        true
    }

    /// Offers a new plugin; it takes over at the next barrier. A newer
    /// offer replaces one not yet taken.
    pub fn offer_plugin(&self, plugin: Arc<Plugin>) {
        *self.swap.lock().expect("swap lock") = Some(plugin);
    }

    /// Called with the inflight lock held, right after the seals: no batch
    /// can come between a worker's seal and its swap.
    fn hand_over_plugin(&self) {
        let Some(plugin) = self.swap.lock().expect("swap lock").take() else {
            return;
        };
        for worker in &self.workers {
            let _ = worker.send(WorkerMsg::Swap(plugin.clone()));
        }
        let _ = self.events.send(Event::Swapped(plugin));
    }

    /// Runs the poll loop until told to stop.
    pub fn run(self: Arc<Self>, consumer: Arc<KafkaConsumer>, control: Receiver<Control>) {
        let mut paused = false;
        let mut last_error: Option<Instant> = None;
        let mut housekeeping_due = Instant::now() + HOUSEKEEPING;
        loop {
            for c in control.try_iter() {
                match c {
                    Control::Barrier => {
                        if !self.barrier(None) {
                            let _ = self.events.send(Event::Idle);
                        }
                    }
                    Control::Stop => {
                        self.stopping.store(true, Ordering::SeqCst);
                        if !self.barrier(None) {
                            let _ = self.events.send(Event::Idle);
                        }
                        let _ = self.events.send(Event::ConsumerStopped);
                        return;
                    }
                }
            }
            if Instant::now() >= housekeeping_due {
                self.reclaim(&consumer);
                self.check_ends(&consumer);
                let lag = source::lag(&consumer);
                self.stats.metrics.set_lag(&lag);
                let total = lag.values().filter_map(source::Lag::records).sum::<i64>() as u64;
                self.stats.lag.store(total, Ordering::Relaxed);
                let consumed = self.stats.consumed.load(Ordering::Relaxed);
                self.stats.status.lag(&lag, consumed, total);
                housekeeping_due = Instant::now() + HOUSEKEEPING;
            }
            // Backpressure: pause rather than stop polling, which would
            // take the consumer out of the group.
            if !paused && self.budget.over() {
                if let Ok(assignment) = consumer.assignment() {
                    let _ = consumer.pause(&assignment);
                }
                paused = true;
                // Workers seal early until memory is back under where
                // consumption resumes, not only under the budget: otherwise
                // both would wait for the next checkpoint.
                self.budget.set_paused(true);
                for worker in &self.workers {
                    let _ = worker.send(WorkerMsg::Shed);
                }
                self.stats.pauses.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    used = self.budget.used(),
                    limit = self.budget.limit(),
                    "memory budget reached; pausing consumption"
                );
            } else if paused && self.budget.relaxed() {
                if let Ok(assignment) = consumer.assignment() {
                    let _ = consumer.resume(&assignment);
                }
                paused = false;
                self.budget.set_paused(false);
                tracing::info!("memory back under budget; resuming consumption");
            }
            match consumer.poll(Duration::from_millis(50)) {
                None => self.flush(),
                Some(Ok(m)) => self.push(&consumer, &m),
                Some(Err(e)) => {
                    let consumed = self.stats.consumed.load(Ordering::Relaxed);
                    self.stats
                        .status
                        .broker_error(&format!("kafka: {e}"), consumed);
                    // librdkafka retries by itself; say so at most every
                    // ten seconds.
                    if last_error.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        tracing::warn!(error = %e, "kafka: consumer error; librdkafka keeps retrying");
                        last_error = Some(Instant::now());
                    }
                }
            }
        }
    }

    /// Marks partitions fenced: their buffered records are dropped here and
    /// in the workers, and ranges of theirs still on the way to the log
    /// are left out (their epoch is over).
    pub fn fence(&self, partitions: &[TopicPartition]) {
        for _ in partitions {
            self.stats.metrics.rebalance("fenced");
        }
        self.drop_held(partitions, Some(Instant::now()));
    }

    /// Ends the partitions' epochs and drops what the workers hold for
    /// them.
    fn drop_held(&self, partitions: &[TopicPartition], fenced_at: Option<Instant>) {
        self.release(partitions, fenced_at);
        for worker in &self.workers {
            let _ = worker.send(WorkerMsg::Abort(partitions.to_vec()));
        }
    }

    /// Ends the partitions' epochs here; `fenced_at` marks them for
    /// claiming again if Kafka keeps them here.
    fn release(&self, partitions: &[TopicPartition], fenced_at: Option<Instant>) {
        let mut inflight = self.inflight.lock().expect("inflight lock");
        for tp in partitions {
            let flow = inflight.flow(&tp.topic, tp.partition);
            flow.epoch = None;
            flow.fenced_at = fenced_at;
            flow.pending = None;
            flow.expected = None;
            inflight.sent.remove(tp);
        }
        self.stats
            .partitions
            .store(inflight.claimed(), Ordering::Relaxed);
    }

    /// The partition's current claim; a range sent under another one must
    /// not be committed.
    pub fn epoch(&self, tp: &TopicPartition) -> Option<u64> {
        let mut inflight = self.inflight.lock().expect("inflight lock");
        inflight.flow(&tp.topic, tp.partition).epoch
    }

    /// The commit log claim the partition is consumed under now, if any.
    pub fn claim(&self, tp: &TopicPartition) -> Option<u64> {
        let mut inflight = self.inflight.lock().expect("inflight lock");
        let flow = inflight.flow(&tp.topic, tp.partition);
        flow.epoch.map(|_| flow.claim)
    }

    /// Finds the partitions held here whose last fetch says their log ends
    /// below the next offset (the topic was deleted and recreated, the log
    /// truncated), and checks with the broker, at most every few seconds
    /// each.
    fn check_ends(&self, consumer: &KafkaConsumer) {
        let suspects: Vec<(TopicPartition, i64)> = {
            let mut inflight = self.inflight.lock().expect("inflight lock");
            let due: Vec<_> = inflight
                .flows()
                .filter(|f| f.epoch.is_some())
                .filter(|f| f.end_checked.is_none_or(|t| t.elapsed() >= END_CHECK))
                .filter_map(|f| {
                    let next = f.expected?;
                    let high = source::cached_watermarks(consumer, &f.source).1?;
                    (high < next).then(|| (f.source.clone(), next))
                })
                .collect();
            for (tp, _) in &due {
                inflight.flow(&tp.topic, tp.partition).end_checked = Some(Instant::now());
            }
            due
        };
        for (tp, next) in suspects {
            self.moved_on(consumer, &tp, next);
        }
    }

    /// Asks the partition's leader where its log is: a cached or lagging
    /// figure must not make records be read twice. If `next` is outside
    /// it, goes on from where the user's `auto.offset.reset` says, recorded
    /// in the commit log, and returns true.
    fn moved_on(&self, consumer: &KafkaConsumer, tp: &TopicPartition, next: i64) -> bool {
        let (Some(low), Some(high)) = source::watermarks(consumer, tp) else {
            return false;
        };
        let Some((to, reason)) = crate::commit::out_of_range(next, low, high, self.reset) else {
            return false;
        };
        if next > high {
            // Going back over committed offsets needs more than one
            // figure: the fetch path must say the log ends there too.
            let Some(settings) = &self.probing else {
                return false;
            };
            match source::probe(settings, tp, next - 1) {
                source::Probe::EndsAt(end) if end < next => {}
                found => {
                    tracing::warn!(partition = %tp, next, high, probe = ?found, "the broker reports a high watermark below the next offset, but the log still reaches it (a lagging figure); going on");
                    return false;
                }
            }
        }
        self.move_on(consumer, tp, to, reason);
        true
    }

    /// Commits what is held for `tp`, then claims it again from `to`, with
    /// the reason in the commit log, and seeks there.
    fn move_on(&self, consumer: &KafkaConsumer, tp: &TopicPartition, to: i64, reason: String) {
        let (done, committed) = bounded(1);
        self.barrier(Some(done));
        let _ = committed.recv();
        let wanted = vec![Wanted {
            source: tp.clone(),
            low: None,
            high: None,
            move_to: Some((to, reason)),
        }];
        let claimed = self.claim_for(wanted, std::slice::from_ref(tp));
        let Some(at) = claimed.get(tp) else {
            // No longer ours: the group or the log moved it meanwhile.
            self.drop_held(std::slice::from_ref(tp), Some(Instant::now()));
            return;
        };
        if let Err(e) = consumer.seek(
            &tp.topic,
            tp.partition,
            rdkafka::Offset::Offset(at.next),
            Duration::from_secs(10),
        ) {
            tracing::warn!(partition = %tp, offset = at.next, error = %e, "seeking a partition failed; trying again later");
            self.fence(std::slice::from_ref(tp));
        }
    }

    /// Asks the coordinator to claim `wanted` and opens a new epoch for the
    /// partitions it claimed; the others are not ours.
    fn claim_for(
        &self,
        wanted: Vec<Wanted>,
        partitions: &[TopicPartition],
    ) -> BTreeMap<TopicPartition, Claimed> {
        let (reply, answer) = bounded(1);
        let _ = self.events.send(Event::Claim { wanted, reply });
        let claimed = answer.recv().unwrap_or_default();
        let mut inflight = self.inflight.lock().expect("inflight lock");
        inflight.epochs += 1;
        let epoch = inflight.epochs;
        for tp in partitions {
            let flow = inflight.flow(&tp.topic, tp.partition);
            flow.pending = None;
            flow.end_checked = None;
            match claimed.get(tp) {
                Some(c) => {
                    flow.fenced_at = None;
                    flow.expected = Some(c.next);
                    flow.epoch = Some(epoch);
                    flow.claim = c.seq;
                }
                // Not claimed (taken by another owner during its
                // recovery, or the coordinator failed): not ours, claimed
                // again later if Kafka keeps it here.
                None => {
                    flow.expected = None;
                    flow.epoch = None;
                    flow.fenced_at = Some(Instant::now());
                }
            }
        }
        self.stats
            .partitions
            .store(inflight.claimed(), Ordering::Relaxed);
        claimed
    }

    /// Claims again the partitions fenced here long ago that Kafka still
    /// assigns to this instance, and seeks them to where the log says.
    /// Without it a partition would stay skipped for as long as the group
    /// does not move it: a broker that assigned it twice (tansu 0.6 does,
    /// after a member dies) would leave it unconsumed.
    fn reclaim(&self, consumer: &KafkaConsumer) {
        let due: Vec<TopicPartition> = {
            let mut inflight = self.inflight.lock().expect("inflight lock");
            inflight
                .flows()
                .filter(|f| {
                    f.fenced_at
                        .is_some_and(|at| at.elapsed() >= self.reclaim_after)
                })
                .map(|f| f.source.clone())
                .collect()
        };
        if due.is_empty() {
            return;
        }
        let Ok(assignment) = consumer.assignment() else {
            return;
        };
        let mut still = Vec::new();
        {
            let mut inflight = self.inflight.lock().expect("inflight lock");
            for tp in due {
                let flow = inflight.flow(&tp.topic, tp.partition);
                flow.fenced_at = None;
                if assignment.find_partition(&tp.topic, tp.partition).is_some() {
                    still.push(tp);
                }
            }
        }
        if still.is_empty() {
            return;
        }
        tracing::warn!(
            partitions = %still.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            "partitions fenced here are still assigned here by Kafka; claiming them again from the commit log"
        );
        let wanted = still
            .iter()
            .map(|tp| {
                let (low, high) = source::watermarks(consumer, tp);
                Wanted::assigned(tp.clone(), low, high)
            })
            .collect();
        for _ in &still {
            self.stats.metrics.rebalance("reclaimed");
        }
        let claimed = self.assigned(wanted);
        for (tp, Claimed { next: offset, .. }) in claimed {
            // Nothing is polled between the claim and the seek (this same
            // thread), and librdkafka drops what it fetched before the seek.
            if let Err(e) = consumer.seek(
                &tp.topic,
                tp.partition,
                rdkafka::Offset::Offset(offset),
                Duration::from_secs(10),
            ) {
                tracing::warn!(partition = %tp, offset, error = %e, "seeking a claimed partition failed; trying again later");
                self.fence(std::slice::from_ref(&tp));
            }
        }
    }
}

impl Rebalance for ConsumerShared {
    fn assigned(&self, wanted: Vec<Wanted>) -> BTreeMap<TopicPartition, Claimed> {
        let partitions: Vec<TopicPartition> = wanted.iter().map(|w| w.source.clone()).collect();
        // Assigned again without a revoke in between: what is held under
        // the old epoch ends here, so that none of it commits after the
        // new claim; it is consumed again from the log's next offset.
        let held: Vec<TopicPartition> = {
            let mut inflight = self.inflight.lock().expect("inflight lock");
            partitions
                .iter()
                .filter(|tp| inflight.flow(&tp.topic, tp.partition).epoch.is_some())
                .cloned()
                .collect()
        };
        if !held.is_empty() {
            tracing::warn!(
                partitions = %held.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
                "assigned again without a revoke: dropping what is held for them, to consume it again from the commit log"
            );
            self.drop_held(&held, None);
        }
        for _ in &partitions {
            self.stats.metrics.rebalance("assigned");
        }
        self.claim_for(wanted, &partitions)
    }

    fn revoked(&self, partitions: Vec<TopicPartition>) {
        if !self.stopping.load(Ordering::SeqCst) {
            // Commit before giving them up: whatever is held for them goes
            // into this checkpoint, which commits after those before it.
            let (done, committed) = bounded(1);
            self.barrier(Some(done));
            let _ = committed.recv();
        }
        for _ in &partitions {
            self.stats.metrics.rebalance("revoked");
        }
        self.release(&partitions, None);
        for worker in &self.workers {
            let _ = worker.send(WorkerMsg::Forget(partitions.clone()));
        }
    }

    fn closing(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    fn lost(&self, partitions: Vec<TopicPartition>) {
        tracing::warn!(
            partitions = %partitions.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            "partitions lost (session timeout): dropping what is held for them"
        );
        for _ in &partitions {
            self.stats.metrics.rebalance("lost");
        }
        self.drop_held(&partitions, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::unbounded;

    /// A partition assigned again with no revoke in between (a broker that
    /// reassigns without revoking, a rejoin after a missed callback): what
    /// the workers hold of the old epoch is aborted before any record of
    /// the new one reaches them, and no range of the old epoch is left for
    /// a checkpoint. Without it, the records consumed again from the log's
    /// next offset would be written beside the old ones, and committed
    /// twice under the new epoch's range.
    #[test]
    fn a_partition_assigned_again_without_a_revoke_ends_its_old_epoch() {
        let tp = TopicPartition {
            topic: "t".into(),
            partition: 0,
        };
        let (worker, inbox) = unbounded();
        let (events, coordinator) = unbounded();
        let shared = ConsumerShared::new(
            vec![worker],
            events,
            Arc::new(Budget::new(1 << 20, 1)),
            Arc::new(Stats::default()),
            512,
            1 << 20,
            1,
        );
        // The coordinator's part: every claim succeeds, from offset 0.
        std::thread::spawn(move || {
            let mut seq = 0;
            for event in coordinator {
                if let Event::Claim { wanted, reply } = event {
                    seq += 1;
                    let _ = reply.send(
                        wanted
                            .into_iter()
                            .map(|w| (w.source, Claimed { next: 0, seq }))
                            .collect(),
                    );
                }
            }
        });
        let consume = |offsets: std::ops::Range<i64>| {
            for offset in offsets {
                shared.take("t", 0, offset, false, |b| {
                    b.push(offset, None, None, Some(b"v"))
                });
            }
            shared.flush();
        };
        shared.assigned(vec![Wanted::assigned(tp.clone(), Some(0), Some(10))]);
        let first = shared.epoch(&tp).expect("claimed");
        consume(0..5);
        shared.assigned(vec![Wanted::assigned(tp.clone(), Some(0), Some(10))]);
        let second = shared.epoch(&tp).expect("claimed again");
        assert_ne!(first, second);
        assert!(
            !shared.inflight.lock().unwrap().sent.contains_key(&tp),
            "no range of the old epoch is left to commit"
        );
        consume(0..5);
        let seen: Vec<String> = inbox
            .try_iter()
            .map(|m| match m {
                WorkerMsg::Batch(b) => format!(
                    "batch claim {} offsets {:?}..{:?}",
                    b.claim,
                    b.first_offset(),
                    b.last_offset()
                ),
                WorkerMsg::Abort(p) => format!("abort {}", p.len()),
                _ => "other".into(),
            })
            .collect();
        assert_eq!(
            seen,
            [
                "batch claim 1 offsets Some(0)..Some(4)",
                "abort 1",
                "batch claim 2 offsets Some(0)..Some(4)",
            ]
        );
    }
}
