//! What an operator watches: Prometheus metrics on `GET /metrics`, and
//! `GET /healthz` and `GET /readyz` for Kubernetes' probes.
//!
//! Counters the pipeline already keeps for its summary (`Stats`) are read
//! at scrape time rather than kept twice; what only metrics need (reasons,
//! histograms, per-partition lag) lives in [`Metrics`].

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::commit::TopicPartition;
use crate::pipeline::{Budget, Stats};
use crate::source::Lag;

type Labels = Vec<(String, String)>;

/// Distinct drop-reason classes kept as labels; past it, `other`, so that
/// a plugin that puts record data in its reasons cannot blow up the
/// series count.
const MAX_REASON_CLASSES: usize = 32;

/// The metrics with labels or distributions.
#[derive(Debug)]
pub struct Metrics {
    dropped: Family<Labels, Counter>,
    reasons: Mutex<HashSet<String>>,
    bytes_written: Family<Labels, Counter>,
    checkpoint_seconds: Histogram,
    plugin_batch_seconds: Histogram,
    lag: Family<Labels, Gauge>,
    /// The partitions `lag` has series for.
    lagging: Mutex<HashSet<Labels>>,
    rebalances: Family<Labels, Counter>,
    plugin_reloads: Family<Labels, Counter>,
    /// 1 for the build in use, by name, version and sha256.
    plugin: Family<Labels, Gauge>,
    plugin_in_use: Mutex<Option<Labels>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            dropped: Family::default(),
            reasons: Mutex::new(HashSet::new()),
            bytes_written: Family::default(),
            // 1 ms to about 65 s.
            checkpoint_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
            // 10 µs to about 2.6 s.
            plugin_batch_seconds: Histogram::new(exponential_buckets(0.000_01, 2.0, 19)),
            lag: Family::default(),
            lagging: Mutex::new(HashSet::new()),
            rebalances: Family::default(),
            plugin_reloads: Family::default(),
            plugin: Family::default(),
            plugin_in_use: Mutex::new(None),
        }
    }
}

impl Metrics {
    /// Counts a batch's dropped records under their reasons' classes: the
    /// text before the first `:` (`avro`, `uuid`, `empty value`, `plugin
    /// trapped`...). Counted per batch, so that the per-record cost is a
    /// string scan, not a lock.
    pub fn dropped<'a>(&self, reasons: impl Iterator<Item = &'a str>) {
        let mut counts: Vec<(&str, u64)> = Vec::new();
        for reason in reasons {
            let class = class(reason);
            match counts.iter_mut().find(|(c, _)| *c == class) {
                Some((_, n)) => *n += 1,
                None => counts.push((class, 1)),
            }
        }
        if counts.is_empty() {
            return;
        }
        let mut known = self.reasons.lock().expect("reasons lock");
        for (class, n) in counts {
            let label = if known.contains(class) || known.len() < MAX_REASON_CLASSES {
                known.insert(class.to_owned());
                class
            } else {
                "other"
            };
            self.dropped
                .get_or_create(&vec![("reason".into(), label.into())])
                .inc_by(n);
        }
    }

    /// Bytes of committed files, by output (`data`, `dropped`).
    pub fn written(&self, kind: &str, bytes: u64) {
        self.bytes_written
            .get_or_create(&vec![("output".into(), kind.into())])
            .inc_by(bytes);
    }

    pub fn checkpoint_took(&self, seconds: f64) {
        self.checkpoint_seconds.observe(seconds);
    }

    pub fn plugin_batch_took(&self, seconds: f64) {
        self.plugin_batch_seconds.observe(seconds);
    }

    /// `assigned`, `revoked`, `lost`, `fenced`, `reclaimed`.
    pub fn rebalance(&self, event: &str) {
        self.rebalances
            .get_or_create(&vec![("event".into(), event.into())])
            .inc();
    }

    /// A check of PLUGIN_PATH that found a new build: `loaded` (and
    /// checked), `failed` (the old one stays).
    pub fn plugin_reload(&self, outcome: &str) {
        self.plugin_reloads
            .get_or_create(&vec![("outcome".into(), outcome.into())])
            .inc();
    }

    /// The build whose checkpoints are being written now.
    pub fn plugin_in_use(&self, identity: &crate::plugin::PluginIdentity) {
        let labels = vec![
            ("name".to_owned(), identity.name.clone()),
            ("version".to_owned(), identity.version.clone()),
            ("sha256".to_owned(), identity.sha256.clone()),
        ];
        let mut in_use = self.plugin_in_use.lock().expect("plugin lock");
        if let Some(old) = in_use.take() {
            self.plugin.remove(&old);
        }
        self.plugin.get_or_create(&labels).set(1);
        *in_use = Some(labels);
    }

    /// Sets the lag of the partitions held now and forgets the others.
    pub fn set_lag(&self, lag: &BTreeMap<TopicPartition, Lag>) {
        let labels = |tp: &TopicPartition| {
            vec![
                ("topic".to_owned(), tp.topic.clone()),
                ("partition".to_owned(), tp.partition.to_string()),
            ]
        };
        let held: HashSet<Labels> = lag.keys().map(labels).collect();
        let mut lagging = self.lagging.lock().expect("lagging lock");
        for gone in lagging.difference(&held) {
            self.lag.remove(gone);
        }
        *lagging = held;
        for (tp, l) in lag {
            if let Some(records) = l.records() {
                self.lag.get_or_create(&labels(tp)).set(records);
            }
        }
    }
}

