//! `lineage generate`: the seed's InputEvent records, some of them invalid,
//! produced to a topic at a rate or up to a count. Replaces the seed's
//! Python generator.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use rdkafka::ClientContext;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};

use super::run::KafkaArgs;
use crate::fixtures::{self, EventKind, SchemaIds};
use crate::registry::{Client, RegistryError, RegistrySettings};
use crate::source::{KafkaSettings, SourceError, producer_config};

#[derive(Debug, Clone, clap::Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Records per second; 0 produces as fast as the broker takes them.
    #[arg(long, env = "GENERATE_RATE", default_value_t = 10.0)]
    pub rate: f64,

    /// Stop after this many records; without it, run until stopped.
    #[arg(long, env = "GENERATE_COUNT")]
    pub count: Option<u64>,

    /// Share of invalid records (garbage bytes, empty values, bad uuids),
    /// from 0 to 1.
    #[arg(long, env = "GENERATE_INVALID_SHARE", default_value_t = 0.0)]
    pub invalid_share: f64,

    /// Sequence number of the first record; its uuid and validity derive
    /// from it, so that runs can be checked record by record.
    #[arg(long, env = "GENERATE_START", default_value_t = 0)]
    pub start: u64,

    /// Register InputEvent v1 and v2 under `<topic>-value` in this Schema
    /// Registry and produce Confluent-framed values that interleave them;
    /// the invalid share then includes bad framing and unknown ids.
    #[arg(long = "schema-registry")]
    pub schema_registry: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("starting the I/O runtime: {0}")]
    Runtime(std::io::Error),
}

