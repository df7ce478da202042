//! Kafka: the consumer, its settings, and what happens when partitions are
//! assigned or revoked.
//!
//! Offsets live in the commit log, not in Kafka: on assignment the pipeline
//! claims the partitions in the log and the consumer starts each one where
//! the log says; on revocation the pipeline commits what it holds for them
//! before they are given up. Offsets are still committed to Kafka after
//! each checkpoint, for lag monitoring only.

mod fetched;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};

pub use fetched::Fetched;

use crate::commit::TopicPartition;
use crate::error::{Blame, Classify};

/// How to reach the topic; every field is a flag and an environment
/// variable (see `cli::RunArgs`).
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub bootstrap_servers: String,
    pub topic: String,
    pub security_protocol: String,
    pub group_id: String,
    /// librdkafka properties passed through as given; they win over ours.
    pub properties: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{setting}: {detail}")]
    Config {
        setting: &'static str,
        detail: String,
    },
    #[error("KAFKA_BOOTSTRAP_SERVERS={servers}: cannot reach the cluster: {source}")]
    Unreachable { servers: String, source: KafkaError },
    #[error("KAFKA_TOPIC={topic}: {detail}")]
    Topic { topic: String, detail: String },
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
}

impl Classify for SourceError {
    fn blame(&self) -> Blame {
        match self {
            SourceError::Config { .. } | SourceError::Topic { .. } => Blame::User,
            SourceError::Unreachable { .. } | SourceError::Kafka(_) => Blame::Environment,
        }
    }
}

/// What the pipeline does when the group moves partitions; called on the
/// consumer's thread, inside `poll`.
pub trait Rebalance: Send + Sync + 'static {
    /// Claims the partitions and returns where to start each one.
    /// `earliest` is Kafka's low watermark, for partitions the log has
    /// never seen.
    fn assigned(&self, partitions: Vec<(TopicPartition, i64)>) -> BTreeMap<TopicPartition, i64>;

    /// Commits what is held for the partitions before they go.
    fn revoked(&self, partitions: Vec<TopicPartition>);

    /// The partitions were lost without a revocation (session timeout):
    /// nothing may be committed for them.
    fn lost(&self, partitions: Vec<TopicPartition>);
}

pub struct SourceContext {
    rebalance: Arc<dyn Rebalance>,
}

impl ClientContext for SourceContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", fac, "{message}"),
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", fac, "{message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", fac, "{message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", fac, "{message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", error = %error, "{reason}");
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| TopicPartition {
            topic: e.topic().to_owned(),
            partition: e.partition(),
        })
        .collect()
}

impl ConsumerContext for SourceContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let mut wanted = Vec::new();
                for tp in partitions(tpl) {
                    let earliest = consumer
                        .fetch_watermarks(&tp.topic, tp.partition, Duration::from_secs(10))
                        .map(|(low, _)| low)
                        .unwrap_or_else(|e| {
                            tracing::warn!(partition = %tp, error = %e, "no low watermark; starting from offset 0");
                            0
                        });
                    wanted.push((tp, earliest));
                }
                let next = self.rebalance.assigned(wanted);
                for (tp, offset) in &next {
                    if let Err(e) =
                        tpl.set_partition_offset(&tp.topic, tp.partition, Offset::Offset(*offset))
                    {
                        tracing::error!(partition = %tp, error = %e, "cannot set start offset");
                    }
                }
                tracing::info!(
                    assigned = %next.iter().map(|(tp, o)| format!("{tp}@{o}")).collect::<Vec<_>>().join(","),
                    "partitions assigned"
                );
                let result = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(e) = result {
                    tracing::error!(error = %e, "assigning partitions failed");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let revoked = partitions(tpl);
                tracing::info!(
                    revoked = %revoked.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
                    lost = consumer.assignment_lost(),
                    "partitions revoked"
                );
                if consumer.assignment_lost() {
                    self.rebalance.lost(revoked);
                } else {
                    self.rebalance.revoked(revoked);
                }
                let result = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = result {
                    tracing::error!(error = %e, "unassigning partitions failed");
                }
            }
            other => {
                tracing::error!(error = ?other, "rebalance failed");
                let _ = consumer.unassign();
            }
        }
    }
}

pub type KafkaConsumer = BaseConsumer<SourceContext>;

