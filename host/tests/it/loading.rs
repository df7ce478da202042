//! Loading components: everything that is not a working plugin is refused
//! at load time with an error that names the file and says what is wrong.

use std::path::Path;

use lineage::error::{Blame, Classify};
use lineage::plugin::{PluginError, PluginRuntime};

use crate::support::{components, config};

fn load_error(path: &Path) -> PluginError {
    PluginRuntime::new(config())
        .unwrap()
        .load(path)
        .expect_err("load must fail")
}

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_missing_file_is_named() {
    let error = load_error(Path::new("/nonexistent/plugin.wasm"));
    let message = error.to_string();
    assert!(
        message.starts_with("plugin /nonexistent/plugin.wasm: cannot read it"),
        "{message}"
    );
    assert_eq!(error.blame(), Blame::User);
}

#[test]
fn not_webassembly_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "notes.txt", b"hello, this is not wasm");
    let message = load_error(&path).to_string();
    assert!(message.contains("notes.txt"), "{message}");
    assert!(message.contains("not a WebAssembly component"), "{message}");
}

#[test]
fn a_core_module_is_not_a_component() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "core.wasm", &wat::parse_str("(module)").unwrap());
    let message = load_error(&path).to_string();
    assert!(
        message.contains("a core WebAssembly module, not a component"),
        "{message}"
    );
}

#[test]
fn a_truncated_component_does_not_compile() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(&components().enrich).unwrap();
    let path = write(&dir, "truncated.wasm", &bytes[..bytes.len() / 2]);
    let error = load_error(&path);
    assert!(matches!(error, PluginError::Compile { .. }), "{error}");
    assert!(error.to_string().contains("truncated.wasm"));
}

#[test]
fn a_component_of_another_world_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "empty.wasm", &wat::parse_str("(component)").unwrap());
    let error = load_error(&path);
    let message = error.to_string();
    assert!(matches!(error, PluginError::Contract { .. }), "{message}");
    assert!(
        message.contains("does not implement the world lineage:plugin/plugin@0.3.0"),
        "{message}"
    );
}

/// A component built against the previous contract imports its
/// interfaces at 0.2.0; it is refused by version, not with a type mismatch.
#[test]
fn a_component_of_an_earlier_contract_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let component = r#"(component (import "lineage:plugin/types@0.2.0" (instance)))"#;
    let path = write(&dir, "old.wasm", &wat::parse_str(component).unwrap());
    let error = load_error(&path);
    let message = error.to_string();
    assert!(
        matches!(&error, PluginError::ContractVersion { found, .. } if found == "0.2.0"),
        "{message}"
    );
    assert_eq!(
        message,
        format!(
            "plugin {}: built against lineage:plugin@0.2.0, and this Lineage runs lineage:plugin@0.3.0; rebuild it against wit/plugin.wit (wit/README.md lists what changed)",
            path.display()
        )
    );
    assert_eq!(error.blame(), Blame::User);
}

#[test]
fn a_component_importing_what_the_host_does_not_provide_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let component =
        r#"(component (import "acme:net/http@1.0.0" (instance (export "get" (func)))))"#;
    let path = write(&dir, "net.wasm", &wat::parse_str(component).unwrap());
    let message = load_error(&path).to_string();
    assert!(message.contains("acme:net/http@1.0.0"), "{message}");
}

#[test]
fn compiled_plugins_are_cached_and_a_corrupt_cache_entry_is_recompiled() {
    let cache = tempfile::tempdir().unwrap();
    let mut config = config();
    config.cache_dir = Some(cache.path().to_owned());
    let runtime = PluginRuntime::new(config).unwrap();
    let first = runtime.load(&components().enrich).unwrap();

    let entries: Vec<_> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    let name = entry.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with(&first.identity().sha256), "{name}");
    assert!(name.ends_with(".cwasm"), "{name}");

    // Loaded from the cache: the same plugin.
    let second = runtime.load(&components().enrich).unwrap();
    assert_eq!(first.identity(), second.identity());

    // A corrupt entry is noticed, compiled again and replaced.
    std::fs::write(entry, b"garbage").unwrap();
    let third = runtime.load(&components().enrich).unwrap();
    assert_eq!(first.identity(), third.identity());
    assert!(std::fs::metadata(entry).unwrap().len() > 1000);
}

#[test]
fn an_unwritable_cache_only_costs_compile_time() {
    let mut config = config();
    config.cache_dir = Some("/proc/lineage-cannot-write-here".into());
    let plugin = PluginRuntime::new(config)
        .unwrap()
        .load(&components().enrich)
        .unwrap();
    assert_eq!(plugin.identity().name, "enrich");
}

#[test]
fn inconsistent_limits_are_refused_with_the_flag_named() {
    let mut config = config();
    config.recycle_memory = config.memory_limit * 2;
    let error = PluginRuntime::new(config).err().expect("refused");
    assert!(
        error.to_string().contains("--plugin-recycle-memory"),
        "{error}"
    );
    assert_eq!(error.blame(), Blame::User);
}
