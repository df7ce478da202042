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

use super::budget::Budget;
use super::worker::WorkerMsg;
use super::{Event, Sent, Stats};
use crate::commit::TopicPartition;
use crate::plugin::Plugin;
use crate::source::{self, Fetched, KafkaConsumer, Rebalance};

/// How often the consumer looks for fenced partitions to claim again and
/// refreshes its lag.
const HOUSEKEEPING: Duration = Duration::from_millis(500);

pub enum Control {
    /// Place a checkpoint barrier now.
    Barrier,
    /// Place a last barrier and stop consuming.
    Stop,
}

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
    /// When another owner fenced it here, for claiming it again if Kafka
    /// keeps assigning it to this instance.
    fenced_at: Option<Instant>,
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
            fenced_at: None,
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
}

impl ConsumerShared {
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
        }
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

    fn push(&self, m: &rdkafka::message::BorrowedMessage<'_>) {
        let mut guard = self.inflight.lock().expect("inflight lock");
        let inflight = &mut *guard;
        let flow = inflight.flow(m.topic(), m.partition());
        let Some(epoch) = flow.epoch else {
            return;
        };
        // A record at or below one already taken would be written twice: a
        // broker that serves one again (seen with tansu 0.6) must not break
        // exactly once.
        let offset = m.offset();
        if let Some(next) = flow.expected.filter(|next| offset < *next) {
            self.stats.redelivered.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(partition = %flow.source, offset, expected = next, "broker served an offset already consumed; skipping it");
            return;
        }
        flow.expected = Some(offset + 1);
        self.stats.consumed.fetch_add(1, Ordering::Relaxed);
        let batch = flow
            .pending
            .get_or_insert_with(|| Fetched::new(flow.source.clone()));
        batch.push_message(m);
        if batch.len() >= self.batch_records || batch.bytes() >= self.batch_bytes {
            let batch = flow.pending.take().expect("just filled");
            self.send(&mut inflight.sent, epoch, batch);
        }
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
                let lag = source::lag(&consumer);
                self.stats.metrics.set_lag(&lag);
                self.stats.lag.store(
                    lag.values().filter_map(source::Lag::records).sum::<i64>() as u64,
                    Ordering::Relaxed,
                );
                housekeeping_due = Instant::now() + HOUSEKEEPING;
            }
            // Backpressure: pause rather than stop polling, which would
            // take the consumer out of the group.
            if !paused && self.budget.over() {
                if let Ok(assignment) = consumer.assignment() {
                    let _ = consumer.pause(&assignment);
                }
                paused = true;
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
                tracing::info!("memory back under budget; resuming consumption");
            }
            match consumer.poll(Duration::from_millis(50)) {
                None => self.flush(),
                Some(Ok(m)) => self.push(&m),
                Some(Err(e)) => {
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
            .map(|tp| (tp.clone(), source::earliest(consumer, tp)))
            .collect();
        for _ in &still {
            self.stats.metrics.rebalance("reclaimed");
        }
        let next = self.assigned(wanted);
        for (tp, offset) in next {
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
    fn assigned(&self, partitions: Vec<(TopicPartition, i64)>) -> BTreeMap<TopicPartition, i64> {
        let (reply, answer) = bounded(1);
        let wanted: Vec<TopicPartition> = partitions.iter().map(|(tp, _)| tp.clone()).collect();
        let _ = self.events.send(Event::Claim { partitions, reply });
        let next = answer.recv().unwrap_or_default();
        let mut inflight = self.inflight.lock().expect("inflight lock");
        inflight.epochs += 1;
        let epoch = inflight.epochs;
        for tp in &wanted {
            let flow = inflight.flow(&tp.topic, tp.partition);
            flow.pending = None;
            flow.fenced_at = None;
            flow.expected = next.get(tp).copied();
            // Not claimed (the coordinator failed): not ours.
            flow.epoch = flow.expected.map(|_| epoch);
            self.stats.metrics.rebalance("assigned");
        }
        self.stats
            .partitions
            .store(inflight.claimed(), Ordering::Relaxed);
        next
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
