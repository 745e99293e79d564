//! One complete request as its connection runs it: the responder's answer,
//! a panic in it caught, and what the request holds of the buffer budget.
//! A future of its own type, so the connection's set of running requests
//! holds it without a box, and abortable in place (FCGI_ABORT_REQUEST)
//! without an abort handle: the box and the handle were two heap
//! allocations per request (benches/README.md).

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures::FutureExt;
use futures::future::CatchUnwind;
use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::request::{CgiRequest, HeldBudget};
use super::responder::{CgiResponse, Responder};

/// How a running request ended.
pub(super) enum Outcome {
    Answered(CgiResponse),
    /// The handler panicked; `started` is its request's BEGIN_REQUEST, for
    /// the refusal's duration.
    Panicked {
        message: String,
        started: Instant,
    },
    Aborted,
}

pin_project! {
    /// A request being answered; yields its id and how it ended.
    pub(super) struct Running<F> {
        id: u16,
        started: Instant,
        #[pin]
        state: State<F>,
        // The request's share of the buffer budget: given back as soon as
        // the answer is there, or the request is aborted.
        held: Option<HeldBudget>,
        // The task's waker from the last poll, to wake it when the request
        // is aborted (the future it was waiting on is gone by then).
        waker: Option<Waker>,
    }
}

pin_project! {
    #[project = StateProjection]
    enum State<F> {
        Answering { #[pin] answer: CatchUnwind<AssertUnwindSafe<F>> },
        /// `respond` itself panicked, before there was a future.
        PanickedAtCall { message: String },
        Aborted,
        Done,
    }
}

impl<F: Future<Output = CgiResponse>> Running<F> {
    /// Calls `responder` for `request`: a panic in the call is caught as
    /// one in the future is.
    pub(super) fn start<R>(
        responder: &R,
        id: u16,
        request: CgiRequest,
        started: Instant,
        held: HeldBudget,
    ) -> Self
    where
        R: Responder<Future = F>,
    {
        let state = match catch_unwind(AssertUnwindSafe(|| responder.respond(request))) {
            Ok(answer) => State::Answering {
                answer: AssertUnwindSafe(answer).catch_unwind(),
            },
            Err(panic) => State::PanickedAtCall {
                message: panic_message(panic.as_ref()),
            },
        };
        Running {
            id,
            started,
            state,
            held: Some(held),
            waker: None,
        }
    }

    /// The request's FastCGI id.
    pub(super) fn id(&self) -> u16 {
        self.id
    }

    /// Stops the answer where it is (its future is dropped now: a session
    /// lock it held is released) and ends as [`Outcome::Aborted`].
    pub(super) fn abort(self: Pin<&mut Self>) {
        let mut this = self.project();
        if let StateProjection::Answering { .. } = this.state.as_mut().project() {
            this.state.set(State::Aborted);
            *this.held = None;
            if let Some(waker) = this.waker.take() {
                waker.wake();
            }
        }
    }
}

impl<F: Future<Output = CgiResponse>> Future for Running<F> {
    type Output = (u16, Outcome);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let outcome = match this.state.as_mut().project() {
            StateProjection::Answering { answer } => match answer.poll(cx) {
                Poll::Ready(Ok(response)) => Outcome::Answered(response),
                Poll::Ready(Err(panic)) => Outcome::Panicked {
                    message: panic_message(panic.as_ref()),
                    started: *this.started,
                },
                Poll::Pending => {
                    if !this.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        *this.waker = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
            },
            StateProjection::PanickedAtCall { message } => Outcome::Panicked {
                message: std::mem::take(message),
                started: *this.started,
            },
            StateProjection::Aborted => Outcome::Aborted,
            StateProjection::Done => panic!("a finished request polled again"),
        };
        this.state.set(State::Done);
        *this.held = None;
        Poll::Ready((*this.id, outcome))
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = panic.downcast_ref::<&str>() {
        (*message).to_string()
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else {
        "non-string panic payload".to_string()
    }
}
