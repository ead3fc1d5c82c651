//! The one retry policy every AWS call goes through, and the per-target concurrency limiter.
//!
//! The SDK's own retries are off (`max_attempts(1)` in `crate::aws::client`), so a call is attempted
//! exactly as often as its [`RetryPolicy`] says: `apply.max_attempts` for a target, [`DEFAULT_ATTEMPTS`]
//! elsewhere. What is retried is decided by [`ErrorClass::is_retryable`] (classified by the backends: `crate::aws::error` for AWS), never by
//! error text. Backoff is exponential with full jitter (a uniformly random wait in
//! `[0, min(cap, base·2^n)]`), so many tasks throttled together do not retry together.
//!
//! [`Aimd`] is the adaptive concurrency of one target: every attempt holds one of its permits;
//! a throttled attempt halves the limit (once per congestion window), and the limit grows back
//! by one after [`RECOVER_AFTER`] successes. Throttling therefore slows lakelog down instead of
//! exhausting its attempts.
//!
//! Must never: retry an error the classification calls permanent, sleep while holding a
//! permit, or let the limit reach 0.

use std::fmt::Display;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tracing::debug;

use super::error::{AwsError, ErrorClass};
use crate::metrics as m;

/// Attempts per call outside the apply path (Kinesis, the state bucket, SQS, source reads).
pub const DEFAULT_ATTEMPTS: u32 = 8;
/// Successes at the current limit before the limit grows by one.
pub const RECOVER_AFTER: u32 = 20;
const BASE: Duration = Duration::from_millis(200);
const CAP: Duration = Duration::from_secs(10);

/// An error the policy can classify.
pub trait Classified {
    fn class(&self) -> ErrorClass;
}

impl Classified for AwsError {
    fn class(&self) -> ErrorClass {
        self.class
    }
}

/// How one kind of call is retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    max_attempts: u32,
    base: Duration,
    cap: Duration,
    /// The target whose concurrency and retry counters this policy drives, if any.
    limiter: Option<Arc<Aimd>>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::new(DEFAULT_ATTEMPTS)
    }
}

impl RetryPolicy {
    /// At most `max_attempts` attempts (at least one).
    pub fn new(max_attempts: u32) -> RetryPolicy {
        RetryPolicy { max_attempts: max_attempts.max(1), base: BASE, cap: CAP, limiter: None }
    }

    /// The policy of one target: `max_attempts` (`apply.max_attempts`), and every attempt within
    /// the target's adaptive concurrency `limiter`.
    pub fn for_target(max_attempts: u32, limiter: Arc<Aimd>) -> RetryPolicy {
        RetryPolicy { limiter: Some(limiter), ..RetryPolicy::new(max_attempts) }
    }

    /// Shorter waits (tests with fakes).
    pub fn with_backoff(self, base: Duration, cap: Duration) -> RetryPolicy {
        RetryPolicy { base, cap, ..self }
    }

    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    pub fn limiter(&self) -> Option<&Arc<Aimd>> {
        self.limiter.as_ref()
    }

