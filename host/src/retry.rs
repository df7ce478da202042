//! Retrying what the environment failed, under one policy: exponential
//! backoff, a number of attempts, and a deadline shared by every retry loop
//! of a run. A store or broker that is away is waited for while the
//! pipeline runs; once a stop begins, every loop gives up at the same
//! SHUTDOWN_TIMEOUT, even in the middle of an attempt, so that nested
//! retries cannot outlast it. Errors whose class says a retry cannot help
//! (a denied permission, a bug) are returned at once.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Blame, Classify};

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

/// When retrying must stop: unset while the pipeline runs, set once for
/// the whole run when a stop begins. Clones share it.
#[derive(Debug, Clone)]
pub struct Deadline(Arc<tokio::sync::watch::Sender<Option<Instant>>>);

impl Default for Deadline {
    fn default() -> Self {
        Self(Arc::new(tokio::sync::watch::Sender::new(None)))
    }
}

impl Deadline {
    /// Sets the deadline; an earlier one stays.
    pub fn set(&self, at: Instant) {
        self.0.send_if_modified(|current| match current {
            Some(earlier) if *earlier <= at => false,
            _ => {
                *current = Some(at);
                true
            }
        });
    }

    pub fn at(&self) -> Option<Instant> {
        *self.0.borrow()
    }

    pub fn passed(&self) -> bool {
        self.at().is_some_and(|at| Instant::now() >= at)
    }

    /// Resolves once the deadline is set and has passed.
    pub async fn reached(&self) {
        let mut rx = self.0.subscribe();
        let at = match rx.wait_for(Option::is_some).await {
            Ok(at) => at.expect("waited for it"),
            // The sender lives as long as `self`.
            Err(_) => return std::future::pending().await,
        };
        tokio::time::sleep_until(at.into()).await;
    }

    /// Runs `attempt` unless and until the deadline passes.
    pub async fn bound<T, E: From<GaveUp>>(
        &self,
        what: &str,
        attempt: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        // Biased to the attempt: an inner loop that gave up names the
        // deeper operation.
        tokio::select! {
            biased;
            result = attempt => result,
            () = self.reached() => Err(GaveUp::new(what, None).into()),
        }
    }
}

/// How a loop retries.
#[derive(Debug, Clone)]
pub struct Policy {
    pub backoff: Backoff,
    /// Attempts in all, the first included.
    pub attempts: u32,
    pub deadline: Deadline,
    /// Where loops say they are waiting an error out, for the status page.
    pub troubles: Option<Arc<Troubles>>,
}

/// The retry loops waiting out an error now, and the newest such error:
/// what the status page calls blocked on the store.
#[derive(Debug, Default)]
pub struct Troubles {
    waiting: AtomicUsize,
    last: Mutex<Option<(String, String)>>,
}

impl Troubles {
    /// Loops between a failed attempt and their end.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// The newest error waited out (`what: error`) and when, RFC 3339.
    pub fn last(&self) -> Option<(String, String)> {
        self.last.lock().expect("troubles lock").clone()
    }

    fn note(&self, what: &str, error: &dyn std::error::Error, first: bool) {
        if first {
            self.waiting.fetch_add(1, Ordering::Relaxed);
        }
        *self.last.lock().expect("troubles lock") =
            Some((format!("{what}: {error}"), crate::commit::now()));
    }
}

impl Policy {
    /// While the pipeline runs: as long as it takes, until `deadline`.
    pub fn until(deadline: Deadline) -> Self {
        Self {
            backoff: Backoff::default(),
            attempts: u32::MAX,
            deadline,
            troubles: None,
        }
    }

    /// Reports its loops' waits to `troubles`.
    pub fn watched(mut self, troubles: Arc<Troubles>) -> Self {
        self.troubles = Some(troubles);
        self
    }

    /// Start-up checks: a few quick tries, so that a passing fault does not
    /// fail the start and a store that is away does within seconds.
    pub fn at_start() -> Self {
        Self {
            backoff: Backoff {
                first: Duration::from_millis(100),
                max: Duration::from_secs(2),
            },
            attempts: 6,
            deadline: Deadline::default(),
            troubles: None,
        }
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }
}

/// A retry loop stopped at the shutdown deadline. Final: it is never
/// retried itself.
#[derive(Debug, thiserror::Error)]
#[error("{what}: gave up at the shutdown deadline (SHUTDOWN_TIMEOUT)")]
pub struct GaveUp {
    pub what: String,
    /// The error of the last attempt, if one had ended.
    #[source]
    pub last: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl GaveUp {
    pub fn new(what: &str, last: Option<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            what: what.to_owned(),
            last,
        }
    }
}

