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
use crate::sink::{PartitionSink, SinkContext};
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

impl Worker {
    pub fn run(mut self, inbox: Receiver<WorkerMsg>) {
        let mut sinks: HashMap<TopicPartition, PartitionSink> = HashMap::new();
        let mut records: BTreeMap<TopicPartition, u64> = BTreeMap::new();
        for msg in inbox {
            let result = match msg {
                WorkerMsg::Batch(batch) => {
                    let bytes = batch.bytes();
                    let result = self.process(&mut sinks, &mut records, &batch);
                    self.budget.processed(bytes);
                    match result {
                        Err(RunError::Sink(e)) if e.upload_gone() => {
                            self.disown(&mut sinks, &mut records, &batch.source, e);
                            Ok(())
                        }
                        other => other,
                    }
                }
                WorkerMsg::Seal { checkpoint } => self.seal(&mut sinks, &mut records, checkpoint),
                WorkerMsg::Forget(partitions) => {
                    for tp in partitions {
                        if let Some(mut sink) = sinks.remove(&tp) {
                            // Sealed and committed already; anything left
                            // would be a bug, and must not become visible.
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
                    self.update_memory(&sinks);
                    Ok(())
                }
                WorkerMsg::Swap(plugin) => {
                    self.plugin.swap(plugin.clone());
                    self.cx.switch_plugin(plugin);
                    Ok(())
                }
                WorkerMsg::Shed => self.shed(&mut sinks, &mut records),
                WorkerMsg::Stop => break,
            };
            if let Err(e) = result {
                let _ = self.events.send(Event::Failed(e));
                break;
            }
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
            match sink.seal_all() {
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
    /// resumes: seals the largest files until that is over, or down to
    /// half this worker's fair share. Sealed files hold no memory; they
    /// wait, uploaded, for the checkpoint.
    fn shed(
        &self,
        sinks: &mut HashMap<TopicPartition, PartitionSink>,
        records: &mut BTreeMap<TopicPartition, u64>,
    ) -> Result<(), RunError> {
        let share = (self.budget.limit() / self.workers as u64) as usize;
        while self.budget.must_shed()
            && sinks.values().map(PartitionSink::memory).sum::<usize>() > share / 2
        {
            let Some((tp, sink)) = sinks.iter_mut().max_by_key(|(_, s)| s.memory()) else {
                break;
            };
            match sink.seal_largest() {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.upload_gone() => {
                    let tp = tp.clone();
                    self.disown(sinks, records, &tp, e);
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            self.stats.early_seals.fetch_add(1, Ordering::Relaxed);
            self.update_memory(sinks);
        }
        Ok(())
    }

    fn update_memory(&self, sinks: &HashMap<TopicPartition, PartitionSink>) {
        self.budget
            .set_worker(self.index, sinks.values().map(PartitionSink::memory).sum());
    }
}
