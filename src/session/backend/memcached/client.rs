//! A small memcached client over tokio, speaking the meta text protocol of
//! memcached 1.6 (`mg`, `ms`, `md`, `mn`) plus `lru_crawler metadump hash`.
//!
//! Written here rather than taken from a crate: `memcache` is synchronous;
//! `async-memcached` has neither meta commands nor per-command timeouts; none
//! offers the compare-and-delete a lock needs (`mg key v c`, then
//! `md key C<cas>`), reading a value's size before its bytes, or a key
//! dump. What nene needs is a handful of commands, binary-safe values, a
//! bound on every command, and reconnection: about what this file is.
//!
//! Each server has a small pool of connections: a command takes an idle
//! one (or opens one), and puts it back only when the command completed
//! cleanly. A connection that timed out, failed, or got an error reply is
//! dropped, so a restarted or stalled memcached costs only the commands
//! that met it. A reused connection that fails on I/O (memcached restarted
//! while it was idle) empties the pool and the command is sent once more
//! on a fresh connection: every command nene sends is safe to repeat.

use std::fmt::Display;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// Idle connections kept per server: enough for the requests one instance
/// runs at once on a small machine; more are opened under load and closed
/// after use.
const MAX_IDLE: usize = 8;

/// Connections per server at most, so that a burst of requests cannot open
/// more than memcached serves (its default is 1024 for all clients).
const MAX_CONNECTIONS: usize = 64;

/// The longest reply line read (a header, or one line of a key dump: a key
/// of at most 250 bytes, URL-encoded, and a few numbers).
const MAX_LINE: usize = 4096;

/// A key dump reads a whole server's keys: it gets this many times the
/// command `timeout`, and never less than [`DUMP_LEAST`].
const DUMP_TIMEOUTS: u32 = 20;
const DUMP_LEAST: Duration = Duration::from_secs(10);

/// What memcached adds to a value in an item besides the key: its header
/// (48 bytes on 64-bit), the CAS (8), the key's NUL and the value's CRLF,
/// rounded up. A value whose item would pass `item_size_max` is refused
/// here, because memcached, refusing it, also deletes the key's old value.
const ITEM_OVERHEAD: u64 = 64;

/// How far past `session.max_size` a declared value is still read (and
/// thrown away) as a stored session too large to load; a declaration past
/// this is no session memcached would hold for us (a broken proxy, a
/// hostile peer declaring gigabytes): refused at once and the connection
/// dropped, so neither memory nor time goes into reading it.
const VALUE_MARGIN: u64 = 1024 * 1024;

