//! Flash messages: a message set before a redirect and shown once on the
//! next page (POST/redirect/GET), as Symfony's flash bag keeps them — in
//! the session under `_symfony_flashes`, a list of messages per type
//! (`success`, `error`, …), each kept until a page reads it. A Symfony page
//! sharing the session with nene (a site moving route by route) shows the
//! messages nene set, and the other way round.

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use serde_json::{Map, Value};

use crate::session::{Session, SessionError};

/// Symfony's session key for its flash bag.
const SESSION_KEY: &str = "_symfony_flashes";

/// The request's flash messages; a handler argument.
#[derive(Clone)]
pub struct Flash(Session);

/// Lists of messages by type, in the order their types were first added
/// (serde_json's map keeps it).
type Messages = Map<String, Value>;

impl Flash {
    /// The flash messages of `session`.
    pub fn of(session: Session) -> Self {
        Self(session)
    }

    /// Adds `message` under `kind` (`success`, `error`, …) for the next
    /// page that reads the messages.
    pub async fn add(&self, kind: &str, message: impl Into<String>) -> Result<(), SessionError> {
        let mut messages = self.stored().await?;
        let list = messages
            .entry(kind)
            .or_insert_with(|| Value::Array(Vec::new()));
        match list {
            Value::Array(list) => list.push(Value::String(message.into())),
            // Not a list (written by something else): replaced by one.
            other => *other = Value::Array(vec![Value::String(message.into())]),
        }
        self.0.insert(SESSION_KEY, &messages).await
    }

    /// Every message, as (type, message), oldest type first; they are gone
    /// from the session once read. Whether there are any is read without
    /// the session's lock: a page with none neither waits for it nor writes.
    pub async fn take(&self) -> Result<Vec<(String, String)>, SessionError> {
        let peeked: Option<Messages> = self.0.get_read_only(SESSION_KEY).await?;
        if peeked.is_none_or(|messages| messages.is_empty()) {
            return Ok(Vec::new());
        }
        // Read again under the lock: what is removed is what is shown.
        let messages = self.stored().await?;
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        self.0.remove(SESSION_KEY).await?;
        let mut taken = Vec::new();
        for (kind, list) in messages {
            let list = match list {
                Value::Array(list) => list,
                one => vec![one],
            };
            for message in list {
                // A message a PHP page set may be any value: shown as text.
                let text = match message {
                    Value::String(text) => text,
                    other => other.to_string(),
                };
                taken.push((kind.clone(), text));
            }
        }
        Ok(taken)
    }

    async fn stored(&self) -> Result<Messages, SessionError> {
        Ok(self
            .0
            .get::<Messages>(SESSION_KEY)
            .await?
            .unwrap_or_default())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Flash {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Session::from_request_parts(parts, state)
            .await
            .map(Flash)
            .map_err(IntoResponse::into_response)
    }
}
