//! Starts the pipeline and runs its coordinator: claims partitions, places
//! checkpoints on the interval, commits them in order, publishes, and stops
//! cleanly.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::consumer::ConsumerShared;
use super::error::RunError;
use super::messages::{Control, Event, Sealed, Sent};
use super::settings::RunSettings;
use crate::commit::{Claimed, Commit, Committer, OffsetRange, PluginStamp, Prepared, Wanted};
use crate::failpoints::{self, Failpoint};
use crate::metrics::Stats;
use crate::partition::TopicPartition;
use crate::plugin::Plugin;
use crate::retry::{Deadline, GaveUp, Policy, retry_blocking};
use crate::source::KafkaConsumer;
use crate::staging::{SealedFile, Stager};

fn stamp(plugin: &Plugin) -> PluginStamp {
    let identity = plugin.identity();
    PluginStamp {
        name: identity.name.clone(),
        version: identity.version.clone(),
        sha256: identity.sha256.clone(),
    }
}

/// One checkpoint on its way to the log.
struct Pending {
    checkpoint: u64,
    /// The build that wrote its files.
    plugin: PluginStamp,
    sent: BTreeMap<TopicPartition, Sent>,
    /// Fired once it is committed (or left out); more than one when a
    /// revocation waits on a checkpoint already placed.
    done: Vec<Sender<()>>,
    sealed: Vec<Sealed>,
}

pub(super) struct Coordinator {
    committer: Committer,
    runtime: tokio::runtime::Handle,
    consumer: Arc<KafkaConsumer>,
    shared: Arc<ConsumerShared>,
    control: Sender<Control>,
    stats: Arc<Stats>,
    workers: usize,
    interval: Duration,
    shutdown_timeout: Duration,
    /// The build of the checkpoints placed from now on.
    plugin: PluginStamp,
    stager: Stager,
    pending: VecDeque<Pending>,
    /// Workers' reports that arrived before their barrier's.
    early: HashMap<u64, Vec<Sealed>>,
    barrier_asked: bool,
    /// Set when a stop begins: SHUTDOWN_TIMEOUT from then.
    deadline: Deadline,
    policy: Policy,
    stopping: bool,
    consumer_stopped: bool,
}

impl Coordinator {
    pub(super) fn new(
        settings: &RunSettings,
        committer: Committer,
        stager: Stager,
        plugin: &Plugin,
        policy: Policy,
        (consumer, shared, control): (Arc<KafkaConsumer>, Arc<ConsumerShared>, Sender<Control>),
        stats: Arc<Stats>,
    ) -> Self {
        Self {
            committer,
            runtime: stager.runtime.clone(),
            consumer,
            shared,
            control,
            stats,
            workers: settings.workers,
            interval: settings.checkpoint_interval,
            shutdown_timeout: settings.shutdown_timeout,
            plugin: stamp(plugin),
            stager,
            pending: VecDeque::new(),
            early: HashMap::new(),
            barrier_asked: false,
            deadline: policy.deadline.clone(),
            policy,
            stopping: false,
            consumer_stopped: false,
        }
    }

    /// After a clean stop: the workers finish; the consumer is closed by
    /// the caller once they have.
    pub(super) fn into_consumer(self) -> Arc<KafkaConsumer> {
        self.shared.stop_workers(true);
        self.consumer.clone()
    }

    /// After a failure: every thread is told to stop, none is waited for.
    pub(super) fn stop_all(&self) {
        self.shared.stop_workers(false);
        let _ = self.control.send(Control::Stop);
    }

