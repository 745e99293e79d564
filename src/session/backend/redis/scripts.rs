//! The Lua scripts that make each Redis step one round trip and safe to
//! repeat, and how their replies read.

use std::sync::LazyLock;

use bytes::Bytes;
use redis::{Script, Value};

use crate::session::backend::{Stored, Unreadable};

/// Releases the lock only if it still holds the releasing request's token:
/// a lock that expired and was taken by another request is not ours to
/// touch. With ARGV[5] = 'set' or 'touch' it first stores the session
/// (`SET … EX`) or restarts its expiry, under the same check: a save is a
/// fenced write, applied only while the lock is the saver's, so a save
/// that was delayed (a slow or cut connection, a timeout after which the
/// lock was released and taken again) can never land on a newer holder's
/// data. With a channel prefix in ARGV[2] (not in a cluster) the release is
/// published for requests waiting on other instances (release_notices.rs),
/// and when one of them registered as a waiter it gets the lock directly:
/// the lock is set to its token and the message names it, so it takes the
/// lock with its next try without competing for it.
///
/// Nothing secret goes over pub/sub, where any client allowed to subscribe
/// could read it: the channel is named by the SHA-1 of the lock key (not
/// the key, which holds the session id), and a waiter by the SHA-1 of its
/// token; the session itself is read by the waiter (its next try).
///
/// The waiters are a sorted set scored by the moment each gives up (Redis
/// time, in ms): the earliest is served first (with one `lock_wait` for
/// every instance, the first to register), and one whose moment has passed
/// is dropped unserved. A waiter that gives up withdraws with this same
/// script (ARGV[4]): its token leaves the set first, and a lock handed to
/// it meanwhile is passed on. A lock handed on expires after a short claim
/// (ARGV[3]) unless its new holder takes it with its next lock try (which
/// gives it the full TTL): a waiter whose instance died before its moment
/// came holds the session up for that claim, not for a whole `lock_ttl`.
///
/// Keys of the wrong type are nobody's lock and nobody's waiters (nene and
/// phpredis write strings, nene a sorted set of waiters): the lock is read
/// with `pcall`, so a hash there reads as "not ours" instead of failing the
/// script, and a waiters key of another type is deleted. One session's bad
/// keys never turn into an error reply.
///
/// Message, on `ARGV[2] .. sha1hex(lock key)`: '' (released), or the
/// SHA-1 of the token of the waiter the lock was handed to.
///
/// KEYS: lock key, waiters key, session key. ARGV: token, channel prefix
/// ('' = do not publish), the claim of a lock handed on in ms, withdraw the
/// token from the waiters ('1'/'0'), save ('' none, 'set', 'touch'), the
/// session's TTL in seconds, the data to set. Reply: 0 not ours (nothing
/// stored), 1 released, 2 handed to a waiter.
pub(super) const RELEASE_SCRIPT: &str = r"
local waiters = redis.call('TYPE', KEYS[2])['ok']
if waiters ~= 'zset' and waiters ~= 'none' then
  redis.call('DEL', KEYS[2])
  waiters = 'none'
end
if ARGV[4] == '1' and waiters == 'zset' then redis.call('ZREM', KEYS[2], ARGV[1]) end
if redis.pcall('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[5] == 'set' then
  redis.call('SET', KEYS[3], ARGV[7], 'EX', ARGV[6])
elseif ARGV[5] == 'touch' then
  redis.call('EXPIRE', KEYS[3], ARGV[6])
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  return 1
end
local channel = ARGV[2] .. redis.sha1hex(KEYS[1])
if waiters == 'zset' then
  local now = redis.call('TIME')
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now[1] * 1000 + math.floor(now[2] / 1000))
  local waiter = redis.call('ZPOPMIN', KEYS[2])[1]
  if waiter then
    redis.call('SET', KEYS[1], waiter, 'PX', ARGV[3])
    redis.call('PUBLISH', channel, redis.sha1hex(waiter))
    return 2
  end
end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', channel, '')
return 1
";

