//! Files on their way to a commit: how a file stays invisible until its
//! checkpoint commits (a multipart upload at its final key, or a hidden
//! staging file renamed into place), the staging entry journalled before
//! its first byte, and how recovery publishes, aborts or finds it.
//!
//! The sink writes through this module and the committer resolves through
//! it; neither needs the other.

mod entry;
mod error;
mod file;
mod layout;
mod outputs;
mod resolve;
mod writer;

pub use entry::{Entries, StagedEntries, StagedEntry};
pub use error::StagingError;
pub use file::{DropClass, FileKind, Publish, SealedFile, Staging, reason_class};
pub use layout::{Hour, STAGING_DIR, file_key, of_partition};
pub use outputs::Outputs;
pub use resolve::{Leftover, abort, leftovers, publish, remove, staged_by_id};
pub use writer::{FileSpec, StagedWriter, Stager};