/// A reason's class: what comes before its first colon, at most 40 bytes
/// (cut at a character boundary).
fn class(reason: &str) -> &str {
    let class = reason.split(':').next().unwrap_or_default().trim();
    match class.char_indices().nth(40) {
        Some((at, _)) => &class[..at],
        None => class,
    }
}

/// What the probes answer.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
    stopping: AtomicBool,
    failed: AtomicBool,
}

impl Health {
    /// Start-up checks passed and the consumer is in the group.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    /// A graceful stop began: no longer ready, still alive.
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// The pipeline failed and is exiting.
    pub fn set_failed(&self) {
        self.failed.store(true, Ordering::SeqCst);
    }

    pub fn live(&self) -> bool {
        !self.failed.load(Ordering::SeqCst)
    }

    pub fn ready(&self) -> bool {
        self.live() && self.ready.load(Ordering::SeqCst) && !self.stopping.load(Ordering::SeqCst)
    }
}

/// Reads the pipeline's counters at scrape time.
#[derive(Debug)]
struct Counters {
    stats: Arc<Stats>,
    budget: Arc<Budget>,
}

impl prometheus_client::collector::Collector for Counters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.stats;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let counters: [(&str, &str, u64); 11] = [
            (
                "lineage_records_consumed",
                "Records read from Kafka",
                load(&s.consumed),
            ),
            (
                "lineage_records_kept",
                "Records the plugin kept (rows written to OUTPUT_PATH)",
                load(&s.kept),
            ),
            (
                "lineage_records_dropped",
                "Records the plugin dropped (rows written to DROPPED_PATH)",
                load(&s.dropped),
            ),
            (
                "lineage_records_redelivered",
                "Records the broker served again and the consumer skipped",
                load(&s.redelivered),
            ),
            (
                "lineage_checkpoints",
                "Checkpoints committed",
                load(&s.checkpoints),
            ),
            (
                "lineage_files_committed",
                "Files made visible",
                load(&s.files),
            ),
            (
                "lineage_early_seals",
                "Files sealed before their checkpoint to stay inside the memory budget",
                load(&s.early_seals),
            ),
            (
                "lineage_budget_pauses",
                "Times consumption paused on the memory budget",
                load(&s.pauses),
            ),
            (
                "lineage_partitions_fenced",
                "Partitions given up because another owner took them",
                load(&s.fenced),
            ),
            (
                "lineage_offsets_skipped",
                "Offsets Kafka no longer had (retention, truncation), recorded as skipped in the commit log",
                load(&s.skipped),
            ),
            (
                "lineage_partition_resets",
                "Partitions whose log restarted below the commit log's next offset (a recreated topic), consumed again from its start",
                load(&s.resets),
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let gauges: [(&str, &str, i64); 5] = [
            (
                "lineage_partitions_assigned",
                "Partitions claimed by this instance",
                load(&s.partitions) as i64,
            ),
            (
                "lineage_consumer_lag_records",
                "Records behind the high watermarks, over the partitions held",
                load(&s.lag) as i64,
            ),
            (
                "lineage_commit_seq",
                "The last commit of the write-ahead commit log this instance wrote",
                load(&s.commit_seq) as i64,
            ),
            (
                "lineage_memory_budget_used_bytes",
                "Memory in open files and batches in flight",
                self.budget.used() as i64,
            ),
            (
                "lineage_memory_budget_bytes",
                "MEMORY_BUDGET",
                self.budget.limit() as i64,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

fn registry(stats: Arc<Stats>, budget: Arc<Budget>) -> Registry {
    let m = &stats.metrics;
    let mut registry = Registry::default();
    registry.register(
        "lineage_records_dropped_by_reason",
        "Dropped records by the class of the plugin's reason (the text before the first colon)",
        m.dropped.clone(),
    );
    registry.register(
        "lineage_bytes_written",
        "Bytes of committed Parquet files, by output",
        m.bytes_written.clone(),
    );
    registry.register(
        "lineage_checkpoint_duration_seconds",
        "From the checkpoint's barrier being sealed to its files published",
        m.checkpoint_seconds.clone(),
    );
    registry.register(
        "lineage_plugin_batch_duration_seconds",
        "Time the plugin took per batch",
        m.plugin_batch_seconds.clone(),
    );
    registry.register(
        "lineage_consumer_lag_by_partition_records",
        "Records behind the high watermark, per partition held",
        m.lag.clone(),
    );
    registry.register(
        "lineage_rebalance_events",
        "Partitions assigned, revoked, lost, fenced or claimed again",
        m.rebalances.clone(),
    );
    registry.register(
        "lineage_plugin_reloads",
        "Checks of PLUGIN_PATH that found a changed component, by outcome (loaded, failed)",
        m.plugin_reloads.clone(),
    );
    registry.register(
        "lineage_plugin_info",
        "The plugin build in use (1), by name, version and component sha256",
        m.plugin.clone(),
    );
    registry.register_collector(Box::new(Counters { stats, budget }));
    registry
}

#[derive(Clone)]
struct Served {
    registry: Arc<Registry>,
    stats: Arc<Stats>,
}

async fn metrics(State(s): State<Served>) -> impl IntoResponse {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &s.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("encoding metrics failed: {e}\n"),
        ),
    }
}

/// Liveness: false only once the pipeline has failed. A store or broker
/// outage is not a reason to restart: the pipeline waits it out.
async fn healthz(State(s): State<Served>) -> impl IntoResponse {
    if s.stats.health.live() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "failed\n")
    }
}

