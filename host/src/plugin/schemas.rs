//! Writer schemas by Schema Registry id, as `schemas.writer-schema`
//! answers them. The host fills it before a batch that names an id reaches
//! a plugin; ids are immutable, so an entry never changes once made.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

#[derive(Debug, Default)]
pub struct WriterSchemas(RwLock<HashMap<u32, Arc<str>>>);

impl WriterSchemas {
    pub fn get(&self, id: u32) -> Option<Arc<str>> {
        self.0
            .read()
            .expect("writer schemas lock")
            .get(&id)
            .cloned()
    }

    pub fn contains(&self, id: u32) -> bool {
        self.0
            .read()
            .expect("writer schemas lock")
            .contains_key(&id)
    }

    pub fn insert(&self, id: u32, schema: Arc<str>) {
        self.0
            .write()
            .expect("writer schemas lock")
            .entry(id)
            .or_insert(schema);
    }
}