/// Takes the lock (when ARGV[1] is a token) and reads the session, in one
/// round trip. Only a plain string of at most ARGV[3] bytes is sent back:
/// a key of another type, or a value over `session.max_size`, is reported
/// instead, so nene never loads it. With ARGV[4] = '0' nothing is read.
/// Taking the lock is idempotent — a lock that already holds this token
/// counts as taken, and gets the full TTL again — so a retry after a
/// dropped connection does not wait for its own lock, and a waiter that was
/// handed the lock (under a short claim) takes it with its next try.
///
/// With ARGV[5] set (ms), a request that finds the lock busy registers as
/// a waiter that gives up that much later (`RELEASE_SCRIPT` hands the lock
/// to it directly); one that gets the lock leaves the waiters. The waiters
/// key outlives its last waiter by a lock TTL, then Redis drops it (stale
/// members are skipped by their score anyway).
///
/// Keys nobody could have written as a lock are repaired here, so that one
/// session's bad keys cost that session nothing for long: a lock key that
/// is not a string holds no lock (nene and phpredis write strings) and is
/// replaced by this request's; a lock without an expiry (written by hand,
/// or by a client that crashed between two commands) gets `lock_ttl`, so
/// it is stale that long after it is first seen; a waiters key that is not
/// a sorted set is deleted.
///
/// With ARGV[6] set (seconds), a read-only read (no token) also restarts
/// the expiry of what it reads, in the same round trip, when that is a
/// string nene may use (within the max size, not empty), and replies its
/// expiry before (PTTL, ms; -1 for none) as a fourth item, so that the
/// caller can put it back should the data turn out to be none of nene's
/// (`RESTORE_EXPIRY_SCRIPT`).
///
/// KEYS: session key, lock key, waiters key. ARGV: token ('' = no lock),
/// lock TTL in ms, max size, read ('1'/'0'), wait left in ms ('' = do not
/// register), expiry to restart in s ('' = none). Reply: {0} when another
/// request holds the lock; otherwise {1}, {1,'type',T}, {1,'size',N},
/// {1,'data',bytes} or {1,'data',bytes,pttl_before}.
pub(super) const LOCK_AND_READ_SCRIPT: &str = r"
local function usable_waiters()
  local kind = redis.call('TYPE', KEYS[3])['ok']
  if kind ~= 'zset' and kind ~= 'none' then redis.call('DEL', KEYS[3]) end
end
if ARGV[1] ~= '' and not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local holder = redis.pcall('GET', KEYS[2])
  if type(holder) ~= 'string' then
    redis.call('DEL', KEYS[2])
    redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  elseif holder ~= ARGV[1] then
    if redis.call('PTTL', KEYS[2]) == -1 then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
    if ARGV[5] ~= '' then
      usable_waiters()
      local now = redis.call('TIME')
      local gives_up = now[1] * 1000 + math.floor(now[2] / 1000) + tonumber(ARGV[5])
      redis.call('ZADD', KEYS[3], gives_up, ARGV[1])
      local keep = tonumber(ARGV[2]) + tonumber(ARGV[5])
      if redis.call('PTTL', KEYS[3]) < keep then redis.call('PEXPIRE', KEYS[3], keep) end
    end
    return {0}
  else
    redis.call('PEXPIRE', KEYS[2], ARGV[2])
  end
end
if ARGV[5] ~= '' then
  usable_waiters()
  redis.call('ZREM', KEYS[3], ARGV[1])
end
if ARGV[4] == '0' then return {1} end
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'none' then return {1} end
if kind ~= 'string' then return {1, 'type', kind} end
local size = redis.call('STRLEN', KEYS[1])
if size > tonumber(ARGV[3]) then return {1, 'size', size} end
if ARGV[6] and ARGV[6] ~= '' and size > 0 then
  local before = redis.call('PTTL', KEYS[1])
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  return {1, 'data', redis.call('GET', KEYS[1]), before}
end
return {1, 'data', redis.call('GET', KEYS[1])}
";

/// Puts back the expiry a read-only read restarted (`LOCK_AND_READ_SCRIPT`
/// with ARGV[6]) when the data turned out to be none of nene's to keep
/// alive (it does not decode, or outlived `session.absolute_lifetime`):
/// only while the session still holds what was read (its SHA-1), so a
/// session written since keeps the expiry its write gave it.
///
/// KEYS: session key. ARGV: SHA-1 of the data read (hex), the expiry
/// before in ms (-1: none). Reply: 1 put back, 0 left (changed or gone).
pub(super) const RESTORE_EXPIRY_SCRIPT: &str = r"
local value = redis.pcall('GET', KEYS[1])
if type(value) ~= 'string' or redis.sha1hex(value) ~= ARGV[1] then return 0 end
if tonumber(ARGV[2]) < 0 then
  redis.call('PERSIST', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], math.max(1, tonumber(ARGV[2])))
end
return 1
";

