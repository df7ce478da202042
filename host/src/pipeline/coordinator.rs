//! Starts the pipeline and runs its coordinator: claims partitions, places
//! checkpoints on the interval, commits them in order, publishes, and stops
//! cleanly.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded, select, unbounded};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::budget::Budget;
use super::consumer::{ConsumerShared, Control};
use super::worker::{Sealed, Worker, WorkerMsg};
use super::{Event, RunError, RunSettings, Sent, Stats};
use crate::commit::{
    CommitLog, CommittedFile, Committer, OffsetRange, Owner, PluginStamp, Prepared, TopicPartition,
};
use crate::failpoints;
use crate::plugin::{Plugin, PluginRuntime, PluginWorker, Reload};
use crate::retry::{Deadline, GaveUp, Policy, retry_blocking};
use crate::sink::{SinkContext, discard};
use crate::source::{self, KafkaConsumer};
use crate::store::Location;

/// Asks a running pipeline to stop; clones share one signal.
#[derive(Clone)]
pub struct StopHandle(Sender<()>);

impl StopHandle {
    pub fn new() -> (Self, Receiver<()>) {
        let (tx, rx) = bounded(1);
        (Self(tx), rx)
    }

    pub fn stop(&self) {
        let _ = self.0.try_send(());
    }
}

/// What a run did, for the demo and the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub consumed: u64,
    pub kept: u64,
    pub dropped: u64,
    pub checkpoints: u64,
    pub commit_seq: u64,
    pub files: u64,
    /// Files sealed before their checkpoint to stay inside the budget.
    pub early_seals: u64,
    /// Times consumption paused on the memory budget.
    pub pauses: u64,
}

impl Summary {
    pub fn of(stats: &Stats) -> Self {
        Self {
            consumed: stats.consumed.load(Ordering::Relaxed),
            kept: stats.kept.load(Ordering::Relaxed),
            dropped: stats.dropped.load(Ordering::Relaxed),
            checkpoints: stats.checkpoints.load(Ordering::Relaxed),
            commit_seq: stats.commit_seq.load(Ordering::Relaxed),
            files: stats.files.load(Ordering::Relaxed),
            early_seals: stats.early_seals.load(Ordering::Relaxed),
            pauses: stats.pauses.load(Ordering::Relaxed),
        }
    }
}

