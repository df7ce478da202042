//! Shared test support: builds the real plugin components once per test
//! process and hands out records and runtimes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use lineage::plugin::{
    KafkaRecord, OutcomeRef, Outcomes, Plugin, PluginConfig, PluginRuntime, PluginWorker,
};

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ sits in the repository root")
}

pub struct Components {
    pub enrich: PathBuf,
    pub pseudonymize: PathBuf,
    /// The Python build of enrich (componentize-py).
    pub enrich_py: PathBuf,
    pub hostile: PathBuf,
    /// enrich with one more column (a swap that evolves a table).
    pub enrich_plus: PathBuf,
}

/// Builds `plugins/enrich.wasm` and the hostile test plugin with the same
/// script users run, once per test process.
pub fn components() -> &'static Components {
    static BUILT: OnceLock<Components> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = repo_root();
        let status = Command::new(root.join("scripts/build-plugins.sh"))
            .arg("--test")
            .current_dir(root)
            .status()
            .expect("run scripts/build-plugins.sh");
        assert!(status.success(), "scripts/build-plugins.sh --test failed");
        Components {
            enrich: root.join("plugins/enrich.wasm"),
            pseudonymize: root.join("plugins/pseudonymize.wasm"),
            enrich_py: root.join("plugins/enrich-py.wasm"),
            hostile: root.join("target/test-plugins/hostile.wasm"),
            enrich_plus: root.join("target/test-plugins/enrich-plus.wasm"),
        }
    })
}

/// A config whose compiled plugins go to a per-process directory, so that
/// tests neither depend on nor pollute the user's cache.
pub fn config() -> PluginConfig {
    static CACHE: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = CACHE.get_or_init(|| tempfile::tempdir().expect("temp dir"));
    PluginConfig {
        cache_dir: Some(dir.path().to_owned()),
        ..PluginConfig::default()
    }
}

pub fn load(path: &Path, config: PluginConfig) -> Arc<Plugin> {
    PluginRuntime::new(config)
        .expect("runtime starts")
        .load(path)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Records whose values are the given byte strings, at offsets 0, 1, ...
pub fn records<'a>(values: &'a [Vec<u8>]) -> Vec<KafkaRecord<'a>> {
    values
        .iter()
        .enumerate()
        .map(|(i, value)| KafkaRecord {
            topic: "events",
            partition: 3,
            offset: i as i64,
            timestamp: Some(1_732_550_400_000),
            key: None,
            value: Some(value),
            headers: &[],
            schema_id: None,
        })
        .collect()
}

/// Commands for the hostile plugin, as record values.
pub fn commands(commands: &[&str]) -> Vec<Vec<u8>> {
    commands.iter().map(|c| c.as_bytes().to_vec()).collect()
}

/// What happened to each record, in a form that reads well in assertions:
/// `keep [..values..]` or `drop <reason>`.
pub fn describe(outcomes: &Outcomes) -> Vec<String> {
    outcomes
        .iter()
        .map(|o| match o {
            OutcomeRef::Keep(row) => format!("keep {row:?}"),
            OutcomeRef::Drop(reason) => format!("drop {reason}"),
        })
        .collect()
}

/// Runs the hostile plugin over `commands` in one batch.
pub fn run_hostile(commands_: &[&str], config: PluginConfig) -> (Vec<String>, PluginWorker) {
    let plugin = load(&components().hostile, config);
    let values = commands(commands_);
    let mut worker = PluginWorker::new(plugin);
    let outcomes = worker
        .process(&records(&values))
        .expect("an instance starts");
    assert_eq!(outcomes.len(), commands_.len(), "one outcome per record");
    (describe(&outcomes), worker)
}