/// A fenced write: stores (or touches), and unlocks when asked, only while
/// the lock still holds this request's token. Every write of a write chain
/// (write_chain.rs) goes this way, and it is the retry of a save whose
/// connection dropped before its reply came: the first attempt may or may
/// not have been applied, and another request may have taken the lock
/// since, so a blind write could overwrite newer data. When the lock is not
/// ours, the write counts as done if it was a touch or if the stored value
/// is exactly what this request wrote (an earlier attempt got through), and
/// as failed otherwise. The order of two such writes on the wire no longer
/// matters: one that arrives after the lock moved on stores nothing.
///
/// KEYS: session key, lock key. ARGV: token, TTL in seconds, unlock
/// ('1'/'0'), the channel prefix the release is published under ('' = do
/// not publish; as in `RELEASE_SCRIPT`), data (absent for a touch). Reply:
/// 1 stored, 0 not stored.
pub(super) const CHECKED_SAVE_SCRIPT: &str = r"
if redis.pcall('GET', KEYS[2]) == ARGV[1] then
  if ARGV[5] then
    redis.call('SET', KEYS[1], ARGV[5], 'EX', ARGV[2])
  else
    redis.call('EXPIRE', KEYS[1], ARGV[2])
  end
  if ARGV[3] == '1' then
    redis.call('DEL', KEYS[2])
    if ARGV[4] ~= '' then redis.call('PUBLISH', ARGV[4] .. redis.sha1hex(KEYS[2]), '') end
  end
  return 1
end
if not ARGV[5] then return 1 end
if redis.call('TYPE', KEYS[1])['ok'] == 'string' and redis.call('GET', KEYS[1]) == ARGV[5] then
  return 1
end
return 0
";

pub(super) static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE_SCRIPT));
pub(super) static LOCK_AND_READ: LazyLock<Script> =
    LazyLock::new(|| Script::new(LOCK_AND_READ_SCRIPT));
pub(super) static CHECKED_SAVE: LazyLock<Script> =
    LazyLock::new(|| Script::new(CHECKED_SAVE_SCRIPT));
pub(super) static RESTORE_EXPIRY: LazyLock<Script> =
    LazyLock::new(|| Script::new(RESTORE_EXPIRY_SCRIPT));

/// The reply of `LOCK_AND_READ_SCRIPT` to a read-only read that asked for
/// the expiry to be restarted: what is stored and, when the script
/// restarted it, the expiry before in ms (-1: none).
pub(super) fn parse_read_and_touch(
    reply: Value,
    max_size: u64,
) -> Result<(Stored, Option<i64>), String> {
    let Value::Array(mut items) = reply else {
        return Err(format!("unexpected reply to the lock script: {reply:?}"));
    };
    // The data itself is moved out, not copied: it can be megabytes.
    if let [
        Value::Int(1),
        Value::BulkString(what),
        Value::BulkString(bytes),
        Value::Int(before),
    ] = items.as_mut_slice()
        && what.as_slice() == b"data"
    {
        return Ok((
            Stored::Data(Bytes::from(std::mem::take(bytes))),
            Some(*before),
        ));
    }
    match parse_lock_and_read(Value::Array(items), max_size)? {
        Some(stored) => Ok((stored, None)),
        None => Err("the lock script refused a read".to_string()),
    }
}

/// The reply of `LOCK_AND_READ_SCRIPT` (scripts.rs): `None` while another request
/// holds the lock, else what is stored. The error names a reply the script
/// cannot give.
pub(super) fn parse_lock_and_read(reply: Value, max_size: u64) -> Result<Option<Stored>, String> {
    let unexpected =
        |reply: &dyn std::fmt::Debug| format!("unexpected reply to the lock script: {reply:?}");
    let Value::Array(mut items) = reply else {
        return Err(unexpected(&reply));
    };
    // The data itself is moved out, not copied: it can be megabytes.
    if let [
        Value::Int(1),
        Value::BulkString(what),
        Value::BulkString(bytes),
    ] = items.as_mut_slice()
        && what.as_slice() == b"data"
    {
        return Ok(Some(Stored::Data(Bytes::from(std::mem::take(bytes)))));
    }
    match items.as_slice() {
        [Value::Int(0)] => Ok(None),
        [Value::Int(1)] => Ok(Some(Stored::Missing)),
        [
            Value::Int(1),
            Value::BulkString(what),
            Value::BulkString(kind),
        ] if what == b"type" => Ok(Some(Stored::Unreadable(Unreadable::WrongType(
            String::from_utf8_lossy(kind).into_owned(),
        )))),
        [Value::Int(1), Value::BulkString(what), Value::Int(size)] if what == b"size" => {
            Ok(Some(Stored::Unreadable(Unreadable::TooLarge {
                size: u64::try_from(*size).unwrap_or(0),
                max: max_size,
            })))
        }
        _ => Err(unexpected(&items)),
    }
}
