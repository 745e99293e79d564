//! The route a request was dispatched to (`/{controller}/{action}`), told
//! by the dispatcher to the operations layer around it, which labels the
//! request-duration histogram with it.
//!
//! A note on the calling thread, not a response extension: the dispatcher
//! picks the action inside the call (or a poll) the operations layer makes
//! into the application on that same thread, and the operations layer takes
//! the note right after; an extension would give every response a map of
//! its own, two heap allocations per request (benches/README.md counts
//! them). A request whose application is not a [`Dispatcher`](crate::Dispatcher)
//! (an axum `Router`), a path no action matches, or an answer of the
//! operations layer itself (ping, status page) leaves no note: no route.

use std::cell::RefCell;
use std::sync::Arc;

thread_local! {
    static NOTE: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
}

/// Called by the dispatcher: `route` is the request's route.
pub(crate) fn note(route: &Arc<str>) {
    NOTE.with_borrow_mut(|note| *note = Some(route.clone()));
}

/// Called by the operations layer around a call or poll into the
/// application: the route noted since the last take, if any (and none is
/// left for the next request on this thread).
pub(crate) fn take() -> Option<Arc<str>> {
    NOTE.with_borrow_mut(Option::take)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_is_taken_once_and_stays_on_its_thread() {
        assert_eq!(take(), None);
        note(&Arc::from("/todo/index"));
        let elsewhere = std::thread::spawn(take).join().unwrap();
        assert_eq!(elsewhere, None);
        assert_eq!(take().as_deref(), Some("/todo/index"));
        assert_eq!(take(), None);
    }
}
