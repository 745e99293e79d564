//! Sessions: the backend contract ([`SessionHandler`]), the factory that picks
//! a backend from the DSN, the file and Redis backends, ids, the data codec,
//! and the life cycle the runtime runs around every request.

mod codec;
mod dsn;
mod error;
mod factory;
mod file_handler;
mod handler;
mod id;
mod redis_handler;

pub use codec::{JsonCodec, SessionCodec, SessionData};
pub use error::SessionError;
pub use handler::{HeldLock, SessionHandler, SessionLock, StoreOptions};
pub use id::{IdFormatError, MIN_ID_ENTROPY_BITS, SessionId, SessionIdFormat};