impl crate::error::Classify for GenerateError {
    fn blame(&self) -> crate::error::Blame {
        match self {
            GenerateError::Source(e) => e.blame(),
            GenerateError::Registry(e) => e.blame(),
            GenerateError::Runtime(_) => crate::error::Blame::Environment,
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Generated {
    pub records: u64,
    pub invalid: u64,
    pub failed: u64,
}

#[derive(Default)]
struct Delivery {
    failed: AtomicU64,
    auth: crate::source::ClientAuth,
}

impl ClientContext for Delivery {
    crate::source::signs_in!();
}

impl ProducerContext for Delivery {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result
            && self.failed.fetch_add(1, Ordering::Relaxed) == 0
        {
            tracing::error!(error = %e, "a record could not be delivered");
        }
    }
}

/// Which kind record `n` is: deterministic, so tests and users can predict
/// where each record must end up.
pub fn kind_of(n: u64, invalid_share: f64) -> EventKind {
    let mut x = n.wrapping_add(0x632b_e59b_d9b4_e019);
    x = (x ^ (x >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    if (x as f64 / u64::MAX as f64) >= invalid_share {
        return EventKind::Valid;
    }
    match n % 3 {
        0 => EventKind::Garbage,
        1 => EventKind::Empty,
        _ => EventKind::BadUuid,
    }
}

pub fn generate(
    args: &GenerateArgs,
    stop: Option<Receiver<()>>,
    progress: Option<Arc<AtomicU64>>,
) -> Result<Generated, GenerateError> {
    check(args)?;
    let settings = args.kafka.settings("");
    let producer: BaseProducer<Delivery> = producer_config(&settings)
        .create_with_context(Delivery {
            failed: AtomicU64::new(0),
            auth: crate::source::ClientAuth::new(crate::source::msk_iam(&settings)?),
        })
        .map_err(|e| SourceError::Config {
            setting: crate::setting::KAFKA_PROPERTIES,
            detail: e.to_string(),
        })?;
    producer
        .context()
        .auth
        .await_first_token(|wait| producer.poll(wait))
        .map_err(SourceError::MskIam)?;
    let partitions = partition_count(&producer, &settings)?;
    let ids = match &args.schema_registry {
        Some(url) => Some(register(url, &settings.topic)?),
        None => None,
    };
    let started = Instant::now();
    let mut last_report = started;
    let mut out = Generated::default();
    let mut n = args.start;
    while args.count.is_none_or(|c| out.records < c)
        && stop.as_ref().is_none_or(|s| s.try_recv().is_err())
    {
        if args.rate > 0.0 {
            // Hold the rate: wait for this record's slot.
            let due = started + Duration::from_secs_f64(out.records as f64 / args.rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let kind = kind_of(n, args.invalid_share);
        send(
            &producer,
            &settings.topic,
            (n % partitions as u64) as i32,
            kind,
            n,
            ids,
        )?;
        out.records += 1;
        out.invalid += u64::from(kind != EventKind::Valid);
        if let Some(p) = &progress {
            p.store(out.records, Ordering::Relaxed);
        }
        n += 1;
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            tracing::info!(
                records = out.records,
                invalid = out.invalid,
                per_second = (out.records as f64 / started.elapsed().as_secs_f64()) as u64,
                "generating"
            );
        }
    }
    // As long as librdkafka itself waits for a delivery
    // (message.timeout.ms, 5 minutes by default): a busy broker is slow,
    // not gone.
    producer
        .flush(Duration::from_secs(300))
        .map_err(SourceError::Kafka)?;
    out.failed = producer.context().failed.load(Ordering::Relaxed);
    Ok(out)
}

fn check(args: &GenerateArgs) -> Result<(), SourceError> {
    if !(0.0..=1.0).contains(&args.invalid_share) {
        return Err(SourceError::Config {
            setting: "GENERATE_INVALID_SHARE",
            detail: format!("{} is not between 0 and 1", args.invalid_share),
        });
    }
    if args.rate < 0.0 || !args.rate.is_finite() {
        return Err(SourceError::Config {
            setting: "GENERATE_RATE",
            detail: format!("{} is not a rate", args.rate),
        });
    }
    Ok(())
}

/// Queues record `n`, waiting while the producer's queue is full.
fn send(
    producer: &BaseProducer<Delivery>,
    topic: &str,
    partition: i32,
    kind: EventKind,
    n: u64,
    ids: Option<SchemaIds>,
) -> Result<(), SourceError> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let value = match ids {
        Some(ids) => fixtures::framed_value(kind, n, now_ms, ids),
        None => fixtures::value(kind, n, now_ms),
    };
    let key = fixtures::uuid_for(n).to_string();
    let mut record = BaseRecord::to(topic)
        .partition(partition)
        .key(key.as_bytes())
        .payload(&value)
        .timestamp(now_ms);
    loop {
        match producer.send(record) {
            Ok(()) => break,
            Err((
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::QueueFull,
                ),
                r,
            )) => {
                record = r;
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(SourceError::Kafka(e)),
        }
    }
    producer.poll(Duration::ZERO);
    Ok(())
}

/// Registers v1 and v2 under the topic's value subject (TopicNameStrategy).
fn register(url: &str, topic: &str) -> Result<SchemaIds, GenerateError> {
    let client = Client::new(&RegistrySettings::new(url))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(GenerateError::Runtime)?;
    let subject = format!("{topic}-value");
    let v1 = runtime.block_on(client.register(&subject, fixtures::INPUT_SCHEMA))?;
    let v2 = runtime.block_on(client.register(&subject, fixtures::INPUT_SCHEMA_V2))?;
    tracing::info!(
        subject,
        v1,
        v2,
        registry = url,
        "registered InputEvent v1 and v2"
    );
    Ok(SchemaIds { v1, v2 })
}

fn partition_count(
    producer: &BaseProducer<Delivery>,
    settings: &KafkaSettings,
) -> Result<usize, SourceError> {
    let metadata = producer
        .client()
        .fetch_metadata(Some(&settings.topic), Duration::from_secs(10))
        .map_err(|source| SourceError::Unreachable {
            servers: settings.bootstrap_servers.clone(),
            source,
        })?;
    metadata
        .topics()
        .iter()
        .find(|t| t.name() == settings.topic && t.error().is_none())
        .map(|t| t.partitions().len())
        .filter(|n| *n > 0)
        .ok_or_else(|| SourceError::Topic {
            topic: settings.topic.clone(),
            detail: "does not exist (create it first)".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_invalid_share_is_respected_and_deterministic() {
        let n = 100_000;
        let invalid = (0..n)
            .filter(|&i| kind_of(i, 0.1) != EventKind::Valid)
            .count();
        assert!((9_000..11_000).contains(&invalid), "{invalid}");
        assert!((0..1000).all(|i| kind_of(i, 0.0) == EventKind::Valid));
        assert!((0..1000).all(|i| kind_of(i, 1.0) != EventKind::Valid));
        assert_eq!(kind_of(42, 0.3), kind_of(42, 0.3));
    }
}
