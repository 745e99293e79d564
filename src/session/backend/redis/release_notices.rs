//! Lock hand-off between instances without polling. Every release of a
//! session lock publishes a message on a channel named after the lock key;
//! a request waiting for that lock on another instance subscribes to it and
//! retries the moment the message comes, instead of sleeping through a
//! back-off. A waiter that registered with Redis (scripts.rs) may instead be
//! handed the lock by the release itself: the message then names it, and
//! its next try takes the lock (and reads the session) without competing
//! for it. One subscriber connection per handler carries every channel its
//! waiting requests watch.
//!
//! Any client allowed to subscribe can read every channel (on Redis 6's
//! defaults, every client), so nothing on them is a secret: a channel is
//! named `{prefix}released:` and the SHA-1 of the lock key (which holds the
//! session id), a waiter by the SHA-1 of its lock token, and no session
//! data is sent (docs/decisions/0016).
//!
//! A channel stays subscribed for a while after its last waiter is served
//! ([`KEEP_SUBSCRIBED`]): a session two instances share is contended again
//! within milliseconds, and re-subscribing on every turn cost a SUBSCRIBE,
//! an UNSUBSCRIBE and an extra try of the lock per hand-off. A waiter on a
//! channel already subscribed arms its notice before it tries the lock, so
//! a release between the try and the wait is heard without another try.
//!
//! The poll stays as the fallback, with a longer pause: a lock that expired
//! (its holder died) publishes nothing, phpredis releases without
//! publishing, and a notice sent before the subscription took effect is
//! lost — the waiter retries once right after subscribing for that reason.
//! Redis Cluster gets no notices: there `PUBLISH` goes to every node over
//! the cluster bus, a cost on every release that the poll does not have.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use redis::aio::PubSubSink;
use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;

use super::connection::Node;

/// After the subscriber connection could not be opened, how long waiters
/// poll before anyone tries again (so a Redis that refuses pub/sub is not
/// asked on every wait).
const REOPEN_AFTER: Duration = Duration::from_secs(1);

/// How long a channel stays subscribed after its last waiter left. Two
/// instances sharing a hot session hand its lock back and forth every
/// millisecond or so; a session contended once a minute is not worth a
/// subscription (each costs a few dozen bytes here and in Redis).
const KEEP_SUBSCRIBED: Duration = Duration::from_secs(10);

/// How often idle channels are looked for (the sweep walks every channel).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The largest message the subscriber connection reads: a notice is at
/// most a 40-digit hash, and a channel name about as long.
const MAX_NOTICE_BYTES: u64 = 64 * 1024;

/// The channel the releases of `lock_key` are published on: `prefix`, then
/// the lock key's SHA-1 in hex, as `RELEASE_SCRIPT` names it with
/// `redis.sha1hex`.
pub(super) fn channel_of(prefix: &str, lock_key: &str) -> String {
    format!("{prefix}{}", sha1_hex(lock_key))
}

/// How a hand-off message names the waiter with `token`.
fn waiter_tag(token: &str) -> String {
    sha1_hex(token)
}

fn sha1_hex(text: &str) -> String {
    sha1_smol::Sha1::from(text).digest().to_string()
}

/// The subscriber connection of one handler and who waits on which channel.
pub(super) struct ReleaseNotices {
    state: Arc<Mutex<State>>,
    /// Held while the subscriber connection is opened, so it is opened once.
    opening: tokio::sync::Mutex<()>,
    /// Bound on opening the connection and on one SUBSCRIBE.
    timeout: Duration,
}

struct State {
    /// The subscription side of the open connection; `None` when there is
    /// none (not yet, or it failed).
    sink: Option<PubSubSink>,
    /// When opening last failed.
    failed_at: Option<Instant>,
    /// The channels subscribed (or being subscribed) on the open connection.
    watched: HashMap<String, Channel>,
    /// When idle channels were last unsubscribed.
    swept_at: Instant,
}

impl Default for State {
    fn default() -> Self {
        Self {
            sink: None,
            failed_at: None,
            watched: HashMap::new(),
            swept_at: Instant::now(),
        }
    }
}

