//! `nene sessions copy --from DSN --to DSN`: every live session of one
//! backend stored in another with its remaining lifetime, for a switch of
//! backend done ahead of time (or alongside `session.migrate_from`).
//!
//! Resumable by construction: a session the destination already has is
//! skipped, so a copy that stopped half-way (a crash, a Ctrl-C, a backend
//! that went away) is run again and only copies what is missing. That also
//! means a session the destination changed since is never overwritten with
//! the source's older data.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use crate::session::backend::{LiveSession, SessionAdmin, Stored};
use crate::session::error::SessionError;

/// Sessions copied at the same time: enough to hide a network round trip
/// per session, few enough not to crowd a backend that is serving traffic.
const COPIES_IN_FLIGHT: usize = 16;

/// What a copy did, so far or in all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopyProgress {
    /// Stored in the destination.
    pub copied: u64,
    /// Already in the destination: left as it is there.
    pub already_there: u64,
    /// Listed, but expired or destroyed before it was read.
    pub gone: u64,
    /// Over `session.max_size` (or not a plain value): not copied.
    pub unreadable: u64,
}

impl CopyProgress {
    /// Every session the listing reported.
    pub fn listed(&self) -> u64 {
        self.copied + self.already_there + self.gone + self.unreadable
    }
}

impl std::fmt::Display for CopyProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} copied, {} already there, {} gone meanwhile, {} unreadable",
            self.copied, self.already_there, self.gone, self.unreadable
        )
    }
}

/// A copy that stopped: the error and how far it got.
#[derive(Debug, thiserror::Error)]
#[error("{error} (after {progress}; run the copy again to resume: copied sessions are skipped)")]
pub struct CopyError {
    /// What failed.
    pub error: SessionError,
    /// What was done before it failed.
    pub progress: CopyProgress,
}

/// Copies every live session of `from` into `to`, calling `on_page` with
/// the totals after each page.
pub async fn copy_sessions(
    from: Arc<dyn SessionAdmin>,
    to: Arc<dyn SessionAdmin>,
    mut on_page: impl FnMut(&CopyProgress),
) -> Result<CopyProgress, CopyError> {
    let mut progress = CopyProgress::default();
    let mut cursor = None;
    loop {
        let page = from
            .list_sessions(cursor)
            .await
            .map_err(|error| CopyError { error, progress })?;
        let outcomes: Vec<Result<Outcome, SessionError>> =
            futures::stream::iter(page.sessions.into_iter().map(|live| {
                let (from, to) = (from.clone(), to.clone());
                async move { copy_one(from.as_ref(), to.as_ref(), live).await }
            }))
            .buffer_unordered(COPIES_IN_FLIGHT)
            .collect()
            .await;
        let mut failed = None;
        for outcome in outcomes {
            match outcome {
                Ok(Outcome::Copied) => progress.copied += 1,
                Ok(Outcome::AlreadyThere) => progress.already_there += 1,
                Ok(Outcome::Gone) => progress.gone += 1,
                Ok(Outcome::Unreadable) => progress.unreadable += 1,
                Err(error) => failed = failed.or(Some(error)),
            }
        }
        if let Some(error) = failed {
            return Err(CopyError { error, progress });
        }
        on_page(&progress);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(progress),
        }
    }
}

/// What became of one listed session.
enum Outcome {
    Copied,
    AlreadyThere,
    Gone,
    Unreadable,
}

