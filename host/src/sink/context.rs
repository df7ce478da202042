//! What every partition's files share: the stager, the file settings and
//! the plugin whose columns they hold.

use std::sync::Arc;

use arrow_schema::SchemaRef;

use super::file::FileSettings;
use super::schema::{data_schema, dropped_schema};
use crate::plugin::Plugin;
use crate::staging::Stager;

/// What every partition's files share.
pub struct SinkContext {
    /// Where files go and how they stay invisible until committed.
    pub staging: Stager,
    pub settings: FileSettings,
    pub plugin: Arc<Plugin>,
    data_schema: SchemaRef,
    dropped_schema: SchemaRef,
}

impl SinkContext {
    pub fn new(staging: Stager, settings: FileSettings, plugin: Arc<Plugin>) -> Self {
        let data_schema = data_schema(plugin.schema(), settings.schema_id_column);
        Self {
            staging,
            settings,
            plugin,
            data_schema,
            dropped_schema: dropped_schema(),
        }
    }

    /// Files opened from now on are the new plugin's, with its columns.
    /// Called only between checkpoints, when no file is open.
    pub fn switch_plugin(&mut self, plugin: Arc<Plugin>) {
        self.data_schema = data_schema(plugin.schema(), self.settings.schema_id_column);
        self.plugin = plugin;
    }

    pub(super) fn data_schema(&self) -> &SchemaRef {
        &self.data_schema
    }

    pub(super) fn dropped_schema(&self) -> &SchemaRef {
        &self.dropped_schema
    }
}
