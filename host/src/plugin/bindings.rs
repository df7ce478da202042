//! Host side of the `lineage:plugin` WIT world. `process` does not go
//! through these bindings: records.rs lowers its batch and answer.rs lifts
//! its answer, and the generated types only check their layout.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
});

pub use self::lineage::plugin::log::Level;
pub use self::lineage::plugin::types::{Column, ColumnType, Header, KafkaRecord, Outcome, Value};
