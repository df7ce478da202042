//! Limits and knobs of the plugin runtime; every one is a flag and an
//! environment variable.

use std::path::PathBuf;
use std::time::Duration;

/// Measured: the default plugin burns about 4 k fuel per record, so this
/// leaves plugins 250 times that before a record counts as runaway.
pub const DEFAULT_FUEL_PER_RECORD: u64 = 1_000_000;
pub const DEFAULT_MEMORY_LIMIT: u64 = 128 << 20;
pub const DEFAULT_RECYCLE_MEMORY: u64 = 64 << 20;
pub const DEFAULT_STACK_LIMIT: u64 = 1 << 20;
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_BATCH_RECORDS: usize = 1024;
pub const DEFAULT_BATCH_BYTES: u64 = 4 << 20;
pub const DEFAULT_OUTPUT_LIMIT: u64 = 64 << 10;

#[derive(Debug, Clone, clap::Args)]
pub struct PluginConfig {
    /// Fuel (about one unit per WebAssembly instruction) a record may use.
    /// Deterministic, unlike a timeout: a replayed record that runs out is
    /// dropped again for the same reason.
    #[arg(long = "plugin-fuel-per-record", env = "PLUGIN_FUEL_PER_RECORD", default_value_t = DEFAULT_FUEL_PER_RECORD, value_parser = clap::value_parser!(u64).range(1..))]
    pub fuel_per_record: u64,

    /// Linear memory one plugin instance may grow to; past it the call traps.
    #[arg(long = "plugin-memory-limit", env = "PLUGIN_MEMORY_LIMIT", default_value = "128MiB", value_parser = parse_size)]
    pub memory_limit: u64,

    /// An instance whose memory grew past this is replaced after the call,
    /// since linear memory never shrinks.
    #[arg(long = "plugin-recycle-memory", env = "PLUGIN_RECYCLE_MEMORY", default_value = "64MiB", value_parser = parse_size)]
    pub recycle_memory: u64,

    /// WebAssembly stack a call may use.
    #[arg(long = "plugin-stack-limit", env = "PLUGIN_STACK_LIMIT", default_value = "1MiB", value_parser = parse_size)]
    pub stack_limit: u64,

    /// Wall-clock backstop for one call, behind the fuel limit.
    #[arg(long = "plugin-call-timeout", env = "PLUGIN_CALL_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub call_timeout: Duration,

    /// Most records handed to the plugin in one call.
    #[arg(long = "plugin-batch-records", env = "PLUGIN_BATCH_RECORDS", default_value_t = DEFAULT_BATCH_RECORDS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=65536))]
    pub batch_records: usize,

    /// Most key, value and header bytes handed to the plugin in one call; a
    /// larger record goes alone.
    #[arg(long = "plugin-batch-bytes", env = "PLUGIN_BATCH_BYTES", default_value = "4MiB", value_parser = parse_size)]
    pub batch_bytes: u64,

    /// Guest stdout, stderr and log output kept per call; the rest is
    /// counted and discarded.
    #[arg(long = "plugin-output-limit", env = "PLUGIN_OUTPUT_LIMIT", default_value = "64KiB", value_parser = parse_size)]
    pub output_limit: u64,

    /// Where compiled plugins are cached, keyed by content hash and engine
    /// settings. Must be trusted: its files are loaded as native code.
    /// Default: $XDG_CACHE_HOME/lineage or ~/.cache/lineage.
    #[arg(long = "plugin-cache-dir", env = "PLUGIN_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Compile plugins on every start instead of caching them.
    #[arg(long = "no-plugin-cache", env = "NO_PLUGIN_CACHE")]
    pub no_cache: bool,
}

impl Default for PluginConfig {
    fn default() -> Self {
        Self {
            fuel_per_record: DEFAULT_FUEL_PER_RECORD,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            recycle_memory: DEFAULT_RECYCLE_MEMORY,
            stack_limit: DEFAULT_STACK_LIMIT,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            batch_records: DEFAULT_BATCH_RECORDS,
            batch_bytes: DEFAULT_BATCH_BYTES,
            output_limit: DEFAULT_OUTPUT_LIMIT,
            cache_dir: None,
            no_cache: false,
        }
    }
}

impl PluginConfig {
    /// The directory for compiled plugins, if caching is on and one is known.
    pub fn resolved_cache_dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        if let Some(dir) = &self.cache_dir {
            return Some(dir.clone());
        }
        crate::setting::user_cache_dir("components")
    }

    /// Settings that cannot work together, named by their flags.
    pub fn check(&self) -> Result<(), String> {
        if self.recycle_memory > self.memory_limit {
            return Err(format!(
                "--plugin-recycle-memory ({}) is above --plugin-memory-limit ({})",
                self.recycle_memory, self.memory_limit
            ));
        }
        if self.memory_limit < 1 << 20 {
            return Err("--plugin-memory-limit is below 1MiB; no plugin starts in that".into());
        }
        if self.memory_limit > 4 << 30 {
            return Err(
                "--plugin-memory-limit is above 4GiB, the most a 32-bit plugin can address".into(),
            );
        }
        if self.stack_limit < 64 << 10 {
            return Err("--plugin-stack-limit is below 64KiB".into());
        }
        if self.call_timeout < Duration::from_millis(10) {
            return Err("--plugin-call-timeout is below 10ms".into());
        }
        Ok(())
    }
}

/// Parses sizes such as `128MiB`, `4 KiB` or `1048576`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    s.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("{e}; expected a size such as 64MiB or 1048576"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        plugin: PluginConfig,
    }

    #[test]
    fn flag_defaults_match_default() {
        let parsed = Cli::try_parse_from(["lineage"]).unwrap().plugin;
        let default = PluginConfig::default();
        assert_eq!(parsed.fuel_per_record, default.fuel_per_record);
        assert_eq!(parsed.memory_limit, default.memory_limit);
        assert_eq!(parsed.recycle_memory, default.recycle_memory);
        assert_eq!(parsed.stack_limit, default.stack_limit);
        assert_eq!(parsed.call_timeout, default.call_timeout);
        assert_eq!(parsed.batch_records, default.batch_records);
        assert_eq!(parsed.batch_bytes, default.batch_bytes);
        assert_eq!(parsed.output_limit, default.output_limit);
        assert!(default.check().is_ok());
    }

    #[test]
    fn bad_values_name_the_flag() {
        let err = Cli::try_parse_from(["lineage", "--plugin-memory-limit", "lots"])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("--plugin-memory-limit"), "{err}");
        let err = Cli::try_parse_from(["lineage", "--plugin-fuel-per-record", "0"])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("--plugin-fuel-per-record"), "{err}");
        let config = Cli::try_parse_from([
            "lineage",
            "--plugin-memory-limit",
            "32MiB",
            "--plugin-recycle-memory",
            "64MiB",
        ])
        .unwrap()
        .plugin;
        assert!(
            config
                .check()
                .unwrap_err()
                .contains("--plugin-recycle-memory")
        );
    }
}
