//! What a running instance keeps for its status page. The pipeline hands
//! it what it already has at its own pace (a commit, a swap, the lag it
//! refreshes twice a second); a request only reads it, so that serving
//! the page never touches the per-record path.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use super::report::{
    CHECKPOINTS, Digest, Live, Memory, PluginStatus, Rate, Report, State, Swap, TableSnapshot,
    is_checkpoint,
};
use crate::budget::Budget;
use crate::commit::{Commit, LogState};
use crate::metrics::Stats;
use crate::partition::{Owner, TopicPartition};
use crate::plugin::PluginIdentity;
use crate::source::Lag;

/// Samples kept for the chart: ten minutes at one every two seconds.
const RATES: usize = 300;
const RATE_EVERY: Duration = Duration::from_secs(2);
/// Swaps kept, newest last.
const SWAPS: usize = 20;
/// A broker error this recent, with nothing consumed since, is a block.
const BROKER_BLOCK: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub struct LiveStatus {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    owner: Option<Owner>,
    log: LogState,
    /// This instance's checkpoint commits, oldest first.
    checkpoints: VecDeque<Digest>,
    last_commit: Option<Instant>,
    plugin: Option<PluginStatus>,
    swaps: VecDeque<Swap>,
    /// Per partition held: the lag, and records/s since the last refresh.
    lag: BTreeMap<TopicPartition, (Lag, Option<f64>)>,
    lag_at: Option<Instant>,
    rates: VecDeque<Rate>,
    /// When the last sample was taken and the records consumed by then.
    sampled: Option<(Instant, u64)>,
    /// The newest broker error, when, and the records consumed by then.
    broker: Option<(String, String, Instant, u64)>,
    /// Why the pipeline failed.
    failure: Option<(String, String)>,
    /// The last snapshot appended to each table, by table.
    tables: BTreeMap<String, TableSnapshot>,
}

fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl LiveStatus {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("status lock")
    }

    pub fn started(&self, owner: &Owner) {
        self.inner().owner = Some(owner.clone());
    }

    /// The log as the committer folded it, after a claim or a commit.
    pub fn log(&self, state: &LogState) {
        self.inner().log = state.clone();
    }

    /// A checkpoint of this instance past its commit point, its files not
    /// yet visible; `started` is when its workers had all sealed.
    pub fn committed(&self, state: &LogState, commit: &Commit, started: SystemTime) {
        let mut inner = self.inner();
        inner.log = state.clone();
        inner.last_commit = Some(Instant::now());
        if !is_checkpoint(commit) {
            return;
        }
        let mut digest = Digest::of(commit, false);
        digest.status.started_at = Some(rfc3339(started));
        inner.checkpoints.push_back(digest);
        while inner.checkpoints.len() > CHECKPOINTS {
            inner.checkpoints.pop_front();
        }
    }

    /// Commit `seq` is published: every file visible, `took` since its
    /// workers had all sealed.
    pub fn published(&self, seq: u64, took: Duration) {
        let mut inner = self.inner();
        if let Some(d) = inner
            .checkpoints
            .iter_mut()
            .rev()
            .find(|d| d.status.commit_seq == seq)
        {
            d.status.state = "published".into();
            d.status.duration_ms = Some(took.as_millis() as u64);
        }
    }

    /// The build whose checkpoints are written from now on.
    pub fn plugin(&self, identity: &PluginIdentity) {
        self.inner().plugin = Some(PluginStatus::of(identity));
    }

    /// A build checked after a change of PLUGIN_PATH: `loaded`, or
    /// `refused` with the reason (the old one stays).
    pub fn swap(&self, outcome: &str, plugin: Option<&PluginIdentity>, reason: Option<String>) {
        let mut inner = self.inner();
        let p = plugin.map(PluginStatus::of).unwrap_or(PluginStatus {
            name: String::new(),
            version: String::new(),
            sha256: String::new(),
        });
        inner.swaps.push_back(Swap {
            at: crate::commit::now(),
            outcome: outcome.into(),
            name: p.name.clone(),
            version: p.version.clone(),
            sha256: p.sha256.clone(),
            reason,
        });
        while inner.swaps.len() > SWAPS {
            inner.swaps.pop_front();
        }
    }

    /// A commit appended to `table` as `snapshot_id` (TABLE_FORMAT=iceberg).
    pub fn appended(&self, table: &str, snapshot_id: i64, commit: &Commit) {
        let snapshot = TableSnapshot {
            table: table.into(),
            snapshot_id,
            commit_seq: commit.seq,
            checkpoint: commit.checkpoint,
            at: crate::commit::now(),
        };
        self.inner().tables.insert(table.into(), snapshot);
    }

    /// The lag the consumer just refreshed, and the records consumed.
    pub fn lag(&self, lag: &BTreeMap<TopicPartition, Lag>, consumed: u64, total_lag: u64) {
        let mut inner = self.inner();
        let now = Instant::now();
        let seconds = inner.lag_at.map(|at| now.duration_since(at).as_secs_f64());
        let lag = lag
            .iter()
            .map(|(tp, l)| {
                let before = inner.lag.get(tp).and_then(|(b, _)| b.next);
                let rate = match (seconds, before, l.next) {
                    (Some(s), Some(b), Some(n)) if s > 0.0 => Some((n - b).max(0) as f64 / s),
                    _ => None,
                };
                (tp.clone(), (*l, rate))
            })
            .collect();
        inner.lag = lag;
        inner.lag_at = Some(now);
        match inner.sampled {
            Some((at, before)) if now.duration_since(at) >= RATE_EVERY => {
                let s = now.duration_since(at).as_secs_f64();
                let at_unix = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64();
                inner.rates.push_back(Rate {
                    at: at_unix,
                    records_per_s: consumed.saturating_sub(before) as f64 / s,
                    lag: total_lag,
                });
                while inner.rates.len() > RATES {
                    inner.rates.pop_front();
                }
                inner.sampled = Some((now, consumed));
            }
            None => inner.sampled = Some((now, consumed)),
            Some(_) => {}
        }
    }

    /// An error the consumer saw (librdkafka retries by itself).
    pub fn broker_error(&self, error: &str, consumed: u64) {
        self.inner().broker = Some((error.into(), crate::commit::now(), Instant::now(), consumed));
    }

    /// Why the run failed.
    pub fn failed(&self, error: &str) {
        self.inner().failure = Some((error.into(), crate::commit::now()));
    }

    /// The page's data now.
    pub fn report(&self, stats: &Stats, budget: &Budget) -> Report {
        // Copied out, so that the report is put together without the lock
        // the pipeline's threads take.
        let (log, digests) = {
            let inner = self.inner();
            (inner.log.clone(), Vec::from(inner.checkpoints.clone()))
        };
        let mut report = Report::of_log(&log, &digests);
        let inner = self.inner();
        for p in &mut report.partitions {
            let tp = TopicPartition {
                topic: p.topic.clone(),
                partition: p.partition,
            };
            if let Some((lag, rate)) = inner.lag.get(&tp) {
                p.high_watermark = lag.high;
                p.lag = lag.records();
                p.records_per_s = *rate;
            }
        }
        if inner.plugin.is_some() {
            report.plugin = inner.plugin.clone();
        }
        let owner = inner.owner.clone().unwrap_or(Owner {
            subtask: 0,
            incarnation: String::new(),
        });
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        report.live = Some(Live {
            subtask: owner.subtask,
            incarnation: owner.incarnation,
            state: state(&inner, stats, budget),
            memory: Memory {
                used_bytes: budget.used(),
                budget_bytes: budget.limit(),
            },
            seconds_since_commit: inner.last_commit.map(|t| t.elapsed().as_secs_f64()),
            swaps: inner.swaps.iter().cloned().collect(),
            rates: inner.rates.iter().cloned().collect(),
            records_consumed: load(&stats.consumed),
            records_kept: load(&stats.kept),
            records_dropped: load(&stats.dropped),
            tables: inner.tables.values().cloned().collect(),
        });
        report
    }
}

