//! Why a run ended with an error.

use std::time::Duration;

use crate::commit::CommitError;
use crate::error::{Blame, Classify};
use crate::plugin::PluginError;
use crate::registry::RegistryError;
use crate::sink::SinkError;
use crate::source::SourceError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{}{}", plugin_setting(.0), .0)]
    Plugin(#[from] PluginError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Table(#[from] crate::table::TableError),
    /// A setting the run cannot start with.
    #[error("{setting}: {problem}")]
    Config {
        setting: &'static str,
        problem: String,
    },
    #[error(
        "shutdown did not finish within --shutdown-timeout ({0:?}); what was not committed is recovered at the next start"
    )]
    ShutdownTimeout(Duration),
    #[error(transparent)]
    GaveUp(#[from] crate::retry::GaveUp),
    /// The machine would not give the run a thread or a runtime.
    #[error("starting {what}: {source}")]
    Spawn {
        what: &'static str,
        source: std::io::Error,
    },
    /// Something the pipeline's own logic rules out happened.
    #[error("internal error: {0}")]
    Invariant(String),
}

/// `PLUGIN_PATH: ` before an error about the component, nothing before a
/// limit's, which names its own flag.
fn plugin_setting(e: &PluginError) -> String {
    e.setting().map(|s| format!("{s}: ")).unwrap_or_default()
}

impl RunError {
    pub(super) fn spawn(what: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| RunError::Spawn { what, source }
    }
}

impl Classify for RunError {
    fn blame(&self) -> Blame {
        match self {
            RunError::Store(e) => e.blame(),
            RunError::Source(e) => e.blame(),
            RunError::Plugin(e) => e.blame(),
            RunError::Sink(e) => e.blame(),
            RunError::Commit(e) => e.blame(),
            RunError::Registry(e) => e.blame(),
            RunError::Table(e) => e.blame(),
            RunError::Config { .. } => Blame::User,
            RunError::ShutdownTimeout(_) | RunError::GaveUp(_) | RunError::Spawn { .. } => {
                Blame::Environment
            }
            RunError::Invariant(_) => Blame::Internal,
        }
    }

    fn retryable(&self) -> bool {
        match self {
            RunError::Store(e) => e.retryable(),
            RunError::Source(e) => e.retryable(),
            RunError::Plugin(e) => e.retryable(),
            RunError::Sink(e) => e.retryable(),
            RunError::Commit(e) => e.retryable(),
            RunError::Registry(e) => e.retryable(),
            RunError::Table(e) => e.retryable(),
            RunError::ShutdownTimeout(_)
            | RunError::GaveUp(_)
            | RunError::Config { .. }
            | RunError::Spawn { .. }
            | RunError::Invariant(_) => false,
        }
    }
}
