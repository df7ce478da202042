//! Putting a run together, in the order it starts: check the settings, open
//! the outputs and check the store, load the plugin, start the committer,
//! spawn the workers, spawn the consumer, watch the plugin, serve the
//! metrics; then coordinate until stopped, and take it apart. `lineage
//! run`, `lineage demo` and `lineage bench kafka` run exactly this;
//! `lineage bench pipeline` uses its first steps ([`Parts`]) without Kafka.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use tokio::runtime::{Handle, Runtime};

use super::consumer::ConsumerShared;
use super::coordinator::Coordinator;
use super::error::RunError;
use super::messages::{Control, Event, WorkerMsg};
use super::settings::RunSettings;
use super::stop::forward_stop;
use super::worker::Worker;
use crate::budget::Budget;
use crate::commit::{CommitLog, Committer, Tables};
use crate::failpoints;
use crate::metrics::{Stats, Summary};
use crate::partition::Owner;
use crate::plugin::{Plugin, PluginRuntime, PluginWorker, Reload, Watcher};
use crate::registry::{InputFormat, Reader, Registry};
use crate::retry::{Deadline, Policy};
use crate::setting;
use crate::sink::{FieldIds, SinkContext, data_schema, dropped_schema};
use crate::source::{self, KafkaConsumer};
use crate::staging::{FileKind, Outputs, Stager};
use crate::store::Location;
use crate::table::{IcebergTables, Shapes};

/// Runs the pipeline until `stop` fires, then commits what was consumed and
/// returns. Fails fast on bad configuration, naming the setting.
pub fn run(
    settings: RunSettings,
    stats: Arc<Stats>,
    stop: Receiver<()>,
) -> Result<Summary, RunError> {
    check_settings(&settings)?;
    // Every retry loop of the run gives up at the same deadline, set the
    // moment a stop is asked for, whatever the coordinator is waiting on.
    let deadline = Deadline::default();
    let stop = forward_stop(stop, deadline.clone(), settings.shutdown_timeout)?;
    let parts = Parts::open(&settings, deadline, 2, &stats)?;
    stats.metrics.plugin_in_use(parts.plugin.identity());
    stats.status.plugin(parts.plugin.identity());
    stats.status.started(parts.committer.owner());
    stats.status.log(parts.committer.state());
    if let Some(tables) = &parts.tables {
        let stats = stats.clone();
        tables.watch(move |table, snapshot, commit| stats.status.appended(table, snapshot, commit));
    }
    let budget = Arc::new(Budget::new(settings.memory_budget, settings.workers));
    let (events_tx, events) = unbounded();
    let mut threads = Vec::new();
    let inboxes = spawn_workers(&settings, &parts, &budget, &stats, &events_tx, &mut threads)?;
    let shared = Arc::new(consumer_shared(
        &settings, &parts, inboxes, events_tx, &budget, &stats,
    ));
    let listener = bind_metrics(&settings)?;
    let (consumer, control) = spawn_consumer(&settings, &shared, &mut threads)?;
    let _watcher = watch_plugin(&settings, &parts, &shared, &stats)?;
    log_running(&settings, &parts);
    if let Some(listener) = listener {
        serve_metrics(listener, &settings, &parts, &stats, &budget)?;
    }
    stats.health.set_ready();
    let progress = settings
        .progress_interval
        .map(|every| report_progress(parts.io.handle(), every, &stats, &budget));
    let Parts {
        io,
        plugin,
        committer,
        stager,
        policy,
        ..
    } = parts;
    let mut coordinator = Coordinator::new(
        &settings,
        committer,
        stager,
        &plugin,
        policy,
        (consumer, shared, control),
        stats.clone(),
    );
    let result = coordinator.run(events, stop);
    if let Some(progress) = progress {
        progress.abort();
    }
    match result {
        Ok(()) => {
            let consumer = coordinator.into_consumer();
            stop_threads(threads, consumer);
            drop(io);
            Ok(Summary::of(&stats))
        }
        Err(e) => {
            stats.status.failed(&crate::error::render(&e));
            stats.health.set_failed();
            abandon(coordinator, io);
            Err(e)
        }
    }
}

