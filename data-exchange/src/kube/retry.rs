//! Retrying what the apiserver did not take, or could not answer. A read is retried after any
//! failure on the way and after `429 Too Many Requests`, `503` and `504`, for about 40 s, each
//! time after as long as the apiserver asks (`retryAfterSeconds`) or else after a backoff.
//!
//! A write is retried as it is only when it provably was not made: no connection to the
//! apiserver was opened, or the apiserver turned it away with 429 before handling it. After any
//! other such failure the write may have been made, so the object is read back first: every
//! write carries an id of its own in the annotation `knactor.dev/write-id`, and finding that id
//! there means the write was made. (The read-back cannot see a write that another writer has
//! overwritten already: that write is then reported as the conflict its retry meets.)

use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kube::api::DynamicObject;

use crate::backoff::Backoff;

/// The annotation holding the id of the write that gave a resource its current state.
pub(super) const WRITE_ID_ANNOTATION: &str = "knactor.dev/write-id";
/// How long a request is retried (longer than an apiserver takes to restart).
const RETRY_FOR: Duration = Duration::from_secs(40);
/// The waits between attempts when the apiserver does not say how long to wait.
pub(super) const RETRY_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(50), Duration::from_secs(2));

/// What a failed request leaves known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// It was not made: it never reached the apiserver, or the apiserver turned it away before
    /// handling it (429). Retry it.
    NotMade,
    /// It may have been made: the connection broke after it was sent, or the apiserver could
    /// not finish it (503, 504). Retry a read; read a write's object back first.
    Unknown,
    /// The apiserver answered it: asking again would change nothing.
    Answered,
}

fn failure(e: &kube::Error) -> Failure {
    match e {
        kube::Error::Api(status) => match status.code {
            429 => Failure::NotMade,
            503 | 504 => Failure::Unknown,
            _ => Failure::Answered,
        },
        e if never_connected(e) => Failure::NotMade,
        kube::Error::HyperError(_) | kube::Error::Service(_) => Failure::Unknown,
        _ => Failure::Answered,
    }
}

/// Whether the request failed because no connection to the apiserver could be opened, so it
/// was never sent.
fn never_connected(e: &kube::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = source {
        if error.downcast_ref::<hyper_util::client::legacy::Error>().is_some_and(|e| e.is_connect())
        {
            return true;
        }
        source = error.source();
    }
    false
}

/// Whether a request that failed with `e` may succeed if made again later.
pub(super) fn is_transient(e: &kube::Error) -> bool {
    failure(e) != Failure::Answered
}

/// The retries of one request: a backoff, and a deadline.
struct Retries {
    backoff: Backoff,
    deadline: Instant,
}

impl Retries {
    fn new() -> Self {
        Retries { backoff: RETRY_BACKOFF, deadline: Instant::now() + RETRY_FOR }
    }

    /// Waits before the next attempt after `e`, as long as the apiserver asked or else as the
    /// backoff says; `false` when the time for retries is over.
    async fn wait(&mut self, e: &kube::Error) -> bool {
        let now = Instant::now();
        if now >= self.deadline {
            return false;
        }
        let delay = retry_after(e).unwrap_or_else(|| self.backoff.next_delay());
        tracing::debug!(error = %e, ?delay, "apiserver request failed; retrying");
        tokio::time::sleep(delay.min(self.deadline - now)).await;
        true
    }
}

/// How long the apiserver asked to wait before asking again, when it did.
fn retry_after(e: &kube::Error) -> Option<Duration> {
    let kube::Error::Api(status) = e else { return None };
    let seconds = status.details.as_ref()?.retry_after_seconds;
    (seconds > 0).then(|| Duration::from_secs(seconds.into()))
}

/// Makes a read until the apiserver answers it.
pub(super) async fn read<T, F, Fut>(mut request: F) -> kube::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = kube::Result<T>>,
{
    let mut retries = Retries::new();
    loop {
        match request().await {
            Err(e) if is_transient(&e) && retries.wait(&e).await => {}
            result => return result,
        }
    }
}

/// Makes a write until the apiserver answers it. When an attempt may have been made, the
/// failures after it are checked with `made`, which reads the object back once: `Some` is what
/// the write made, found there. A read-back that fails on the way too leaves it unknown: the
/// write is tried again (it is conditional, so it cannot be made twice), all within the
/// write's one deadline.
pub(super) async fn write<T, W, WF, M, MF>(mut write: W, mut made: M) -> kube::Result<T>
where
    W: FnMut() -> WF,
    WF: Future<Output = kube::Result<T>>,
    M: FnMut() -> MF,
    MF: Future<Output = kube::Result<Option<T>>>,
{
    let mut retries = Retries::new();
    let mut maybe_made = false;
    loop {
        let e = match write().await {
            Ok(written) => return Ok(written),
            Err(e) => e,
        };
        let failure = failure(&e);
        maybe_made |= failure == Failure::Unknown;
        // A conflict after an attempt that may have been made may be that attempt's doing.
        let mut still_unknown = false;
        if maybe_made && failure != Failure::NotMade {
            match made().await {
                Ok(Some(written)) => return Ok(written),
                Ok(None) => {}
                Err(read) if is_transient(&read) => still_unknown = true,
                Err(read) => return Err(read),
            }
        }
        if (failure == Failure::Answered && !still_unknown) || !retries.wait(&e).await {
            return Err(e);
        }
    }
}

/// A new write id: unique across processes (a random seed) and within one (a counter).
pub(super) fn write_id() -> String {
    static SEED: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let seed = SEED.get_or_init(|| RandomState::new().hash_one(std::process::id()));
    format!("{seed:016x}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Whether `resource` holds the state the write `id` made.
pub(super) fn made_by(resource: &DynamicObject, id: &str) -> bool {
    let annotations = resource.metadata.annotations.as_ref();
    annotations.and_then(|a| a.get(WRITE_ID_ANNOTATION)).is_some_and(|w| w == id)
}