    pub(super) fn run(
        &mut self,
        events: Receiver<Event>,
        mut stop: Receiver<()>,
    ) -> Result<(), RunError> {
        let mut next_due = Instant::now() + self.interval;
        loop {
            if self.consumer_stopped && self.pending.is_empty() {
                return Ok(());
            }
            // Whatever the stop waits for (a worker's upload, the consumer
            // inside a rebalance), it waits no longer than this.
            if self.deadline.passed() {
                tracing::error!(
                    consumer_stopped = self.consumer_stopped,
                    pending = %self
                        .pending
                        .iter()
                        .map(|p| format!("checkpoint {} sealed by {}/{} workers", p.checkpoint, p.sealed.len(), self.workers))
                        .collect::<Vec<_>>()
                        .join("; "),
                    "shutdown deadline passed"
                );
                return Err(RunError::ShutdownTimeout(self.shutdown_timeout));
            }
            let mut wait = next_due.saturating_duration_since(Instant::now());
            if let Some(deadline) = self.deadline.at() {
                wait = wait.min(deadline.saturating_duration_since(Instant::now()));
            }
            select! {
                recv(events) -> event => match event {
                    Ok(event) => self.handle(event)?,
                    Err(_) => return Err(RunError::Invariant("all pipeline threads ended".into())),
                },
                // Once: the sender is gone after it (a disconnected channel
                // would be ready on every turn).
                recv(stop) -> _ => {
                    stop = crossbeam_channel::never();
                    self.begin_stop();
                }
                default(wait) => {
                    if !self.stopping && !self.barrier_asked && self.pending.is_empty() {
                        self.barrier_asked = true;
                        let _ = self.control.send(Control::Barrier);
                    }
                    next_due = Instant::now() + self.interval;
                }
            }
        }
    }

    fn begin_stop(&mut self) {
        if !self.stopping {
            self.stopping = true;
            tracing::info!(shutdown_timeout = ?self.shutdown_timeout, "stopping: committing what was consumed");
            self.stats.health.set_stopping();
            self.deadline.set(Instant::now() + self.shutdown_timeout);
            let _ = self.control.send(Control::Stop);
        }
    }

    fn handle(&mut self, event: Event) -> Result<(), RunError> {
        match event {
            Event::Claim { wanted, reply } => {
                let claimed = self.claim(&wanted)?;
                let _ = reply.send(claimed);
            }
            Event::Barrier {
                checkpoint,
                sent,
                done,
            } => {
                self.barrier_asked = false;
                let sealed = self.early.remove(&checkpoint).unwrap_or_default();
                self.pending.push_back(Pending {
                    checkpoint,
                    plugin: self.plugin.clone(),
                    sent,
                    done: done.into_iter().collect(),
                    sealed,
                });
                self.commit_ready()?;
            }
            Event::Idle => self.barrier_asked = false,
            Event::Drained { done } => match self.pending.back_mut() {
                Some(last) => last.done.push(done),
                None => {
                    let _ = done.send(());
                }
            },
            Event::Sealed(sealed) => {
                self.add_sealed(sealed);
                self.commit_ready()?;
            }
            Event::Disowned {
                partition,
                claim,
                error,
            } => self.disowned(partition, claim, &error),
            Event::Swapped(plugin) => self.swapped(&plugin),
            Event::ConsumerStopped => self.consumer_stopped = true,
            Event::Failed(e) => return Err(e),
        }
        Ok(())
    }

    fn claim(&mut self, wanted: &[Wanted]) -> Result<BTreeMap<TopicPartition, Claimed>, RunError> {
        let sources: Vec<String> = wanted.iter().map(|w| w.source.to_string()).collect();
        let what = format!("claim {}", sources.join(","));
        let claimed = retry_blocking(&what, &self.policy.clone(), || {
            self.runtime
                .block_on(self.deadline.bound(&what, self.committer.claim(wanted)))
                .map_err(RunError::from)
        })?;
        self.count_moves();
        self.stats.status.log(self.committer.state());
        Ok(claimed)
    }

    fn add_sealed(&mut self, sealed: Sealed) {
        match self
            .pending
            .iter_mut()
            .find(|p| p.checkpoint == sealed.checkpoint)
        {
            Some(p) => p.sealed.push(sealed),
            None => self
                .early
                .entry(sealed.checkpoint)
                .or_default()
                .push(sealed),
        }
    }

