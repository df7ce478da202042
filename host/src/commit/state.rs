//! What the commit log says, folded: per partition, who owns it and the
//! next offset to consume; per subtask, its last checkpoint number.
//!
//! The same rules check a commit before it is written and every commit read
//! back, so that the log is consistent by construction and a damaged log is
//! reported instead of followed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::entry::Commit;
use super::error::CommitError;
use crate::partition::{Owner, TopicPartition};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// The first offset no commit has accounted for yet.
    pub next: i64,
    /// Who may commit it; `None` until it is first claimed.
    pub owner: Option<Owner>,
    /// The commit whose claim made `owner` the owner. Staging entries
    /// written under an earlier claim are leftovers its recovery resolves;
    /// those under a later one are a later owner's, never touched.
    #[serde(default)]
    pub claimed: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogState {
    /// The last commit applied; commits are numbered from 1.
    pub seq: u64,
    pub partitions: BTreeMap<TopicPartition, PartitionState>,
    /// The last checkpoint number of each subtask.
    pub checkpoints: BTreeMap<u32, u64>,
}

/// Why a commit may not be written on top of the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// Another owner claimed the partition since ours.
    NotOwner {
        source: TopicPartition,
        owner: Option<Owner>,
    },
    /// The range does not start where the last commit ended.
    Gap {
        source: TopicPartition,
        expected: i64,
        found: i64,
    },
    /// This subtask's checkpoint number was already used.
    Checkpoint { subtask: u32, last: u64, found: u64 },
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Conflict::NotOwner {
                source,
                owner: Some(owner),
            } => write!(f, "{source} is owned by {owner}"),
            Conflict::NotOwner {
                source,
                owner: None,
            } => write!(f, "{source} was never claimed"),
            Conflict::Gap {
                source,
                expected,
                found,
            } => write!(
                f,
                "{source}: range starts at offset {found}, the log is at {expected}"
            ),
            Conflict::Checkpoint {
                subtask,
                last,
                found,
            } => write!(
                f,
                "subtask {subtask}: checkpoint {found} does not follow checkpoint {last}"
            ),
        }
    }
}

impl LogState {
    /// The next checkpoint number for `subtask`.
    pub fn next_checkpoint(&self, subtask: u32) -> u64 {
        self.checkpoints.get(&subtask).copied().unwrap_or(0) + 1
    }

    pub fn partition(&self, source: &TopicPartition) -> Option<&PartitionState> {
        self.partitions.get(source)
    }

    /// Everything that stops `commit` from following the current state.
    pub fn conflicts(&self, commit: &Commit) -> Vec<Conflict> {
        let mut conflicts = Vec::new();
        for range in &commit.ranges {
            match self.partitions.get(&range.source) {
                Some(p) if p.owner.as_ref() == Some(&commit.owner) => {
                    if p.next != range.first {
                        conflicts.push(Conflict::Gap {
                            source: range.source.clone(),
                            expected: p.next,
                            found: range.first,
                        });
                    }
                }
                // Claims in the same commit come first.
                _ if commit
                    .claims
                    .iter()
                    .any(|c| c.source == range.source && c.next == range.first) => {}
                other => conflicts.push(Conflict::NotOwner {
                    source: range.source.clone(),
                    owner: other.and_then(|p| p.owner.clone()),
                }),
            }
        }
        if commit.checkpoint > 0 {
            let last = self
                .checkpoints
                .get(&commit.owner.subtask)
                .copied()
                .unwrap_or(0);
            if commit.checkpoint != last + 1 {
                conflicts.push(Conflict::Checkpoint {
                    subtask: commit.owner.subtask,
                    last,
                    found: commit.checkpoint,
                });
            }
        }
        conflicts
    }

