//! Kafka: the consumer, its settings, and what happens when partitions are
//! assigned or revoked.
//!
//! Offsets live in the commit log, not in Kafka: on assignment the pipeline
//! claims the partitions in the log and the consumer starts each one where
//! the log says; on revocation the pipeline commits what it holds for them
//! before they are given up. Offsets are still committed to Kafka after
//! each checkpoint, for lag monitoring only.

mod fetched;
pub mod msk_iam;

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
pub use msk_iam::{ClientAuth, MskIam};

use crate::commit::{Claimed, OffsetReset, Wanted};
use crate::error::{Blame, Classify};
use crate::partition::TopicPartition;

/// How to reach the topic; every field is a flag and an environment
/// variable (see `cli::RunArgs`).
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub bootstrap_servers: String,
    pub topic: String,
    pub security_protocol: String,
    /// librdkafka's `sasl.mechanisms`, or [`msk_iam::MECHANISM`].
    pub sasl_mechanism: Option<String>,
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
    #[error("KAFKA_SASL_MECHANISM=AWS_MSK_IAM: {0}")]
    MskIam(#[from] msk_iam::MskIamError),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
}

impl Classify for SourceError {
    fn blame(&self) -> Blame {
        match self {
            SourceError::Config { .. } | SourceError::Topic { .. } => Blame::User,
            SourceError::Unreachable { .. } | SourceError::Kafka(_) => Blame::Environment,
            SourceError::MskIam(e) => e.blame(),
        }
    }
}

/// What the pipeline does when the group moves partitions; called on the
/// consumer's thread, inside `poll`.
pub trait Rebalance: Send + Sync + 'static {
    /// Claims the partitions and returns where to start each one that is
    /// ours. Each comes with Kafka's watermarks: where a partition the log
    /// has never seen starts, and what tells that the log's next offset is
    /// one Kafka no longer has or never had.
    fn assigned(&self, partitions: Vec<Wanted>) -> BTreeMap<TopicPartition, Claimed>;

    /// Commits what is held for the partitions before they go.
    fn revoked(&self, partitions: Vec<TopicPartition>);

    /// The partitions were lost without a revocation (session timeout):
    /// nothing may be committed for them.
    fn lost(&self, partitions: Vec<TopicPartition>);

    /// The consumer is being closed: no more asking librdkafka about the
    /// assignment, whose state is being torn down.
    fn closing(&self) -> bool;
}

/// The two items of a `ClientContext` whose client signs in with its
/// `auth` field (a [`ClientAuth`]).
macro_rules! signs_in {
    () => {
        const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

        fn generate_oauth_token(
            &self,
            _: Option<&str>,
        ) -> Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
            self.auth.oauth_token()
        }
    };
}
pub(crate) use signs_in;

pub struct SourceContext {
    rebalance: Arc<dyn Rebalance>,
    auth: ClientAuth,
}

impl ClientContext for SourceContext {
    signs_in!();

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
                self.assign(consumer, tpl, cooperative)
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.revoke(consumer, tpl, cooperative)
            }
            other => {
                tracing::error!(error = ?other, "rebalance failed");
                let _ = consumer.unassign();
            }
        }
    }
}

