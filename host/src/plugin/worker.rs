//! Runs one plugin over batches of records on one thread, keeping the
//! instance alive between batches and isolating records the plugin fails on.
//!
//! A failed call (trap, fuel, memory, timeout, malformed answer) never
//! fails the batch: the batch is split in halves and retried until the
//! failing records run alone, and those come back as drops whose reason says
//! what happened. The other records are answered normally. The instance is
//! replaced after a failed call (an answer with the wrong number of
//! outcomes is not one: the instance returned normally) and whenever its
//! memory passed the recycle mark, since linear memory never shrinks.

use std::sync::Arc;

use wasmtime::component::{Func, TypedFunc};
use wasmtime::{Store, Trap};

use super::answer::{Lifted, Outcomes, lift_into};
use super::batch::batches;
use super::error::PluginError;
use super::loaded::Plugin;
use super::records::{KafkaRecord, RecordBatch};
use super::runtime::START_FUEL;
use super::sandbox::Sandbox;

/// Counters a worker keeps; the pipeline exports them as metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WorkerStats {
    pub calls: u64,
    pub records: u64,
    /// Fuel spent by successful and failed calls together.
    pub fuel: u64,
    /// Calls that trapped, ran out of a limit or answered malformed.
    pub failed_calls: u64,
    /// Instances started, the first one included.
    pub instances: u64,
}

pub struct PluginWorker {
    plugin: Arc<Plugin>,
    live: Option<Live>,
    stats: WorkerStats,
    /// An arena handed back by [`recycle`](Self::recycle), for the next
    /// batch: a fresh one per batch faulted its pages in from the kernel
    /// again each time (measured: 14 % of a call at 1024 records).
    spare: Option<Outcomes>,
}

struct Live {
    store: Store<Sandbox>,
    /// `process`, type-checked against [`Process`] when the instance started.
    process: Func,
}

/// `process` as the host calls it: records lowered from borrowed buffers,
/// the answer lifted by [`Lifted`] straight into the worker's arena.
type Process<'a, 'b> = TypedFunc<(RecordBatch<'a, 'b>,), (Lifted,)>;

/// What one call produced.
enum Answer {
    /// This many outcomes were appended to the arena.
    Outcomes(usize),
    Failed(String),
}

impl PluginWorker {
    pub fn new(plugin: Arc<Plugin>) -> Self {
        Self {
            plugin,
            live: None,
            stats: WorkerStats::default(),
            spare: None,
        }
    }

    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    pub fn stats(&self) -> &WorkerStats {
        &self.stats
    }

    /// Switches to another build from the next call on. The caller picks
    /// the moment (a checkpoint boundary), so that every output file is
    /// written by one build.
    pub fn swap(&mut self, plugin: Arc<Plugin>) {
        self.plugin = plugin;
        self.live = None;
    }

