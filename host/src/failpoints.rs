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
pub const POINTS: &[&str] = &[
    "after-staging-entry",
    "after-part-upload",
    "after-seal",
    "after-commit-log-write",
    "after-checkpoint-view",
    "after-first-publish",
    "after-publish",
    "after-staging-cleanup",
    "after-kafka-commit",
    "after-claim",
    "after-snapshot",
];

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

static ARMED: LazyLock<Mutex<HashMap<String, Armed>>> = LazyLock::new(|| {
    let spec = std::env::var("LINEAGE_FAILPOINTS").unwrap_or_default();
    Mutex::new(parse(&spec).unwrap_or_else(|e| {
        eprintln!("error: LINEAGE_FAILPOINTS: {e}");
        std::process::exit(2);
    }))
});

fn parse(spec: &str) -> Result<HashMap<String, Armed>, String> {
    let mut armed = HashMap::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, action) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?} is not name=action"))?;
        if !POINTS.contains(&name) {
            return Err(format!(
                "unknown failpoint {name:?}; known: {}",
                POINTS.join(", ")
            ));
        }
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
            name.to_owned(),
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
    parse(&std::env::var("LINEAGE_FAILPOINTS").unwrap_or_default()).map(|_| ())
}

/// Passes failpoint `name`: exits, sleeps, or returns `Err` when armed.
pub fn hit(name: &'static str) -> Result<(), FailpointError> {
    debug_assert!(POINTS.contains(&name), "unregistered failpoint {name}");
    let action = {
        let mut armed = ARMED.lock().expect("failpoints lock");
        let Some(point) = armed.get_mut(name) else {
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
                failpoint = name,
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
pub struct FailpointError(pub &'static str);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_actions_and_hit_counts() {
        let armed = parse("after-seal=exit@3, after-publish=error,after-claim=sleep:250").unwrap();
        assert_eq!(armed["after-seal"].action, Action::Exit);
        assert_eq!(armed["after-seal"].on_hit, Some(3));
        assert_eq!(
            parse("after-seal=error@*").unwrap()["after-seal"].on_hit,
            None
        );
        assert_eq!(armed["after-publish"].action, Action::Error);
        assert_eq!(
            armed["after-claim"].action,
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
        assert!(parse("after-seal").is_err());
        assert!(parse("after-seal=explode").is_err());
        assert!(parse("after-seal=exit@0").is_err());
    }
}