impl SourceContext {
    /// Claims the partitions in the commit log, then starts each at the
    /// offset its claim says.
    fn assign(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &mut TopicPartitionList,
        cooperative: bool,
    ) {
        let mut wanted = Vec::new();
        let mut ends = BTreeMap::new();
        for tp in partitions(tpl) {
            let (low, high) = watermarks(consumer, &tp);
            ends.insert(tp.clone(), high);
            wanted.push(Wanted::assigned(tp, low, high));
        }
        let claimed = self.rebalance.assigned(wanted);
        for (tp, c) in &claimed {
            if let Err(e) =
                tpl.set_partition_offset(&tp.topic, tp.partition, Offset::Offset(c.next))
            {
                tracing::error!(partition = %tp, error = %e, "cannot set start offset");
            }
        }
        let result = if cooperative {
            consumer.incremental_assign(tpl)
        } else {
            consumer.assign(tpl)
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "assigning partitions failed");
        }
        let added: BTreeMap<TopicPartition, Lag> = claimed
            .iter()
            .map(|(tp, c)| {
                let high = ends.get(tp).copied().flatten();
                let lag = Lag {
                    next: Some(c.next),
                    high,
                };
                (tp.clone(), lag)
            })
            .collect();
        tracing::info!(
            assigned = %list(added.keys()),
            assignment = %lag_text(&lag_with(consumer, &added)),
            "rebalance: partitions assigned"
        );
    }

    /// Commits (or, when lost, drops) what is held for the partitions,
    /// then gives them up.
    fn revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList, cooperative: bool) {
        let revoked = partitions(tpl);
        let lost = consumer.assignment_lost();
        tracing::info!(
            revoked = %list(revoked.iter()),
            lost,
            "rebalance: partitions revoked"
        );
        if lost {
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
        if !self.rebalance.closing() {
            tracing::info!(
                assignment = %lag_text(&lag(consumer)),
                "rebalance: partitions given up"
            );
        }
    }
}

pub type KafkaConsumer = BaseConsumer<SourceContext>;

fn list<'a>(partitions: impl Iterator<Item = &'a TopicPartition>) -> String {
    partitions
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// A partition's low and high watermarks, asked of the broker; `None`
/// where it did not answer.
pub fn watermarks<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    tp: &TopicPartition,
) -> (Option<i64>, Option<i64>) {
    match consumer.fetch_watermarks(&tp.topic, tp.partition, Duration::from_secs(10)) {
        Ok((low, high)) => (Some(low), Some(high)),
        Err(e) => {
            tracing::warn!(partition = %tp, error = %e, "no watermarks from the broker");
            (None, None)
        }
    }
}

/// What fetching one offset says about a partition's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// The log holds the offset, or records past it.
    Reaches,
    /// The fetch path says the log ends at this offset, below the one
    /// asked for: the broker answered and had no record there.
    EndsAt(i64),
    /// No answer in time.
    Unknown,
}

/// Whether the partition's log still reaches `offset`, by fetching it with
/// a consumer of its own. A high watermark from ListOffsets alone can lag
/// behind the log (seen with tansu, and possible on a new leader), and a
/// log believed to end below what was committed is read again from an
/// earlier offset: that must rest on the fetch path, never on one figure.
pub fn probe(settings: &KafkaSettings, tp: &TopicPartition, offset: i64) -> Probe {
    const PROBE_TIME: Duration = Duration::from_secs(10);
    let mut config = consumer_config(settings);
    config
        .set("group.id", "lineage-probe")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "error");
    let Ok(consumer) = signed_in(settings, config) else {
        return Probe::Unknown;
    };
    let mut tpl = TopicPartitionList::new();
    if tpl
        .add_partition_offset(&tp.topic, tp.partition, Offset::Offset(offset))
        .is_err()
        || consumer.assign(&tpl).is_err()
    {
        return Probe::Unknown;
    }
    let deadline = std::time::Instant::now() + PROBE_TIME;
    // Fetches answered with no record and an end at or below `offset`.
    let mut ends = 0;
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(_)) => return Probe::Reaches,
            Some(Err(KafkaError::PartitionEOF(_))) => return Probe::EndsAt(offset),
            Some(Err(KafkaError::MessageConsumption(
                rdkafka::types::RDKafkaErrorCode::AutoOffsetReset,
            ))) => {
                return match watermarks(&consumer, tp).1 {
                    Some(high) if high <= offset => Probe::EndsAt(high),
                    _ => Probe::Unknown,
                };
            }
            Some(Err(_)) => {}
            None => match cached_watermarks(&consumer, tp).1 {
                Some(high) if high <= offset => {
                    ends += 1;
                    if ends >= 3 {
                        return Probe::EndsAt(high);
                    }
                }
                Some(_) => return Probe::Reaches,
                None => {}
            },
        }
    }
    Probe::Unknown
}