    /// The wait before retry number `retry` (1 = the first retry): full jitter.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self.base.saturating_mul(1u32 << retry.saturating_sub(1).min(16)).min(self.cap);
        ceiling.mul_f64(fastrand::f64())
    }

    /// Runs `call` until it succeeds, fails with an error that is not retryable, or has been
    /// attempted `max_attempts` times; returns the last result.
    pub async fn run<T, E, F, Fut>(&self, call: F) -> Result<T, E>
    where
        E: Classified + Display,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut attempt = 1;
        loop {
            // An SDK call's future is large (tens of KB in debug builds); on the heap, the
            // futures of every caller stay small, and so do the stacks that poll them.
            let result = match &self.limiter {
                Some(l) => {
                    let permit = l.acquire().await;
                    let result = Box::pin(call()).await;
                    match &result {
                        Err(e) if e.class() == ErrorClass::Throttled => l.throttled(permit.window),
                        Err(_) => {}
                        Ok(_) => l.succeeded(),
                    }
                    result
                }
                None => Box::pin(call()).await,
            };
            match result {
                Err(e) if e.class().is_retryable() && attempt < self.max_attempts => {
                    debug!(error = %e, attempt, max = self.max_attempts, "retryable AWS error, backing off");
                    if let Some(l) = &self.limiter {
                        m::apply_retry(&l.target);
                    }
                    tokio::time::sleep(self.backoff(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// Additive-increase, multiplicative-decrease concurrency limit of one target.
#[derive(Debug)]
pub struct Aimd {
    target: String,
    max: usize,
    state: Mutex<AimdState>,
    freed: Notify,
}

#[derive(Debug)]
struct AimdState {
    limit: usize,
    in_flight: usize,
    successes: u32,
    /// Bumped on every decrease: throttles of attempts that started before the decrease belong
    /// to the congestion already answered and do not halve again.
    window: u64,
}

/// One attempt's slot; released on drop.
#[derive(Debug)]
pub struct Permit {
    aimd: Arc<Aimd>,
    window: u64,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.aimd.lock().in_flight -= 1;
        self.aimd.freed.notify_waiters();
    }
}

impl Aimd {
    /// Starts at (and never exceeds) `max` concurrent attempts.
    pub fn new(target: &str, max: usize) -> Arc<Aimd> {
        let max = max.max(1);
        m::apply_concurrency_limit(target, max);
        Arc::new(Aimd {
            target: target.to_string(),
            max,
            state: Mutex::new(AimdState { limit: max, in_flight: 0, successes: 0, window: 0 }),
            freed: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, AimdState> {
        // The state is a few integers that every update leaves consistent; a panic elsewhere while
        // holding the lock cannot corrupt it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.lock().limit
    }

    /// Waits for a free slot under the current limit.
    pub async fn acquire(self: &Arc<Self>) -> Permit {
        loop {
            // Registered before the check, so a release between the check and the await wakes us.
            let freed = self.freed.notified();
            {
                let mut s = self.lock();
                if s.in_flight < s.limit {
                    s.in_flight += 1;
                    return Permit { aimd: self.clone(), window: s.window };
                }
            }
            freed.await;
        }
    }

    /// An attempt that started in `window` was throttled: halve, unless already halved since.
    pub fn throttled(&self, window: u64) {
        let mut s = self.lock();
        s.successes = 0;
        if window == s.window && s.limit > 1 {
            s.limit = (s.limit / 2).max(1);
            s.window += 1;
            m::apply_concurrency_limit(&self.target, s.limit);
        }
    }

    /// An attempt succeeded: after [`RECOVER_AFTER`] of them, one more slot.
    pub fn succeeded(&self) {
        let grew = {
            let mut s = self.lock();
            s.successes += 1;
            if s.successes >= RECOVER_AFTER && s.limit < self.max {
                s.limit += 1;
                s.successes = 0;
                m::apply_concurrency_limit(&self.target, s.limit);
                true
            } else {
                false
            }
        };
        if grew {
            self.freed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn err(class: ErrorClass) -> AwsError {
        AwsError { service: "glue", operation: "GetTable", class, code: None, message: "x".into() }
    }

    fn fast(attempts: u32) -> RetryPolicy {
        RetryPolicy::new(attempts).with_backoff(Duration::from_millis(1), Duration::from_millis(2))
    }

    #[tokio::test]
    async fn retryable_errors_are_retried_up_to_max_attempts_and_no_further() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = fast(4)
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(err(ErrorClass::Throttled))
            })
            .await;
        assert_eq!(result.expect_err("gives up").class, ErrorClass::Throttled);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_transient_failure_then_success_returns_the_success() {
        let calls = AtomicU32::new(0);
        let result = fast(6)
            .run(|| async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err(err(ErrorClass::Retryable)),
                    n => Ok(n),
                }
            })
            .await;
        assert_eq!(result.expect("succeeds"), 2);
    }

    #[tokio::test]
    async fn permanent_and_not_found_errors_are_not_retried() {
        for class in [ErrorClass::Permanent, ErrorClass::NotFound, ErrorClass::AlreadyExists, ErrorClass::Conflict] {
            let calls = AtomicU32::new(0);
            let result: Result<(), _> = fast(6)
                .run(|| async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(err(class))
                })
                .await;
            assert_eq!(result.expect_err("fails").class, class);
            assert_eq!(calls.load(Ordering::SeqCst), 1, "{class:?}");
        }
    }

    #[test]
    fn backoff_is_full_jitter_under_an_exponential_ceiling() {
        let p = RetryPolicy::new(10);
        let waits: Vec<Duration> = (0..200).map(|_| p.backoff(3)).collect();
        assert!(waits.iter().all(|w| *w <= Duration::from_millis(800)), "ceiling base·2^2");
        // Jitter spreads waits out; with 200 draws, identical values would mean no jitter.
        let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
        assert!(distinct.len() > 100);
        assert!((0..100).all(|_| p.backoff(30) <= CAP), "capped");
    }

    #[test]
    fn throttling_halves_the_limit_once_per_window_down_to_one() {
        let a = Aimd::new("t", 8);
        a.throttled(0);
        assert_eq!(a.limit(), 4);
        // Attempts that started before the decrease were part of the same congestion.
        a.throttled(0);
        assert_eq!(a.limit(), 4);
        a.throttled(1);
        a.throttled(2);
        assert_eq!(a.limit(), 1);
        a.throttled(3);
        assert_eq!(a.limit(), 1, "never below one");
    }

    #[test]
    fn the_limit_grows_by_one_per_recover_after_successes_up_to_max() {
        let a = Aimd::new("t", 8);
        a.throttled(0);
        a.throttled(1);
        assert_eq!(a.limit(), 2);
        for _ in 0..RECOVER_AFTER - 1 {
            a.succeeded();
        }
        assert_eq!(a.limit(), 2, "slowly");
        a.succeeded();
        assert_eq!(a.limit(), 3);
        for _ in 0..RECOVER_AFTER * 20 {
            a.succeeded();
        }
        assert_eq!(a.limit(), 8, "capped at the configured concurrency");
    }

    #[test]
    fn a_throttle_resets_the_recovery_count() {
        let a = Aimd::new("t", 4);
        a.throttled(0);
        for _ in 0..RECOVER_AFTER - 1 {
            a.succeeded();
        }
        a.throttled(0); // same window: no second halving, but recovery starts over
        a.succeeded();
        assert_eq!(a.limit(), 2);
    }

    #[tokio::test]
    async fn acquire_waits_while_the_limit_is_in_use() {
        let a = Aimd::new("t", 2);
        let (p1, p2) = (a.acquire().await, a.acquire().await);
        let third = tokio::time::timeout(Duration::from_millis(50), a.acquire()).await;
        assert!(third.is_err(), "a third attempt waits at limit 2");
        drop(p1);
        let p3 = tokio::time::timeout(Duration::from_secs(5), a.acquire()).await.expect("a slot was freed");
        drop((p2, p3));
    }

    #[tokio::test]
    async fn a_throttled_call_through_the_policy_lowers_the_limit() {
        let a = Aimd::new("t", 8);
        let p = RetryPolicy::for_target(3, a.clone()).with_backoff(Duration::from_millis(1), Duration::from_millis(1));
        let calls = AtomicU32::new(0);
        let out = p
            .run(|| async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(err(ErrorClass::Throttled)),
                    _ => Ok(()),
                }
            })
            .await;
        assert!(out.is_ok());
        assert_eq!(a.limit(), 4);
    }
}
