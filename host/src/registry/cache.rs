//! Writer schemas by id, fetched once. Ids are immutable, so a schema once
//! fetched never goes stale: it is kept in memory and, where a cache
//! directory is set, on disk, so that a restart needs the registry only
//! for ids it has never seen.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use sha2::Digest;

use super::client::{Answer, Client};
use super::error::RegistryError;
use super::settings::RegistrySettings;
use crate::error::Classify;
use crate::metrics::Stats;
use crate::plugin::WriterSchemas;
use crate::retry::{Policy, retry};

/// What an id stands for; the same at every replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Known,
    /// The drop reason of every record framed with this id.
    Refused(String),
}

pub struct Registry {
    client: Client,
    cache_dir: Option<PathBuf>,
    /// Shared with the plugin runtime, which answers `writer-schema`.
    schemas: Arc<WriterSchemas>,
    refused: Mutex<HashMap<u32, String>>,
    /// One fetch at a time: workers that need the same id wait for the
    /// first one's answer rather than asking again.
    fetching: Mutex<()>,
    runtime: tokio::runtime::Handle,
    policy: Policy,
    /// Where an outage shows: metrics and the progress line.
    stats: Arc<Stats>,
}

impl Registry {
    pub fn new(
        settings: &RegistrySettings,
        schemas: Arc<WriterSchemas>,
        runtime: tokio::runtime::Handle,
        policy: Policy,
        stats: Arc<Stats>,
    ) -> Result<Self, RegistryError> {
        // Ids are a registry's own: each registry gets its own directory.
        let cache_dir = settings.cache_dir.as_ref().map(|dir| {
            let digest = sha2::Sha256::digest(settings.url.as_bytes());
            let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            dir.join(name)
        });
        // The cache only saves fetches: without one, memory serves.
        let cache_dir = cache_dir.filter(|dir| match std::fs::create_dir_all(dir) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(path = %dir.display(), error = %e, "SCHEMA_CACHE_DIR cannot be created; writer schemas are kept in memory only, and a restart fetches them again");
                false
            }
        });
        Ok(Self {
            client: Client::new(settings)?,
            cache_dir,
            schemas,
            refused: Mutex::default(),
            fetching: Mutex::default(),
            runtime,
            policy,
            stats,
        })
    }

    pub fn url(&self) -> &str {
        self.client.url()
    }

    /// What `id` stands for, asking the registry (and waiting out an
    /// outage, until the shutdown deadline) only for an id never seen.
    /// Blocks: call it from a worker thread, not the runtime.
    pub fn lookup(&self, id: u32) -> Result<Lookup, RegistryError> {
        if let Some(known) = self.known(id) {
            return Ok(known);
        }
        let _one = self.fetching.lock().expect("fetching lock");
        if let Some(known) = self.known(id) {
            return Ok(known);
        }
        if let Some(schema) = self.read_cached(id) {
            self.schemas.insert(id, schema.into());
            return Ok(Lookup::Known);
        }
        if self.cached_missing(id) {
            return Ok(self.learn(id, Answer::Missing));
        }
        let answer = self.fetch(id)?;
        Ok(self.learn(id, answer))
    }

    /// What the registry would answer for `id`, given without asking it:
    /// a schema, or none (as a 40403). For benchmarks with no registry.
    pub fn preload(&self, id: u32, schema: Option<&str>) {
        let answer = match schema {
            Some(schema) => Answer::Avro(schema.to_owned()),
            None => Answer::Missing,
        };
        self.learn(id, answer);
    }

    fn known(&self, id: u32) -> Option<Lookup> {
        if self.schemas.contains(id) {
            return Some(Lookup::Known);
        }
        let refused = self.refused.lock().expect("refused lock");
        refused
            .get(&id)
            .map(|reason| Lookup::Refused(reason.clone()))
    }

    /// Waits out an outage (unreachable, 5xx, 429) with backoff until the
    /// shutdown deadline: a record is never dropped for the weather.
    fn fetch(&self, id: u32) -> Result<Answer, RegistryError> {
        let what = format!("fetch schema {id} from {}", self.client.url());
        let result = self.runtime.block_on(retry(&what, &self.policy, || async {
            let answer = self.client.schema(id).await;
            if answer.as_ref().is_err_and(Classify::retryable) {
                self.stats.registry_down.store(true, Ordering::Relaxed);
                self.stats.registry_failures.fetch_add(1, Ordering::Relaxed);
            }
            answer
        }));
        self.stats.registry_down.store(false, Ordering::Relaxed);
        result
    }

    fn learn(&self, id: u32, answer: Answer) -> Lookup {
        let reason = match answer {
            Answer::Avro(schema) => {
                self.write_cached(id, &schema);
                self.schemas.insert(id, schema.into());
                return Lookup::Known;
            }
            Answer::Missing => {
                self.write_missing(id);
                format!("schema registry: no schema with id {id}")
            }
            Answer::OtherType(kind) => {
                format!("schema registry: schema {id} is a {kind} schema, not Avro")
            }
        };
        tracing::warn!(schema_id = id, registry = %self.client.url(), reason = %reason, "records with this schema id are dropped");
        self.refused
            .lock()
            .expect("refused lock")
            .insert(id, reason.clone());
        Lookup::Refused(reason)
    }

    fn cached_path(&self, id: u32) -> Option<PathBuf> {
        self.cache_dir
            .as_ref()
            .map(|dir| dir.join(format!("{id}.avsc")))
    }

    /// A 40403 is kept too, so that a restart decides the id's records as
    /// the first run did (a registry that learns the id later does not
    /// change what was already dropped, nor what a replay drops).
    fn missing_path(&self, id: u32) -> Option<PathBuf> {
        self.cache_dir
            .as_ref()
            .map(|dir| dir.join(format!("{id}.missing")))
    }

    fn cached_missing(&self, id: u32) -> bool {
        self.missing_path(id).is_some_and(|p| p.exists())
    }

    fn write_missing(&self, id: u32) {
        if let Some(path) = self.missing_path(id)
            && let Err(e) = write_atomically(&path, "40403\n")
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot keep a registry's \"no such schema\" on disk");
        }
    }

    /// A cached schema, unless the file is not one (emptied, cut short or
    /// edited by hand): that costs a fetch, never a drop.
    fn read_cached(&self, id: u32) -> Option<String> {
        let path = self.cached_path(id)?;
        let text = std::fs::read_to_string(&path).ok()?;
        if !is_json(&text) {
            tracing::warn!(path = %path.display(), "a cached schema that is not JSON; fetching it again");
            return None;
        }
        Some(text)
    }

    /// Written whole or not at all (a rename), so that a crash never
    /// leaves half a schema to be read as one. A failure only costs a
    /// fetch at the next start.
    fn write_cached(&self, id: u32, schema: &str) {
        let Some(path) = self.cached_path(id) else {
            return;
        };
        if let Err(e) = write_atomically(&path, schema) {
            tracing::warn!(path = %path.display(), error = %e, "cannot keep a fetched schema on disk; a restart fetches it again");
        }
    }
}

fn is_json(text: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    // Unique per writer: pods sharing a volume are all PID 1.
    let incoming = path.with_extension(format!("incoming-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&incoming, text)?;
    std::fs::File::open(&incoming)?.sync_all()?;
    std::fs::rename(&incoming, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_cached_schema_is_not_taken_for_one() {
        assert!(is_json(r#"{"type":"record","name":"E","fields":[]}"#));
        assert!(is_json("\"string\""));
        for torn in ["", "{\"type\":\"rec", "\u{0}\u{0}\u{0}"] {
            assert!(!is_json(torn), "{torn:?}");
        }
    }
}
