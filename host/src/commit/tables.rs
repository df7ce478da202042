//! Where committed files are registered once they are visible: a table
//! format's catalog (TABLE_FORMAT=iceberg, in `crate::table`). The commit
//! log stays the truth; this is a step after publishing, run again by
//! whoever finishes a commit after a crash, so an append must find out
//! whether it already happened and never register a commit twice.

use super::entry::Commit;
use crate::error::Carried;

#[async_trait::async_trait]
pub trait Tables: Send + Sync {
    /// Registers `commit`'s files, published already, unless the table
    /// holds them; retried by the caller on a retryable error.
    async fn append(&self, commit: &Commit) -> Result<(), Carried>;
}
