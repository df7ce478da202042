//! Why a command failed, beyond the errors of the parts it drives.

use std::path::PathBuf;

use crate::error::{Blame, Classify};
use crate::pipeline::RunError;
use crate::plugin::PluginError;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Plugin(#[from] PluginError),

    #[error("{}: cannot read it: {source}", path.display())]
    ReadInput {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{} line {line}: {detail}", path.display())]
    Input {
        path: PathBuf,
        line: usize,
        detail: String,
    },

    #[error("{}: holds no records", path.display())]
    EmptyInput { path: PathBuf },

    #[error("cannot write output: {0}")]
    Output(std::io::Error),

    #[error("bench: {0}")]
    Bench(String),

    /// A pipeline a benchmark ran failed: its error, with its class.
    #[error(transparent)]
    Run(Box<RunError>),
}

impl Classify for CommandError {
    fn blame(&self) -> Blame {
        match self {
            CommandError::Plugin(e) => e.blame(),
            CommandError::ReadInput { .. }
            | CommandError::Input { .. }
            | CommandError::EmptyInput { .. } => Blame::User,
            CommandError::Output(_) => Blame::Environment,
            CommandError::Bench(_) => Blame::User,
            CommandError::Run(e) => e.blame(),
        }
    }
}

impl From<RunError> for CommandError {
    fn from(e: RunError) -> Self {
        CommandError::Run(Box::new(e))
    }
}