impl Classify for GaveUp {
    fn blame(&self) -> Blame {
        Blame::Environment
    }

    fn retryable(&self) -> bool {
        false
    }
}

/// What to do after a failed attempt.
enum Next<E> {
    Wait(Duration),
    Fail(E),
}

/// The policy's decisions over one loop, shared by the async and the
/// blocking form.
struct Attempts<'a> {
    what: &'a str,
    policy: &'a Policy,
    attempt: u32,
    delay: Duration,
    /// The error being waited out, for [`GaveUp`] if the deadline comes
    /// during the wait.
    last: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl<'a> Attempts<'a> {
    fn new(what: &'a str, policy: &'a Policy) -> Self {
        Self {
            what,
            policy,
            attempt: 1,
            delay: policy.backoff.first,
            last: None,
        }
    }

    /// The deadline came while waiting.
    fn gave_up<E: From<GaveUp>>(&mut self) -> E {
        tracing::error!(
            operation = self.what,
            attempt = self.attempt,
            "giving up at the shutdown deadline"
        );
        GaveUp::new(self.what, self.last.take()).into()
    }

    fn failed<E>(&mut self, e: E) -> Next<E>
    where
        E: Classify + std::error::Error + Send + Sync + 'static + From<GaveUp>,
    {
        if !e.retryable() || self.attempt >= self.policy.attempts {
            return Next::Fail(e);
        }
        let wake = Instant::now() + self.delay;
        if self.policy.deadline.at().is_some_and(|at| wake >= at) {
            tracing::error!(operation = self.what, attempt = self.attempt, error = %e, "giving up at the shutdown deadline");
            return Next::Fail(GaveUp::new(self.what, Some(Box::new(e))).into());
        }
        tracing::warn!(
            operation = self.what,
            attempt = self.attempt,
            retry_in_ms = self.delay.as_millis() as u64,
            error = %e,
            "failed; retrying"
        );
        if let Some(troubles) = &self.policy.troubles {
            troubles.note(self.what, &e, self.attempt == 1);
        }
        let wait = self.delay;
        self.delay = (self.delay * 2).min(self.policy.backoff.max);
        self.attempt += 1;
        self.last = Some(Box::new(e));
        Next::Wait(wait)
    }

    fn succeeded(&self) {
        if self.attempt > 1 {
            tracing::info!(
                operation = self.what,
                attempt = self.attempt,
                "succeeded after retrying"
            );
        }
    }
}

