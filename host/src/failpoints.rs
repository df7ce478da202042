//! Named failpoints in the commit path, for crash tests.
//!
//! `LINEAGE_FAILPOINTS=after-commit-log-write=exit` makes the process exit
//! at once, as a `kill -9` would leave it, the first time it passes that
//! point; `name=exit@3` the third time; `name=error` makes the step fail
//! once with a retryable error (after its write landed: a lost reply);
//! `name=sleep:2000` holds the step for two seconds (to land a rebalance
//! inside a commit, or to stall an owner); `@*` fires on every pass.
//! Several are separated by commas. Every point sits between two durable writes; see
//! docs/commit-protocol.md.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::sync::Mutex;
use std::time::Duration;

/// Every failpoint, in the order a checkpoint passes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failpoint {
    AfterStagingEntry,
    AfterPartUpload,
    AfterSeal,
    AfterCommitLogWrite,
    AfterCheckpointView,
    AfterFirstPublish,
    AfterPublish,
    AfterStagingCleanup,
    BeforeTableAppend,
    AfterTableAppend,
    AfterKafkaCommit,
    AfterClaim,
    AfterSnapshot,
}

impl Failpoint {
    pub const ALL: [Failpoint; 13] = [
        Failpoint::AfterStagingEntry,
        Failpoint::AfterPartUpload,
        Failpoint::AfterSeal,
        Failpoint::AfterCommitLogWrite,
        Failpoint::AfterCheckpointView,
        Failpoint::AfterFirstPublish,
        Failpoint::AfterPublish,
        Failpoint::AfterStagingCleanup,
        Failpoint::BeforeTableAppend,
        Failpoint::AfterTableAppend,
        Failpoint::AfterKafkaCommit,
        Failpoint::AfterClaim,
        Failpoint::AfterSnapshot,
    ];

    /// The name LINEAGE_FAILPOINTS arms it by.
    pub fn name(self) -> &'static str {
        match self {
            Failpoint::AfterStagingEntry => "after-staging-entry",
            Failpoint::AfterPartUpload => "after-part-upload",
            Failpoint::AfterSeal => "after-seal",
            Failpoint::AfterCommitLogWrite => "after-commit-log-write",
            Failpoint::AfterCheckpointView => "after-checkpoint-view",
            Failpoint::AfterFirstPublish => "after-first-publish",
            Failpoint::AfterPublish => "after-publish",
            Failpoint::AfterStagingCleanup => "after-staging-cleanup",
            Failpoint::BeforeTableAppend => "before-table-append",
            Failpoint::AfterTableAppend => "after-table-append",
            Failpoint::AfterKafkaCommit => "after-kafka-commit",
            Failpoint::AfterClaim => "after-claim",
            Failpoint::AfterSnapshot => "after-snapshot",
        }
    }

    fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl std::fmt::Display for Failpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Exit status of a failpoint exit, so that tests can tell it from a crash.
pub const EXIT_CODE: i32 = 86;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Exit,
    Error,
    Sleep(Duration),
}

#[derive(Debug)]
struct Armed {
    action: Action,
    /// Fires on this hit (1-based); `None`: on every hit.
    on_hit: Option<u32>,
    hits: u32,
}

static ARMED: LazyLock<Mutex<HashMap<Failpoint, Armed>>> = LazyLock::new(|| {
    let spec = std::env::var(crate::setting::LINEAGE_FAILPOINTS).unwrap_or_default();
    Mutex::new(parse(&spec).unwrap_or_else(|e| {
        eprintln!("error: LINEAGE_FAILPOINTS: {e}");
        std::process::exit(2);
    }))
});

fn parse(spec: &str) -> Result<HashMap<Failpoint, Armed>, String> {
    let mut armed = HashMap::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, action) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?} is not name=action"))?;
        let Some(point) = Failpoint::named(name) else {
            return Err(format!(
                "unknown failpoint {name:?}; known: {}",
                Failpoint::ALL.map(Failpoint::name).join(", ")
            ));
        };
        let (action, on_hit) = match action.split_once('@') {
            Some((a, "*")) => (a, None),
            Some((a, n)) => (
                a,
                Some(
                    n.parse::<u32>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| format!("{item:?}: bad hit count {n:?}"))?,
                ),
            ),
            None => (action, Some(1)),
        };
        let action = match action {
            "exit" => Action::Exit,
            "error" => Action::Error,
            _ => match action.strip_prefix("sleep:").and_then(|ms| ms.parse().ok()) {
                Some(ms) => Action::Sleep(Duration::from_millis(ms)),
                None => {
                    return Err(format!(
                        "{item:?}: action must be exit, error or sleep:<ms>"
                    ));
                }
            },
        };
        armed.insert(
            point,
            Armed {
                action,
                on_hit,
                hits: 0,
            },
        );
    }
    Ok(armed)
}

/// Checks the spec at start-up, so that a typo fails before any work.
pub fn validate() -> Result<(), String> {
    parse(&std::env::var(crate::setting::LINEAGE_FAILPOINTS).unwrap_or_default()).map(|_| ())
}

/// Passes failpoint `name`: exits, sleeps, or returns `Err` when armed.
pub fn hit(name: Failpoint) -> Result<(), FailpointError> {
    let action = {
        let mut armed = ARMED.lock().expect("failpoints lock");
        let Some(point) = armed.get_mut(&name) else {
            return Ok(());
        };
        point.hits += 1;
        if point.on_hit.is_some_and(|n| n != point.hits) {
            return Ok(());
        }
        point.action.clone()
    };
    match action {
        Action::Exit => {
            eprintln!("failpoint {name}: exiting");
            // No destructors, no flushing: as close to kill -9 as a process
            // can do to itself.
            std::process::exit(EXIT_CODE);
        }
        Action::Error => Err(FailpointError(name)),
        Action::Sleep(d) => {
            tracing::warn!(
                failpoint = name.name(),
                ms = d.as_millis() as u64,
                "failpoint: holding"
            );
            std::thread::sleep(d);
            Ok(())
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("failpoint {0} injected an error")]
pub struct FailpointError(pub Failpoint);

/// An injected error stands for a failed write to the store or broker: the
/// environment's, and worth retrying, as the real failure would be.
impl crate::error::Classify for FailpointError {
    fn blame(&self) -> crate::error::Blame {
        crate::error::Blame::Environment
    }

    fn retryable(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_actions_and_hit_counts() {
        let armed = parse("after-seal=exit@3, after-publish=error,after-claim=sleep:250").unwrap();
        assert_eq!(armed[&Failpoint::AfterSeal].action, Action::Exit);
        assert_eq!(armed[&Failpoint::AfterSeal].on_hit, Some(3));
        assert_eq!(
            parse("after-seal=error@*").unwrap()[&Failpoint::AfterSeal].on_hit,
            None
        );
        assert_eq!(armed[&Failpoint::AfterPublish].action, Action::Error);
        assert_eq!(
            armed[&Failpoint::AfterClaim].action,
            Action::Sleep(Duration::from_millis(250))
        );
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn rejects_typos() {
        assert!(
            parse("after-sael=exit")
                .unwrap_err()
                .contains("unknown failpoint")
        );
        let error = |spec| parse(spec).unwrap_err();
        assert_eq!(error("after-seal"), "\"after-seal\" is not name=action");
        assert!(error("after-seal=explode").ends_with("action must be exit, error or sleep:<ms>"));
        assert!(error("after-seal=exit@0").ends_with("bad hit count \"0\""));
    }
}