/// Runs the pipeline until `stop` fires, then commits what was consumed and
/// returns. Fails fast on bad configuration, naming the setting.
pub fn run(
    settings: RunSettings,
    stats: Arc<Stats>,
    stop: Receiver<()>,
) -> Result<Summary, RunError> {
    failpoints::validate().map_err(|e| RunError::Config(format!("LINEAGE_FAILPOINTS: {e}")))?;
    if settings.workers == 0 {
        return Err(RunError::Config("--workers must be at least 1".into()));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("lineage-io")
        .enable_all()
        .build()
        .map_err(|e| RunError::Thread(format!("starting the I/O runtime: {e}")))?;
    let handle = runtime.handle().clone();

    let data = Location::open_with("OUTPUT_PATH", &settings.output, &settings.s3)?;
    let dropped = Location::open_with("DROPPED_PATH", &settings.dropped, &settings.s3)?;
    let wal = Location::open_with(
        "WRITE_AHEAD_COMMIT_LOG_PATH",
        &settings.commit_log,
        &settings.s3,
    )?;
    for location in [&data, &dropped, &wal] {
        handle.block_on(location.check_writable())?;
    }
    if settings.single_writer {
        tracing::warn!(
            "--single-writer: conditional writes are not checked; run exactly one instance"
        );
    } else {
        handle.block_on(wal.check_create_if_absent())?;
    }

    let plugin_runtime = PluginRuntime::new(settings.plugin.clone())?;
    let plugin = plugin_runtime.load(&settings.plugin_path)?;
    stats.metrics.plugin_in_use(plugin.identity());
    let owner = Owner {
        subtask: settings.subtask,
        incarnation: uuid::Uuid::new_v4().simple().to_string()[..16].to_owned(),
    };
    // Every retry loop of the run gives up at the same deadline, set the
    // moment a stop is asked for, whatever the coordinator is waiting on.
    let deadline = Deadline::default();
    let stop = forward_stop(stop, deadline.clone(), settings.shutdown_timeout)?;
    let policy = Policy::until(deadline.clone());
    let log = Arc::new(CommitLog::new(wal));
    let committer = handle
        .block_on(Committer::start(
            log.clone(),
            data.clone(),
            dropped.clone(),
            owner.clone(),
            policy.clone(),
        ))?
        .with_snapshot_every(settings.snapshot_every)
        .on_missing_offsets(settings.on_missing_offsets)
        .resetting_to(source::offset_reset(&settings.kafka));
    let first_checkpoint = committer.next_checkpoint();

    let (events_tx, events) = unbounded();
    let budget = Arc::new(Budget::new(settings.memory_budget, settings.workers));
    let mut worker_inboxes = Vec::new();
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    for index in 0..settings.workers {
        let (tx, rx) = bounded(4);
        worker_inboxes.push(tx);
        let worker = Worker {
            index,
            workers: settings.workers,
            cx: SinkContext::new(
                data.clone(),
                dropped.clone(),
                log.clone(),
                handle.clone(),
                owner.clone(),
                settings.files.clone(),
                plugin.clone(),
            )
            .with_policy(policy.clone()),
            plugin: PluginWorker::new(plugin.clone()),
            budget: budget.clone(),
            stats: stats.clone(),
            events: events_tx.clone(),
            checkpoint: first_checkpoint,
        };
        threads.push(
            std::thread::Builder::new()
                .name(format!("lineage-worker-{index}"))
                .spawn(move || worker.run(rx))
                .map_err(|e| RunError::Thread(e.to_string()))?,
        );
    }

    let shared = Arc::new(
        ConsumerShared::new(
            worker_inboxes.clone(),
            events_tx.clone(),
            budget.clone(),
            stats.clone(),
            settings.batch_records,
            settings.plugin.batch_bytes as usize,
            first_checkpoint,
        )
        .reclaiming_after(source::session_timeout(&settings.kafka))
        .resetting_to(source::offset_reset(&settings.kafka))
        .probing(settings.kafka.clone()),
    );
    let metrics = settings
        .metrics_address
        .map(crate::metrics::bind)
        .transpose()
        .map_err(RunError::Config)?;
    let consumer = source::consumer(&settings.kafka, shared.clone())?;
    let (control_tx, control) = unbounded();
    {
        let (shared, consumer) = (shared.clone(), consumer.clone());
        threads.push(
            std::thread::Builder::new()
                .name("lineage-consumer".into())
                .spawn(move || shared.run(consumer, control))
                .map_err(|e| RunError::Thread(e.to_string()))?,
        );
    }
    let _watcher = {
        let (shared, stats) = (shared.clone(), stats.clone());
        crate::plugin::watch(
            plugin_runtime,
            settings.plugin_path.clone(),
            &plugin,
            settings.plugin_watch,
            move |reload| match reload {
                Reload::Loaded(new) => {
                    stats.metrics.plugin_reload("loaded");
                    tracing::info!(plugin = %new.identity(), "plugin loaded and checked; it takes over at the next checkpoint");
                    shared.offer_plugin(new);
                }
                Reload::Failed(e) => {
                    stats.metrics.plugin_reload("failed");
                    tracing::warn!(error = %e, "plugin reload failed; keeping the plugin in use");
                }
            },
        )?
    };
    tracing::info!(
        topic = %settings.kafka.topic,
        group = %settings.kafka.group_id,
        subtask = owner.subtask,
        workers = settings.workers,
        plugin = %plugin.identity(),
        checkpoint_interval = %humantime::format_duration(settings.checkpoint_interval),
        "pipeline running"
    );

    if let Some(listener) = metrics {
        if let Ok(address) = listener.local_addr() {
            tracing::info!(address = %address, "serving /metrics, /healthz and /readyz");
        }
        handle.spawn(crate::metrics::serve(
            listener,
            stats.clone(),
            budget.clone(),
        ));
    }
    stats.health.set_ready();

    // On the I/O runtime, not a pipeline thread: it keeps reporting while
    // the store or the broker holds those up.
    let progress = settings.progress_interval.map(|every| {
        let (stats, budget) = (stats.clone(), budget.clone());
        handle.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                tracing::info!(
                    partitions = stats.partitions.load(Ordering::Relaxed),
                    lag = stats.lag.load(Ordering::Relaxed),
                    consumed = stats.consumed.load(Ordering::Relaxed),
                    kept = stats.kept.load(Ordering::Relaxed),
                    dropped = stats.dropped.load(Ordering::Relaxed),
                    checkpoints = stats.checkpoints.load(Ordering::Relaxed),
                    budget_used = budget.used(),
                    budget_pauses = stats.pauses.load(Ordering::Relaxed),
                    "progress"
                );
            }
        })
    });

    let mut coordinator = Coordinator {
        committer,
        runtime: handle,
        consumer,
        shared,
        control: control_tx,
        stats: stats.clone(),
        workers: settings.workers,
        interval: settings.checkpoint_interval,
        shutdown_timeout: settings.shutdown_timeout,
        plugin: stamp(&plugin),
        data,
        dropped,
        log,
        pending: VecDeque::new(),
        early: HashMap::new(),
        barrier_asked: false,
        deadline,
        policy,
        stopping: false,
        consumer_stopped: false,
    };
    let result = coordinator.run(events, stop);
    if result.is_err() {
        stats.health.set_failed();
    }
    if let Some(progress) = progress {
        progress.abort();
    }
    if let Err(e) = result {
        // Nothing more is committed; what was not is consumed again at the
        // next start. Threads that are stuck (on the store, in a
        // rebalance) are not waited for: the process exits anyway.
        for inbox in &worker_inboxes {
            let _ = inbox.try_send(WorkerMsg::Stop);
        }
        let _ = coordinator.control.send(Control::Stop);
        drop(coordinator);
        runtime.shutdown_background();
        return Err(e);
    }
    for inbox in &worker_inboxes {
        let _ = inbox.send(WorkerMsg::Stop);
    }
    let consumer = coordinator.consumer.clone();
    drop(coordinator);
    for thread in threads {
        let _ = thread.join();
    }
    close(consumer);
    drop(runtime);
    Ok(Summary::of(&stats))
}

