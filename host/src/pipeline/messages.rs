//! What the pipeline's threads send each other.

use std::collections::BTreeMap;
use std::sync::Arc;

use crossbeam_channel::Sender;

use super::error::RunError;
use crate::commit::{Claimed, Wanted};
use crate::partition::TopicPartition;
use crate::plugin::Plugin;
use crate::sink::SinkError;
use crate::source::Fetched;
use crate::staging::SealedFile;

/// What the coordinator tells the consumer.
pub enum Control {
    /// Place a checkpoint barrier now.
    Barrier,
    /// Place a last barrier and stop consuming.
    Stop,
}

/// What the consumer and the coordinator tell a worker.
pub enum WorkerMsg {
    Batch(Fetched),
    /// Seal every file for checkpoint `checkpoint` and report them.
    Seal {
        checkpoint: u64,
    },
    /// The partitions were committed and given up: forget them.
    Forget(Vec<TopicPartition>),
    /// The partitions were lost or fenced: give up what is held for them.
    Abort(Vec<TopicPartition>),
    /// Run this plugin from now on. Sent right after a `Seal`, so that
    /// every file is one plugin build's.
    Swap(Arc<Plugin>),
    /// Consumption paused on the memory budget: seal files early until it
    /// can resume.
    Shed,
    Stop,
}

/// A worker's part of a checkpoint.
#[derive(Debug)]
pub struct Sealed {
    pub checkpoint: u64,
    pub files: Vec<SealedFile>,
    /// Records processed per partition since the last checkpoint.
    pub records: BTreeMap<TopicPartition, u64>,
}

/// What the consumer sent a worker for one partition since the last
/// barrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// The claim it was consumed under.
    pub epoch: u64,
    /// The last offset sent.
    pub last: i64,
}

/// What the other threads tell the coordinator.
pub enum Event {
    /// Claim these partitions; the reply holds those that are ours once
    /// their recovery is done.
    Claim {
        wanted: Vec<Wanted>,
        reply: Sender<BTreeMap<TopicPartition, Claimed>>,
    },
    /// A barrier was placed; `sent` is what was sent per partition since
    /// the previous one.
    Barrier {
        checkpoint: u64,
        sent: BTreeMap<TopicPartition, Sent>,
        done: Option<Sender<()>>,
    },
    /// A barrier was asked for but nothing had been consumed.
    Idle,
    /// Fire `done` once every checkpoint placed so far is committed.
    Drained {
        done: Sender<()>,
    },
    Sealed(Sealed),
    /// A worker found the upload of one of the partition's files gone:
    /// another owner took the partition and aborted it. What is held for
    /// the partition is dropped, as when the log fences it.
    Disowned {
        partition: TopicPartition,
        /// The claim the file was written under: a file of an older one
        /// says nothing about the current claim.
        claim: u64,
        error: SinkError,
    },
    /// Checkpoints placed from now on are this plugin's.
    Swapped(Arc<Plugin>),
    ConsumerStopped,
    Failed(RunError),
}
