//! `lineage status`: partitions, checkpoints and drop reasons from the
//! commit log alone, with no running instance; lag too when the brokers
//! are given.

use std::collections::BTreeMap;
use std::io::Write;

use crate::partition::TopicPartition;
use crate::setting;
use crate::source::{KafkaSettings, parse_property};
use crate::status::{StatusError, from_log, text};

use super::trace::{OutputArgs, TraceError};

#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub outputs: OutputArgs,

    /// Kafka brokers: with them, each partition's high watermark and lag.
    #[arg(long = "kafka-bootstrap-servers", env = "KAFKA_BOOTSTRAP_SERVERS")]
    pub bootstrap_servers: Option<String>,

    #[arg(
        long = "kafka-security-protocol",
        env = "KAFKA_SECURITY_PROTOCOL",
        default_value = "PLAINTEXT"
    )]
    pub security_protocol: String,

    #[arg(long = "kafka-sasl-mechanism", env = setting::KAFKA_SASL_MECHANISM)]
    pub sasl_mechanism: Option<String>,

    #[arg(long = "kafka-property", env = setting::KAFKA_PROPERTIES, value_delimiter = ',', value_parser = parse_property)]
    pub properties: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum StatusCommandError {
    #[error(transparent)]
    Open(#[from] TraceError),
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error("writing the answer: {0}")]
    Output(#[from] std::io::Error),
}

impl crate::error::Classify for StatusCommandError {
    fn blame(&self) -> crate::error::Blame {
        match self {
            StatusCommandError::Open(e) => e.blame(),
            StatusCommandError::Status(e) => e.blame(),
            StatusCommandError::Output(_) => crate::error::Blame::Environment,
        }
    }
}

pub fn status(args: &StatusArgs, out: &mut impl Write) -> Result<(), StatusCommandError> {
    let query = args.outputs.open()?;
    let runtime = super::trace::runtime()?;
    let mut report = runtime.block_on(from_log(&query.log))?;
    if let Some(servers) = args.bootstrap_servers.as_deref().filter(|s| !s.is_empty()) {
        let settings = KafkaSettings {
            bootstrap_servers: servers.to_owned(),
            topic: String::new(),
            security_protocol: args.security_protocol.clone(),
            sasl_mechanism: args.sasl_mechanism.clone(),
            group_id: "lineage-status".into(),
            properties: args.properties.clone(),
        };
        let partitions: Vec<TopicPartition> = report
            .partitions
            .iter()
            .map(|p| TopicPartition {
                topic: p.topic.clone(),
                partition: p.partition,
            })
            .collect();
        let highs: BTreeMap<TopicPartition, i64> =
            crate::source::high_watermarks(&settings, &partitions);
        report = report.with_watermarks(&highs);
    }
    if args.outputs.json {
        serde_json::to_writer_pretty(&mut *out, &report).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", text(&report))?;
    }
    Ok(())
}
