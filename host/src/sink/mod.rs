//! Parquet output: kept rows under OUTPUT_PATH, dropped records under
//! DROPPED_PATH, both as `year=YYYY/month=MM/day=DD/hour=HH/part-*.parquet`.
//!
//! A [`PartitionSink`] owns the open files of one Kafka partition, one per
//! output and event-time hour, and hands them, sealed but invisible, to the
//! checkpoint. A file holds records of one partition only, so that a
//! partition can be committed, fenced or moved on its own. How a file stays
//! invisible until then is [`crate::staging`]'s.

mod context;
mod error;
mod file;
mod partition;
mod schema;

pub use context::{SinkContext, TableIds};
pub use error::SinkError;
pub use file::FileSettings;
pub use partition::{FileCost, PartitionSink};
pub use schema::{CHECKPOINT_ID, FieldIds, SCHEMA_ID, data_schema, dropped_schema, table_time};
