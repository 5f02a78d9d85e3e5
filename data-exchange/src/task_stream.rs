//! A stream fed by a task it owns: the task reads ahead (e.g. keeps a blocking read
//! outstanding) and stops when the stream is dropped.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

/// Items a task sends, as a stream; dropping it aborts the task.
#[derive(Debug)]
pub(crate) struct TaskStream<T> {
    received: mpsc::Receiver<T>,
    task: AbortHandle,
}

impl<T: Send + 'static> TaskStream<T> {
    /// Spawns `feed` with the sending end of a channel of `capacity` items.
    pub(crate) fn spawn<F, Fut>(capacity: usize, feed: F) -> Self
    where
        F: FnOnce(mpsc::Sender<T>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (sender, received) = mpsc::channel(capacity);
        let task = tokio::spawn(feed(sender)).abort_handle();
        TaskStream { received, task }
    }
}

impl<T> Stream for TaskStream<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.received.poll_recv(cx)
    }
}

impl<T> Drop for TaskStream<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}
