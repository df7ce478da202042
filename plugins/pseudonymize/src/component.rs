//! Adapts the plugin to the `lineage:plugin` WIT world.

wit_bindgen::generate!({
    path: "../../wit",
    world: "plugin",
});

use std::cell::RefCell;

use guest_enrich::Writers;
use lineage::plugin::schemas::writer_schema;
use lineage::plugin::types::{Column, ColumnType, Value};

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

    fn process(records: Vec<KafkaRecord>) -> Vec<Outcome> {
        records
            .into_iter()
            .map(|record| {
                match WRITERS
                    .with_borrow_mut(|w| w.of(record.schema_id, writer_schema))
                    .and_then(|w| {
                        crate::pseudonymize_with(record.value.as_deref(), w, record.timestamp)
                    }) {
                    Ok((user_key, timestamp)) => Outcome::Keep(vec![
                        Value::String(user_key),
                        Value::Int64(timestamp),
                        Value::String(record.topic),
                        Value::Int32(record.partition),
                        Value::Int64(record.offset),
                    ]),
                    Err(reason) => Outcome::Drop(reason),
                }
            })
            .collect()
    }
}

export!(Pseudonymize);

#[global_allocator]
static ALLOC: guest_enrich::slab::Slab = guest_enrich::slab::Slab;
