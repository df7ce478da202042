//! Hot swaps. PLUGIN_PATH is checked for a new component on an interval
//! and on SIGHUP; a changed one is compiled, linked and described here, off
//! the record path, and handed over only if all of that succeeds. The
//! pipeline then switches at its next checkpoint boundary.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::error::PluginError;
use super::load::component_path;
use super::loaded::Plugin;
use super::runtime::PluginRuntime;

/// What a check of PLUGIN_PATH found.
pub enum Reload {
    /// A new, valid build (its content differs from the one in use).
    Loaded(Arc<Plugin>),
    /// A changed file that is not a usable plugin; the old one stays.
    Failed(PluginError),
}

/// How often the watcher looks at the SIGHUP flag and the stop flag.
const TICK: Duration = Duration::from_millis(100);

/// The file as last seen: a change of any of these means "read it again".
/// A ConfigMap update swaps a symlink, which changes the inode.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    path: PathBuf,
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

fn look(path: &Path) -> Option<Seen> {
    let file = component_path(path).ok()?;
    let m = std::fs::metadata(&file).ok()?;
    Some(Seen {
        path: file,
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
    })
}

/// Stops the watcher when dropped. Its thread is not waited for: it may be
/// compiling a large component, and a stop must not wait on that.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    sighup: Option<signal_hook::SigId>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(id) = self.sighup.take() {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// Watches `path` (every `every`, if set, and on SIGHUP) and calls `on`
/// with each new build or failed attempt. `current` is the build in use.
pub fn watch(
    runtime: Arc<PluginRuntime>,
    path: PathBuf,
    current: &Plugin,
    every: Option<Duration>,
    mut on: impl FnMut(Reload) + Send + 'static,
) -> Result<Watcher, PluginError> {
    let stop = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    let sighup = signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
        .map_err(|e| PluginError::Config(format!("installing the SIGHUP handler: {e}")))?;
    let mut in_use = current.identity().sha256.clone();
    // Not what is there now: a file replaced since `current` was read must
    // be seen at the first check.
    let mut seen = None;
    {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("lineage-plugin-watch".into())
            .spawn(move || {
                let mut checked = Instant::now();
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(TICK);
                    let asked = hup.swap(false, Ordering::SeqCst);
                    let due = every.is_some_and(|e| checked.elapsed() >= e);
                    if !asked && !due {
                        continue;
                    }
                    checked = Instant::now();
                    let now = look(&path);
                    if !asked && now == seen {
                        continue;
                    }
                    seen = now;
                    if asked {
                        tracing::info!(path = %path.display(), "SIGHUP: checking the plugin");
                    }
                    let loaded = runtime.load(&path);
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    match loaded {
                        Ok(plugin) if plugin.identity().sha256 == in_use => {
                            if asked {
                                tracing::info!(plugin = %plugin.identity(), "plugin unchanged");
                            }
                        }
                        Ok(plugin) => {
                            in_use = plugin.identity().sha256.clone();
                            on(Reload::Loaded(plugin));
                        }
                        Err(e) => on(Reload::Failed(e)),
                    }
                }
            })
            .map_err(|e| PluginError::Config(format!("starting the plugin watcher: {e}")))?;
    }
    Ok(Watcher {
        stop,
        sighup: Some(sighup),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_looked_into_and_a_rewrite_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(look(dir.path()), None, "an empty directory holds nothing");
        let file = dir.path().join("plugin.wasm");
        std::fs::write(&file, b"one").unwrap();
        std::fs::write(dir.path().join(".hidden.wasm"), b"x").unwrap();
        let first = look(dir.path()).expect("the one component");
        assert_eq!(first.path, file);
        // Replaced by rename, as deployments do: a new inode.
        let next = dir.path().join(".next");
        std::fs::write(&next, b"two!").unwrap();
        std::fs::rename(&next, &file).unwrap();
        assert_ne!(look(dir.path()), Some(first));
        std::fs::write(dir.path().join("other.wasm"), b"x").unwrap();
        assert_eq!(
            look(dir.path()),
            None,
            "two components: which one is meant?"
        );
        let error = component_path(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("exactly one *.wasm component; it holds 2 (other.wasm, plugin.wasm)"),
            "{error}"
        );
    }
}
