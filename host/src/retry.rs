//! Retrying what the environment failed: a store or broker that is away is
//! waited for, with exponential backoff and a log line per attempt, never
//! skipped. Errors that retrying cannot fix are returned at once.

use std::future::Future;
use std::time::Duration;

use crate::error::Classify;

/// Backoff from `first` doubling up to `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(100),
            max: Duration::from_secs(30),
        }
    }
}

/// Runs `op` until it succeeds or fails with an error that is not
/// retryable. `what` names the operation in the log.
pub async fn retry<T, E, F, Fut>(what: &str, backoff: Backoff, op: F) -> Result<T, E>
where
    E: Classify + std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    retry_at_most(what, backoff, u32::MAX, op).await
}

/// Like [`retry`], giving up after `attempts`: for start-up checks, where
/// a store that stays away should fail the start, not hang it.
pub async fn retry_at_most<T, E, F, Fut>(
    what: &str,
    backoff: Backoff,
    attempts: u32,
    mut op: F,
) -> Result<T, E>
where
    E: Classify + std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut delay = backoff.first;
    let mut attempt = 1u32;
    loop {
        match op().await {
            Ok(v) => {
                if attempt > 1 {
                    tracing::info!(operation = what, attempt, "succeeded after retrying");
                }
                return Ok(v);
            }
            Err(e) if e.retryable() && attempt < attempts => {
                tracing::warn!(
                    operation = what,
                    attempt,
                    retry_in_ms = delay.as_millis() as u64,
                    error = %e,
                    "failed; retrying"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(backoff.max);
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Blame;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Debug)]
    struct E(Blame);
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{:?}", self.0)
        }
    }
    impl Classify for E {
        fn blame(&self) -> Blame {
            self.0
        }
    }

    const FAST: Backoff = Backoff {
        first: Duration::from_millis(1),
        max: Duration::from_millis(2),
    };

    #[tokio::test]
    async fn retries_environment_errors_until_success() {
        let calls = AtomicU32::new(0);
        let got = retry("op", FAST, || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0..=2 => Err(E(Blame::Environment)),
                n => Ok(n),
            }
        })
        .await
        .unwrap();
        assert_eq!(got, 3);
    }

    #[tokio::test]
    async fn a_bounded_retry_gives_up_after_its_attempts() {
        let calls = AtomicU32::new(0);
        let got: Result<(), E> = retry_at_most("op", FAST, 3, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(E(Blame::Environment))
        })
        .await;
        assert!(got.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn gives_up_at_once_on_other_errors() {
        let calls = AtomicU32::new(0);
        let got: Result<(), E> = retry("op", FAST, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(E(Blame::User))
        })
        .await;
        assert!(got.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
