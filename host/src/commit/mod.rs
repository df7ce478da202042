//! Checkpoints and the write-ahead commit log: what makes delivery exactly
//! once. The protocol, the order of its writes and what recovery does after
//! a crash between any two of them are in docs/commit-protocol.md.

mod committer;
mod entry;
mod error;
mod log;
mod state;
mod tables;

pub use committer::{
    Claimed, Committer, DEFAULT_SNAPSHOT_EVERY, MissingOffsets, OffsetReset, Prepared, Published,
    Wanted, now, out_of_range,
};
pub use entry::{Claim, Commit, HEADER, Moved, OffsetRange, PluginStamp};
pub use error::CommitError;
pub use log::{CommitLog, Loaded};
pub use state::{Conflict, LogState, PartitionState};
pub use tables::Tables;