/// Readiness: in the group and consuming, not stopping.
async fn readyz(State(s): State<Served>) -> impl IntoResponse {
    if s.stats.health.ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// Binds the endpoints' address; fails fast, naming the setting.
pub fn bind(address: SocketAddr) -> Result<std::net::TcpListener, String> {
    let listener = std::net::TcpListener::bind(address)
        .map_err(|e| format!("METRICS_ADDRESS={address}: cannot listen: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("METRICS_ADDRESS={address}: {e}"))?;
    Ok(listener)
}

/// Serves `/metrics`, `/healthz` and `/readyz` until the runtime stops.
pub async fn serve(listener: std::net::TcpListener, stats: Arc<Stats>, budget: Arc<Budget>) {
    let served = Served {
        registry: Arc::new(registry(stats.clone(), budget)),
        stats,
    };
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(served);
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "metrics endpoint unavailable");
            return;
        }
    };
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "metrics endpoint stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_classes_are_bounded() {
        let m = Metrics::default();
        m.dropped(
            [
                "avro: unexpected end of input at byte 13",
                "avro: something else",
                "empty value",
            ]
            .into_iter(),
        );
        let weird: Vec<String> = (0..100).map(|i| format!("weird {i}: x")).collect();
        m.dropped(weird.iter().map(String::as_str));
        let get = |class: &str| {
            m.dropped
                .get_or_create(&vec![("reason".into(), class.into())])
                .get()
        };
        assert_eq!(get("avro"), 2);
        assert_eq!(get("empty value"), 1);
        assert_eq!(m.reasons.lock().unwrap().len(), MAX_REASON_CLASSES);
        assert_eq!(get("other"), 100 - (MAX_REASON_CLASSES as u64 - 2));
    }

    #[test]
    fn a_class_is_the_text_before_the_colon_cut_at_a_character() {
        assert_eq!(class("uuid: invalid character"), "uuid");
        assert_eq!(class("  empty value "), "empty value");
        assert_eq!(class(&"ü".repeat(50)), "ü".repeat(40));
    }

    #[test]
    fn readiness_follows_the_lifecycle() {
        let h = Health::default();
        assert!(h.live() && !h.ready());
        h.set_ready();
        assert!(h.ready());
        h.set_stopping();
        assert!(h.live() && !h.ready());
        h.set_failed();
        assert!(!h.live());
    }
}
