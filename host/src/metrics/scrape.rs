//! The registry a scrape encodes: the labelled metrics, and the pipeline's
//! own counters read at scrape time rather than kept twice.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::stats::Stats;
use crate::budget::Budget;

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
        let counters: [(&str, &str, u64); 12] = [
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
            (
                "lineage_schema_registry_failures",
                "Failed attempts to fetch a writer schema from SCHEMA_REGISTRY_URL, each retried",
                load(&s.registry_failures),
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
        let gauges: [(&str, &str, i64); 6] = [
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
            (
                "lineage_schema_registry_down",
                "1 while a writer schema cannot be fetched and consumption waits for the registry",
                i64::from(s.registry_down.load(Ordering::Relaxed)),
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

pub(super) fn registry(stats: Arc<Stats>, budget: Arc<Budget>) -> Registry {
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
