//! What every partition's files share: the stager, the file settings and
//! the plugin whose columns they hold.

use std::sync::Arc;

use arrow_schema::SchemaRef;

use super::file::FileSettings;
use super::schema::{FieldIds, data_schema, dropped_schema};
use crate::plugin::Plugin;
use crate::staging::Stager;

/// What every partition's files share.
pub struct SinkContext {
    /// Where files go and how they stay invisible until committed.
    pub staging: Stager,
    pub settings: FileSettings,
    pub plugin: Arc<Plugin>,
    /// The table's field ids, when the files go to an Iceberg table.
    table: Option<TableIds>,
    data_schema: SchemaRef,
    dropped_schema: SchemaRef,
}

/// The field ids of the data and the dropped table, kept current by the
/// table module as it evolves them.
#[derive(Debug, Clone, Default)]
pub struct TableIds {
    pub data: Arc<FieldIds>,
    pub dropped: Arc<FieldIds>,
}

impl SinkContext {
    pub fn new(
        staging: Stager,
        settings: FileSettings,
        plugin: Arc<Plugin>,
        table: Option<TableIds>,
    ) -> Self {
        let data_ids = table.as_ref().map(|t| t.data.as_ref());
        let data_schema = data_schema(plugin.schema(), settings.schema_id_column, data_ids);
        let dropped_schema = match &table {
            Some(t) => Arc::new(t.dropped.annotate(&dropped_schema())),
            None => dropped_schema(),
        };
        Self {
            staging,
            settings,
            plugin,
            table,
            data_schema,
            dropped_schema,
        }
    }

    /// Files opened from now on are the new plugin's, with its columns.
    /// Called only between checkpoints, when no file is open.
    pub fn switch_plugin(&mut self, plugin: Arc<Plugin>) {
        let ids = self.table.as_ref().map(|t| t.data.as_ref());
        self.data_schema = data_schema(plugin.schema(), self.settings.schema_id_column, ids);
        self.plugin = plugin;
    }

    pub(super) fn data_schema(&self) -> &SchemaRef {
        &self.data_schema
    }

    pub(super) fn dropped_schema(&self) -> &SchemaRef {
        &self.dropped_schema
    }
}
