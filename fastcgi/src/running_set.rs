//! The requests one connection is answering, in slots kept for the
//! connection's life: a slot an answered request leaves takes the next
//! one, so starting a request allocates nothing here. (A
//! `FuturesUnordered` allocates a node per request: one of the heap
//! allocations a request cost, benches/README.md.) When the connection's
//! task wakes, every running request is polled: a connection runs a few
//! at most (`max_requests_per_connection`, 8 by default; nginx sends one
//! at a time), where a scan costs less than a waker of its own for each.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Running requests; polled through [`RunningSet::next`].
pub(super) struct RunningSet<F> {
    /// Each slot is pinned in its box for the connection's life; `None`
    /// when free.
    slots: Vec<Pin<Box<Option<F>>>>,
    /// Slots that hold a request.
    len: usize,
    /// Where the next scan starts: after the slot that answered last, so
    /// one busy request cannot keep the others from being polled first.
    next: usize,
}

impl<F> RunningSet<F> {
    pub(super) fn new() -> Self {
        Self {
            slots: Vec::new(),
            len: 0,
            next: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Starts running `future` in a free slot (a new one only when all are
    /// taken).
    pub(super) fn push(&mut self, future: F) {
        match self.slots.iter_mut().find(|slot| slot.is_none()) {
            Some(slot) => slot.as_mut().set(Some(future)),
            None => self.slots.push(Box::pin(Some(future))),
        }
        self.len += 1;
    }

    /// The running requests.
    pub(super) fn iter(&self) -> impl Iterator<Item = &F> {
        self.slots
            .iter()
            .filter_map(|slot| slot.as_ref().get_ref().as_ref())
    }

    /// The running requests, to act on in place (an abort).
    pub(super) fn iter_pin_mut(&mut self) -> impl Iterator<Item = Pin<&mut F>> {
        self.slots
            .iter_mut()
            .filter_map(|slot| slot.as_mut().as_pin_mut())
    }
}

impl<F: Future> RunningSet<F> {
    /// The output of the next request to finish; `None` when none runs.
    pub(super) async fn next(&mut self) -> Option<F::Output> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        if self.len == 0 {
            return Poll::Ready(None);
        }
        let count = self.slots.len();
        for offset in 0..count {
            let index = (self.next + offset) % count;
            let slot = &mut self.slots[index];
            let Some(future) = slot.as_mut().as_pin_mut() else {
                continue;
            };
            if let Poll::Ready(output) = future.poll(cx) {
                // Dropped in place; the slot waits for the next request.
                slot.as_mut().set(None);
                self.len -= 1;
                self.next = index + 1;
                if self.len == 0 {
                    // An idle connection keeps one slot, not the most it
                    // ever ran at once.
                    self.slots.truncate(1);
                }
                return Poll::Ready(Some(output));
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::sync::oneshot;

    #[tokio::test]
    async fn requests_finish_in_any_order_and_slots_are_reused() {
        let mut set = RunningSet::new();
        let (first_done, first) = oneshot::channel::<u32>();
        let (second_done, second) = oneshot::channel::<u32>();
        set.push(
            Box::pin(async move { first.await.unwrap() }) as Pin<Box<dyn Future<Output = u32>>>
        );
        set.push(Box::pin(async move { second.await.unwrap() }));
        assert_eq!((set.len(), set.slots.len()), (2, 2));
        second_done.send(2).unwrap();
        assert_eq!(set.next().await, Some(2));
        assert_eq!(set.len(), 1);
        // The freed slot takes the next request: no new slot.
        let (third_done, third) = oneshot::channel::<u32>();
        set.push(Box::pin(async move { third.await.unwrap() }));
        assert_eq!((set.len(), set.slots.len()), (2, 2));
        first_done.send(1).unwrap();
        third_done.send(3).unwrap();
        let mut rest = vec![set.next().await, set.next().await];
        rest.sort();
        assert_eq!(rest, [Some(1), Some(3)]);
        assert!(set.is_empty());
        assert_eq!(set.slots.len(), 1, "idle, one slot is kept");
        assert_eq!(set.next().await, None);
    }

    #[tokio::test]
    async fn the_scan_starts_after_the_slot_that_answered_last() {
        let mut set = RunningSet::new();
        set.push(std::future::ready(10));
        set.push(std::future::ready(20));
        assert_eq!(set.next().await, Some(10));
        // The next request takes the first slot, which answers at once too;
        // the one in the second slot still goes first.
        set.push(std::future::ready(11));
        assert_eq!(set.next().await, Some(20));
        assert_eq!(set.next().await, Some(11));
    }
}
