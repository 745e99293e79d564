//! The per-request half of sessions: the [`Session`] handle a handler takes
//! (or its read-only view, [`ReadOnlySession`]),
//! the [`SessionLayer`] that offers it and commits it after the handler, and
//! what they share, built once at start-up ([`SessionRuntime`]).

mod committing;
mod cookie;
mod layer;
mod local_locks;
mod metrics;
mod read_only;
mod rejected_ids;
mod runtime;
mod session;
mod write_chain;

pub use committing::SessionFuture;
pub use cookie::SessionCookie;
pub use layer::{SessionLayer, SessionService};
pub use local_locks::LocalLocks;
pub use metrics::{SessionMetrics, SessionTimings};
pub use read_only::ReadOnlySession;
pub use rejected_ids::RejectedIds;
pub use runtime::SessionRuntime;
pub use session::Session;
