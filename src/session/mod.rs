//! Sessions: the backend contract ([`SessionHandler`]), the factory that picks
//! a backend from the DSN, the file and Redis backends, ids, the data codec,
//! and the life cycle the runtime runs around every request.

mod codec;
mod cookie;
mod dsn;
mod error;
mod factory;
mod file_handler;
mod handle;
mod handler;
mod id;
mod layer;
mod local_locks;
mod metrics;
mod redis_handler;
mod rejected_ids;
mod store;
mod unreadable;
mod write_chain;

pub use codec::{JsonCodec, SessionCodec, SessionData};
pub use cookie::SessionCookie;
pub use dsn::{
    DsnError, RedisAddress, RedisDsn, RedisOptions, SessionBackend, SessionDsn, redact_dsn,
};
pub use error::SessionError;
pub use factory::{SessionHandlerFactory, SessionSetupError};
pub use file_handler::FileSessionHandler;
pub use handle::Session;
pub use handler::{HeldLock, SessionHandler, SessionLock, Stored};
pub use id::{IdFormatError, MIN_ID_ENTROPY_BITS, SessionId, SessionIdFormat};
pub use layer::{SessionLayer, SessionService};
pub use local_locks::LocalLocks;
pub use metrics::{LatencyHistogram, SessionMetrics, SessionTimings};
pub use redis_handler::{RedisSessionHandler, RedisSetupError};
pub use rejected_ids::RejectedIds;
pub use store::{LOCAL_LOCK_WAIT, SessionStore};
pub use unreadable::Unreadable;
