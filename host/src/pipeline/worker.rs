//! A worker thread: runs the plugin over the batches of the partitions
//! routed to it and writes their files. A partition always goes to the same
//! worker, so its files have one writer and its records stay in order.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_channel::{Receiver, Sender};

use super::error::RunError;
use super::messages::{Event, Sealed, WorkerMsg};
use crate::budget::Budget;
use crate::metrics::Stats;
use crate::partition::TopicPartition;
use crate::plugin::{Outcomes, PluginWorker};
use crate::registry::Reader;
use crate::sink::{FileCost, PartitionSink, SinkContext};
use crate::source::Fetched;

pub struct Worker {
    pub index: usize,
    pub workers: usize,
    pub cx: SinkContext,
    pub plugin: PluginWorker,
    pub budget: Arc<Budget>,
    pub stats: Arc<Stats>,
    pub events: Sender<Event>,
    /// Takes framing off values before the plugin sees them.
    pub reader: Reader,
    /// The checkpoint that files opened now belong to.
    pub checkpoint: u64,
}

/// What a worker holds between messages.
#[derive(Default)]
pub struct Held {
    sinks: HashMap<TopicPartition, PartitionSink>,
    /// Records processed per partition since the last checkpoint.
    records: BTreeMap<TopicPartition, u64>,
}

impl Worker {
    pub fn run(mut self, inbox: Receiver<WorkerMsg>) {
        let mut held = Held::default();
        for msg in inbox {
            if matches!(msg, WorkerMsg::Stop) {
                break;
            }
            if let Err(e) = self.handle(&mut held, msg) {
                let _ = self.events.send(Event::Failed(e));
                break;
            }
        }
    }

    /// Acts on one message. `bench pipeline` calls this too, on its own
    /// thread, so that it measures the path a run takes.
    pub fn handle(&mut self, held: &mut Held, msg: WorkerMsg) -> Result<(), RunError> {
        let Held { sinks, records } = held;
        match msg {
            WorkerMsg::Batch(batch) => {
                let bytes = batch.bytes();
                let result = self.process(sinks, records, &batch);
                self.budget.processed(bytes);
                match result {
                    Err(RunError::Sink(e)) if e.upload_gone() => {
                        self.disown(sinks, records, &batch.source, e);
                        Ok(())
                    }
                    other => other,
                }
            }
            WorkerMsg::Seal { checkpoint } => self.seal(sinks, records, checkpoint),
            WorkerMsg::Forget(partitions) => {
                for tp in partitions {
                    if let Some(mut sink) = sinks.remove(&tp) {
                        // Sealed and committed already; anything left would
                        // be a bug, and must not become visible.
                        sink.abort(&self.cx);
                    }
                    records.remove(&tp);
                }
                Ok(())
            }
            WorkerMsg::Abort(partitions) => {
                for tp in partitions {
                    if let Some(mut sink) = sinks.remove(&tp) {
                        sink.abort(&self.cx);
                    }
                    records.remove(&tp);
                }
                self.update_memory(sinks);
                Ok(())
            }
            WorkerMsg::Swap(plugin) => {
                self.plugin.swap(plugin.clone());
                self.cx.switch_plugin(plugin);
                Ok(())
            }
            WorkerMsg::Shed => self.shed(sinks, records),
            WorkerMsg::Stop => Ok(()),
        }
    }

    /// Seals every file for `checkpoint` and reports them.
    fn seal(
        &mut self,
        sinks: &mut HashMap<TopicPartition, PartitionSink>,
        records: &mut BTreeMap<TopicPartition, u64>,
        checkpoint: u64,
    ) -> Result<(), RunError> {
        let mut files = Vec::new();
        let mut result = Ok(());
        let mut gone = Vec::new();
        for (tp, sink) in sinks.iter_mut() {
            match sink.seal_all(&self.cx) {
                Ok(sealed) => files.extend(sealed),
                Err(e) if e.upload_gone() => gone.push((tp.clone(), e)),
                Err(e) => {
                    result = Err(RunError::from(e));
                    break;
                }
            }
        }
        // Reported before the seal, so that the coordinator leaves the
        // partition out of this checkpoint.
        for (tp, e) in gone {
            self.disown(sinks, records, &tp, e);
        }
        self.checkpoint = checkpoint + 1;
        self.update_memory(sinks);
        result.map(|()| {
            let _ = self.events.send(Event::Sealed(Sealed {
                checkpoint,
                files,
                records: std::mem::take(records),
            }));
        })
    }

    /// Gives up a partition whose upload another owner aborted, and tells
    /// the coordinator, which fences it.
    fn disown(
        &self,
        sinks: &mut HashMap<TopicPartition, PartitionSink>,
        records: &mut BTreeMap<TopicPartition, u64>,
        tp: &TopicPartition,
        error: crate::sink::SinkError,
    ) {
        let claim = sinks.get(tp).map_or(0, PartitionSink::claim);
        if let Some(mut sink) = sinks.remove(tp) {
            sink.abort(&self.cx);
        }
        records.remove(tp);
        self.update_memory(sinks);
        let _ = self.events.send(Event::Disowned {
            partition: tp.clone(),
            claim,
            error,
        });
    }