/// The parts of a run that exist before any of its threads.
pub struct Parts {
    pub io: Runtime,
    pub plugin_runtime: Arc<PluginRuntime>,
    pub plugin: Arc<Plugin>,
    pub committer: Committer,
    /// What every file of the run is staged with.
    pub stager: Stager,
    pub policy: Policy,
    /// Takes the framing off values (INPUT_FORMAT).
    pub reader: Reader,
    /// TABLE_FORMAT=iceberg: the tables every commit is appended to.
    pub tables: Option<Arc<IcebergTables>>,
}

impl Parts {
    /// Opens the outputs and checks the store, loads the plugin and starts
    /// the committer, which finishes what a crashed run left.
    pub fn open(
        settings: &RunSettings,
        deadline: Deadline,
        io_threads: usize,
        stats: &Arc<Stats>,
    ) -> Result<Self, RunError> {
        let io = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(io_threads)
            .thread_name("lineage-io")
            .enable_all()
            .build()
            .map_err(RunError::spawn("the I/O runtime"))?;
        let (outputs, wal) = open_outputs(settings)?;
        check_store(io.handle(), &outputs, &wal, settings.single_writer)?;
        let plugin_runtime = PluginRuntime::new(settings.plugin.clone())?;
        let plugin = plugin_runtime.load(&settings.plugin_path)?;
        let policy = Policy::until(deadline).watched(stats.troubles.clone());
        let registry = match &settings.registry {
            Some(registry) => Some(Arc::new(Registry::new(
                registry,
                plugin_runtime.schemas().clone(),
                io.handle().clone(),
                policy.clone(),
                stats.clone(),
            )?)),
            None => None,
        };
        let reader = Reader::new(settings.input_format, registry);
        let tables = match &settings.table {
            Some(table) => {
                let shapes = TableShapes::of(&plugin, !reader.is_bare());
                Some(io.block_on(IcebergTables::open(
                    table,
                    &outputs,
                    &settings.s3,
                    &wal.url,
                    &shapes.as_ref(),
                ))?)
            }
            None => None,
        };
        let owner = Owner::fresh(settings.subtask);
        let log = Arc::new(CommitLog::new(wal));
        let entries = log.entries().clone();
        let committer = io
            .block_on(Committer::start(
                log,
                outputs.clone(),
                owner.clone(),
                policy.clone(),
                tables.clone().map(|t| t as Arc<dyn Tables>),
            ))?
            .with_snapshot_every(settings.snapshot_every)
            .on_missing_offsets(settings.on_missing_offsets)
            .resetting_to(source::offset_reset(&settings.kafka));
        let stager = Stager {
            outputs,
            entries,
            runtime: io.handle().clone(),
            owner,
            policy: policy.clone(),
        };
        Ok(Self {
            io,
            plugin_runtime,
            plugin,
            committer,
            stager,
            policy,
            reader,
            tables,
        })
    }

    /// What a worker writes its partitions' files with.
    pub fn sink_context(&self, settings: &RunSettings) -> SinkContext {
        let mut files = settings.files.clone();
        files.schema_id_column = !self.reader.is_bare();
        let table = self.tables.as_ref().map(|t| t.ids());
        SinkContext::new(self.stager.clone(), files, self.plugin.clone(), table)
    }
}

fn check_settings(settings: &RunSettings) -> Result<(), RunError> {
    failpoints::validate().map_err(|e| RunError::Config {
        setting: setting::LINEAGE_FAILPOINTS,
        problem: e.to_string(),
    })?;
    if settings.input_format == InputFormat::Confluent && settings.registry.is_none() {
        return Err(RunError::Config {
            setting: setting::INPUT_FORMAT,
            problem: format!(
                "confluent framing needs {} to fetch writer schemas from",
                setting::SCHEMA_REGISTRY_URL
            ),
        });
    }
    if settings.workers == 0 {
        return Err(RunError::Config {
            setting: setting::WORKERS,
            problem: "must be at least 1".into(),
        });
    }
    Ok(())
}

/// OUTPUT_PATH and DROPPED_PATH, and the commit log's location.
pub fn open_outputs(settings: &RunSettings) -> Result<(Outputs, Location), RunError> {
    let outputs = Outputs::open(&settings.output, &settings.dropped, &settings.s3)?;
    let wal = CommitLog::open(&settings.commit_log, &settings.s3)?;
    Ok((outputs, wal))
}

