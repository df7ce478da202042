use std::path::PathBuf;

use crate::error::{Blame, Classify};

/// Why a plugin could not be loaded or run. Records that a plugin fails on
/// are not errors: they come back as drops with a reason.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin {}: cannot read it: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("plugin {}: {detail}", path.display())]
    NotAComponent { path: PathBuf, detail: String },

    #[error("plugin {}: not a valid WebAssembly component: {detail}", path.display())]
    Compile { path: PathBuf, detail: String },

    #[error("plugin {}: does not implement the world lineage:plugin/plugin@{}: {detail}", path.display(), super::CONTRACT_VERSION)]
    Contract { path: PathBuf, detail: String },

    #[error(
        "plugin {}: built against lineage:plugin@{found}, and this Lineage runs lineage:plugin@{}; rebuild it against wit/plugin.wit (wit/README.md lists what changed)",
        path.display(), super::CONTRACT_VERSION
    )]
    ContractVersion { path: PathBuf, found: String },

    #[error("plugin {}: failed while starting or describing itself: {detail}", path.display())]
    Start { path: PathBuf, detail: String },

    #[error("plugin {}: describe() answered an unusable description:\n  - {}", path.display(), problems.join("\n  - "))]
    Description {
        path: PathBuf,
        problems: Vec<String>,
    },

    #[error("plugin runtime: {0}")]
    Config(String),

    #[error("plugin {plugin}: cannot start an instance: {detail}")]
    Instantiate { plugin: String, detail: String },

    #[error("plugin runtime: {0}")]
    Engine(String),
}

impl PluginError {
    /// The setting the error is about, when it is about the component
    /// PLUGIN_PATH names; limit errors name their own flag.
    pub fn setting(&self) -> Option<&'static str> {
        match self {
            PluginError::Read { .. }
            | PluginError::NotAComponent { .. }
            | PluginError::Compile { .. }
            | PluginError::Contract { .. }
            | PluginError::ContractVersion { .. }
            | PluginError::Start { .. }
            | PluginError::Description { .. } => Some(crate::setting::PLUGIN_PATH),
            PluginError::Config(_) | PluginError::Instantiate { .. } | PluginError::Engine(_) => {
                None
            }
        }
    }
}

impl Classify for PluginError {
    fn blame(&self) -> Blame {
        match self {
            PluginError::Read { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => Blame::User,
                _ => Blame::Environment,
            },
            PluginError::NotAComponent { .. }
            | PluginError::Compile { .. }
            | PluginError::Contract { .. }
            | PluginError::ContractVersion { .. }
            | PluginError::Start { .. }
            | PluginError::Description { .. }
            | PluginError::Config(_) => Blame::User,
            PluginError::Instantiate { .. } => Blame::Environment,
            PluginError::Engine(_) => Blame::Internal,
        }
    }
}
