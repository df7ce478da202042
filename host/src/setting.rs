//! The names of the settings that code names in its errors, checks and
//! tests: one spelling each. Every one is also an environment variable.

pub const OUTPUT_PATH: &str = "OUTPUT_PATH";
pub const DROPPED_PATH: &str = "DROPPED_PATH";
pub const WRITE_AHEAD_COMMIT_LOG_PATH: &str = "WRITE_AHEAD_COMMIT_LOG_PATH";
pub const PLUGIN_PATH: &str = "PLUGIN_PATH";
pub const METRICS_ADDRESS: &str = "METRICS_ADDRESS";
pub const WORKERS: &str = "WORKERS";
pub const KAFKA_PROPERTIES: &str = "KAFKA_PROPERTIES";
/// Test tooling: crash, hold or fail at named points (see failpoints.rs).
pub const LINEAGE_FAILPOINTS: &str = "LINEAGE_FAILPOINTS";
/// Test tooling: inject S3 faults (see store/faults.rs).
pub const LINEAGE_STORE_FAULTS: &str = "LINEAGE_STORE_FAULTS";