    /// Folds the next commit of the log in.
    pub fn apply(&mut self, commit: &Commit) -> Result<(), CommitError> {
        if commit.seq != self.seq + 1 {
            return Err(CommitError::OutOfSequence {
                found: commit.seq,
                after: self.seq,
            });
        }
        if commit.torn.is_some() {
            self.seq = commit.seq;
            return Ok(());
        }
        let conflicts = self.conflicts(commit);
        if !conflicts.is_empty() {
            return Err(CommitError::Conflicting {
                seq: commit.seq,
                owner: commit.owner.clone(),
                conflicts,
            });
        }
        for claim in &commit.claims {
            self.partitions.insert(
                claim.source.clone(),
                PartitionState {
                    next: claim.next,
                    owner: Some(commit.owner.clone()),
                    claimed: commit.seq,
                },
            );
        }
        for range in &commit.ranges {
            let p = self
                .partitions
                .get_mut(&range.source)
                .expect("checked by conflicts");
            p.next = range.last + 1;
        }
        if commit.checkpoint > 0 {
            self.checkpoints
                .insert(commit.owner.subtask, commit.checkpoint);
        }
        self.seq = commit.seq;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commit::entry::{Claim, OffsetRange, PluginStamp};

    fn tp(p: i32) -> TopicPartition {
        TopicPartition {
            topic: "t".into(),
            partition: p,
        }
    }

    fn owner(subtask: u32, inc: &str) -> Owner {
        Owner {
            subtask,
            incarnation: inc.into(),
        }
    }

    fn commit(seq: u64, checkpoint: u64, owner: &Owner) -> Commit {
        Commit {
            torn: None,
            seq,
            checkpoint,
            owner: owner.clone(),
            timestamp: String::new(),
            plugin: PluginStamp::default(),
            claims: vec![],
            ranges: vec![],
            files: Default::default(),
        }
    }

    fn claim(p: i32, next: i64) -> Claim {
        Claim {
            source: tp(p),
            next,
            moved: None,
        }
    }

    fn range(p: i32, first: i64, last: i64) -> OffsetRange {
        OffsetRange {
            source: tp(p),
            first,
            last,
            records: (last - first + 1) as u64,
        }
    }

    #[test]
    fn ranges_chain_per_partition_under_their_owner() {
        let a = owner(0, "a");
        let mut state = LogState::default();
        let mut c1 = commit(1, 0, &a);
        c1.claims = vec![claim(0, 0), claim(1, 50)];
        state.apply(&c1).unwrap();
        let mut c2 = commit(2, 1, &a);
        c2.ranges = vec![range(0, 0, 99), range(1, 50, 59)];
        state.apply(&c2).unwrap();
        assert_eq!(state.partition(&tp(0)).unwrap().next, 100);
        assert_eq!(state.partition(&tp(1)).unwrap().next, 60);
        assert_eq!(state.next_checkpoint(0), 2);

        let mut gap = commit(3, 2, &a);
        gap.ranges = vec![range(0, 101, 120)];
        assert_eq!(
            state.conflicts(&gap),
            [Conflict::Gap {
                source: tp(0),
                expected: 100,
                found: 101
            }]
        );
        assert!(matches!(
            state.apply(&gap),
            Err(CommitError::Conflicting { seq: 3, conflicts, .. })
                if conflicts == [Conflict::Gap { source: tp(0), expected: 100, found: 101 }]
        ));
    }

    #[test]
    fn a_claim_fences_the_previous_owner() {
        let (a, b) = (owner(0, "a"), owner(1, "b"));
        let mut state = LogState::default();
        let mut c1 = commit(1, 0, &a);
        c1.claims = vec![claim(3, 0)];
        state.apply(&c1).unwrap();
        let mut c2 = commit(2, 0, &b);
        c2.claims = vec![claim(3, 0)];
        state.apply(&c2).unwrap();

        // The zombie's checkpoint no longer fits.
        let mut zombie = commit(3, 1, &a);
        zombie.ranges = vec![range(3, 0, 10)];
        assert_eq!(
            state.conflicts(&zombie),
            [Conflict::NotOwner {
                source: tp(3),
                owner: Some(b.clone())
            }]
        );
        // A restart of the same subtask is another incarnation, fenced too.
        let mut restarted = commit(3, 1, &owner(0, "a2"));
        restarted.ranges = vec![range(3, 0, 10)];
        assert_eq!(state.conflicts(&restarted).len(), 1);

        let mut legit = commit(3, 1, &b);
        legit.ranges = vec![range(3, 0, 10)];
        state.apply(&legit).unwrap();
    }

    #[test]
    fn checkpoint_numbers_follow_each_other_per_subtask() {
        let a = owner(0, "a");
        let mut state = LogState::default();
        let mut c1 = commit(1, 1, &a);
        c1.claims = vec![claim(0, 0)];
        state.apply(&c1).unwrap();
        let again = commit(2, 1, &a);
        assert_eq!(
            state.conflicts(&again),
            [Conflict::Checkpoint {
                subtask: 0,
                last: 1,
                found: 1
            }]
        );
        // Another subtask has its own sequence.
        state.apply(&commit(2, 1, &owner(1, "b"))).unwrap();
        assert_eq!(state.next_checkpoint(1), 2);
    }

    #[test]
    fn a_torn_commit_takes_its_number_and_nothing_else() {
        let a = owner(0, "a");
        let mut state = LogState::default();
        let mut c1 = commit(1, 0, &a);
        c1.claims = vec![claim(0, 10)];
        state.apply(&c1).unwrap();
        state.apply(&Commit::torn(2, "empty".into())).unwrap();
        assert_eq!(state.seq, 2);
        let p = state.partition(&tp(0)).unwrap();
        assert_eq!((p.next, p.claimed), (10, 1));
        let mut c3 = commit(3, 1, &a);
        c3.ranges = vec![range(0, 10, 19)];
        state.apply(&c3).unwrap();
        assert_eq!(state.partition(&tp(0)).unwrap().next, 20);
    }

    #[test]
    fn the_sequence_has_no_holes() {
        let mut state = LogState::default();
        assert!(matches!(
            state.apply(&commit(2, 0, &owner(0, "a"))),
            Err(CommitError::OutOfSequence { found: 2, after: 0 })
        ));
    }
}
