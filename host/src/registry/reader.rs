//! A batch's values as the plugin is to see them: framing taken off, the
//! schema id set, and the records the host refuses set aside with their
//! reason.

use std::sync::Arc;

use super::cache::{Lookup, Registry};
use super::error::RegistryError;
use super::framing::{Framed, InputFormat, unframe};
use crate::plugin::{KafkaRecord, Outcomes, PluginError, PluginWorker};

/// How a run reads its values.
#[derive(Clone)]
pub struct Reader {
    format: InputFormat,
    registry: Option<Arc<Registry>>,
}

/// A batch, read.
struct Unframed<'a> {
    /// What the plugin is given: values without their framing.
    bodies: Vec<KafkaRecord<'a>>,
    /// Indices (ascending) of the records the host drops, with the reason;
    /// they are not in `bodies`.
    refused: Vec<(usize, String)>,
}

impl Reader {
    /// `auto` without a registry reads everything bare.
    pub fn new(format: InputFormat, registry: Option<Arc<Registry>>) -> Self {
        let format = match (format, &registry) {
            (InputFormat::Auto, None) => InputFormat::Avro,
            (format, _) => format,
        };
        Self { format, registry }
    }

    pub fn registry(&self) -> Option<&Arc<Registry>> {
        self.registry.as_ref()
    }

    pub fn is_bare(&self) -> bool {
        self.format == InputFormat::Avro
    }

    /// Sets each framed record's schema id in `records` (which keep their
    /// whole value, for the dropped output) and answers what the plugin
    /// gets. Waits out a registry outage; never refuses a record for one.
    fn read<'a>(&self, records: &mut [KafkaRecord<'a>]) -> Result<Unframed<'a>, RegistryError> {
        let mut out = Unframed {
            bodies: Vec::with_capacity(records.len()),
            refused: Vec::new(),
        };
        // The ids of this batch, looked up once each: the registry's maps
        // are behind locks shared by every worker.
        let mut seen: Vec<(u32, Lookup)> = Vec::new();
        for (i, record) in records.iter_mut().enumerate() {
            match unframe(self.format, record.value) {
                Framed::Bare => out.bodies.push(*record),
                Framed::Bad(problem) => out.refused.push((i, problem.to_string())),
                Framed::Framed { id, body } => {
                    record.schema_id = Some(id);
                    let lookup = match seen.iter().find(|(seen, _)| *seen == id) {
                        Some((_, lookup)) => lookup,
                        None => {
                            seen.push((id, self.lookup(id)?));
                            &seen.last().expect("just pushed").1
                        }
                    };
                    match lookup {
                        Lookup::Known => out.bodies.push(KafkaRecord {
                            value: Some(body),
                            ..*record
                        }),
                        Lookup::Refused(reason) => out.refused.push((i, reason.clone())),
                    }
                }
            }
        }
        Ok(out)
    }

    /// The batch's outcomes: the plugin's, with the host's own drops (bad
    /// framing, unknown ids) in their places when the input is framed.
    pub fn outcomes<E: From<RegistryError> + From<PluginError>>(
        &self,
        plugin: &mut PluginWorker,
        records: &mut [KafkaRecord<'_>],
    ) -> Result<Outcomes, E> {
        if self.is_bare() {
            return Ok(plugin.process(records)?);
        }
        let read = self.read(records)?;
        Ok(plugin.process_except(&read.bodies, &read.refused)?)
    }

    fn lookup(&self, id: u32) -> Result<Lookup, RegistryError> {
        match &self.registry {
            Some(registry) => registry.lookup(id),
            None => Err(RegistryError::Config {
                setting: crate::setting::SCHEMA_REGISTRY_URL,
                problem: "INPUT_FORMAT=confluent needs a schema registry".to_owned(),
            }),
        }
    }
}