/// The librdkafka settings Lineage relies on; user properties override.
fn client_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.bootstrap_servers)
        .set("security.protocol", &settings.security_protocol)
        .set("client.id", "lineage");
    config
}

/// Consumer settings without the group: the pipeline adds its own, the
/// benchmark's plain consumer uses them as they are.
pub fn consumer_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = client_config(settings);
    config
        // The defaults cap a consumer at 100-200 k records/s.
        .set("fetch.queue.backoff.ms", "10")
        .set("fetch.wait.max.ms", "100")
        // librdkafka's pre-fetch queue is memory the budget cannot see, and
        // for small records its per-message overhead (about 200 bytes)
        // dominates: measured with heaptrack, 20 000 queued per partition
        // held 38 MiB over 10 partitions.
        .set("queued.min.messages", "5000")
        .set("queued.max.messages.kbytes", "4096");
    apply_properties(&mut config, settings);
    config
}

/// A consumer in the group, subscribed to the topic, with offsets owned by
/// the commit log. Fails fast when the cluster is unreachable or the topic
/// missing.
pub fn consumer(
    settings: &KafkaSettings,
    rebalance: Arc<dyn Rebalance>,
) -> Result<Arc<KafkaConsumer>, SourceError> {
    let mut config = consumer_config(settings);
    config
        .set("group.id", &settings.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.partition.eof", "false");
    apply_properties(&mut config, settings);
    let consumer: KafkaConsumer = config
        .create_with_context(SourceContext { rebalance })
        .map_err(|e| SourceError::Config {
            setting: "KAFKA_PROPERTIES",
            detail: e.to_string(),
        })?;
    check_topic(&consumer, settings)?;
    consumer
        .subscribe(&[&settings.topic])
        .map_err(SourceError::Kafka)?;
    Ok(Arc::new(consumer))
}

/// The topic's partition count; fails when the cluster is unreachable or
/// the topic does not exist.
pub fn check_topic<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    settings: &KafkaSettings,
) -> Result<usize, SourceError> {
    let metadata = consumer
        .fetch_metadata(Some(&settings.topic), Duration::from_secs(10))
        .map_err(|source| SourceError::Unreachable {
            servers: settings.bootstrap_servers.clone(),
            source,
        })?;
    let topic = metadata
        .topics()
        .iter()
        .find(|t| t.name() == settings.topic)
        .ok_or_else(|| SourceError::Topic {
            topic: settings.topic.clone(),
            detail: "not in the cluster's metadata".into(),
        })?;
    if let Some(err) = topic.error() {
        return Err(SourceError::Topic {
            topic: settings.topic.clone(),
            detail: format!("{:?}", rdkafka::types::RDKafkaErrorCode::from(err)),
        });
    }
    if topic.partitions().is_empty() {
        return Err(SourceError::Topic {
            topic: settings.topic.clone(),
            detail: "has no partitions".into(),
        });
    }
    Ok(topic.partitions().len())
}

/// A producer for the generator and tests.
pub fn producer_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = client_config(settings);
    config
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "1000000");
    apply_properties(&mut config, settings);
    config
}

/// The user's librdkafka properties, last so that they win.
fn apply_properties(config: &mut ClientConfig, settings: &KafkaSettings) {
    for (k, v) in settings.properties.iter().filter(|(k, _)| !k.is_empty()) {
        config.set(k, v);
    }
}

/// Parses `key=value` pairs given on the command line or in
/// KAFKA_PROPERTIES (comma-separated). An empty entry (KAFKA_PROPERTIES set
/// to "" by a chart) is kept as an empty key and skipped.
pub fn parse_property(s: &str) -> Result<(String, String), String> {
    if s.trim().is_empty() {
        return Ok((String::new(), String::new()));
    }
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not key=value"))?;
    if k.trim().is_empty() {
        return Err(format!("{s:?} has an empty key"));
    }
    Ok((k.trim().to_owned(), v.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::parse_property;

    #[test]
    fn parses_properties() {
        assert_eq!(
            parse_property(" fetch.wait.max.ms = 5 "),
            Ok(("fetch.wait.max.ms".into(), "5".into()))
        );
        assert_eq!(
            parse_property("sasl.password=a=b"),
            Ok(("sasl.password".into(), "a=b".into()))
        );
        assert_eq!(parse_property(""), Ok((String::new(), String::new())));
        assert!(parse_property("no-equals").is_err());
        assert!(parse_property("=5").is_err());
    }
}