    fn disowned(&mut self, partition: TopicPartition, claim: u64, error: &crate::sink::SinkError) {
        if self.shared.claim(&partition) != Some(claim) {
            tracing::debug!(partition = %partition, claim, error = %error, "an upload of an earlier claim is gone; nothing to do");
            return;
        }
        tracing::warn!(
            partition = %partition,
            error = %error,
            "a file's upload is gone: another owner took the partition; dropping what is held for it"
        );
        self.stats.fenced.fetch_add(1, Ordering::Relaxed);
        self.shared.fence(std::slice::from_ref(&partition));
        self.sweep(std::slice::from_ref(&partition));
    }

    fn swapped(&mut self, plugin: &Plugin) {
        tracing::info!(
            plugin = %plugin.identity(),
            from_checkpoint = self.pending.back().map_or(self.committer.next_checkpoint(), |p| p.checkpoint + 1),
            "plugin switched"
        );
        self.stats.metrics.plugin_in_use(plugin.identity());
        self.stats.status.plugin(plugin.identity());
        self.plugin = stamp(plugin);
    }

    /// Commits checkpoints, in order, once every worker has sealed its part.
    fn commit_ready(&mut self) -> Result<(), RunError> {
        while self
            .pending
            .front()
            .is_some_and(|p| p.sealed.len() == self.workers)
        {
            let pending = self.pending.pop_front().expect("checked");
            self.commit(pending)?;
        }
        Ok(())
    }

    fn commit(&mut self, mut pending: Pending) -> Result<(), RunError> {
        let started = Instant::now();
        let done = std::mem::take(&mut pending.done);
        let prepared = self.prepare(pending)?;
        failpoints::hit(Failpoint::AfterSeal).map_err(crate::commit::CommitError::from)?;
        let what = format!("commit checkpoint {}", prepared.checkpoint);
        let published = retry_blocking(&what, &self.policy.clone(), || {
            self.runtime
                .block_on(self.deadline.bound(&what, self.committer.commit(&prepared)))
                .map_err(RunError::from)
        })?;
        if !published.fenced.is_empty() {
            self.fenced(&prepared, &published.fenced);
        }
        if let Some(commit) = &published.commit {
            let sealed_at = std::time::SystemTime::now() - started.elapsed();
            self.stats
                .status
                .committed(self.committer.state(), commit, sealed_at);
            self.publish(commit)?;
            self.count_commit(commit, started);
        }
        for done in done {
            let _ = done.send(());
        }
        Ok(())
    }

    /// The checkpoint as the committer takes it: a range per partition
    /// still claimed under the epoch it was consumed in, and the files of
    /// those partitions. The rest is discarded: its records are consumed
    /// again under the new claim.
    fn prepare(&mut self, pending: Pending) -> Result<Prepared, RunError> {
        let mut records: BTreeMap<TopicPartition, u64> = BTreeMap::new();
        let mut files = Vec::new();
        for sealed in pending.sealed {
            for (tp, n) in sealed.records {
                *records.entry(tp).or_default() += n;
            }
            files.extend(sealed.files);
        }
        let (current, stale): (BTreeMap<_, _>, BTreeMap<_, _>) = pending
            .sent
            .into_iter()
            .partition(|(tp, sent)| self.shared.epoch(tp) == Some(sent.epoch));
        let ranges = self.ranges(&current, &records)?;
        // Files of a partition without a current range (fenced between the
        // barrier and its seal) are never committed.
        let (files, left_out): (Vec<_>, Vec<_>) = files
            .into_iter()
            .partition(|f| current.contains_key(&f.source));
        if !stale.is_empty() || !left_out.is_empty() {
            tracing::info!(
                checkpoint = pending.checkpoint,
                partitions = %stale.keys().map(ToString::to_string).collect::<Vec<_>>().join(","),
                files = left_out.len(),
                "left out of the checkpoint: partitions no longer claimed here"
            );
            for file in &left_out {
                self.discard(file);
            }
        }
        Ok(Prepared {
            checkpoint: pending.checkpoint,
            plugin: pending.plugin,
            ranges,
            files: Arc::new(files),
        })
    }