async fn copy_one(
    from: &dyn SessionAdmin,
    to: &dyn SessionAdmin,
    live: LiveSession,
) -> Result<Outcome, SessionError> {
    if to.exists(&live.id).await? {
        return Ok(Outcome::AlreadyThere);
    }
    match from.read(&live.id).await? {
        Stored::Data(data) => {
            // At least a second: a store's smallest expiry.
            let lifetime = live.remaining.max(Duration::from_secs(1));
            to.store_copy(
                &LiveSession {
                    remaining: lifetime,
                    ..live
                },
                data,
            )
            .await?;
            Ok(Outcome::Copied)
        }
        Stored::Missing => Ok(Outcome::Gone),
        Stored::Unreadable(why) => {
            tracing::warn!("session #{} not copied: {why}", live.id.log_tag());
            Ok(Outcome::Unreadable)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use async_trait::async_trait;
    use bytes::Bytes;

    use crate::session::backend::{
        FileOptions, FileSessionHandler, LockedRead, SessionHandler, SessionPage,
    };
    use crate::session::id::{SessionId, SessionIdFormat};

    /// A files backend whose listing also reports one id it does not have,
    /// as a session destroyed between the listing and the read would be.
    struct ListsAGhost {
        files: Arc<FileSessionHandler>,
        ghost: SessionId,
    }

    #[async_trait]
    impl SessionHandler for ListsAGhost {
        fn name(&self) -> &'static str {
            "ghostly"
        }
        async fn lock_and_read(
            self: Arc<Self>,
            id: &SessionId,
            wait: std::time::Duration,
        ) -> LockedRead {
            self.files.clone().lock_and_read(id, wait).await
        }
        async fn read(&self, id: &SessionId) -> Result<Stored, SessionError> {
            self.files.read(id).await
        }
        async fn write(&self, id: &SessionId, data: Bytes) -> Result<(), SessionError> {
            self.files.write(id, data).await
        }
        async fn touch(&self, id: &SessionId) -> Result<(), SessionError> {
            self.files.touch(id).await
        }
        async fn destroy(&self, id: &SessionId) -> Result<(), SessionError> {
            self.files.destroy(id).await
        }
        async fn gc(&self) -> Result<u64, SessionError> {
            self.files.gc().await
        }
        async fn ping(&self) -> Result<(), SessionError> {
            self.files.ping().await
        }
        fn uses_locking(&self) -> bool {
            self.files.uses_locking()
        }
        fn lock_wait(&self) -> Duration {
            self.files.lock_wait()
        }
        fn lock_expiry(&self) -> Option<Duration> {
            self.files.lock_expiry()
        }
    }

    #[async_trait]
    impl SessionAdmin for ListsAGhost {
        async fn exists(&self, id: &SessionId) -> Result<bool, SessionError> {
            self.files.exists(id).await
        }
        async fn store_copy(&self, live: &LiveSession, data: Bytes) -> Result<(), SessionError> {
            self.files.store_copy(live, data).await
        }
        async fn list_sessions(&self, cursor: Option<String>) -> Result<SessionPage, SessionError> {
            let mut page = self.files.list_sessions(cursor).await?;
            page.sessions.push(LiveSession {
                id: self.ghost.clone(),
                remaining: Duration::from_secs(60),
            });
            Ok(page)
        }
    }

    #[tokio::test]
    async fn every_listed_session_is_counted_as_what_became_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let ttl = Duration::from_secs(600);
        let ids = SessionIdFormat::new(32, 5).unwrap();
        // The source loads at most 10 bytes: a longer session is unreadable.
        let from = FileSessionHandler::new(&dir.path().join("from"), ttl)
            .unwrap()
            .with_options(FileOptions {
                max_size: 10,
                ..FileOptions::default()
            });
        let to = Arc::new(FileSessionHandler::new(&dir.path().join("to"), ttl).unwrap());
        let (copied, there, large) = (ids.generate(), ids.generate(), ids.generate());
        for (store, id, data) in [
            (&from, &copied, "copy me"),
            (&from, &there, "old"),
            (&*to, &there, "newer"),
            (&from, &large, "far too long for it"),
        ] {
            store.write(id, Bytes::from(data)).await.unwrap();
        }
        let from = Arc::new(ListsAGhost {
            files: Arc::new(from),
            ghost: ids.generate(),
        });

        let mut pages = Vec::new();
        let progress = copy_sessions(from, to.clone(), |page| pages.push(*page))
            .await
            .unwrap();
        let expected = CopyProgress {
            copied: 1,
            already_there: 1,
            gone: 1,
            unreadable: 1,
        };
        assert_eq!(progress, expected);
        assert_eq!(progress.listed(), 4);
        assert_eq!(pages, vec![expected]);
        assert_eq!(
            progress.to_string(),
            "1 copied, 1 already there, 1 gone meanwhile, 1 unreadable"
        );
        assert_eq!(
            to.read(&copied).await.unwrap(),
            Stored::Data(Bytes::from_static(b"copy me"))
        );
        assert_eq!(
            to.read(&there).await.unwrap(),
            Stored::Data(Bytes::from_static(b"newer"))
        );
        assert_eq!(to.read(&large).await.unwrap(), Stored::Missing);
    }
}