/// A consumer outside the group, made from `config` and signed in (a
/// first token where MSK IAM is in use).
fn signed_in(
    settings: &KafkaSettings,
    config: ClientConfig,
) -> Result<BaseConsumer<PlainContext>, SourceError> {
    let auth = msk_iam(settings).map(ClientAuth::new)?;
    let consumer: BaseConsumer<PlainContext> = config.create_with_context(PlainContext { auth })?;
    consumer.context().auth.await_first_token(|wait| {
        consumer.poll(wait);
    })?;
    Ok(consumer)
}

/// The high watermarks of `partitions`, asked by a client outside the
/// group (`lineage status`). A broker that does not answer leaves the rest
/// out, with a warning, rather than waiting for each in turn.
pub fn high_watermarks(
    settings: &KafkaSettings,
    partitions: &[TopicPartition],
) -> BTreeMap<TopicPartition, i64> {
    let mut highs = BTreeMap::new();
    let mut config = consumer_config(settings);
    config.set("group.id", &settings.group_id);
    let consumer = match signed_in(settings, config) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "no high watermarks from the cluster");
            return highs;
        }
    };
    for tp in partitions {
        match watermarks(&consumer, tp) {
            (_, Some(high)) => {
                highs.insert(tp.clone(), high);
            }
            _ => break,
        }
    }
    highs
}

/// How far behind the end of a partition this instance is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lag {
    /// The next offset to consume; `None` before the first fetch.
    pub next: Option<i64>,
    /// The high watermark last seen; `None` before the first fetch.
    pub high: Option<i64>,
}

impl Lag {
    pub fn records(&self) -> Option<i64> {
        Some((self.high? - self.next?).max(0))
    }
}

/// Lag of every partition assigned here, from the consumer's position and
/// the watermarks of its last fetches: no request to the broker, so it can
/// run every few seconds.
pub fn lag<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> BTreeMap<TopicPartition, Lag> {
    lag_with(consumer, &BTreeMap::new())
}

/// As [`lag`], with what is known better for some partitions (those just
/// assigned, which have no position yet).
fn lag_with<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    known: &BTreeMap<TopicPartition, Lag>,
) -> BTreeMap<TopicPartition, Lag> {
    let Ok(position) = consumer.position() else {
        return known.clone();
    };
    let valid = |v: i64| (v >= 0).then_some(v);
    position
        .elements()
        .iter()
        .map(|e| {
            let tp = TopicPartition {
                topic: e.topic().to_owned(),
                partition: e.partition(),
            };
            let lag = known.get(&tp).copied().unwrap_or_else(|| Lag {
                next: e.offset().to_raw().and_then(valid),
                high: cached_high_watermark(consumer, &tp).and_then(valid),
            });
            (tp, lag)
        })
        .collect()
}

/// The high watermark of the consumer's last fetch of the partition, which
/// librdkafka keeps; rust-rdkafka only wraps the call that asks the broker.
fn cached_high_watermark<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    tp: &TopicPartition,
) -> Option<i64> {
    cached_watermarks(consumer, tp).1
}

/// The log start and high watermark of the consumer's last fetch of the
/// partition, where known: no request to the broker.
pub fn cached_watermarks<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    tp: &TopicPartition,
) -> (Option<i64>, Option<i64>) {
    let Ok(topic) = std::ffi::CString::new(tp.topic.as_str()) else {
        return (None, None);
    };
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: a live client handle, a NUL-terminated topic name and two
    // out-parameters that outlive the call; librdkafka only reads its own
    // cache under its lock.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            tp.partition,
            &mut low,
            &mut high,
        )
    };
    if err != rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return (None, None);
    }
    let known = |v: i64| (v >= 0).then_some(v);
    (known(low), known(high))
}

