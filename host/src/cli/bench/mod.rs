//! `lineage bench`: what the parts cost. `plugin` measures the WebAssembly
//! boundary and fuel metering against the same enrichment compiled into
//! the host; `pipeline` the pipeline without Kafka; `kafka` the pipeline
//! end to end next to a plain consumer of the same topic.

mod kafka;
mod pipeline;
mod plugin;
mod rss;

pub use kafka::{KafkaBenchArgs, kafka};
pub use pipeline::{PipelineBenchArgs, pipeline};
pub use plugin::{PluginBenchArgs, plugin};
pub use rss::{peak_rss, reset_peak_rss};