/// Every location is writable, and the log's store honours create-if-absent
/// (what fencing rests on) unless the user runs a single writer.
fn check_store(
    io: &Handle,
    outputs: &Outputs,
    wal: &Location,
    single_writer: bool,
) -> Result<(), RunError> {
    for location in [&outputs.data, &outputs.dropped, wal] {
        io.block_on(location.check_writable())?;
    }
    if single_writer {
        tracing::warn!(
            "--single-writer: conditional writes are not checked; run exactly one instance"
        );
    } else {
        io.block_on(wal.check_create_if_absent())?;
    }
    Ok(())
}

fn spawn_workers(
    settings: &RunSettings,
    parts: &Parts,
    budget: &Arc<Budget>,
    stats: &Arc<Stats>,
    events: &Sender<Event>,
    threads: &mut Vec<JoinHandle<()>>,
) -> Result<Vec<Sender<WorkerMsg>>, RunError> {
    let mut inboxes = Vec::new();
    for index in 0..settings.workers {
        let (tx, rx) = bounded(4);
        inboxes.push(tx);
        let worker = Worker {
            index,
            workers: settings.workers,
            cx: parts.sink_context(settings),
            plugin: PluginWorker::new(parts.plugin.clone()),
            budget: budget.clone(),
            stats: stats.clone(),
            events: events.clone(),
            reader: parts.reader.clone(),
            checkpoint: parts.committer.next_checkpoint(),
        };
        threads.push(
            std::thread::Builder::new()
                .name(format!("lineage-worker-{index}"))
                .spawn(move || worker.run(rx))
                .map_err(RunError::spawn("a worker thread"))?,
        );
    }
    Ok(inboxes)
}

fn consumer_shared(
    settings: &RunSettings,
    parts: &Parts,
    inboxes: Vec<Sender<WorkerMsg>>,
    events: Sender<Event>,
    budget: &Arc<Budget>,
    stats: &Arc<Stats>,
) -> ConsumerShared {
    ConsumerShared::new(
        inboxes,
        events,
        budget.clone(),
        stats.clone(),
        settings.batch_records,
        settings.plugin.batch_bytes as usize,
        parts.committer.next_checkpoint(),
    )
    .reclaiming_after(source::session_timeout(&settings.kafka))
    .resetting_to(source::offset_reset(&settings.kafka))
    .probing(settings.kafka.clone())
}

fn spawn_consumer(
    settings: &RunSettings,
    shared: &Arc<ConsumerShared>,
    threads: &mut Vec<JoinHandle<()>>,
) -> Result<(Arc<KafkaConsumer>, Sender<Control>), RunError> {
    let consumer = source::consumer(&settings.kafka, shared.clone())?;
    let (control_tx, control) = unbounded();
    let (shared, polled) = (shared.clone(), consumer.clone());
    threads.push(
        std::thread::Builder::new()
            .name("lineage-consumer".into())
            .spawn(move || shared.run(polled, control))
            .map_err(RunError::spawn("the consumer thread"))?,
    );
    Ok((consumer, control_tx))
}

/// A valid new build is offered to the consumer, which switches at its next
/// barrier; a bad one is logged and counted, and the old one stays.
fn watch_plugin(
    settings: &RunSettings,
    parts: &Parts,
    shared: &Arc<ConsumerShared>,
    stats: &Arc<Stats>,
) -> Result<Watcher, RunError> {
    let (shared, stats) = (shared.clone(), stats.clone());
    let (tables, io) = (parts.tables.clone(), parts.io.handle().clone());
    let framed = !parts.reader.is_bare();
    Ok(crate::plugin::watch(
        parts.plugin_runtime.clone(),
        settings.plugin_path.clone(),
        &parts.plugin,
        settings.plugin_watch,
        move |reload| match reload {
            Reload::Loaded(new) => {
                // A build whose columns the table cannot take is refused as
                // one that fails its checks is; one that adds columns has
                // them added before it is offered, so before its first file.
                if let Some(tables) = &tables {
                    let shapes = TableShapes::of(&new, framed);
                    let evolved = io.block_on(evolve(tables, &shapes));
                    if let Err(e) = evolved {
                        return refused(&stats, &e);
                    }
                }
                stats.metrics.plugin_reload("loaded");
                stats.status.swap("loaded", Some(new.identity()), None);
                tracing::info!(plugin = %new.identity(), "plugin loaded and checked; it takes over at the next checkpoint");
                shared.offer_plugin(new);
            }
            Reload::Failed(e) => refused(&stats, &e),
        },
    )?)
}

