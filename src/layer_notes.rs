//! What the layers inside the operations layer tell it about a request: the
//! route the dispatcher picked (`/{controller}/{action}`, the label of the
//! request-duration histogram) and the request's session (whose timings the
//! slow log splits the request's time by).
//!
//! A note on the calling thread, not a response extension or a shared
//! allocation: the session layer makes the session, and the dispatcher
//! picks the action, inside the call (or a poll) the operations layer makes
//! into the application on that same thread, and the operations layer takes
//! the notes right after. An extension would give every response a map of
//! its own (two heap allocations per request) and a shared slot one more
//! (benches/README.md counts them). A request whose application is not a
//! [`Dispatcher`](crate::Dispatcher) (an axum `Router`), a path no action
//! matches, or an answer of the operations layer itself (ping, status page)
//! leaves no route.

use std::cell::RefCell;
use std::sync::Arc;

use crate::session::Session;

/// What was noted since the last [`take`].
#[derive(Default)]
pub(crate) struct Notes {
    /// The dispatcher's route.
    pub(crate) route: Option<Arc<str>>,
    /// The session layer's session (a clone: the same session).
    pub(crate) session: Option<Session>,
}

thread_local! {
    static NOTES: RefCell<Notes> = RefCell::default();
}

/// Called by the dispatcher: `route` is the request's route.
pub(crate) fn note_route(route: &Arc<str>) {
    NOTES.with_borrow_mut(|notes| notes.route = Some(route.clone()));
}

/// Called by the session layer: `session` is the request's session.
pub(crate) fn note_session(session: &Session) {
    NOTES.with_borrow_mut(|notes| notes.session = Some(session.clone()));
}

/// Called by the operations layer around a call or poll into the
/// application: what was noted since the last take (and nothing is left
/// for the next request on this thread).
pub(crate) fn take() -> Notes {
    NOTES.with_borrow_mut(std::mem::take)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_is_taken_once_and_stays_on_its_thread() {
        assert_eq!(take().route, None);
        note_route(&Arc::from("/todo/index"));
        let elsewhere = std::thread::spawn(|| take().route).join().unwrap();
        assert_eq!(elsewhere, None);
        assert_eq!(take().route.as_deref(), Some("/todo/index"));
        assert_eq!(take().route, None);
    }
}
