//! Confluent Schema Registry framing: the host reads each value's 5-byte
//! header, fetches the writer schema of its id once (from the registry, or
//! from the disk cache a restart keeps), and hands plugins the body and the
//! id. See docs/schema-registry.md.

mod cache;
mod client;
mod error;
mod framing;
mod reader;
mod settings;

pub use cache::{Lookup, Registry};
pub use client::Client;
pub use error::RegistryError;
pub use framing::{BadFraming, Framed, InputFormat, unframe};
pub use reader::Reader;
pub use settings::{RegistrySettings, UserInfo};