fn refused(stats: &Stats, e: &(dyn std::error::Error + 'static)) {
    stats.metrics.plugin_reload("failed");
    stats
        .status
        .swap("refused", None, Some(crate::error::render(e)));
    tracing::warn!(error = %crate::error::render(e), "plugin reload failed; keeping the plugin in use");
}

/// Evolves the data table for a new build; a catalog that does not
/// answer is asked a few times, since a refusal stands until the
/// component changes again.
async fn evolve(
    tables: &IcebergTables,
    shapes: &TableShapes,
) -> Result<(), crate::table::TableError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match tables
            .evolve(FileKind::Data, &shapes.data, shapes.event_time.as_deref())
            .await
        {
            Err(e) if crate::error::Classify::retryable(&e) && attempt < 6 => {
                tracing::warn!(error = %crate::error::render(&e), attempt, "evolving the table for the new build failed; trying again");
                tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
            }
            result => return result,
        }
    }
}

/// The files' shapes for a table, before they carry its ids.
struct TableShapes {
    data: arrow_schema::Schema,
    event_time: Option<String>,
    dropped: arrow_schema::Schema,
}

impl TableShapes {
    fn of(plugin: &Plugin, framed: bool) -> Self {
        let schema = plugin.schema();
        let unnumbered = FieldIds::default();
        Self {
            data: data_schema(schema, framed, Some(&unnumbered))
                .as_ref()
                .clone(),
            event_time: schema
                .event_time
                .map(|i| schema.info.columns[i].name.clone()),
            dropped: dropped_schema().as_ref().clone(),
        }
    }

    fn as_ref(&self) -> Shapes<'_> {
        Shapes {
            data: &self.data,
            event_time: self.event_time.as_deref(),
            dropped: &self.dropped,
        }
    }
}

fn bind_metrics(settings: &RunSettings) -> Result<Option<std::net::TcpListener>, RunError> {
    let Some(address) = settings.metrics_address else {
        return Ok(None);
    };
    crate::metrics::bind(address)
        .map(Some)
        .map_err(|e| RunError::Config {
            setting: setting::METRICS_ADDRESS,
            problem: format!("{address}: cannot listen: {e}"),
        })
}

fn serve_metrics(
    listener: std::net::TcpListener,
    settings: &RunSettings,
    parts: &Parts,
    stats: &Arc<Stats>,
    budget: &Arc<Budget>,
) -> Result<(), RunError> {
    let (io, tables) = (parts.io.handle(), &parts.tables);
    if let Ok(address) = listener.local_addr() {
        tracing::info!(address = %address, page = %format!("http://{address}/"), "serving /metrics, /healthz, /readyz, and the status page at / with its data at /status");
    }
    let (outputs, wal) = open_outputs(settings)?;
    let query = crate::query::Query {
        log: CommitLog::new(wal),
        outputs,
        tables: tables.clone(),
    };
    io.spawn(crate::metrics::serve(
        listener,
        stats.clone(),
        budget.clone(),
        Arc::new(query),
    ));
    Ok(())
}

fn log_running(settings: &RunSettings, parts: &Parts) {
    tracing::info!(
        topic = %settings.kafka.topic,
        group = %settings.kafka.group_id,
        subtask = settings.subtask,
        workers = settings.workers,
        plugin = %parts.plugin.identity(),
        checkpoint_interval = %humantime::format_duration(settings.checkpoint_interval),
        "pipeline running"
    );
}

/// On the I/O runtime, not a pipeline thread: it keeps reporting while the
/// store or the broker holds those up.
fn report_progress(
    io: &Handle,
    every: Duration,
    stats: &Arc<Stats>,
    budget: &Arc<Budget>,
) -> tokio::task::JoinHandle<()> {
    let (stats, budget) = (stats.clone(), budget.clone());
    io.spawn(async move {
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
                waiting_for_schema_registry = stats.registry_down.load(Ordering::Relaxed),
                "progress"
            );
        }
    })
}

/// After a clean stop: everything is committed; the threads finish and the
/// consumer leaves the group.
fn stop_threads(threads: Vec<JoinHandle<()>>, consumer: Arc<KafkaConsumer>) {
    for thread in threads {
        let _ = thread.join();
    }
    close(consumer);
}

/// After a failure nothing more is committed; what was not is consumed
/// again at the next start. Threads that are stuck (on the store, in a
/// rebalance) are not waited for: the process exits anyway.
fn abandon(coordinator: Coordinator, io: Runtime) {
    coordinator.stop_all();
    drop(coordinator);
    io.shutdown_background();
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