    fn process(
        &mut self,
        sinks: &mut HashMap<TopicPartition, PartitionSink>,
        records: &mut BTreeMap<TopicPartition, u64>,
        batch: &Fetched,
    ) -> Result<(), RunError> {
        let headers = batch.header_views();
        let mut views = batch.records(&headers);
        let started = std::time::Instant::now();
        let outcomes = self.run_plugin(&mut views)?;
        self.stats
            .metrics
            .plugin_batch_took(started.elapsed().as_secs_f64());
        self.stats
            .metrics
            .dropped(outcomes.iter().filter_map(|o| match o {
                crate::plugin::OutcomeRef::Drop(reason) => Some(reason),
                crate::plugin::OutcomeRef::Keep(_) => None,
            }));
        let kept = outcomes.kept();
        if let Some(held) = sinks.get_mut(&batch.source)
            && held.claim() != batch.claim
        {
            // The consumer has every file of a claim sealed (a move) or
            // aborted (a fence) before it sends batches of the next one;
            // this only guards that order.
            if !held.is_empty() {
                tracing::warn!(partition = %batch.source, held = held.claim(), batch = batch.claim, "files of an earlier claim still open; aborting them");
            }
            held.abort(&self.cx);
            sinks.remove(&batch.source);
            records.remove(&batch.source);
        }
        let sink = sinks
            .entry(batch.source.clone())
            .or_insert_with(|| PartitionSink::new(batch.source.clone(), batch.claim));
        sink.write(&self.cx, self.checkpoint, &views, &outcomes)?;
        self.plugin.recycle(outcomes);
        *records.entry(batch.source.clone()).or_default() += views.len() as u64;
        self.stats.kept.fetch_add(kept as u64, Ordering::Relaxed);
        self.stats
            .dropped
            .fetch_add((views.len() - kept) as u64, Ordering::Relaxed);
        self.update_memory(sinks);
        self.shed(sinks, records)
    }

    /// The batch's outcomes; with framed input, the host's own drops (bad
    /// framing, unknown ids) among the plugin's.
    fn run_plugin(
        &mut self,
        views: &mut [crate::plugin::KafkaRecord<'_>],
    ) -> Result<Outcomes, RunError> {
        self.reader.outcomes(&mut self.plugin, views)
    }

    /// Over budget, or paused and not yet back under where consumption
    /// resumes: seals files early, those that cost the most memory per row
    /// first (a late hour's few rows), until memory is back under that mark
    /// or this worker is down to half its fair share. What stays is the
    /// sealed files' descriptions, waiting for the checkpoint: if they
    /// alone are past the budget, consumption stays paused until then.
    fn shed(
        &self,
        sinks: &mut HashMap<TopicPartition, PartitionSink>,
        records: &mut BTreeMap<TopicPartition, u64>,
    ) -> Result<(), RunError> {
        if !self.budget.must_shed() {
            return Ok(());
        }
        let share = (self.budget.limit() / self.workers as u64) as usize;
        let mut held: usize = sinks.values().map(PartitionSink::memory).sum();
        let mut costs: Vec<(TopicPartition, FileCost)> = sinks
            .iter()
            .flat_map(|(tp, sink)| sink.costs().map(move |c| (tp.clone(), c)))
            .collect();
        // Costliest per row last, for `pop`; of two alike, the older hour.
        costs.sort_unstable_by(|(_, a), (_, b)| {
            a.per_row().cmp(&b.per_row()).then(b.slot.1.cmp(&a.slot.1))
        });
        // Down to where a paused consumer resumes, not just under the limit:
        // else every batch after this one would seal again.
        while held > share / 2 && !self.budget.relaxed() {
            let Some((tp, cost)) = costs.pop() else { break };
            let Some(sink) = sinks.get_mut(&tp) else {
                continue; // disowned below, with all its files
            };
            match sink.seal_early(&self.cx, cost.slot) {
                // Counted again rather than less what was freed: the sealed
                // file's description stays.
                Ok(_) => held = sinks.values().map(PartitionSink::memory).sum(),
                Err(e) if e.upload_gone() => {
                    self.disown(sinks, records, &tp, e);
                    held = sinks.values().map(PartitionSink::memory).sum();
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            self.stats.early_seals.fetch_add(1, Ordering::Relaxed);
            self.budget.set_worker(self.index, held);
        }
        self.update_memory(sinks);
        Ok(())
    }

    fn update_memory(&self, sinks: &HashMap<TopicPartition, PartitionSink>) {
        self.budget
            .set_worker(self.index, sinks.values().map(PartitionSink::memory).sum());
    }
}
