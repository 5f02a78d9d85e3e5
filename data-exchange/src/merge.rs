//! Read, merge, write conditionally: the optimistic-concurrency loop behind every merge into
//! an object whose current state must be known first.

use std::sync::Arc;

use serde_json::Value;

use crate::error::{ExchangeError, Result};
use crate::object::{Expect, Object};

/// What is known of the object before the first attempt.
#[derive(Clone, Debug)]
pub enum Known {
    /// Nothing: read it.
    Nothing,
    /// Its state as last seen, perhaps out of date: a merge that changes nothing over it is
    /// checked against a fresh read before it is believed.
    Cached(Arc<Object>),
    /// It is taken to be absent: a create that finds it present reads it.
    Absent,
}

/// What [`merge_write`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum Merged {
    /// The merge changed the object's data: the state written.
    Written(Arc<Object>),
    /// The merge changed nothing, so nothing was written: the object as it is.
    Unchanged(Arc<Object>),
}

/// Merges into an object and writes the result conditionally on the version merged over (or
/// on its absence): a conflict, or a create that finds the object present, means someone wrote
/// in between, so it reads and merges again, until `conflicts` of them, the last of which is
/// then the error. `read` gets the current state, `merge` gives the new data from it (or
/// refuses), `write` stores it under the precondition.
pub async fn merge_write<R, M, W, RF, WF>(
    known: Known,
    conflicts: usize,
    mut read: R,
    mut merge: M,
    mut write: W,
) -> Result<Merged>
where
    R: FnMut() -> RF,
    RF: Future<Output = Result<Option<Arc<Object>>>>,
    M: FnMut(Option<&Object>) -> Result<Value>,
    W: FnMut(Value, Expect) -> WF,
    WF: Future<Output = Result<Arc<Object>>>,
{
    let mut known = known;
    let mut conflicted = 0;
    loop {
        let (current, confirmed) = match std::mem::replace(&mut known, Known::Nothing) {
            Known::Nothing => (read().await?, true),
            Known::Cached(object) => (Some(object), false),
            Known::Absent => (None, true),
        };
        let merged = merge(current.as_deref())?;
        if let Some(object) = current.as_ref().filter(|o| o.data == merged) {
            if confirmed {
                return Ok(Merged::Unchanged(object.clone()));
            }
            continue; // Unchanged as far as the cache knows: read to make sure.
        }
        let expect = current.as_ref().map_or(Expect::Absent, |o| Expect::Version(o.version));
        match write(merged, expect).await {
            Ok(written) => return Ok(Merged::Written(written)),
            Err(e @ (ExchangeError::Conflict { .. } | ExchangeError::AlreadyExists { .. })) => {
                conflicted += 1;
                if conflicted >= conflicts {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
}
