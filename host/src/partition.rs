//! A Kafka partition, and who holds it: the nouns every stage of the
//! pipeline names records and files by.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Who wrote a commit: the subtask index (the StatefulSet ordinal) and the
/// incarnation, a fresh id per process start, so that a restarted process
/// fences its own predecessor.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Owner {
    pub subtask: u32,
    pub incarnation: String,
}

impl Owner {
    /// This process, as subtask `subtask`: a new incarnation.
    pub fn fresh(subtask: u32) -> Self {
        Self {
            subtask,
            incarnation: uuid::Uuid::new_v4().simple().to_string()[..16].to_owned(),
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "subtask {} ({})", self.subtask, self.incarnation)
    }
}

/// A Kafka partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}
