//! The names of the settings that code names in its errors, checks and
//! tests: one spelling each. Every one is also an environment variable.

pub const OUTPUT_PATH: &str = "OUTPUT_PATH";
pub const DROPPED_PATH: &str = "DROPPED_PATH";
pub const WRITE_AHEAD_COMMIT_LOG_PATH: &str = "WRITE_AHEAD_COMMIT_LOG_PATH";
pub const PLUGIN_PATH: &str = "PLUGIN_PATH";
pub const METRICS_ADDRESS: &str = "METRICS_ADDRESS";
pub const WORKERS: &str = "WORKERS";
pub const KAFKA_PROPERTIES: &str = "KAFKA_PROPERTIES";
pub const KAFKA_SASL_MECHANISM: &str = "KAFKA_SASL_MECHANISM";
pub const INPUT_FORMAT: &str = "INPUT_FORMAT";
pub const SCHEMA_REGISTRY_URL: &str = "SCHEMA_REGISTRY_URL";
pub const SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO: &str = "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO";
pub const SCHEMA_REGISTRY_SSL_CA_LOCATION: &str = "SCHEMA_REGISTRY_SSL_CA_LOCATION";
pub const SCHEMA_CACHE_DIR: &str = "SCHEMA_CACHE_DIR";
/// Test tooling: crash, hold or fail at named points (see failpoints.rs).
pub const LINEAGE_FAILPOINTS: &str = "LINEAGE_FAILPOINTS";
/// Test tooling: inject S3 faults (see store/faults.rs).
pub const LINEAGE_STORE_FAULTS: &str = "LINEAGE_STORE_FAULTS";

/// `$XDG_CACHE_HOME/lineage/<name>`, or `~/.cache/lineage/<name>`: where
/// caches live unless a setting names a directory.
pub fn user_cache_dir(name: &str) -> Option<std::path::PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))?;
    Some(base.join("lineage").join(name))
}
pub const TABLE_FORMAT: &str = "TABLE_FORMAT";
pub const ICEBERG_CATALOG_TYPE: &str = "ICEBERG_CATALOG_TYPE";
pub const ICEBERG_CATALOG_URI: &str = "ICEBERG_CATALOG_URI";
pub const ICEBERG_CATALOG_NAME: &str = "ICEBERG_CATALOG_NAME";
pub const ICEBERG_WAREHOUSE: &str = "ICEBERG_WAREHOUSE";
pub const ICEBERG_CREDENTIAL: &str = "ICEBERG_CREDENTIAL";
pub const ICEBERG_TOKEN: &str = "ICEBERG_TOKEN";
pub const ICEBERG_CATALOG_PROPERTIES: &str = "ICEBERG_CATALOG_PROPERTIES";
pub const ICEBERG_TABLE: &str = "ICEBERG_TABLE";
pub const ICEBERG_DROPPED_TABLE: &str = "ICEBERG_DROPPED_TABLE";
pub const ICEBERG_REST_SIGV4: &str = "ICEBERG_REST_SIGV4";