/// `topic/partition@next+lag` for each partition, `?` where unknown.
pub fn lag_text(lag: &BTreeMap<TopicPartition, Lag>) -> String {
    if lag.is_empty() {
        return "none".into();
    }
    lag.iter()
        .map(|(tp, l)| {
            let show = |v: Option<i64>| v.map_or_else(|| "?".into(), |v| v.to_string());
            format!("{tp}@{}+{}", show(l.next), show(l.records()))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The consumer group's session timeout: after it, a member that stopped
/// heartbeating has lost its partitions.
pub fn session_timeout(settings: &KafkaSettings) -> Duration {
    settings
        .properties
        .iter()
        .rev()
        .find(|(k, _)| k == "session.timeout.ms")
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .map_or(Duration::from_secs(45), Duration::from_millis)
}

/// The user's `auto.offset.reset` in KAFKA_PROPERTIES. Lineage applies it
/// itself (see [`OffsetReset`]).
pub fn offset_reset(settings: &KafkaSettings) -> OffsetReset {
    match settings
        .properties
        .iter()
        .rev()
        .find(|(k, _)| k == "auto.offset.reset")
        .map(|(_, v)| v.to_ascii_lowercase())
        .as_deref()
    {
        Some("latest" | "largest" | "end") => OffsetReset::Latest,
        Some("earliest" | "smallest" | "beginning") => OffsetReset::Earliest,
        _ => OffsetReset::Unset,
    }
}

/// The librdkafka settings Lineage relies on; user properties override.
fn client_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.bootstrap_servers)
        .set("security.protocol", security_protocol(settings))
        .set("client.id", "lineage");
    match settings.sasl_mechanism.as_deref() {
        None | Some("") => {}
        Some(m) if m.eq_ignore_ascii_case(msk_iam::MECHANISM) => {
            config.set("sasl.mechanisms", "OAUTHBEARER");
        }
        Some(m) => {
            config.set("sasl.mechanisms", m);
        }
    }
    config
}

fn msk_iam_selected(settings: &KafkaSettings) -> bool {
    settings
        .sasl_mechanism
        .as_deref()
        .is_some_and(|m| m.eq_ignore_ascii_case(msk_iam::MECHANISM))
}

/// MSK's IAM listener (port 9098) is SASL over TLS: the protocol's default
/// (PLAINTEXT) or SSL becomes SASL_SSL; SASL_PLAINTEXT stays as asked.
fn security_protocol(settings: &KafkaSettings) -> &str {
    let given = settings.security_protocol.as_str();
    if msk_iam_selected(settings)
        && (given.eq_ignore_ascii_case("PLAINTEXT") || given.eq_ignore_ascii_case("SSL"))
    {
        return "SASL_SSL";
    }
    given
}

/// The token signer when KAFKA_SASL_MECHANISM asks for MSK IAM: one per
/// region for the whole process, so that every client (the group's
/// consumer, the probes, the generator's producer) shares its credentials.
pub fn msk_iam(settings: &KafkaSettings) -> Result<Option<Arc<MskIam>>, SourceError> {
    static SIGNERS: std::sync::Mutex<BTreeMap<String, Arc<MskIam>>> =
        std::sync::Mutex::new(BTreeMap::new());
    if !msk_iam_selected(settings) {
        return Ok(None);
    }
    let env = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    let aws_region = env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION"));
    let region = msk_iam::region(&settings.bootstrap_servers, aws_region.as_deref())?;
    let mut signers = SIGNERS.lock().expect("not poisoned");
    if let Some(signer) = signers.get(&region) {
        return Ok(Some(signer.clone()));
    }
    let signer = Arc::new(MskIam::from_env(region.clone())?);
    signers.insert(region, signer.clone());
    Ok(Some(signer))
}

/// A client of the cluster outside the group (the probes): it only needs
/// to sign in.
#[derive(Default)]
pub struct PlainContext {
    pub auth: ClientAuth,
}

impl ClientContext for PlainContext {
    signs_in!();
}

impl ConsumerContext for PlainContext {}

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

/// The group consumer's settings. Cooperative rebalancing either way: the
/// classic protocol with the cooperative-sticky assignor, or KIP-848
/// (`group.protocol=consumer` in KAFKA_PROPERTIES, where the broker offers
/// it), whose assignor runs on the broker and which takes no assignor
/// setting here.
fn group_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = consumer_config(settings);
    config
        .set("group.id", &settings.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false");
    let kip848 = settings
        .properties
        .iter()
        .any(|(k, v)| k == "group.protocol" && v.eq_ignore_ascii_case("consumer"));
    if !kip848 {
        config.set("partition.assignment.strategy", "cooperative-sticky");
    }
    apply_properties(&mut config, settings);
    // Over the user's, whose choice the pipeline applies itself
    // (OffsetReset) when it sees a fetch land elsewhere than the next
    // offset, recording what it skips. Not `error`: a partition librdkafka
    // failed to reset stops fetching and cannot be sought until it is
    // assigned again.
    config.set("auto.offset.reset", "earliest");
    config
}

/// A consumer in the group, subscribed to the topic, with offsets owned by
/// the commit log. Fails fast when the cluster is unreachable or the topic
/// missing.
pub fn consumer(
    settings: &KafkaSettings,
    rebalance: Arc<dyn Rebalance>,
) -> Result<Arc<KafkaConsumer>, SourceError> {
    let consumer: KafkaConsumer = group_config(settings)
        .create_with_context(SourceContext {
            rebalance,
            auth: ClientAuth::new(msk_iam(settings)?),
        })
        .map_err(|e| SourceError::Config {
            setting: crate::setting::KAFKA_PROPERTIES,
            detail: e.to_string(),
        })?;
    let auth = &consumer.context().auth;
    auth.await_first_token(|wait| {
        consumer.poll(wait);
    })?;
    if let Some(iam) = auth.msk_iam() {
        tracing::info!(region = iam.region(), "msk iam: signed in with a token");
    }
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
    // Idempotent, so that a request retried after a lost reply does not
    // write record n twice: the generator's runs are checked record by record.
    config
        .set("enable.idempotence", "true")
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
    use super::*;

    fn settings(properties: &[(&str, &str)]) -> KafkaSettings {
        KafkaSettings {
            bootstrap_servers: "127.0.0.1:1".into(),
            topic: "t".into(),
            security_protocol: "PLAINTEXT".into(),
            sasl_mechanism: None,
            group_id: "g".into(),
            properties: properties
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn both_group_protocols_make_a_valid_consumer() {
        let classic = group_config(&settings(&[]));
        assert_eq!(
            classic.get("partition.assignment.strategy"),
            Some("cooperative-sticky")
        );
        classic.create::<BaseConsumer>().expect("classic consumer");
        let kip848 = group_config(&settings(&[("group.protocol", "consumer")]));
        assert_eq!(kip848.get("partition.assignment.strategy"), None);
        kip848.create::<BaseConsumer>().expect("KIP-848 consumer");
        let latest = settings(&[("auto.offset.reset", "latest")]);
        assert_eq!(
            group_config(&latest).get("auto.offset.reset"),
            Some("earliest"),
            "out-of-range offsets are the pipeline's to decide"
        );
        assert_eq!(offset_reset(&latest), OffsetReset::Latest);
        assert_eq!(offset_reset(&settings(&[])), OffsetReset::Unset);
    }

    struct Nothing;

    impl Rebalance for Nothing {
        fn assigned(&self, _: Vec<Wanted>) -> BTreeMap<TopicPartition, Claimed> {
            BTreeMap::new()
        }
        fn revoked(&self, _: Vec<TopicPartition>) {}
        fn lost(&self, _: Vec<TopicPartition>) {}
        fn closing(&self) -> bool {
            false
        }
    }

    #[test]
    fn msk_iam_means_oauthbearer_over_tls() {
        let mut iam = settings(&[]);
        iam.sasl_mechanism = Some("aws_msk_iam".into());
        let config = group_config(&iam);
        assert_eq!(config.get("sasl.mechanisms"), Some("OAUTHBEARER"));
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        iam.security_protocol = "SASL_PLAINTEXT".into();
        assert_eq!(
            group_config(&iam).get("security.protocol"),
            Some("SASL_PLAINTEXT")
        );
        let mut scram = settings(&[]);
        scram.sasl_mechanism = Some("SCRAM-SHA-512".into());
        scram.security_protocol = "SASL_SSL".into();
        assert_eq!(
            group_config(&scram).get("sasl.mechanisms"),
            Some("SCRAM-SHA-512")
        );
        assert_eq!(group_config(&settings(&[])).get("sasl.mechanisms"), None);
    }

    /// A group consumer that signs in with `iam`. Nothing listens where it
    /// points: librdkafka asks for tokens whether or not a broker answers.
    fn iam_consumer(iam: Arc<MskIam>) -> KafkaConsumer {
        let mut with_iam = settings(&[]);
        with_iam.sasl_mechanism = Some(msk_iam::MECHANISM.into());
        with_iam.security_protocol = "SASL_PLAINTEXT".into();
        group_config(&with_iam)
            .create_with_context(SourceContext {
                rebalance: Arc::new(Nothing),
                auth: ClientAuth::new(Some(iam)),
            })
            .expect("consumer")
    }

    /// A clock 895 s behind: every token expires 5 s after it is signed,
    /// so librdkafka asks again after 4 (at 80 % of the lifetime).
    fn late() -> std::time::SystemTime {
        std::time::SystemTime::now() - (msk_iam::LIFETIME - Duration::from_secs(5))
    }

    #[test]
    fn librdkafka_asks_for_a_token_at_start_and_again_before_it_expires() {
        let credential = object_store::aws::AwsCredential {
            key_id: "AKIDEXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            token: None,
        };
        let credentials = Arc::new(object_store::StaticCredentialProvider::new(credential));
        let iam = Arc::new(MskIam::new("eu-west-1".into(), credentials, late));
        let consumer = iam_consumer(iam);
        let auth = &consumer.context().auth;
        auth.await_first_token(|wait| {
            consumer.poll(wait);
        })
        .expect("a first token");
        assert_eq!(auth.handed(), 1);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while auth.handed() < 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "librdkafka asked {} times in 60 s for tokens that expire 5 s after signing",
                auth.handed()
            );
            consumer.poll(Duration::from_millis(100));
        }
        assert!(auth.take_failure().is_none());
    }

    #[test]
    fn a_signer_without_credentials_fails_the_start_naming_why() {
        #[derive(Debug)]
        struct Refusing;
        #[async_trait::async_trait]
        impl object_store::CredentialProvider for Refusing {
            type Credential = object_store::aws::AwsCredential;
            async fn get_credential(
                &self,
            ) -> object_store::Result<Arc<object_store::aws::AwsCredential>> {
                Err(object_store::Error::Unauthenticated {
                    path: String::new(),
                    source: "the role may not be assumed".into(),
                })
            }
        }
        let iam = Arc::new(MskIam::new(
            "eu-west-1".into(),
            Arc::new(Refusing),
            std::time::SystemTime::now,
        ));
        let consumer = iam_consumer(iam);
        let e: SourceError = consumer
            .context()
            .auth
            .await_first_token(|wait| {
                consumer.poll(wait);
            })
            .unwrap_err()
            .into();
        assert!(
            matches!(e, SourceError::MskIam(msk_iam::MskIamError::Credentials(_))),
            "{e:?}"
        );
        assert_eq!(e.blame(), Blame::Environment);
        let text = crate::error::render(&e);
        assert!(text.contains("the role may not be assumed"), "{text}");
        assert!(
            text.starts_with("KAFKA_SASL_MECHANISM=AWS_MSK_IAM"),
            "{text}"
        );
    }

    #[test]
    fn the_session_timeout_comes_from_the_properties() {
        assert_eq!(session_timeout(&settings(&[])), Duration::from_secs(45));
        assert_eq!(
            session_timeout(&settings(&[("session.timeout.ms", "6000")])),
            Duration::from_secs(6)
        );
    }

    #[test]
    fn lag_is_shown_where_known() {
        let tp = |p| TopicPartition {
            topic: "t".into(),
            partition: p,
        };
        let lag = BTreeMap::from([
            (
                tp(0),
                Lag {
                    next: Some(10),
                    high: Some(15),
                },
            ),
            (
                tp(1),
                Lag {
                    next: None,
                    high: Some(3),
                },
            ),
        ]);
        assert_eq!(lag_text(&lag), "t/0@10+5,t/1@?+?");
        assert_eq!(lag_text(&BTreeMap::new()), "none");
    }

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
