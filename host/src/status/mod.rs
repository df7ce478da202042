//! What an operator looks at: the status page a running instance serves at
//! METRICS_ADDRESS (`/`, and `/status` as JSON), and `lineage status`,
//! which answers the same from the commit log alone.

mod live;
mod page;
mod read;
mod report;
mod text;

pub use live::LiveStatus;
pub use page::page;
pub use read::{StatusError, from_log};
pub use report::{
    CheckpointStatus, Digest, DropStatus, FileSizes, Live, PartitionStatus, PluginStatus, Report,
    State, Swap, human_bytes,
};
pub use text::text;
