//! Lock hand-off between instances without polling. Every release of a
//! session lock publishes an (empty) message on a channel named after the
//! lock key; a request waiting for that lock on another instance subscribes
//! to it and retries the moment the message comes, instead of sleeping
//! through a back-off. One subscriber connection per handler carries every
//! channel its waiting requests watch.
//!
//! The poll stays as the fallback, with a longer pause: a lock that expired
//! (its holder died) publishes nothing, phpredis releases without
//! publishing, and a notice sent before the subscription took effect is
//! lost — the waiter retries once right after subscribing for that reason.
//! Redis Cluster gets no notices: there `PUBLISH` goes to every node over
//! the cluster bus, a cost on every release that the poll does not have.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use redis::aio::PubSubSink;
use tokio::sync::Notify;

use super::connection::Node;

/// After the subscriber connection could not be opened, how long waiters
/// poll before anyone tries again (so a Redis that refuses pub/sub is not
/// asked on every wait).
const REOPEN_AFTER: Duration = Duration::from_secs(1);

/// The subscriber connection of one handler and who waits on which channel.
pub(super) struct ReleaseNotices {
    state: Arc<Mutex<State>>,
    /// Held while the subscriber connection is opened, so it is opened once.
    opening: tokio::sync::Mutex<()>,
    /// Bound on opening the connection and on one SUBSCRIBE.
    timeout: Duration,
}

#[derive(Default)]
struct State {
    /// The subscription side of the open connection; `None` when there is
    /// none (not yet, or it failed).
    sink: Option<PubSubSink>,
    /// When opening last failed.
    failed_at: Option<Instant>,
    /// Channel → the notice its waiters wait on, and how many they are.
    watched: HashMap<String, (Arc<Notify>, usize)>,
}

/// A waiting request's interest in one channel; unsubscribes when the last
/// watcher of the channel is dropped.
pub(super) struct Watch {
    state: Arc<Mutex<State>>,
    channel: String,
    notice: Arc<Notify>,
}

impl Watch {
    /// Completes when the lock was released since the watch began (or
    /// since the last notice was taken).
    pub(super) async fn released(&self) {
        self.notice.notified().await;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        let last = match state.watched.get_mut(&self.channel) {
            Some((_, watchers)) => {
                *watchers -= 1;
                *watchers == 0
            }
            None => false,
        };
        if !last {
            return;
        }
        state.watched.remove(&self.channel);
        if let Some(mut sink) = state.sink.clone() {
            let channel = std::mem::take(&mut self.channel);
            // Best effort: a channel left subscribed only costs a message
            // that nobody reads.
            tokio::spawn(async move {
                let _ = sink.unsubscribe(channel).await;
            });
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl ReleaseNotices {
    pub(super) fn new(timeout: Duration) -> Self {
        Self {
            state: Arc::new(Mutex::new(State::default())),
            opening: tokio::sync::Mutex::new(()),
            timeout,
        }
    }

    /// Watches `channel` (a lock key). `None` when notices cannot be had
    /// (the waiter polls): a cluster, or no subscriber connection.
    pub(super) async fn watch(&self, node: &Node, channel: &str) -> Option<Watch> {
        let mut sink = self.sink(node).await?;
        let (notice, first) = {
            let mut state = lock(&self.state);
            let (notice, watchers) = state
                .watched
                .entry(channel.to_string())
                .or_insert_with(|| (Arc::new(Notify::new()), 0));
            *watchers += 1;
            (notice.clone(), *watchers == 1)
        };
        let watch = Watch {
            state: self.state.clone(),
            channel: channel.to_string(),
            notice,
        };
        if first {
            let subscribed = tokio::time::timeout(self.timeout, sink.subscribe(channel)).await;
            if !matches!(subscribed, Ok(Ok(()))) {
                self.forget_connection();
                return None;
            }
        }
        Some(watch)
    }

    /// The open subscriber connection's sink, opening it if needed.
    async fn sink(&self, node: &Node) -> Option<PubSubSink> {
        {
            let state = lock(&self.state);
            if let Some(sink) = &state.sink {
                return Some(sink.clone());
            }
            if state
                .failed_at
                .is_some_and(|at| at.elapsed() < REOPEN_AFTER)
            {
                return None;
            }
        }
        let _opening = self.opening.lock().await;
        if let Some(sink) = &lock(&self.state).sink {
            return Some(sink.clone());
        }
        let opened = tokio::time::timeout(self.timeout, async {
            let client = match node {
                Node::Fixed(client) => client.clone(),
                Node::Sentinel(lookup) => lookup.primary().await.ok()?,
                Node::Cluster(_) => return None,
            };
            client.get_async_pubsub().await.ok()
        })
        .await;
        let Ok(Some(pubsub)) = opened else {
            if !matches!(node, Node::Cluster(_)) {
                tracing::debug!("no Redis connection for lock release notices; waiters poll");
                lock(&self.state).failed_at = Some(Instant::now());
            }
            return None;
        };
        let (sink, mut messages) = pubsub.split();
        lock(&self.state).sink = Some(sink.clone());
        let state = self.state.clone();
        tokio::spawn(async move {
            while let Some(message) = messages.next().await {
                let notice = lock(&state)
                    .watched
                    .get(message.get_channel_name())
                    .map(|(notice, _)| notice.clone());
                if let Some(notice) = notice {
                    notice.notify_one();
                }
            }
            // The connection is gone: waiters poll, the next one reopens,
            // and every current waiter retries now rather than wait for a
            // notice that cannot come.
            let mut state = lock(&state);
            state.sink = None;
            for (notice, _) in state.watched.values() {
                notice.notify_one();
            }
        });
        Some(sink)
    }

    fn forget_connection(&self) {
        let mut state = lock(&self.state);
        state.sink = None;
        state.failed_at = Some(Instant::now());
    }
}
