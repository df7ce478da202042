//! Adapts the plugin to the `lineage:plugin` WIT world.

// The generated export takes the batch flat: nine core arguments.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({
    path: "../../wit",
    world: "plugin",
});

use std::cell::RefCell;

use guest_enrich::Writers;
use lineage::plugin::schemas::writer_schema;
use lineage::plugin::types::{Column, ColumnType, Outcome, Value};

thread_local! {
    static WRITERS: RefCell<Writers> = RefCell::default();
}

struct Pseudonymize;

fn column(name: &str, type_: ColumnType) -> Column {
    Column {
        name: name.to_owned(),
        type_,
        nullable: false,
    }
}

impl Guest for Pseudonymize {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: crate::NAME.to_owned(),
            version: crate::VERSION.to_owned(),
            columns: vec![
                column("user_key", ColumnType::String),
                column("timestamp", ColumnType::Int64),
                column("kafka_topic", ColumnType::String),
                column("kafka_partition", ColumnType::Int32),
                column("kafka_offset", ColumnType::Int64),
            ],
            event_time: Some("timestamp".to_owned()),
            input_schema: Some(guest_enrich::INPUT_SCHEMA.to_owned()),
        }
    }

    fn process(batch: Batch) -> Answer {
        let data = &batch.data;
        let mut answer = Answer {
            outcomes: Vec::with_capacity(batch.records.len()),
            values: Vec::with_capacity(batch.records.len() * 5),
        };
        for record in &batch.records {
            let value = record
                .value
                .map(|v| guest_enrich::span(data, v.start, v.len));
            match WRITERS
                .with_borrow_mut(|w| w.of(record.schema_id, writer_schema))
                .and_then(|w| crate::pseudonymize_with(value, w, record.timestamp))
            {
                Ok((user_key, timestamp)) => {
                    answer.values.extend([
                        Value::String(user_key),
                        Value::Int64(timestamp),
                        Value::String(batch.topic.clone()),
                        Value::Int32(batch.partition),
                        Value::Int64(record.offset),
                    ]);
                    answer.outcomes.push(Outcome::Keep(5));
                }
                Err(reason) => answer.outcomes.push(Outcome::Drop(reason)),
            }
        }
        answer
    }
}

export!(Pseudonymize);

#[global_allocator]
static ALLOC: guest_enrich::slab::Slab = guest_enrich::slab::Slab;
