//! Polling with deadlines: call a check every so often until it holds or
//! the time is up. One loop for threads and one for tokio tasks; every
//! helper here ([`Poll`]'s methods, [`poll_until`], [`wait_for`],
//! [`wait_for_async`]) is built on them.
//!
//! The check always runs at least once, and once more after the last sleep
//! even if that crossed the deadline, so a condition that holds by the
//! deadline is never reported as timed out.

use std::fmt::{Debug, Display};
use std::future::Future;
use std::time::{Duration, Instant};

/// How often a check runs unless told otherwise.
pub const EVERY: Duration = Duration::from_millis(20);

/// A polling plan: for how long, and how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Poll {
    pub timeout: Duration,
    pub every: Duration,
}

impl Poll {
    /// Poll for at most `timeout`, every 20 ms.
    pub const fn new(timeout: Duration) -> Poll {
        Poll {
            timeout,
            every: EVERY,
        }
    }

    /// The same plan, checking every `every`.
    pub const fn every(self, every: Duration) -> Poll {
        Poll { every, ..self }
    }

    /// The loop behind every sync helper: run `f` until it returns `Ok`,
    /// sleeping the thread between calls; the last error if time ran out.
    fn run<T, E>(self, mut f: impl FnMut() -> Result<T, E>) -> Result<T, E> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let last = f();
            if last.is_ok() || Instant::now() >= deadline {
                return last;
            }
            std::thread::sleep(self.every);
        }
    }

    /// The loop behind every async helper, sleeping the task between calls.
    async fn run_async<T, E, F: Future<Output = Result<T, E>>>(
        self,
        mut f: impl FnMut() -> F,
    ) -> Result<T, E> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let last = f().await;
            if last.is_ok() || Instant::now() >= deadline {
                return last;
            }
            tokio::time::sleep(self.every).await;
        }
    }

    /// Run `f` until it returns `Some` (that value) or the time is up
    /// (`None`), sleeping the thread between calls.
    pub fn value<T>(self, mut f: impl FnMut() -> Option<T>) -> Option<T> {
        self.run(|| f().ok_or(())).ok()
    }

    /// Whether `f` returned true within the time.
    pub fn until(self, mut f: impl FnMut() -> bool) -> bool {
        self.value(|| f().then_some(())).is_some()
    }

    /// Wait until `f` holds; panics naming `what` if it does not in time.
    pub fn wait(self, what: impl Display, f: impl FnMut() -> bool) {
        if !self.until(f) {
            panic!("timed out after {:?} waiting for {what}", self.timeout);
        }
    }

    /// The first `Ok` of `f`; panics naming `what` and the last error if
    /// none comes in time. For checks that can say why they do not hold
    /// yet ("3 of 10 records", "last seen …").
    pub fn retry<T, E: Debug>(self, what: impl Display, f: impl FnMut() -> Result<T, E>) -> T {
        self.run(f).unwrap_or_else(|last| {
            panic!(
                "timed out after {:?} waiting for {what}; last: {last:?}",
                self.timeout
            )
        })
    }

    /// [`Poll::value`] for async checks, sleeping the task between calls.
    pub async fn value_async<T, F: Future<Output = Option<T>>>(
        self,
        mut f: impl FnMut() -> F,
    ) -> Option<T> {
        self.run_async(|| {
            let fut = f();
            async move { fut.await.ok_or(()) }
        })
        .await
        .ok()
    }

    /// [`Poll::until`] on a tokio task: the check is sync, the sleep async.
    pub async fn until_async(self, mut f: impl FnMut() -> bool) -> bool {
        self.value_async(|| std::future::ready(f().then_some(())))
            .await
            .is_some()
    }

    /// [`Poll::wait`] on a tokio task.
    pub async fn wait_async(self, what: impl Display, f: impl FnMut() -> bool) {
        if !self.until_async(f).await {
            panic!("timed out after {:?} waiting for {what}", self.timeout);
        }
    }

    /// [`Poll::retry`] with an async check.
    pub async fn retry_async<T, E: Debug, F: Future<Output = Result<T, E>>>(
        self,
        what: impl Display,
        f: impl FnMut() -> F,
    ) -> T {
        match self.run_async(f).await {
            Ok(v) => v,
            Err(last) => panic!(
                "timed out after {:?} waiting for {what}; last: {last:?}",
                self.timeout
            ),
        }
    }
}

/// Call `f` every 20 ms until it returns true or `timeout` passes; whether
/// it did.
pub fn poll_until(timeout: Duration, f: impl FnMut() -> bool) -> bool {
    Poll::new(timeout).until(f)
}

/// Wait (blocking the thread, checking every 20 ms) until `f` holds; panics
/// naming `what` after `timeout`.
pub fn wait_for(what: impl Display, timeout: Duration, f: impl FnMut() -> bool) {
    Poll::new(timeout).wait(what, f)
}

/// Wait (on a tokio task, checking every 20 ms) until `f` holds; panics
/// naming `what` after `timeout`.
pub async fn wait_for_async(what: impl Display, timeout: Duration, f: impl FnMut() -> bool) {
    Poll::new(timeout).wait_async(what, f).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: Poll = Poll::new(Duration::from_millis(200)).every(Duration::from_millis(1));

    #[test]
    fn value_returns_the_first_some() {
        let mut n = 0;
        let got = SHORT.value(|| {
            n += 1;
            (n == 3).then_some(n * 10)
        });
        assert_eq!(got, Some(30));
    }

    #[test]
    fn a_check_that_never_holds_times_out_after_at_least_the_timeout() {
        let t0 = Instant::now();
        assert!(!SHORT.until(|| false));
        assert!(t0.elapsed() >= SHORT.timeout);
    }

    #[test]
    fn a_zero_timeout_still_checks_once() {
        assert!(Poll::new(Duration::ZERO).until(|| true));
    }

    #[test]
    #[should_panic(expected = "waiting for the answer; last: \"not yet 2\"")]
    fn retry_reports_the_last_error() {
        let mut n = 0;
        let _: () = Poll::new(Duration::ZERO).retry("the answer", || {
            n += 2;
            Err(format!("not yet {n}"))
        });
    }

    #[test]
    #[should_panic(expected = "timed out after 0ns waiting for nothing")]
    fn wait_panics_naming_what() {
        wait_for("nothing", Duration::ZERO, || false);
    }

    #[tokio::test]
    async fn async_polls_see_changes_made_between_checks() {
        let mut n = 0;
        let got = SHORT
            .value_async(|| {
                n += 1;
                let n = n;
                async move { (n == 4).then_some(n) }
            })
            .await;
        assert_eq!(got, Some(4));
        let mut m = 0;
        let v: u32 = SHORT
            .retry_async("m to reach 2", || {
                m += 1;
                let m = m;
                async move {
                    if m >= 2 {
                        Ok(m)
                    } else {
                        Err(m)
                    }
                }
            })
            .await;
        assert_eq!(v, 2);
        assert!(!SHORT.until_async(|| false).await);
    }
}