/// Sets the run's deadline the moment a stop is asked for, then passes the
/// stop on to the coordinator: a coordinator stuck in a retry learns of it
/// through the deadline.
fn forward_stop(
    stop: Receiver<()>,
    deadline: Deadline,
    timeout: Duration,
) -> Result<Receiver<()>, RunError> {
    let (tx, rx) = bounded(1);
    std::thread::Builder::new()
        .name("lineage-stop".into())
        .spawn(move || {
            if stop.recv().is_ok() {
                deadline.set(Instant::now() + timeout);
                let _ = tx.send(());
            }
        })
        .map_err(|e| RunError::Thread(e.to_string()))?;
    Ok(rx)
}

/// Closes the consumer (it leaves the group, so that the others get its
/// partitions at once) but waits at most a few seconds: librdkafka's close
/// waits on the group coordinator, and everything is committed already.
fn close(consumer: Arc<KafkaConsumer>) {
    const CLOSE_WAIT: Duration = Duration::from_secs(10);
    let (closed, done) = bounded(1);
    let spawned = std::thread::Builder::new()
        .name("lineage-close".into())
        .spawn(move || {
            drop(consumer);
            let _ = closed.send(());
        });
    if spawned.is_ok() && done.recv_timeout(CLOSE_WAIT).is_err() {
        tracing::warn!(
            wait = ?CLOSE_WAIT,
            "the Kafka consumer did not close in time; exiting without leaving the group (it times out of it)"
        );
    }
}

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

