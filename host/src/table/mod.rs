//! Iceberg tables (TABLE_FORMAT=iceberg): each commit's published files
//! appended as one snapshot of the data table and one of the dropped
//! records' table, exactly once, with the commit log still the truth. See
//! docs/commit-protocol.md, "The table append".

mod catalog;
mod error;
mod files;
mod settings;
mod shape;
mod sigv4;
mod storage;
mod tables;

pub use error::TableError;
pub use settings::{CatalogKind, CatalogSettings, TableFormat, TableName, TableSettings};
pub use tables::{Holdings, IcebergTables, Shapes};
