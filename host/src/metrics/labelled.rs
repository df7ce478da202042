//! The metrics only the endpoint shows: drops by reason class, bytes by
//! output, durations, per-partition lag, rebalances and plugin builds.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use crate::partition::TopicPartition;
use crate::source::Lag;
use crate::staging::{FileKind, reason_class as class};

type Labels = Vec<(String, String)>;

/// Distinct drop-reason classes kept as labels; past it, `other`, so that
/// a plugin that puts record data in its reasons cannot blow up the
/// series count.
const MAX_REASON_CLASSES: usize = 32;

/// The metrics with labels or distributions.
#[derive(Debug)]
pub struct Metrics {
    pub(super) dropped: Family<Labels, Counter>,
    pub(super) reasons: Mutex<HashSet<String>>,
    pub(super) bytes_written: Family<Labels, Counter>,
    pub(super) checkpoint_seconds: Histogram,
    pub(super) plugin_batch_seconds: Histogram,
    pub(super) lag: Family<Labels, Gauge>,
    /// The partitions `lag` has series for.
    pub(super) lagging: Mutex<HashSet<Labels>>,
    pub(super) rebalances: Family<Labels, Counter>,
    pub(super) plugin_reloads: Family<Labels, Counter>,
    /// 1 for the build in use, by name, version and sha256.
    pub(super) plugin: Family<Labels, Gauge>,
    pub(super) plugin_in_use: Mutex<Option<Labels>>,
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
    pub fn written(&self, kind: FileKind, bytes: u64) {
        self.bytes_written
            .get_or_create(&vec![("output".into(), kind.to_string())])
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
}