    fn ranges(
        &self,
        current: &BTreeMap<TopicPartition, Sent>,
        records: &BTreeMap<TopicPartition, u64>,
    ) -> Result<Vec<OffsetRange>, RunError> {
        let state = self.committer.state();
        current
            .iter()
            .map(|(tp, sent)| {
                let p = state.partition(tp).ok_or_else(|| {
                    RunError::Invariant(format!("{tp} was consumed without a claim"))
                })?;
                Ok(OffsetRange {
                    source: tp.clone(),
                    first: p.next,
                    last: sent.last,
                    records: records.get(tp).copied().unwrap_or(0),
                })
            })
            .collect()
    }

    /// The log fenced these partitions while the checkpoint was on its way:
    /// their files go, and what the workers hold for them.
    fn fenced(&mut self, prepared: &Prepared, fenced: &[TopicPartition]) {
        self.stats
            .fenced
            .fetch_add(fenced.len() as u64, Ordering::Relaxed);
        for file in prepared.files.iter().filter(|f| fenced.contains(&f.source)) {
            self.discard(file);
        }
        self.shared.fence(fenced);
        self.sweep(fenced);
    }

    fn publish(&mut self, commit: &Commit) -> Result<(), RunError> {
        let what = format!("publish checkpoint {}", commit.checkpoint);
        retry_blocking(&what, &self.policy.clone(), || {
            self.runtime
                .block_on(self.deadline.bound(&what, self.committer.publish(commit)))
                .map_err(RunError::from)
        })?;
        self.commit_kafka_offsets(&commit.ranges);
        failpoints::hit(Failpoint::AfterKafkaCommit).map_err(crate::commit::CommitError::from)?;
        Ok(())
    }

    /// The checkpoint count goes last: a reader that sees it has every
    /// other figure of the checkpoint too.
    fn count_commit(&self, commit: &Commit, started: Instant) {
        self.stats.commit_seq.store(commit.seq, Ordering::Relaxed);
        self.stats
            .files
            .fetch_add(commit.files.len() as u64, Ordering::Relaxed);
        for file in commit.files.iter() {
            self.stats.metrics.written(file.kind, file.bytes);
        }
        self.stats
            .metrics
            .checkpoint_took(started.elapsed().as_secs_f64());
        self.stats.status.published(commit.seq, started.elapsed());
        self.stats.checkpoints.fetch_add(1, Ordering::SeqCst);
        tracing::info!(
            checkpoint = commit.checkpoint,
            commit_seq = commit.seq,
            files = commit.files.len(),
            records = commit.ranges.iter().map(|r| r.records).sum::<u64>(),
            ms = started.elapsed().as_millis() as u64,
            "checkpoint committed"
        );
    }

    /// For lag monitoring only: the commit log is what restarts use.
    fn commit_kafka_offsets(&self, ranges: &[OffsetRange]) {
        let mut tpl = TopicPartitionList::new();
        for r in ranges {
            let _ = tpl.add_partition_offset(
                &r.source.topic,
                r.source.partition,
                Offset::Offset(r.last + 1),
            );
        }
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
            tracing::warn!(error = %e, "committing offsets to Kafka failed (lag metrics only)");
        }
    }

    /// Drops a file that will not be committed, with its staging entry.
    fn discard(&self, file: &SealedFile) {
        self.stager.discard(file);
    }

    /// After partitions were fenced: what this instance staged for them
    /// and what nobody names goes (see `Committer::sweep_fenced`).
    fn sweep(&mut self, partitions: &[TopicPartition]) {
        for tp in partitions {
            let deadline = self.deadline.clone();
            let swept = self.runtime.clone().block_on(async {
                deadline
                    .bound::<(), GaveUp>("sweep", async {
                        self.committer.sweep_fenced(tp).await;
                        Ok(())
                    })
                    .await
            });
            if swept.is_err() {
                return;
            }
        }
    }

    /// Counts the claims that skipped offsets or reset a partition.
    fn count_moves(&mut self) {
        for claim in self.committer.take_moves() {
            let Some(moved) = &claim.moved else { continue };
            if claim.next > moved.from {
                let n = (claim.next - moved.from) as u64;
                self.stats.skipped.fetch_add(n, Ordering::Relaxed);
            } else {
                self.stats.resets.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
