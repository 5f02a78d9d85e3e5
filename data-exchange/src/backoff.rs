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

#[cfg(test)]
mod tests {
    use super::*;

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
