//! One wasmtime engine for the process: its settings, the linker with the
//! sandboxed imports, the epoch ticker behind call timeouts, and loading
//! components through the compile cache.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use super::bindings;
use super::component::{Plugin, PluginIdentity};
use super::config::PluginConfig;
use super::contract::PluginSchema;
use super::error::PluginError;
use super::sandbox::{Sandbox, add_stopped_timers};

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
    engine: Engine,
    linker: Linker<Sandbox>,
    config: PluginConfig,
    metered: bool,
    cache_dir: Option<PathBuf>,
    ticker: EpochTicker,
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
        }))
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

    /// Loads, compiles (or fetches from the cache), links and checks a
    /// component, and asks it to describe itself.
    /// `path` is the component, or a directory holding exactly one.
    pub fn load(self: &Arc<Self>, path: &Path) -> Result<Arc<Plugin>, PluginError> {
        let path = component_path(path)?;
        let bytes = std::fs::read(&path).map_err(|source| PluginError::Read {
            path: path.clone(),
            source,
        })?;
        self.load_bytes(&path, &bytes)
    }

    /// As [`load`](Self::load), from bytes already read from `path`.
    pub fn load_bytes(
        self: &Arc<Self>,
        path: &Path,
        bytes: &[u8],
    ) -> Result<Arc<Plugin>, PluginError> {
        check_header(path, bytes)?;
        let sha256 = hex(&Sha256::digest(bytes));
        let component = self.compile(path, bytes, &sha256)?;

        let contract = |e: wasmtime::Error| PluginError::Contract {
            path: path.to_owned(),
            detail: format!("{e:#}"),
        };
        let pre = self.linker.instantiate_pre(&component).map_err(contract)?;
        let pre = bindings::PluginPre::new(pre).map_err(contract)?;

        let label: Arc<str> = path.display().to_string().into();
        let mut store = self.store(label);
        if self.metered {
            store.set_fuel(START_FUEL).expect("fuel is on");
        }
        let start = |e: wasmtime::Error| PluginError::Start {
            path: path.to_owned(),
            detail: format!("{e:#}"),
        };
        let instance = pre.instantiate(&mut store).map_err(start)?;
        let info = instance.call_describe(&mut store).map_err(start)?;
        store
            .data()
            .output
            .lock()
            .expect("guest output lock")
            .flush();
        let schema = PluginSchema::validate(info).map_err(|problems| PluginError::Description {
            path: path.to_owned(),
            problems,
        })?;

        let identity = PluginIdentity {
            name: schema.info.name.clone(),
            version: schema.info.version.clone(),
            sha256,
        };
        tracing::info!(
            plugin = %identity,
            path = %path.display(),
            columns = schema.info.columns.len(),
            "plugin loaded"
        );
        Ok(Arc::new(Plugin::new(
            self.clone(),
            path.to_owned(),
            identity,
            schema,
            pre,
        )))
    }

    pub(super) fn store(&self, label: Arc<str>) -> wasmtime::Store<Sandbox> {
        let sandbox = Sandbox::new(label, self.config.memory_limit, self.config.output_limit);
        let mut store = wasmtime::Store::new(&self.engine, sandbox);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(self.deadline_ticks());
        store
    }

    fn compile(&self, path: &Path, bytes: &[u8], sha256: &str) -> Result<Component, PluginError> {
        let compile_error = |e: wasmtime::Error| PluginError::Compile {
            path: path.to_owned(),
            detail: format!("{e:#}"),
        };
        let Some(dir) = &self.cache_dir else {
            return Component::new(&self.engine, bytes).map_err(compile_error);
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        let cached = dir.join(format!("{sha256}-{:016x}.cwasm", hasher.finish()));
        // Read, not mapped: a mapped file that someone truncates in place
        // would bring the process down with SIGBUS.
        if let Ok(bytes) = std::fs::read(&cached) {
            // SAFETY: the cache directory is trusted (see --plugin-cache-dir);
            // wasmtime checks that the bytes were compiled by a compatible
            // engine and refuses anything else.
            match unsafe { Component::deserialize(&self.engine, &bytes) } {
                Ok(component) => {
                    tracing::debug!(cache = %cached.display(), "compiled plugin found in cache");
                    return Ok(component);
                }
                Err(e) => tracing::warn!(
                    cache = %cached.display(),
                    error = %format!("{e:#}"),
                    "cached plugin unusable; compiling again"
                ),
            }
        }
        let compiled = self
            .engine
            .precompile_component(bytes)
            .map_err(compile_error)?;
        if let Err(e) = write_whole(&cached, &compiled) {
            tracing::warn!(
                cache = %cached.display(),
                error = %e,
                "cannot cache the compiled plugin; it will be compiled again on the next start"
            );
        }
        // SAFETY: these bytes were just produced by this engine.
        unsafe { Component::deserialize(&self.engine, &compiled) }.map_err(compile_error)
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

fn check_header(path: &Path, bytes: &[u8]) -> Result<(), PluginError> {
    let not = |detail: &str| PluginError::NotAComponent {
        path: path.to_owned(),
        detail: detail.to_owned(),
    };
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(not(
            "not a WebAssembly component (no \\0asm header); build plugins for wasm32-wasip2",
        ));
    }
    match bytes[4..8] {
        [_, _, 1, 0] => Ok(()),
        [1, 0, 0, 0] => Err(not(
            "a core WebAssembly module, not a component; build it for wasm32-wasip2, or wrap it with `wasm-tools component new`",
        )),
        _ => Err(not("an unknown WebAssembly binary version")),
    }
}

fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

/// The component file `path` names: itself, or the one `*.wasm` file in the
/// directory it names (hidden entries, such as a ConfigMap's `..data`,
/// are not looked at). A directory lets a deployment replace the component
/// by swapping what the directory holds.
pub fn component_path(path: &Path) -> Result<PathBuf, PluginError> {
    let read = |source| PluginError::Read {
        path: path.to_owned(),
        source,
    };
    if !std::fs::metadata(path).map_err(read)?.is_dir() {
        return Ok(path.to_owned());
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(read)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "wasm")
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        n => Err(PluginError::NotAComponent {
            path: path.to_owned(),
            detail: format!(
                "a PLUGIN_PATH directory must hold exactly one *.wasm component; it holds {n}{}",
                if n == 0 {
                    String::new()
                } else {
                    format!(
                        " ({})",
                        found
                            .iter()
                            .filter_map(|p| p.file_name())
                            .map(|n| n.to_string_lossy().into_owned())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ),
        }),
    }
}
