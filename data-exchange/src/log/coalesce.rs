//! Appends to one store grouped under load: while one append is in flight, those that arrive
//! wait together and go as one in the next, so a busy store takes one round trip for many
//! appends, and an idle one adds no wait.

use std::future::Future;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use tokio::sync::{mpsc, oneshot};

use crate::error::{ExchangeError, Result};

/// Appends queued for one store.
#[derive(Debug)]
pub(crate) struct Coalescer {
    sender: mpsc::UnboundedSender<Pending>,
}

#[derive(Debug)]
struct Pending {
    batch: RecordBatch,
    reply: oneshot::Sender<Result<u64>>,
}

/// At most this many appends go in one write.
const MAX_GROUP: usize = 256;

/// The error of a group's write, for each append of the group: a denial stays one.
fn for_each(error: &ExchangeError) -> ExchangeError {
    match error {
        ExchangeError::Denied(denial) => ExchangeError::Denied(denial.clone()),
        other => ExchangeError::Storage(other.to_string()),
    }
}

impl Coalescer {
    /// Starts the task that writes groups with `write` (which returns the first offset).
    pub(crate) fn spawn<F, Fut>(write: F) -> Self
    where
        F: Fn(RecordBatch) -> Fut + Send + 'static,
        Fut: Future<Output = Result<u64>> + Send,
    {
        let (sender, mut receiver) = mpsc::unbounded_channel::<Pending>();
        tokio::spawn(async move {
            let mut group = Vec::new();
            while receiver.recv_many(&mut group, MAX_GROUP).await > 0 {
                let batches: Vec<RecordBatch> = group.iter().map(|p| p.batch.clone()).collect();
                let written = match concat_batches(&batches[0].schema(), &batches) {
                    Ok(batch) => write(batch).await,
                    Err(e) => Err(e.into()),
                };
                let mut first = match written {
                    Ok(first) => first,
                    Err(e) => {
                        for pending in group.drain(..) {
                            let _ = pending.reply.send(Err(for_each(&e)));
                        }
                        continue;
                    }
                };
                for pending in group.drain(..) {
                    let rows = pending.batch.num_rows() as u64;
                    let _ = pending.reply.send(Ok(first));
                    first += rows;
                }
            }
        });
        Coalescer { sender }
    }

    /// Appends `batch` with whatever else is waiting; returns its first offset.
    pub(crate) async fn append(&self, batch: RecordBatch) -> Result<u64> {
        let (reply, answer) = oneshot::channel();
        let stopped = || ExchangeError::Storage("the appending task has stopped".into());
        self.sender.send(Pending { batch, reply }).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}
