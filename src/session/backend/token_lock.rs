//! What the Redis and memcached locks share: a lock is a key holding a
//! random token only its holder knows, released by compare-and-delete. A
//! release that fails (the server is away) is retried in the background
//! until it gets through or the lock has expired by itself, so a session is
//! not left locked for the rest of its `lock_ttl` after a short outage (a
//! server restarting with persistence brings the lock back).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::session::backend::DEFAULT_LOCK_WAIT;
use crate::session::backend::lock::Release;
use crate::session::error::SessionError;

/// Pauses between attempts at releasing a lock whose release failed: the
/// first soon (a blip), then no more often than every two seconds.
const RELEASE_RETRY_FIRST: Duration = Duration::from_millis(100);
const RELEASE_RETRY_MAX: Duration = Duration::from_secs(2);

/// How a token lock behaves (`lock_ttl`, `lock_wait`); a backend keeps
/// `None` where its DSN says `lock=off`.
#[derive(Clone, Copy, Debug)]
pub(super) struct LockSettings {
    /// The lock key's expiry, so a holder that died does not block the
    /// session for ever.
    pub(super) ttl: Duration,
    /// How long a request waits for a lock before it gives up.
    pub(super) wait: Duration,
}

impl LockSettings {
    /// `SessionHandler::lock_wait` of a backend with `settings`: theirs,
    /// or the default with locking off.
    pub(super) fn wait_of(settings: Option<Self>) -> Duration {
        settings.map_or(DEFAULT_LOCK_WAIT, |settings| settings.wait)
    }
}

/// A lock held under a token, as its backend releases it.
#[async_trait]
pub(super) trait TokenLock: Send + Sync + Sized + 'static {
    /// Deletes the lock if it still holds this holder's token; one try.
    async fn release_once(&self) -> Result<(), SessionError>;

    /// When the server expires the lock at the latest.
    fn expires_at(&self) -> Instant;
}

/// Every token lock releases the same way: once, and when that fails,
/// retried in the background (the failure is still reported).
#[async_trait]
impl<L: TokenLock> Release for L {
    async fn release(self: Arc<Self>) -> Result<(), SessionError> {
        let released = self.release_once().await;
        if released.is_err() {
            tokio::spawn(keep_trying(self));
        }
        released
    }
}

async fn keep_trying<L: TokenLock>(lock: Arc<L>) {
    let mut pause = RELEASE_RETRY_FIRST;
    loop {
        tokio::time::sleep(pause).await;
        if Instant::now() >= lock.expires_at() || lock.release_once().await.is_ok() {
            return;
        }
        pause = (pause * 2).min(RELEASE_RETRY_MAX);
    }
}

/// 128 bits from the operating system's CSPRNG, as 32 hex digits: a
/// lock's value.
pub(super) fn new_token() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