/// One subscribed channel: the notice its waiters wait on.
struct Channel {
    notice: Arc<Notify>,
    /// Requests watching it now.
    watchers: usize,
    /// The SUBSCRIBE was answered: a release from now on is heard.
    subscribed: bool,
    /// Since when nobody watches it (unsubscribed after [`KEEP_SUBSCRIBED`]).
    idle_since: Option<Instant>,
    /// The tags ([`waiter_tag`]) of this instance's waiters: a hand-off to
    /// one of them wakes this channel's waiters, one to another instance's
    /// waiter does not (the lock is no freer for anyone here).
    waiters: HashSet<String>,
}

/// Whether a release's message (scripts.rs, `RELEASE_SCRIPT`) is news for
/// the waiters of this instance (`waiters`, their tags): a plain release
/// (empty) is, a hand-off is when it names one of them. Anything else
/// reads as a plain release.
fn wakes_waiters_here(waiters: &HashSet<String>, message: &[u8]) -> bool {
    match std::str::from_utf8(message) {
        Ok(tag) if is_tag(tag) => waiters.contains(tag),
        _ => true,
    }
}

/// A SHA-1 in lower-case hex, as `redis.sha1hex` writes it.
fn is_tag(text: &str) -> bool {
    text.len() == 40
        && text
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

/// A waiting request's interest in one channel.
pub(super) struct Watch {
    state: Arc<Mutex<State>>,
    channel: String,
    notice: Arc<Notify>,
    /// The request's [`waiter_tag`], under which a release may hand it the
    /// lock.
    tag: String,
}

impl Watch {
    /// A wait for the next release, armed now: it completes on any release
    /// published after this call, even one before it is first polled.
    pub(super) fn armed(&self) -> Pin<Box<OwnedNotified>> {
        let mut notified = Box::pin(self.notice.clone().notified_owned());
        notified.as_mut().enable();
        notified
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        if let Some(channel) = state.watched.get_mut(&self.channel) {
            // A lock handed over but not taken is the request's still: it
            // releases it with its own lock (redis/handler.rs).
            channel.waiters.remove(&self.tag);
            channel.watchers -= 1;
            if channel.watchers == 0 {
                channel.idle_since = Some(Instant::now());
            }
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl State {
    /// A watch on `channel` for the request with lock `token`, counted as
    /// one more watcher.
    fn watch(&mut self, state: &Arc<Mutex<State>>, channel: &str, token: &str) -> Watch {
        let entry = self
            .watched
            .entry(channel.to_string())
            .or_insert_with(|| Channel {
                notice: Arc::new(Notify::new()),
                watchers: 0,
                subscribed: false,
                idle_since: None,
                waiters: HashSet::new(),
            });
        entry.watchers += 1;
        entry.idle_since = None;
        let tag = waiter_tag(token);
        entry.waiters.insert(tag.clone());
        Watch {
            state: state.clone(),
            channel: channel.to_string(),
            notice: entry.notice.clone(),
            tag,
        }
    }

    /// Unsubscribes the channels nobody watched for [`KEEP_SUBSCRIBED`],
    /// at most once per [`SWEEP_EVERY`].
    fn sweep(&mut self) {
        if self.swept_at.elapsed() < SWEEP_EVERY {
            return;
        }
        self.swept_at = Instant::now();
        let idle: Vec<String> = self
            .watched
            .iter()
            .filter(|(_, channel)| {
                channel
                    .idle_since
                    .is_some_and(|since| since.elapsed() >= KEEP_SUBSCRIBED)
            })
            .map(|(name, _)| name.clone())
            .collect();
        if idle.is_empty() {
            return;
        }
        for name in &idle {
            self.watched.remove(name);
        }
        if let Some(mut sink) = self.sink.clone() {
            // Best effort: a channel left subscribed only costs a message
            // that nobody reads.
            tokio::spawn(async move {
                let _ = sink.unsubscribe(idle).await;
            });
        }
    }
}

impl ReleaseNotices {
    pub(super) fn new(timeout: Duration) -> Self {
        Self {
            state: Arc::new(Mutex::new(State::default())),
            opening: tokio::sync::Mutex::new(()),
            timeout,
        }
    }

    /// A watch on `channel` if it is subscribed already (no I/O): the waiter
    /// arms it before its first try of the lock. The channel's name (a
    /// hash, from `channel`) is worked out only when some channel is
    /// watched at all: most lock tries find nobody contending.
    pub(super) fn existing(&self, channel: impl FnOnce() -> String, token: &str) -> Option<Watch> {
        let mut state = lock(&self.state);
        state.sweep();
        if state.sink.is_none() || state.watched.is_empty() {
            return None;
        }
        let channel = channel();
        let subscribed = state
            .watched
            .get(&channel)
            .is_some_and(|channel| channel.subscribed);
        subscribed.then(|| state.watch(&self.state, &channel, token))
    }

    /// Watches `channel` ([`channel_of`]), subscribing to it if needed. `None`
    /// when notices cannot be had (the waiter polls): a cluster, or no
    /// subscriber connection.
    pub(super) async fn watch(&self, node: &Node, channel: &str, token: &str) -> Option<Watch> {
        let mut sink = self.sink(node).await?;
        let (watch, subscribe) = {
            let mut state = lock(&self.state);
            let subscribe = !state.watched.contains_key(channel);
            (state.watch(&self.state, channel, token), subscribe)
        };
        if subscribe {
            let subscribed = tokio::time::timeout(self.timeout, sink.subscribe(channel)).await;
            if !matches!(subscribed, Ok(Ok(()))) {
                self.forget_connection();
                return None;
            }
            if let Some(channel) = lock(&self.state).watched.get_mut(channel) {
                channel.subscribed = true;
            }
        }
        Some(watch)
    }

    /// `Some(sink)` when the subscriber connection is open, `Some(None)`
    /// when opening it failed less than [`REOPEN_AFTER`] ago, `None` when it
    /// is to be opened.
    fn known_sink(&self) -> Option<Option<PubSubSink>> {
        let state = lock(&self.state);
        if let Some(sink) = &state.sink {
            return Some(Some(sink.clone()));
        }
        let failed_lately = state
            .failed_at
            .is_some_and(|at| at.elapsed() < REOPEN_AFTER);
        failed_lately.then_some(None)
    }

    /// The open subscriber connection's sink, opening it if needed.
    async fn sink(&self, node: &Node) -> Option<PubSubSink> {
        if let Some(known) = self.known_sink() {
            return known;
        }
        let _opening = self.opening.lock().await;
        // Whoever opened (or failed to) while this one waited decided it.
        if let Some(known) = self.known_sink() {
            return known;
        }
        let opened = tokio::time::timeout(self.timeout, async {
            let endpoint = match node {
                Node::Fixed(endpoint) => endpoint.clone(),
                Node::Sentinel(lookup) => lookup.primary().await.ok()?,
                #[cfg(feature = "redis-cluster")]
                Node::Cluster(..) => return None,
            };
            endpoint.pubsub(MAX_NOTICE_BYTES).await.ok()
        })
        .await;
        let Ok(Some(pubsub)) = opened else {
            if !node.is_cluster() {
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
                let mut state = lock(&state);
                let Some(channel) = state.watched.get_mut(message.get_channel_name()) else {
                    continue;
                };
                if !wakes_waiters_here(&channel.waiters, message.get_payload_bytes()) {
                    continue;
                }
                channel.notice.notify_waiters();
            }
            // The connection is gone, and its subscriptions with it: waiters
            // poll, the next one reopens and subscribes afresh, and every
            // current waiter retries now rather than wait for a notice that
            // cannot come.
            let mut state = lock(&state);
            state.sink = None;
            for channel in state.watched.values() {
                channel.notice.notify_waiters();
            }
            state.watched.clear();
        });
        Some(sink)
    }

    fn forget_connection(&self) {
        let mut state = lock(&self.state);
        state.sink = None;
        state.failed_at = Some(Instant::now());
        state.watched.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(idle_for: Option<Duration>) -> Channel {
        Channel {
            notice: Arc::new(Notify::new()),
            watchers: usize::from(idle_for.is_none()),
            subscribed: true,
            idle_since: idle_for.map(|idle| Instant::now() - idle),
            waiters: HashSet::new(),
        }
    }

    #[test]
    fn only_channels_idle_past_the_keep_period_are_unsubscribed() {
        let mut state = State {
            swept_at: Instant::now() - SWEEP_EVERY,
            ..State::default()
        };
        state.watched.insert("watched".into(), channel(None));
        state.watched.insert(
            "idle a moment".into(),
            channel(Some(Duration::from_secs(1))),
        );
        state.watched.insert(
            "idle too long".into(),
            channel(Some(KEEP_SUBSCRIBED + Duration::from_secs(1))),
        );
        state.sweep();
        let mut left: Vec<&str> = state.watched.keys().map(String::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["idle a moment", "watched"]);
    }

    #[test]
    fn channels_are_looked_over_at_most_once_a_second() {
        // Every lock wait calls the sweep; walking every channel each time
        // would cost a busy instance more than the subscriptions save.
        let mut state = State::default();
        state.watched.insert(
            "idle too long".into(),
            channel(Some(KEEP_SUBSCRIBED + Duration::from_secs(1))),
        );
        state.sweep();
        assert!(state.watched.contains_key("idle too long"));
    }

    #[test]
    fn the_last_watcher_leaving_keeps_the_channel_and_starts_its_idle_clock() {
        let shared = Arc::new(Mutex::new(State::default()));
        let first = lock(&shared).watch(&shared, "sess_x.lock", "token");
        let second = lock(&shared).watch(&shared, "sess_x.lock", "token");
        drop(first);
        assert!(lock(&shared).watched["sess_x.lock"].idle_since.is_none());
        drop(second);
        let state = lock(&shared);
        assert_eq!(state.watched["sess_x.lock"].watchers, 0);
        assert!(state.watched["sess_x.lock"].idle_since.is_some());
    }

    #[test]
    fn a_hand_off_wakes_only_the_instance_whose_waiter_it_names() {
        let mine = waiter_tag("my-token");
        let waiters = HashSet::from([mine.clone()]);
        assert!(wakes_waiters_here(&waiters, mine.as_bytes()));
        // Handed to a waiter of another instance: the lock is not free.
        assert!(!wakes_waiters_here(
            &waiters,
            waiter_tag("theirs").as_bytes()
        ));
        // A plain release, or anything that is not a tag, wakes everyone.
        for plain in [&b""[..], b"x", &mine.as_bytes()[..39], b"my-token"] {
            assert!(wakes_waiters_here(&waiters, plain), "{plain:?}");
        }
        // The tag is not the token, nor does it hold it.
        assert!(is_tag(&mine) && !mine.contains("my-token"));
    }

    #[test]
    fn channels_and_tags_are_sha1_in_hex_as_redis_writes_it() {
        // `redis.sha1hex('sess_x.lock')`, checked against a real Redis in
        // tests/redis/lock_hand_off.rs as well.
        assert_eq!(
            channel_of("sess_released:", "sess_x.lock"),
            format!("sess_released:{}", sha1_hex("sess_x.lock"))
        );
        assert_eq!(sha1_hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }

    #[tokio::test]
    async fn an_armed_wait_hears_a_release_published_before_it_is_polled() {
        let shared = Arc::new(Mutex::new(State::default()));
        let watch = lock(&shared).watch(&shared, "sess_x.lock", "token");
        let armed = watch.armed();
        // The release comes while the lock try is on its way, before the
        // request starts waiting.
        watch.notice.notify_waiters();
        tokio::time::timeout(Duration::from_secs(5), armed)
            .await
            .expect("the armed wait completes");
    }
}

#[cfg(test)]
mod opening {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn waiters_that_queued_behind_a_failed_open_do_not_each_open_again() {
        // A server that accepts and never answers: each open of the
        // subscriber connection takes the whole timeout (a network that
        // drops packets looks the same).
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = silent.local_addr().unwrap();
        let node = Node::Fixed(super::super::endpoint::Endpoint {
            address: super::super::endpoint::Address::Tcp {
                host: address.ip().to_string(),
                port: address.port(),
            },
            tls: None,
            login: redis::RedisConnectionInfo::default(),
            connect_timeout: Duration::from_secs(5),
        });
        let notices = Arc::new(ReleaseNotices::new(Duration::from_millis(300)));
        let started = Instant::now();
        let waits: Vec<_> = (0..4)
            .map(|n| {
                let notices = notices.clone();
                let node = &node;
                async move {
                    notices
                        .watch(node, "sess_x.lock", &format!("token{n}"))
                        .await
                        .is_none()
                }
            })
            .collect();
        let polled = futures::future::join_all(waits).await;
        assert_eq!(polled, [true; 4], "no connection, so every waiter polls");
        // One open timed out; the three queued behind it took its answer.
        // Each opening again would take 4 × 300 ms.
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "{:?}",
            started.elapsed()
        );
        drop(silent);
    }
}
