//! Loading a component: read, check the header, compile (or take it from
//! the cache), link, instantiate once and ask it to describe itself.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use super::bindings;
use super::contract::PluginSchema;
use super::error::PluginError;
use super::loaded::{Plugin, PluginIdentity};
use super::runtime::{PluginRuntime, START_FUEL};

/// Refuses a component built against another version of the contract by
/// name, before linking would refuse it with a type mismatch.
fn check_version(
    path: &Path,
    component: &Component,
    engine: &wasmtime::Engine,
) -> Result<(), PluginError> {
    let ty = component.component_type();
    let found = ty
        .imports(engine)
        .map(|(name, _)| name)
        .chain(ty.exports(engine).map(|(name, _)| name))
        .filter_map(|name| name.strip_prefix("lineage:plugin/"))
        .filter_map(|name| name.split_once('@').map(|(_, version)| version))
        .find(|version| *version != super::CONTRACT_VERSION);
    match found {
        Some(found) => Err(PluginError::ContractVersion {
            path: path.to_owned(),
            found: found.to_owned(),
        }),
        None => Ok(()),
    }
}

impl PluginRuntime {
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

        check_version(path, &component, &self.engine)?;
        let contract = |e: wasmtime::Error| PluginError::Contract {
            path: path.to_owned(),
            detail: format!("{e:#}"),
        };
        let pre = self.linker.instantiate_pre(&component).map_err(contract)?;
        let pre = bindings::PluginPre::new(pre).map_err(contract)?;

        let label: Arc<str> = path.display().to_string().into();
        let mut store = self.store(label);
        if self.metered() {
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