struct Coordinator {
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
    data: Location,
    dropped: Location,
    log: Arc<CommitLog>,
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
    fn run(&mut self, events: Receiver<Event>, mut stop: Receiver<()>) -> Result<(), RunError> {
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
                    Err(_) => return Err(RunError::Thread("all pipeline threads ended".into())),
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
                let what = format!(
                    "claim {}",
                    wanted
                        .iter()
                        .map(|w| w.source.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                );
                let claimed = self.retrying(&what, |c| {
                    let deadline = c.deadline.clone();
                    c.runtime
                        .clone()
                        .block_on(deadline.bound(&what, c.committer.claim(&wanted)))
                        .map_err(RunError::from)
                })?;
                self.count_moves();
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
                self.commit_ready()?;
            }
            Event::Disowned {
                partition,
                claim,
                error,
            } => {
                if self.shared.claim(&partition) != Some(claim) {
                    tracing::debug!(partition = %partition, claim, error = %error, "an upload of an earlier claim is gone; nothing to do");
                    return Ok(());
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
            Event::Swapped(plugin) => {
                tracing::info!(
                    plugin = %plugin.identity(),
                    from_checkpoint = self.pending.back().map_or(self.committer.next_checkpoint(), |p| p.checkpoint + 1),
                    "plugin switched"
                );
                self.stats.metrics.plugin_in_use(plugin.identity());
                self.plugin = stamp(&plugin);
            }
            Event::ConsumerStopped => self.consumer_stopped = true,
            Event::Failed(e) => return Err(e),
        }
        Ok(())
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

    fn commit(&mut self, pending: Pending) -> Result<(), RunError> {
        let mut records: BTreeMap<TopicPartition, u64> = BTreeMap::new();
        let mut files = Vec::new();
        for sealed in pending.sealed {
            for (tp, n) in sealed.records {
                *records.entry(tp).or_default() += n;
            }
            files.extend(sealed.files);
        }
        // A range consumed under a claim that has ended since (the
        // partition was fenced, lost or claimed again) is left out, with
        // its files: its records are consumed again under the new claim.
        let (current, stale): (BTreeMap<_, _>, BTreeMap<_, _>) = pending
            .sent
            .into_iter()
            .partition(|(tp, sent)| self.shared.epoch(tp) == Some(sent.epoch));
        let state = self.committer.state();
        let mut ranges = Vec::new();
        for (tp, sent) in &current {
            let Some(p) = state.partition(tp) else {
                return Err(RunError::Thread(format!(
                    "{tp} was consumed without a claim"
                )));
            };
            ranges.push(OffsetRange {
                source: tp.clone(),
                first: p.next,
                last: sent.last,
                records: records.get(tp).copied().unwrap_or(0),
            });
        }
        // Files of a partition without a current range (fenced between the
        // barrier and its seal) are never committed.
        let (files, dropped): (Vec<_>, Vec<_>) = files
            .into_iter()
            .partition(|f| current.contains_key(&f.source));
        if !stale.is_empty() || !dropped.is_empty() {
            tracing::info!(
                checkpoint = pending.checkpoint,
                partitions = %stale.keys().map(ToString::to_string).collect::<Vec<_>>().join(","),
                files = dropped.len(),
                "left out of the checkpoint: partitions no longer claimed here"
            );
            for file in dropped {
                self.discard(file.kind, &file.source, &file.id, &file.key, &file.publish);
            }
        }
        let files: Vec<CommittedFile> = files
            .into_iter()
            .map(|f| {
                let location = self.location(f.kind);
                f.into_committed(location)
            })
            .collect();
        let prepared = Prepared {
            checkpoint: pending.checkpoint,
            plugin: pending.plugin,
            ranges,
            files,
        };
        failpoints::hit("after-seal").map_err(crate::commit::CommitError::from)?;
        let started = Instant::now();
        let what = format!("commit checkpoint {}", prepared.checkpoint);
        let published = self.retrying(&what, |c| {
            let deadline = c.deadline.clone();
            c.runtime
                .clone()
                .block_on(deadline.bound(&what, c.committer.commit(&prepared)))
                .map_err(RunError::from)
        })?;
        if !published.fenced.is_empty() {
            self.stats
                .fenced
                .fetch_add(published.fenced.len() as u64, Ordering::Relaxed);
            for file in prepared
                .files
                .iter()
                .filter(|f| published.fenced.contains(&f.source))
            {
                self.discard(file.kind, &file.source, &file.id, &file.key, &file.publish);
            }
            self.shared.fence(&published.fenced);
            self.sweep(&published.fenced);
        }
        if let Some(commit) = &published.commit {
            let what = format!("publish checkpoint {}", commit.checkpoint);
            self.retrying(&what, |c| {
                let deadline = c.deadline.clone();
                c.runtime
                    .clone()
                    .block_on(deadline.bound(&what, c.committer.publish(commit)))
                    .map_err(RunError::from)
            })?;
            self.commit_kafka_offsets(&commit.ranges);
            failpoints::hit("after-kafka-commit").map_err(crate::commit::CommitError::from)?;
            self.stats.checkpoints.fetch_add(1, Ordering::Relaxed);
            self.stats.commit_seq.store(commit.seq, Ordering::Relaxed);
            self.stats
                .files
                .fetch_add(commit.files.len() as u64, Ordering::Relaxed);
            for file in &commit.files {
                let output = match file.kind {
                    crate::commit::FileKind::Data => "data",
                    crate::commit::FileKind::Dropped => "dropped",
                };
                self.stats.metrics.written(output, file.bytes);
            }
            self.stats
                .metrics
                .checkpoint_took(started.elapsed().as_secs_f64());
            tracing::info!(
                checkpoint = commit.checkpoint,
                commit_seq = commit.seq,
                files = commit.files.len(),
                records = commit.ranges.iter().map(|r| r.records).sum::<u64>(),
                ms = started.elapsed().as_millis() as u64,
                "checkpoint committed"
            );
        }
        for done in pending.done {
            let _ = done.send(());
        }
        Ok(())
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
    fn discard(
        &self,
        kind: crate::commit::FileKind,
        source: &TopicPartition,
        id: &str,
        key: &str,
        publish: &crate::commit::Publish,
    ) {
        self.runtime.block_on(discard(
            self.location(kind),
            &self.log,
            source,
            id,
            key,
            &publish.staging(),
        ));
    }

    fn location(&self, kind: crate::commit::FileKind) -> &Location {
        match kind {
            crate::commit::FileKind::Data => &self.data,
            crate::commit::FileKind::Dropped => &self.dropped,
        }
    }

    /// Repeats `op` under the run's one retry policy: while it fails with a
    /// retryable error, with backoff, until the shutdown deadline.
    fn retrying<T>(
        &mut self,
        what: &str,
        mut op: impl FnMut(&mut Self) -> Result<T, RunError>,
    ) -> Result<T, RunError> {
        let policy = self.policy.clone();
        retry_blocking(what, &policy, || op(self))
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