    /// One outcome per record, in order. Errs only when no instance can be
    /// started at all; a plugin failing on records is not an error.
    pub fn process(&mut self, records: &[KafkaRecord<'_>]) -> Result<Outcomes, PluginError> {
        let mut outcomes = self.spare.take().unwrap_or_default();
        outcomes.reserve(records.len());
        self.run(records, &mut outcomes)?;
        Ok(outcomes)
    }

    /// Takes back an answer the caller is done with, for the next batch.
    pub fn recycle(&mut self, mut outcomes: Outcomes) {
        outcomes.clear();
        self.spare = Some(outcomes);
    }

    /// [`process`](Self::process) for a batch some of whose records the
    /// host refused before the plugin: `refused` holds their indices in the
    /// whole batch (ascending) and reasons, and `records` the others, in
    /// order. The outcomes are the whole batch's. The others go to the
    /// plugin in one call, not one per run between refusals: a few bad
    /// frames in a batch would otherwise cut it into dozens of calls.
    pub fn process_except(
        &mut self,
        records: &[KafkaRecord<'_>],
        refused: &[(usize, String)],
    ) -> Result<Outcomes, PluginError> {
        let mut outcomes = self.process(records)?;
        outcomes.interleave_drops(refused);
        Ok(outcomes)
    }

    fn run(&mut self, records: &[KafkaRecord<'_>], out: &mut Outcomes) -> Result<(), PluginError> {
        let config = self.plugin.runtime().config();
        let (max_records, max_bytes) = (config.batch_records, config.batch_bytes);
        for batch in batches(records, max_records, max_bytes) {
            self.isolate(batch, out)?;
        }
        Ok(())
    }

    fn isolate(
        &mut self,
        records: &[KafkaRecord<'_>],
        out: &mut Outcomes,
    ) -> Result<(), PluginError> {
        let mark = out.mark();
        match self.call(records, out)? {
            Answer::Outcomes(n) if n == records.len() => {
                let schema = self.plugin.schema();
                out.check_since(mark, |row| schema.check_row(row));
                return Ok(());
            }
            answer => {
                out.truncate(mark);
                if records.len() > 1 {
                    let (left, right) = records.split_at(records.len() / 2);
                    self.isolate(left, out)?;
                    self.isolate(right, out)?;
                } else if let Answer::Failed(reason) = answer {
                    out.push_drop(&reason);
                } else if let Answer::Outcomes(n) = answer {
                    out.push_drop(&format!("plugin answered {n} outcomes for 1 record"));
                }
            }
        }
        Ok(())
    }

    fn call(
        &mut self,
        records: &[KafkaRecord<'_>],
        out: &mut Outcomes,
    ) -> Result<Answer, PluginError> {
        let mut live = match self.live.take() {
            Some(live) => live,
            None => self.start()?,
        };
        let runtime = self.plugin.runtime();
        let config = runtime.config();
        let budget = config.fuel_per_record.saturating_mul(records.len() as u64);
        if runtime.metered() {
            live.store.set_fuel(budget).expect("fuel is on");
        }
        live.store.set_epoch_deadline(runtime.deadline_ticks());

        // SAFETY: `start` type-checked `process` against `Process`.
        let process: Process<'_, '_> = unsafe { TypedFunc::new_unchecked(live.process) };
        let result = lift_into(out, records.len(), || {
            process
                .call(&mut live.store, (RecordBatch(records),))
                .map(|(lifted,)| lifted.count)
        });

        if runtime.metered() {
            let left = live.store.get_fuel().expect("fuel is on");
            self.stats.fuel += budget - left;
        }
        self.stats.calls += 1;
        self.stats.records += records.len() as u64;
        let answer = match result {
            Ok(count) => Answer::Outcomes(count),
            Err(error) => {
                self.stats.failed_calls += 1;
                Answer::Failed(failure_reason(&error, &live.store, config))
            }
        };
        let sandbox = live.store.data();
        sandbox.output.lock().expect("guest output lock").flush();
        let peak = sandbox.limiter.peak as u64;
        if peak > config.recycle_memory {
            tracing::debug!(
                plugin = %self.plugin.identity(),
                peak_bytes = peak,
                "plugin instance memory passed --plugin-recycle-memory; replacing it"
            );
        } else if matches!(answer, Answer::Outcomes(_)) {
            // A failed instance is dropped: after a trap it cannot be
            // entered again.
            self.live = Some(live);
        }
        Ok(answer)
    }

    fn start(&mut self) -> Result<Live, PluginError> {
        let runtime = self.plugin.runtime();
        let mut store = runtime.store(self.plugin.label().clone());
        if runtime.metered() {
            store.set_fuel(START_FUEL).expect("fuel is on");
        }
        let failed = |e: wasmtime::Error| PluginError::Instantiate {
            plugin: self.plugin.identity().to_string(),
            detail: format!("{e:#}"),
        };
        let instance = self
            .plugin
            .pre()
            .instance_pre()
            .instantiate(&mut store)
            .map_err(failed)?;
        let process = instance
            .get_func(&mut store, "process")
            .ok_or_else(|| wasmtime::format_err!("no `process` export"))
            .and_then(|f| {
                f.typed::<(RecordBatch<'_, '_>,), (Lifted,)>(&store)
                    .map(|_| f)
            })
            .map_err(failed)?;
        self.stats.instances += 1;
        Ok(Live { store, process })
    }
}

/// The drop reason for records of a failed call: what a data engineer
/// reading the dropped file needs to fix the plugin or its limits.
fn failure_reason(
    error: &wasmtime::Error,
    store: &Store<Sandbox>,
    config: &super::config::PluginConfig,
) -> String {
    let sandbox = store.data();
    if let Some(desired) = sandbox.limiter.refused {
        return format!(
            "plugin memory exhausted: tried to grow to {desired} bytes, --plugin-memory-limit is {}",
            config.memory_limit
        );
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => format!(
            "plugin fuel exhausted: more than --plugin-fuel-per-record={}",
            config.fuel_per_record
        ),
        Some(Trap::Interrupt) => format!(
            "plugin timed out: ran past --plugin-call-timeout={}",
            humantime::format_duration(config.call_timeout)
        ),
        Some(Trap::StackOverflow) => format!(
            "plugin trap: stack overflow past --plugin-stack-limit={}",
            config.stack_limit
        ),
        Some(trap) => {
            let panic = sandbox
                .output
                .lock()
                .expect("guest output lock")
                .panic_message();
            match panic {
                Some(panic) => format!("plugin trap: {panic}"),
                None => format!(
                    "plugin trap: {}",
                    trap.to_string().trim_start_matches("wasm trap: ")
                ),
            }
        }
        // Not a trap: the answer could not be lifted (bad pointers, invalid
        // UTF-8, a discriminant out of range) or a host call refused.
        None => format!("plugin answer malformed: {}", root_message(error)),
    }
}

fn root_message(error: &wasmtime::Error) -> String {
    let message = format!("{error:#}");
    // Backtraces add nothing a reader of the dropped file can use.
    message
        .split("\nwasm backtrace:")
        .next()
        .unwrap_or(&message)
        .trim()
        .to_owned()
}