/// What the instance is doing, the most pressing first.
fn state(inner: &Inner, stats: &Stats, budget: &Budget) -> State {
    let consumed = stats.consumed.load(Ordering::Relaxed);
    let broker_block = inner
        .broker
        .as_ref()
        .filter(|(_, _, at, seen)| at.elapsed() < BROKER_BLOCK && *seen == consumed);
    let store = stats.troubles.last();
    let (code, text) = if !stats.health.live() {
        ("failing", "failing: the pipeline stopped on an error")
    } else if stats.health.stopping() {
        ("stopping", "stopping: committing what was consumed")
    } else if !stats.health.ready() {
        ("starting", "starting: claiming partitions and recovering")
    } else if stats.registry_down.load(Ordering::Relaxed) {
        (
            "blocked_on_registry",
            "blocked on the schema registry: a writer schema cannot be fetched",
        )
    } else if stats.troubles.waiting() > 0 {
        (
            "blocked_on_store",
            "blocked on the store: retrying a write or read",
        )
    } else if broker_block.is_some() {
        (
            "blocked_on_broker",
            "blocked on the broker: nothing consumed since its last error",
        )
    } else if budget.paused() {
        (
            "paused",
            "paused for the memory budget: waiting for files to be sealed",
        )
    } else {
        ("consuming", "consuming")
    };
    // The newest error of any kind, with its time.
    let mut errors: Vec<(String, String)> = Vec::new();
    errors.extend(inner.failure.clone());
    errors.extend(store);
    errors.extend(
        inner
            .broker
            .as_ref()
            .map(|(e, at, _, _)| (e.clone(), at.clone())),
    );
    let last = errors.into_iter().max_by(|a, b| a.1.cmp(&b.1));
    State {
        code: code.into(),
        text: text.into(),
        last_error: last.as_ref().map(|(e, _)| e.clone()),
        last_error_at: last.map(|(_, at)| at),
    }
}
