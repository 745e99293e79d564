//! How session data becomes the bytes a backend stores, and back:
//! `session.serialize_handler` under PHP's name. `json` (nene's own, the
//! default, docs/decisions/0010), `php` (PHP's default, `name|value…`) and
//! `php_serialize` (`serialize($_SESSION)`), so that nene and a PHP
//! application can share live sessions.
//!
//! A value nene cannot map to its data (a PHP object, a reference, a byte
//! string that is not UTF-8) is carried through as the bytes it was stored
//! as, and so is every value the handler did not change: what nene writes
//! back differs from what it read only where the handler changed something.

mod json;
mod php;
mod php_value;

use std::ops::Range;

use bytes::Bytes;
use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::session::error::SessionError;

pub use json::JsonCodec;
pub use php::{PhpCodec, PhpHandler};

/// Session data: string keys to JSON-like values.
pub type SessionData = Map<String, Value>;

/// What decoding found.
#[derive(Clone, Debug, Default)]
pub struct Decoded {
    /// The values nene can map, by key.
    pub data: SessionData,
    /// Every stored value's own bytes, for writing back what did not change.
    pub kept: KeptValues,
}

/// The stored bytes of each top-level value, in stored order: an unchanged
/// value is written back exactly as it was read, and a value nene cannot map
/// is written back untouched until the handler replaces or removes it.
///
/// Entries are found by key through an index, so that reading, changing and
/// writing a session with many top-level keys costs time in proportion to
/// their number (a session of 40,000 PHP variables took 15 s of CPU when
/// every entry was looked for by walking the list), and each entry is a
/// range of the stored bytes rather than a copy of them (one allocation
/// fewer per variable: 100,000 variables decode in a fifth less time).
#[derive(Clone, Debug, Default)]
pub struct KeptValues {
    /// The stored session every entry's range points into.
    stored: Bytes,
    /// By key, in stored order; `None` where an entry was forgotten (the
    /// handler replaced or removed it), so that forgetting moves nothing.
    entries: IndexMap<String, Option<KeptEntry>>,
}

#[derive(Clone, Debug, PartialEq)]
struct KeptEntry {
    /// Where the whole stored entry (key and value) is in `stored`.
    raw: Range<usize>,
    /// What it maps to, or why it does not map.
    value: Result<Value, &'static str>,
}

impl Decoded {
    /// Nothing decoded yet from `stored`, with room for `entries`.
    fn over(stored: &Bytes, entries: usize) -> Self {
        Decoded {
            data: SessionData::with_capacity(entries),
            kept: KeptValues {
                stored: stored.clone(),
                entries: IndexMap::with_capacity(entries),
            },
        }
    }
}

impl PartialEq for KeptValues {
    /// The same live entries, with the same bytes, in the same order.
    fn eq(&self, other: &Self) -> bool {
        self.live()
            .map(|(key, entry)| (key, &entry.value, self.bytes_of(entry)))
            .eq(other
                .live()
                .map(|(key, entry)| (key, &entry.value, other.bytes_of(entry))))
    }
}

impl KeptValues {
    /// Records an entry as stored: its key, where its bytes are, and what
    /// it maps to (or why it does not). A later entry of a name already
    /// kept replaces it where the first one stood, as PHP's `session_decode`
    /// assigns into its array.
    pub(crate) fn keep(
        &mut self,
        key: String,
        raw: Range<usize>,
        value: Result<Value, &'static str>,
    ) {
        self.entries.insert(key, Some(KeptEntry { raw, value }));
    }

    /// Why `key` holds a value nene cannot map, when it does.
    pub fn opaque(&self, key: &str) -> Option<&'static str> {
        self.get(key)
            .and_then(|entry| entry.value.as_ref().err().copied())
    }

    /// Forgets `key`: the handler replaced or removed it.
    pub fn forget(&mut self, key: &str) {
        if let Some(entry) = self.entries.get_mut(key) {
            *entry = None;
        }
    }

    /// Forgets everything: the session was destroyed.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// How many entries are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.live().count()
    }

    fn get(&self, key: &str) -> Option<&KeptEntry> {
        self.entries.get(key).and_then(Option::as_ref)
    }

    fn live(&self) -> impl Iterator<Item = (&String, &KeptEntry)> {
        self.entries
            .iter()
            .filter_map(|(key, entry)| Some((key, entry.as_ref()?)))
    }

    fn bytes_of(&self, entry: &KeptEntry) -> &[u8] {
        &self.stored[entry.raw.clone()]
    }

    /// What to write, in order: each kept entry that is still there (as
    /// its stored bytes when unchanged, as its new value when changed), then
    /// the keys the handler added.
    fn plan<'a>(&'a self, data: &'a SessionData) -> Vec<Planned<'a>> {
        let mut plan = Vec::with_capacity(data.len() + self.entries.len());
        // Keys of `data` met while walking the kept entries: when that is
        // all of them, no key was added and the second walk is skipped.
        let mut data_keys_kept = 0;
        for (key, entry) in self.live() {
            let now = data.get(key);
            data_keys_kept += usize::from(now.is_some());
            match (&entry.value, now) {
                (Err(_), _) => plan.push(Planned::Stored(self.bytes_of(entry))),
                (Ok(before), Some(now)) if before == now => {
                    plan.push(Planned::Stored(self.bytes_of(entry)))
                }
                (Ok(_), Some(now)) => plan.push(Planned::Changed(key, now)),
                (Ok(_), None) => {}
            }
        }
        if data_keys_kept < data.len() {
            for (key, value) in data {
                if self.get(key).is_none() {
                    plan.push(Planned::Changed(key, value));
                }
            }
        }
        plan
    }
}

/// One entry to write.
enum Planned<'a> {
    /// Bytes as they were stored.
    Stored(&'a [u8]),
    /// A key with a value to encode.
    Changed(&'a str, &'a Value),
}

/// Turns session data into the bytes a backend stores, and back. Shared by
/// every request, so it holds no per-request state.
pub trait SessionCodec: Send + Sync + 'static {
    /// `session.serialize_handler`'s name for it.
    fn name(&self) -> &'static str;
    /// The bytes to store for `data`, keeping what `kept` holds. Fails only
    /// for data the format cannot express (a key PHP's `php` format forbids).
    fn encode(&self, data: &SessionData, kept: &KeptValues) -> Result<Bytes, SessionError>;
    /// The data `bytes` hold; empty bytes are an empty session. Bytes that
    /// are not this format are [`SessionError::Corrupt`].
    fn decode(&self, bytes: &Bytes) -> Result<Decoded, SessionError>;
}
