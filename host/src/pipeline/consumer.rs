//! The consumer thread: polls Kafka, cuts records into per-partition
//! batches for the workers, places checkpoint barriers in the workers'
//! queues, and handles rebalances (inside `poll`, on this same thread).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;

use super::budget::Budget;
use super::worker::WorkerMsg;
use super::{Event, Stats};
use crate::commit::TopicPartition;
use crate::source::{Fetched, KafkaConsumer, Rebalance};

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
    /// Another owner took it; its records are skipped until it is assigned
    /// again.
    fenced: bool,
}

/// Batches in the making and what was sent since the last barrier; only the
/// consumer thread touches it, the lock is for the rebalance callback.
struct Inflight {
    /// Indexed by partition number: the hot path looks a record's
    /// partition up once, without hashing or allocating.
    flows: Vec<Option<Flow>>,
    /// The last offset sent to a worker, per partition, since the barrier.
    sent: BTreeMap<TopicPartition, i64>,
    /// The number the next non-empty checkpoint gets.
    checkpoint: u64,
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
            fenced: false,
        })
    }

    fn flows(&mut self) -> impl Iterator<Item = &mut Flow> {
        self.flows.iter_mut().flatten()
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
            }),
            workers,
            events,
            budget,
            stats,
            batch_records,
            batch_bytes,
            stopping: AtomicBool::new(false),
        }
    }

    fn worker(&self, tp: &TopicPartition) -> &Sender<WorkerMsg> {
        &self.workers[tp.partition.unsigned_abs() as usize % self.workers.len()]
    }

    fn send(&self, sent: &mut BTreeMap<TopicPartition, i64>, batch: Fetched) {
        if let Some(last) = batch.last_offset() {
            sent.insert(batch.source.clone(), last);
        }
        self.budget.fetched(batch.bytes());
        let _ = self.worker(&batch.source).send(WorkerMsg::Batch(batch));
    }

    fn push(&self, m: &rdkafka::message::BorrowedMessage<'_>) {
        let mut guard = self.inflight.lock().expect("inflight lock");
        let inflight = &mut *guard;
        let flow = inflight.flow(m.topic(), m.partition());
        if flow.fenced {
            return;
        }
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
            self.send(&mut inflight.sent, batch);
        }
    }

    /// Sends every partial batch on: when Kafka is idle, latency matters
    /// more than batch size.
    fn flush(&self) {
        let mut guard = self.inflight.lock().expect("inflight lock");
        let inflight = &mut *guard;
        let batches: Vec<Fetched> = inflight.flows().filter_map(|f| f.pending.take()).collect();
        for batch in batches {
            self.send(&mut inflight.sent, batch);
        }
    }

    /// Places a barrier after everything sent so far. Returns false when
    /// nothing was consumed since the last one (no checkpoint needed).
    fn barrier(&self, done: Option<Sender<()>>) -> bool {
        self.flush();
        let mut inflight = self.inflight.lock().expect("inflight lock");
        if inflight.sent.is_empty() {
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
        true
    }

    /// Runs the poll loop until told to stop.
    pub fn run(self: Arc<Self>, consumer: Arc<KafkaConsumer>, control: Receiver<Control>) {
        let mut paused = false;
        let mut last_error: Option<Instant> = None;
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
    /// in the workers.
    pub fn fence(&self, partitions: &[TopicPartition]) {
        let mut inflight = self.inflight.lock().expect("inflight lock");
        for tp in partitions {
            let flow = inflight.flow(&tp.topic, tp.partition);
            flow.fenced = true;
            flow.pending = None;
            flow.expected = None;
            inflight.sent.remove(tp);
        }
        drop(inflight);
        for worker in &self.workers {
            let _ = worker.send(WorkerMsg::Abort(partitions.to_vec()));
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
        for tp in &wanted {
            let flow = inflight.flow(&tp.topic, tp.partition);
            flow.fenced = false;
            flow.expected = next.get(tp).copied();
        }
        next
    }

    fn revoked(&self, partitions: Vec<TopicPartition>) {
        if !self.stopping.load(Ordering::SeqCst) {
            // Commit before giving them up: whatever is held for them goes
            // into this checkpoint.
            let (done, committed) = bounded(1);
            if self.barrier(Some(done)) {
                let _ = committed.recv();
            }
        }
        let mut inflight = self.inflight.lock().expect("inflight lock");
        for tp in &partitions {
            inflight.flow(&tp.topic, tp.partition).expected = None;
        }
        drop(inflight);
        for worker in &self.workers {
            let _ = worker.send(WorkerMsg::Forget(partitions.clone()));
        }
    }

    fn lost(&self, partitions: Vec<TopicPartition>) {
        tracing::warn!(
            partitions = %partitions.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            "partitions lost (session timeout): dropping what is held for them"
        );
        self.fence(&partitions);
    }
}
