//! One wasmtime engine for the process: its settings, the linker with the
//! sandboxed imports, the epoch ticker behind call timeouts, and loading
//! components through the compile cache.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use super::bindings;
use super::config::PluginConfig;
use super::error::PluginError;
use super::sandbox::{Sandbox, add_stopped_timers};
use super::schemas::WriterSchemas;

/// How often the engine's epoch advances; call timeouts are counted in these.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Instances the pooling allocator holds slots for. Workers keep one each;
/// loading and swapping need a few more.
const POOL_INSTANCES: u32 = 64;

/// Fuel for starting an instance (and `describe`, at load); generous, since
/// it is spent once per instance, but finite so that a plugin that loops at
/// start-up is refused.
pub(super) const START_FUEL: u64 = 1_000_000_000;

pub struct PluginRuntime {
    pub(super) engine: Engine,
    pub(super) linker: Linker<Sandbox>,
    config: PluginConfig,
    metered: bool,
    pub(super) cache_dir: Option<PathBuf>,
    ticker: EpochTicker,
    schemas: Arc<WriterSchemas>,
}

impl PluginRuntime {
    pub fn new(config: PluginConfig) -> Result<Arc<Self>, PluginError> {
        Self::with_metering(config, true)
    }

    /// `metered: false` turns fuel off, for measuring what fuel costs; no
    /// production path does that, since it removes the per-record bound.
    pub fn with_metering(config: PluginConfig, metered: bool) -> Result<Arc<Self>, PluginError> {
        config.check().map_err(PluginError::Config)?;

        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(POOL_INSTANCES)
            .total_core_instances(POOL_INSTANCES * 8)
            .total_memories(POOL_INSTANCES * 2)
            .total_tables(POOL_INSTANCES * 8)
            .max_core_instances_per_component(32)
            .max_memories_per_component(4)
            .max_tables_per_component(16)
            .max_memory_size(config.memory_limit as usize)
            .max_core_instance_size(4 << 20)
            .max_component_instance_size(4 << 20);

        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .wasm_threads(false)
            .consume_fuel(metered)
            .epoch_interruption(true)
            .max_wasm_stack(config.stack_limit as usize)
            .cranelift_opt_level(OptLevel::Speed)
            .profiler(profiler())
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm).map_err(|e| PluginError::Engine(format!("{e:#}")))?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .and_then(|()| add_stopped_timers(&mut linker))
            .and_then(|()| {
                bindings::Plugin::add_to_linker::<Sandbox, HasSelf<Sandbox>>(&mut linker, |s| s)
            })
            .map_err(|e| PluginError::Engine(format!("linking host imports: {e:#}")))?;

        let cache_dir = config.resolved_cache_dir();
        let ticker = EpochTicker::start(engine.clone());
        Ok(Arc::new(Self {
            engine,
            linker,
            config,
            metered,
            cache_dir,
            ticker,
            schemas: Arc::default(),
        }))
    }

    /// What every instance's `schemas.writer-schema` answers from.
    pub fn schemas(&self) -> &Arc<WriterSchemas> {
        &self.schemas
    }

    pub fn config(&self) -> &PluginConfig {
        &self.config
    }

    pub(super) fn metered(&self) -> bool {
        self.metered
    }

    /// Epoch ticks that make up one call's timeout.
    pub(super) fn deadline_ticks(&self) -> u64 {
        let ticks = self.config.call_timeout.as_millis() / EPOCH_TICK.as_millis();
        ticks as u64 + 1
    }

    pub(super) fn store(&self, label: Arc<str>) -> wasmtime::Store<Sandbox> {
        let sandbox = Sandbox::new(
            label,
            self.config.memory_limit,
            self.config.output_limit,
            self.schemas.clone(),
        );
        let mut store = wasmtime::Store::new(&self.engine, sandbox);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(self.deadline_ticks());
        store
    }
}

/// `LINEAGE_PLUGIN_PERFMAP=1` writes /tmp/perf-PID.map so that `perf`
/// names the plugin's functions; see docs/plugin-runtime.md.
fn profiler() -> wasmtime::ProfilingStrategy {
    if std::env::var_os("LINEAGE_PLUGIN_PERFMAP").is_some_and(|v| v == "1") {
        wasmtime::ProfilingStrategy::PerfMap
    } else {
        wasmtime::ProfilingStrategy::None
    }
}

impl Drop for PluginRuntime {
    fn drop(&mut self) {
        self.ticker.stop();
    }
}

/// Advances the engine's epoch so that a call past its deadline traps,
/// whatever the guest is doing.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawn the plugin epoch thread");
        Self {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
