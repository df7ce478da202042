//! Host side of the `lineage:plugin` WIT world.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    // Records are lowered straight from borrowed Kafka buffers, with no copy.
    ownership: Borrowing { duplicate_if_necessary: true },
});

pub use self::lineage::plugin::log::Level;
pub use self::lineage::plugin::types::{Column, ColumnType, Header, Value};