impl Drop for Attempts<'_> {
    /// A loop that waited an error out is no longer waiting, whatever
    /// ended it.
    fn drop(&mut self) {
        if let Some(troubles) = self.policy.troubles.as_ref().filter(|_| self.attempt > 1) {
            troubles.waiting.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Runs `op` until it succeeds, fails with an error a retry cannot help,
/// runs out of attempts, or the deadline passes (then [`GaveUp`], even in
/// the middle of an attempt). `what` names the operation and what it is
/// about (a URL, a partition) in the log and in the error.
pub async fn retry<T, E, F, Fut>(what: &str, policy: &Policy, mut op: F) -> Result<T, E>
where
    E: Classify + std::error::Error + Send + Sync + 'static + From<GaveUp>,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempts = Attempts::new(what, policy);
    loop {
        match policy.deadline.bound(what, op()).await {
            Ok(v) => {
                attempts.succeeded();
                return Ok(v);
            }
            Err(e) => match attempts.failed(e) {
                // A stop that begins during the wait ends it.
                Next::Wait(d) => tokio::select! {
                    () = tokio::time::sleep(d) => {}
                    () = policy.deadline.reached() => return Err(attempts.gave_up()),
                },
                Next::Fail(e) => return Err(e),
            },
        }
    }
}

/// [`retry`] for a thread that blocks on each attempt itself (the
/// coordinator): the attempt should bound itself with
/// [`Deadline::bound`].
pub fn retry_blocking<T, E>(
    what: &str,
    policy: &Policy,
    mut op: impl FnMut() -> Result<T, E>,
) -> Result<T, E>
where
    E: Classify + std::error::Error + Send + Sync + 'static + From<GaveUp>,
{
    let mut attempts = Attempts::new(what, policy);
    loop {
        match op() {
            Ok(v) => {
                attempts.succeeded();
                return Ok(v);
            }
            Err(e) => match attempts.failed(e) {
                Next::Wait(d) => {
                    // In steps, so that a stop that begins during the wait
                    // ends it.
                    let until = Instant::now() + d;
                    while let Some(left) = until.checked_duration_since(Instant::now()) {
                        if policy.deadline.passed() {
                            return Err(attempts.gave_up());
                        }
                        std::thread::sleep(left.min(Duration::from_millis(50)));
                    }
                }
                Next::Fail(e) => return Err(e),
            },
        }
    }
}

/// Like [`retry`] for calls whose error type cannot say "gave up"
/// (object_store's own): a few attempts, no deadline. For start-up checks
/// and single listings.
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
            Ok(v) => return Ok(v),
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
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Debug, thiserror::Error)]
    enum E {
        #[error("{0:?}")]
        Failed(Blame),
        #[error(transparent)]
        GaveUp(#[from] GaveUp),
    }

    impl Classify for E {
        fn blame(&self) -> Blame {
            match self {
                E::Failed(b) => *b,
                E::GaveUp(g) => g.blame(),
            }
        }

        fn retryable(&self) -> bool {
            match self {
                E::Failed(b) => *b == Blame::Environment,
                E::GaveUp(g) => g.retryable(),
            }
        }
    }

    fn fast() -> Policy {
        Policy::until(Deadline::default()).with_backoff(Backoff {
            first: Duration::from_millis(1),
            max: Duration::from_millis(2),
        })
    }

    #[tokio::test]
    async fn retries_environment_errors_until_success() {
        let calls = AtomicU32::new(0);
        let got = retry("op", &fast(), || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0..=2 => Err(E::Failed(Blame::Environment)),
                n => Ok(n),
            }
        })
        .await
        .unwrap();
        assert_eq!(got, 3);
    }

    /// The status page's "blocked on the store": a loop counts as waiting
    /// from its first failure to its end, whatever ends it.
    #[tokio::test]
    async fn a_loop_waiting_out_an_error_is_counted_until_it_ends() {
        let troubles = Arc::new(Troubles::default());
        let policy = fast().watched(troubles.clone());
        let calls = AtomicU32::new(0);
        let got = retry("write x", &policy, || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(E::Failed(Blame::Environment)),
                _ => {
                    assert_eq!(troubles.waiting(), 1, "waiting while it retries");
                    Ok(())
                }
            }
        })
        .await;
        assert!(got.is_ok());
        assert_eq!(troubles.waiting(), 0);
        let (error, _at) = troubles.last().expect("the error waited out");
        assert!(error.starts_with("write x: "), "{error}");
        let failed: Result<(), E> = retry(
            "read y",
            &Policy {
                attempts: 2,
                ..policy
            },
            || async { Err(E::Failed(Blame::Environment)) },
        )
        .await;
        assert!(failed.is_err());
        assert_eq!(troubles.waiting(), 0, "a loop that gave up waits no more");
    }

    #[tokio::test]
    async fn a_bounded_retry_gives_up_after_its_attempts() {
        let calls = AtomicU32::new(0);
        let policy = Policy {
            attempts: 3,
            ..fast()
        };
        let got: Result<(), E> = retry("op", &policy, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(E::Failed(Blame::Environment))
        })
        .await;
        assert!(matches!(got, Err(E::Failed(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn gives_up_at_once_on_other_errors() {
        let calls = AtomicU32::new(0);
        let got: Result<(), E> = retry("op", &fast(), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(E::Failed(Blame::User))
        })
        .await;
        assert!(matches!(got, Err(E::Failed(Blame::User))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_deadline_ends_a_hanging_attempt_and_nested_loops() {
        let policy = fast();
        let deadline = policy.deadline.clone();
        deadline.set(Instant::now() + Duration::from_millis(50));
        // An outer loop around an inner one whose attempt never ends: both
        // give up, the outer one without retrying the inner's GaveUp.
        let got: Result<(), E> = retry("outer", &policy, || async {
            retry("inner", &policy, std::future::pending::<Result<(), E>>).await
        })
        .await;
        let Err(E::GaveUp(gave_up)) = got else {
            panic!("{got:?}")
        };
        assert_eq!(gave_up.what, "inner");
    }

    #[test]
    fn an_earlier_deadline_stays() {
        let deadline = Deadline::default();
        let now = Instant::now();
        deadline.set(now + Duration::from_secs(5));
        deadline.set(now + Duration::from_secs(50));
        assert_eq!(deadline.at(), Some(now + Duration::from_secs(5)));
        assert!(!deadline.passed());
    }
}
