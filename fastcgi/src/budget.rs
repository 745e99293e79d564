//! The process-wide budget for bytes held in memory on behalf of requests:
//! their params and the bodies small enough to stay in memory (larger ones
//! go to a file, see `body.rs`). Every connection draws from the same budget,
//! so what requests hold at once is bounded by one number
//! (`server.max_buffered_bytes`), however many connections or multiplexed
//! requests there are.
//!
//! The budget is a `tokio` semaphore counting bytes: a request holds a
//! [`BudgetShare`] that grows record by record and gives its bytes back when
//! it is dropped — answered, rejected, aborted, timed out or panicked alike.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The shared budget. Cloned into every connection.
#[derive(Clone, Debug)]
pub struct BufferBudget {
    /// One permit per byte that may still be held.
    bytes: Arc<Semaphore>,
    /// The total, for the status page and messages.
    total: usize,
    /// Requests refused because the budget was spent, for the status page.
    refused: Arc<AtomicU64>,
}

impl BufferBudget {
    /// A budget of `total` bytes.
    pub fn new(total: usize) -> Self {
        Self {
            bytes: Arc::new(Semaphore::new(total.min(Semaphore::MAX_PERMITS))),
            total,
            refused: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The bytes the budget was created with.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The bytes not held by any request right now.
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }

    /// Times a request could not get the bytes it needed.
    pub fn refusals(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// An empty share, grown with [`BudgetShare::grow`].
    pub fn share(&self) -> BudgetShare {
        BudgetShare {
            budget: self.bytes.clone(),
            refused: self.refused.clone(),
            held: None,
        }
    }
}

/// The bytes one request holds; given back when dropped.
#[derive(Debug)]
pub struct BudgetShare {
    budget: Arc<Semaphore>,
    refused: Arc<AtomicU64>,
    held: Option<OwnedSemaphorePermit>,
}

impl BudgetShare {
    /// Takes `bytes` more from the budget, at once or not at all. `false`
    /// when the budget does not have them: the caller refuses the request
    /// rather than holding bytes nobody accounted for.
    pub fn grow(&mut self, bytes: usize) -> bool {
        if bytes == 0 {
            return true;
        }
        let permit = u32::try_from(bytes)
            .ok()
            .and_then(|bytes| self.budget.clone().try_acquire_many_owned(bytes).ok());
        let Some(permit) = permit else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        match &mut self.held {
            Some(held) => held.merge(permit),
            None => self.held = Some(permit),
        }
        true
    }

    /// Gives back everything held (the bytes were freed or moved to disk).
    pub fn release(&mut self) {
        self.held = None;
    }

    /// Moves what this share holds into a new share, leaving this one
    /// empty.
    pub fn take(&mut self) -> BudgetShare {
        BudgetShare {
            budget: self.budget.clone(),
            refused: self.refused.clone(),
            held: self.held.take(),
        }
    }

    /// The bytes held.
    pub fn held(&self) -> usize {
        self.held.as_ref().map_or(0, |permit| permit.num_permits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_take_from_one_total_and_give_back_when_dropped() {
        let budget = BufferBudget::new(100);
        let mut first = budget.share();
        let mut second = budget.share();
        assert!(first.grow(60));
        assert!(!second.grow(41), "only 40 bytes are left");
        assert_eq!(budget.refusals(), 1);
        assert!(second.grow(40));
        assert_eq!(budget.available(), 0);
        drop(first);
        assert_eq!(budget.available(), 60);
        second.release();
        assert_eq!(second.held(), 0);
        assert_eq!(budget.available(), 100);
    }
}
