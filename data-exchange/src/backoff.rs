//! Exponential backoff: the waits of every retry loop in the workspace.

use std::time::Duration;

/// Delays that double from a base up to a maximum: how long to wait before each retry of
/// something that keeps failing. [`reset`](Backoff::reset) it after a success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Waits `base` first, then twice as long each time, never longer than `max`.
    pub const fn new(base: Duration, max: Duration) -> Self {
        Backoff { base, max, next: base }
    }

    /// The delay after `failures` failures in a row (1: the first), for callers that count
    /// failures themselves.
    pub fn after(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.base.saturating_mul(1 << doublings).min(self.max)
    }

    /// The delay to wait now; the next one is twice as long, up to the maximum.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }

    /// Sleeps for the [next delay](Backoff::next_delay).
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }

    /// Starts again from the first delay.
    pub fn reset(&mut self) {
        self.next = self.base;
    }
}

/// Which failures of a retry loop to warn about: the first in a row, then one in every
/// [`WARN_EVERY`], so that a loop retrying every second while a server is down warns a couple
/// of times a minute rather than every time.
#[derive(Debug, Default)]
pub struct Warnings {
    failures: std::sync::atomic::AtomicU32,
}

/// One failure in this many, after the first, is warned about.
pub const WARN_EVERY: u32 = 30;

impl Warnings {
    /// Counts a failure: `Some(failures in a row)` when it is one to warn about.
    pub fn failed(&self) -> Option<u32> {
        let failures = self.failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        (failures == 1 || failures.is_multiple_of(WARN_EVERY)).then_some(failures)
    }

    /// Counts a success: `Some(failures before it)` when it ends a run of failures.
    pub fn succeeded(&self) -> Option<u32> {
        let failures = self.failures.swap(0, std::sync::atomic::Ordering::Relaxed);
        (failures > 0).then_some(failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_in_a_row_is_warned_then_one_in_thirty() {
        let warnings = Warnings::default();
        let warned: Vec<u32> = (0..90).filter_map(|_| warnings.failed()).collect();
        assert_eq!(warned, [1, 30, 60, 90]);
        assert_eq!(warnings.succeeded(), Some(90));
        assert_eq!(warnings.succeeded(), None);
        assert_eq!(warnings.failed(), Some(1), "a new run of failures is warned at once");
    }

    #[test]
    fn delays_double_up_to_the_maximum_and_reset() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(10), ms(50));
        let delays: Vec<_> = (0..5).map(|_| backoff.next_delay()).collect();
        assert_eq!(delays, [ms(10), ms(20), ms(40), ms(50), ms(50)]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), ms(10));
        assert_eq!(
            [1, 2, 3, 4, 100].map(|n| backoff.after(n)),
            [ms(10), ms(20), ms(40), ms(50), ms(50)]
        );
        assert_eq!(Backoff::new(ms(10), Duration::MAX).after(u32::MAX), ms(10) * (1 << 31));
    }
}