/// A request to one server.
pub(super) enum Command<'a> {
    /// `mg key s v`: the value, unless it is over `max` bytes.
    Get { key: &'a str, max: u64 },
    /// `mg key v c`: a small value (a lock token) with its CAS.
    GetWithCas { key: &'a str },
    /// `mg key`, or `mg key T<exptime>` to restart its expiry.
    Probe { key: &'a str, exptime: Option<i64> },
    /// `ms key len T<exptime> F0`, with `ME` to store only when the key is
    /// absent (`add`).
    Set {
        key: &'a str,
        data: &'a [u8],
        exptime: i64,
        only_if_absent: bool,
    },
    /// `ms lock_key … ME` (add `token`) and `mg key s v` in one round
    /// trip: a lock and the session it guards, on one server.
    LockAndRead {
        lock_key: &'a str,
        token: &'a str,
        exptime: i64,
        key: &'a str,
        max: u64,
    },
    /// `md key`, with `C<cas>` to delete only that version.
    Delete { key: &'a str, cas: Option<u64> },
    /// `mn`: a round trip that does nothing.
    NoOp,
    /// `lru_crawler metadump hash` (memcached 1.6.9 and later): the keys
    /// `accept` takes that sort after `after`, at most `keep` of them (the
    /// smallest), with their expiry. The walk goes over the hash table, not
    /// the LRU lists (`metadump all`): a walk of the lists misses an item
    /// that is moving between them, as a session read a moment before is.
    Dump {
        accept: &'a (dyn Fn(&str) -> bool + Sync),
        after: Option<&'a str>,
        keep: usize,
    },
}

/// What a server answered.
pub(super) enum Reply {
    /// The key's value (`VA`).
    Value(Bytes),
    /// The key's value and CAS.
    ValueWithCas(Bytes, u64),
    /// The value is `size` bytes, over the limit; it was read and discarded.
    TooLarge(u64),
    /// The key exists, was stored, deleted or touched (`HD`).
    Done,
    /// The key does not exist (`EN`, `NF`), was not stored (`NS`), or its
    /// CAS differs (`EX`): the condition of the command did not hold.
    NotDone,
    /// The lock was taken; the read's reply.
    Locked(Box<Reply>),
    /// The lock is held by another; the read was discarded.
    NotLocked,
    /// The keys of a dump with their expiry (unix seconds, -1 for never),
    /// sorted, and whether more keys were past `keep`.
    Keys(Vec<(String, i64)>, bool),
}

/// A command that failed.
#[derive(Debug)]
pub(super) enum Failure {
    /// No answer within the bound.
    TimedOut(Duration),
    /// The server could not be reached, closed the connection, or answered
    /// with an error.
    Failed(String),
}

/// One memcached server and its connections.
pub(super) struct Server {
    /// `host:port` (IPv6 in brackets), to connect to and name in errors.
    pub(super) address: String,
    /// Connections that finished their last command cleanly.
    idle: Mutex<Vec<BufStream<TcpStream>>>,
    /// Bounds the connections open at once ([`MAX_CONNECTIONS`]).
    permits: Semaphore,
    /// Bound on one command (the DSN's `timeout`).
    timeout: Duration,
    /// Bound on opening a connection (the DSN's `connect_timeout`).
    connect_timeout: Duration,
    /// The server's `item_size_max` (its `-I`), asked with `stats
    /// settings` before the first write; 0 until then, and again after the
    /// server went away (it may come back with another limit).
    item_size_max: AtomicU64,
}

impl Server {
    pub(super) fn new(host: &str, port: u16, timeout: Duration, connect_timeout: Duration) -> Self {
        let address = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Self {
            address,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(MAX_CONNECTIONS),
            timeout,
            connect_timeout,
            item_size_max: AtomicU64::new(0),
        }
    }

    /// Sends `command` and reads its reply, within `connect_timeout +
    /// timeout` (longer for a dump), retrying once on a fresh connection
    /// when a reused one turns out to be dead.
    pub(super) async fn call(&self, command: &Command<'_>) -> Result<Reply, Failure> {
        let bound = match command {
            Command::Dump { .. } => (self.timeout * DUMP_TIMEOUTS).max(DUMP_LEAST),
            _ => self.timeout,
        } + self.connect_timeout;
        let attempt = async {
            let _permit = self
                .permits
                .acquire()
                .await
                .map_err(|_| self.failed("the connection pool is closed"))?;
            let reused = self.idle.lock().expect("idle pool").pop();
            if let Some(connection) = reused {
                match self.exchange(connection, command).await {
                    Err(Attempt::Io(_)) => {
                        // Memcached restarted, or closed idle connections:
                        // the other idle ones are as dead as this one.
                        self.idle.lock().expect("idle pool").clear();
                        self.item_size_max.store(0, Ordering::Relaxed);
                    }
                    other => return other.map_err(|error| self.failure_of(error)),
                }
            }
            let connection = self.connect().await?;
            self.exchange(connection, command)
                .await
                .map_err(|error| self.failure_of(error))
        };
        tokio::time::timeout(bound, attempt)
            .await
            .unwrap_or(Err(Failure::TimedOut(bound)))
    }

    /// Opens a connection, within `connect_timeout`.
    async fn connect(&self) -> Result<BufStream<TcpStream>, Failure> {
        match tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.address)).await {
            Ok(Ok(stream)) => {
                // Commands are small and answered at once: do not let
                // Nagle's algorithm hold a request back.
                let _ = stream.set_nodelay(true);
                Ok(BufStream::new(stream))
            }
            outcome => {
                // The server is away; it may come back with another `-I`.
                self.item_size_max.store(0, Ordering::Relaxed);
                Err(self.failed(&match outcome {
                    Ok(Err(error)) => format!("cannot connect: {error}"),
                    _ => format!("cannot connect within {:?}", self.connect_timeout),
                }))
            }
        }
    }

    /// One command on `connection`, which goes back to the pool when the
    /// exchange ended cleanly.
    async fn exchange(
        &self,
        mut connection: BufStream<TcpStream>,
        command: &Command<'_>,
    ) -> Result<Reply, Attempt> {
        if let Command::Set { key, data, .. } = command {
            self.check_item_size(&mut connection, key, data).await?;
        }
        let reply = run(&mut connection, command).await?;
        let mut idle = self.idle.lock().expect("idle pool");
        if idle.len() < MAX_IDLE {
            idle.push(connection);
        }
        Ok(reply)
    }

    /// Refuses a value the server would refuse as too large, before it is
    /// sent (see [`ITEM_OVERHEAD`]).
    async fn check_item_size(
        &self,
        connection: &mut BufStream<TcpStream>,
        key: &str,
        data: &[u8],
    ) -> Result<(), Attempt> {
        let mut limit = self.item_size_max.load(Ordering::Relaxed);
        if limit == 0 {
            limit = item_size_max(connection).await?;
            self.item_size_max.store(limit, Ordering::Relaxed);
        }
        let item = data.len() as u64 + key.len() as u64 + ITEM_OVERHEAD;
        if item > limit {
            return Err(Attempt::Refused(format!(
                "a value of {} bytes is too large for its item size limit ({limit} bytes); \
                 not sent, the stored value is unchanged",
                data.len()
            )));
        }
        Ok(())
    }

    fn failure_of(&self, attempt: Attempt) -> Failure {
        match attempt {
            Attempt::Io(error) => self.failed(&format!("connection failed: {error}")),
            Attempt::Refused(message) => self.failed(&message),
        }
    }

    fn failed(&self, message: &str) -> Failure {
        Failure::Failed(format!("memcached at {}: {message}", self.address))
    }
}

/// Why one exchange failed: I/O (worth a retry on a fresh connection when
/// the connection was reused) or a reply nene cannot use.
enum Attempt {
    Io(std::io::Error),
    Refused(String),
}

impl From<std::io::Error> for Attempt {
    fn from(error: std::io::Error) -> Self {
        Attempt::Io(error)
    }
}

/// Writes `command` and reads its reply.
async fn run(
    connection: &mut BufStream<TcpStream>,
    command: &Command<'_>,
) -> Result<Reply, Attempt> {
    match command {
        Command::Get { key, max } => {
            send(connection, &format!("mg {key} s v\r\n"), None).await?;
            read_value(connection, *max, false).await
        }
        Command::GetWithCas { key } => {
            send(connection, &format!("mg {key} v c\r\n"), None).await?;
            // A lock token is 32 bytes; anything much larger is not one.
            read_value(connection, 1024, true).await
        }
        Command::Probe { key, exptime } => {
            let flag = exptime
                .as_ref()
                .map(|exptime| ('T', exptime as &dyn Display));
            send(connection, &flagged("mg", key, flag), None).await?;
            read_status(connection).await
        }
        Command::Set {
            key,
            data,
            exptime,
            only_if_absent,
        } => {
            let mode = if *only_if_absent { " ME" } else { "" };
            let line = format!("ms {key} {} T{exptime} F0{mode}\r\n", data.len());
            send(connection, &line, Some(data)).await?;
            read_status(connection).await
        }
        Command::LockAndRead {
            lock_key,
            token,
            exptime,
            key,
            max,
        } => {
            let mut request = format!("ms {lock_key} {} T{exptime} F0 ME\r\n", token.len());
            request.push_str(token);
            request.push_str(&format!("\r\nmg {key} s v\r\n"));
            send(connection, &request, None).await?;
            let locked = read_status(connection).await?;
            // Read either way: the reply is on the wire.
            let read = read_value(connection, *max, false).await?;
            match locked {
                Reply::Done => Ok(Reply::Locked(Box::new(read))),
                _ => Ok(Reply::NotLocked),
            }
        }
        Command::Delete { key, cas } => {
            let flag = cas.as_ref().map(|cas| ('C', cas as &dyn Display));
            send(connection, &flagged("md", key, flag), None).await?;
            read_status(connection).await
        }
        Command::NoOp => {
            send(connection, "mn\r\n", None).await?;
            match read_line(connection).await?.as_str() {
                "MN" => Ok(Reply::Done),
                other => Err(refused(other)),
            }
        }
        Command::Dump {
            accept,
            after,
            keep,
        } => {
            send(connection, "lru_crawler metadump hash\r\n", None).await?;
            read_dump(connection, *accept, *after, *keep).await
        }
    }
}

async fn send(
    connection: &mut BufStream<TcpStream>,
    line: &str,
    data: Option<&[u8]>,
) -> Result<(), Attempt> {
    connection.write_all(line.as_bytes()).await?;
    if let Some(data) = data {
        connection.write_all(data).await?;
        connection.write_all(b"\r\n").await?;
    }
    connection.flush().await?;
    Ok(())
}

/// `COMMAND KEY` and a flag when there is one (` T<exptime>`, ` C<cas>`),
/// in one allocation.
fn flagged(command: &str, key: &str, flag: Option<(char, &dyn Display)>) -> String {
    match flag {
        Some((letter, value)) => format!("{command} {key} {letter}{value}\r\n"),
        None => format!("{command} {key}\r\n"),
    }
}

/// `stats settings`' `item_size_max`.
async fn item_size_max(connection: &mut BufStream<TcpStream>) -> Result<u64, Attempt> {
    send(connection, "stats settings\r\n", None).await?;
    let mut limit = None;
    loop {
        let line = read_line(connection).await?;
        if line == "END" {
            break;
        }
        if let Some(value) = line.strip_prefix("STAT item_size_max ") {
            limit = value.parse::<u64>().ok();
        } else if !line.starts_with("STAT ") {
            return Err(refused(&line));
        }
    }
    limit.ok_or_else(|| Attempt::Refused("`stats settings` has no item_size_max".to_string()))
}

/// One reply line without its `\r\n`; an end of stream is an I/O error.
async fn read_line(connection: &mut BufStream<TcpStream>) -> Result<String, Attempt> {
    let mut line = Vec::new();
    let read = (&mut *connection)
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut line)
        .await?;
    if read == 0 {
        return Err(Attempt::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    if line.last() != Some(&b'\n') {
        return Err(Attempt::Refused(format!(
            "a reply line longer than {MAX_LINE} bytes"
        )));
    }
    let text = String::from_utf8_lossy(&line);
    Ok(text.trim_end_matches(['\r', '\n']).to_string())
}

/// The reply of a command that answers with a status only.
async fn read_status(connection: &mut BufStream<TcpStream>) -> Result<Reply, Attempt> {
    let line = read_line(connection).await?;
    match line.split(' ').next().unwrap_or_default() {
        "HD" => Ok(Reply::Done),
        "EN" | "NF" | "NS" | "EX" => Ok(Reply::NotDone),
        _ => Err(refused(&line)),
    }
}

/// The reply of `mg … v`: `VA <size> <flags>` and the value, or `EN`. A
/// value over `max` is read and thrown away in small pieces, never held;
/// one declared past `max` by more than [`VALUE_MARGIN`] is refused unread.
async fn read_value(
    connection: &mut BufStream<TcpStream>,
    max: u64,
    with_cas: bool,
) -> Result<Reply, Attempt> {
    let line = read_line(connection).await?;
    let mut words = line.split(' ');
    match words.next() {
        Some("EN") => return Ok(Reply::NotDone),
        Some("VA") => {}
        _ => return Err(refused(&line)),
    }
    let size: u64 = words
        .next()
        .and_then(|size| size.parse().ok())
        .ok_or_else(|| refused(&line))?;
    let cas = words
        .find_map(|flag| flag.strip_prefix('c'))
        .and_then(|cas| cas.parse::<u64>().ok());
    if size > max.saturating_add(VALUE_MARGIN) {
        return Err(Attempt::Refused(format!(
            "a reply declaring a value of {size} bytes, over session.max_size ({max}) by more than {VALUE_MARGIN}: refused while reading"
        )));
    }
    // The value and its CRLF; checked, as the size is the peer's word.
    let with_crlf = size.checked_add(2).ok_or_else(|| refused(&line))?;
    if size > max {
        let skipped = tokio::io::copy(
            &mut (&mut *connection).take(with_crlf),
            &mut tokio::io::sink(),
        )
        .await?;
        if skipped != with_crlf {
            return Err(Attempt::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        return Ok(Reply::TooLarge(size));
    }
    let length = usize::try_from(size).map_err(|_| refused(&line))?;
    let with_crlf = usize::try_from(with_crlf).map_err(|_| refused(&line))?;
    let mut value = BytesMut::zeroed(with_crlf);
    connection.read_exact(&mut value).await?;
    if &value[length..] != b"\r\n" {
        return Err(Attempt::Refused("a value not followed by CRLF".to_string()));
    }
    value.truncate(length);
    match (with_cas, cas) {
        (false, _) => Ok(Reply::Value(value.freeze())),
        (true, Some(cas)) => Ok(Reply::ValueWithCas(value.freeze(), cas)),
        (true, None) => Err(refused(&line)),
    }
}

/// The lines of `lru_crawler metadump`, `key=<url-encoded> exp=<unix or
/// -1> …` up to `END`, keeping the `keep` smallest keys after `after`.
async fn read_dump(
    connection: &mut BufStream<TcpStream>,
    accept: &(dyn Fn(&str) -> bool + Sync),
    after: Option<&str>,
    keep: usize,
) -> Result<Reply, Attempt> {
    let mut kept = std::collections::BTreeMap::new();
    let mut more = false;
    loop {
        let line = read_line(connection).await?;
        if line == "END" {
            break;
        }
        let Some(fields) = line.strip_prefix("key=") else {
            // `BUSY …` (another dump runs), `ERROR` (crawler disabled).
            return Err(refused(&line));
        };
        let mut fields = fields.split(' ');
        let Some(key) = fields.next().and_then(percent_decode) else {
            continue;
        };
        let exp = fields
            .find_map(|field| field.strip_prefix("exp="))
            .and_then(|exp| exp.parse::<i64>().ok())
            .unwrap_or(-1);
        if !accept(&key) || after.is_some_and(|after| key.as_str() <= after) {
            continue;
        }
        kept.insert(key, exp);
        if kept.len() > keep {
            kept.pop_last();
            more = true;
        }
    }
    Ok(Reply::Keys(kept.into_iter().collect(), more))
}

/// `%XX` escapes of a dumped key decoded; `None` when broken.
fn percent_decode(text: &str) -> Option<String> {
    let decoded = percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .ok()?;
    Some(decoded.into_owned())
}

fn refused(line: &str) -> Attempt {
    Attempt::Refused(format!("unexpected reply `{line}`"))
}
