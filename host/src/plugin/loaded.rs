//! A loaded plugin build: compiled, linked, checked and described once,
//! shared by every worker that runs it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::bindings::PluginPre;
use super::contract::PluginSchema;
use super::runtime::PluginRuntime;
use super::sandbox::Sandbox;

/// Which build produced an output: what the commit log and dropped rows
/// record, so that every file traces back to exactly one plugin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PluginIdentity {
    pub name: String,
    pub version: String,
    /// SHA-256 of the component file, hex.
    pub sha256: String,
}

impl fmt::Display for PluginIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{} (sha256:{})",
            self.name,
            self.version,
            &self.sha256[..12]
        )
    }
}

pub struct Plugin {
    runtime: Arc<PluginRuntime>,
    path: PathBuf,
    identity: PluginIdentity,
    label: Arc<str>,
    schema: PluginSchema,
    pre: PluginPre<Sandbox>,
}

impl Plugin {
    pub(super) fn new(
        runtime: Arc<PluginRuntime>,
        path: PathBuf,
        identity: PluginIdentity,
        schema: PluginSchema,
        pre: PluginPre<Sandbox>,
    ) -> Self {
        let label = identity.to_string().into();
        Self {
            runtime,
            path,
            identity,
            label,
            schema,
            pre,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn identity(&self) -> &PluginIdentity {
        &self.identity
    }

    pub fn schema(&self) -> &PluginSchema {
        &self.schema
    }

    pub fn runtime(&self) -> &Arc<PluginRuntime> {
        &self.runtime
    }

    pub(super) fn label(&self) -> &Arc<str> {
        &self.label
    }

    pub(super) fn pre(&self) -> &PluginPre<Sandbox> {
        &self.pre
    }
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("path", &self.path)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}
