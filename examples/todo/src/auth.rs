//! Users and login: `/auth/csrf`, `/auth/register`, `/auth/login`,
//! `/auth/logout`, `/auth/whoami`, and the [`CurrentUser`] extractor the
//! todo handlers use. Passwords are Argon2id PHC strings with a random salt;
//! the session holds only the user's id and name.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::Response;
use nene::{CsrfToken, ReadOnlySession, Session};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::AppState;
use crate::db::Db;
use crate::envelope::{JsonBody, created, ok};
use crate::error::ApiError;

/// The session key of the logged-in user.
const USER_KEY: &str = "user";

/// The logged-in user, as kept in the session. A handler that takes it
/// answers 401 AUTH-REQUIRED to anyone not logged in. It only reads the
/// session, without its lock: a user's todo requests do not queue behind
/// each other.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CurrentUser {
    pub id: i64,
    pub username: String,
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let session = ReadOnlySession::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::Internal)?;
        session
            .get::<CurrentUser>(USER_KEY)
            .await?
            .ok_or(ApiError::AuthRequired)
    }
}

#[derive(Deserialize)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// `GET /auth/csrf`: the session's CSRF token (made on first ask).
pub async fn csrf_token(session: Session) -> Result<Response, ApiError> {
    let token = CsrfToken::of(&session).await?;
    Ok(ok(json!({ "csrf_token": token.as_str() })))
}

/// `POST /auth/register` `{username, password}`: 201 with the new user.
/// Registering does not log in.
pub async fn register(
    State(state): State<AppState>,
    JsonBody(input): JsonBody<Credentials>,
) -> Result<Response, ApiError> {
    Ok(created(create_account(&state.db, input).await?))
}

/// A new account for these credentials (the name lowercased), or why not.
pub async fn create_account(db: &Db, input: Credentials) -> Result<CurrentUser, ApiError> {
    let username = normalised_username(&input.username)?;
    validate_password(&input.password)?;
    let hash = hash_password(input.password).await?;
    match db.create_user(&username, &hash).await? {
        Some(id) => Ok(CurrentUser { id, username }),
        None => Err(ApiError::UserExists),
    }
}

/// `POST /auth/login` `{username, password}`. On success the session gets a
/// new id and a new CSRF token ([`sign_in`]), returned in the answer.
pub async fn login(
    State(state): State<AppState>,
    session: Session,
    JsonBody(input): JsonBody<Credentials>,
) -> Result<Response, ApiError> {
    let user = authenticate(&state.db, input).await?;
    let token = sign_in(&session, &user).await?;
    Ok(ok(json!({ "user": user, "csrf_token": token.as_str() })))
}

/// The user these credentials name, or AUTH-INVALID (for an unknown name
/// and a wrong password alike).
pub async fn authenticate(db: &Db, input: Credentials) -> Result<CurrentUser, ApiError> {
    // A name that cannot be valid cannot exist: the same answer as an
    // unknown one, after the same work.
    let username = normalised_username(&input.username).unwrap_or_default();
    let user = db.find_user(&username).await?;
    // An unknown user is verified against a dummy hash, so the answer takes
    // as long as for a known one: timing does not tell which names exist.
    let (id, stored) = match user {
        Some(user) => (Some(user.id), user.password_hash),
        None => (None, dummy_hash().to_string()),
    };
    let verified = verify_password(input.password, stored).await?;
    let Some(id) = id.filter(|_| verified) else {
        return Err(ApiError::AuthInvalid);
    };
    Ok(CurrentUser { id, username })
}

/// Logs `user` in on this session: a new id (the one a visitor had before
/// logging in — perhaps planted by an attacker — is worthless), the user
/// stored, and a new CSRF token.
pub async fn sign_in(session: &Session, user: &CurrentUser) -> Result<CsrfToken, ApiError> {
    session.regenerate().await?;
    session.insert(USER_KEY, user).await?;
    Ok(CsrfToken::rotate(session).await?)
}

/// The logged-in user of `session`, if any (read without the lock).
pub async fn signed_in(session: &ReadOnlySession) -> Result<Option<CurrentUser>, ApiError> {
    Ok(session.get::<CurrentUser>(USER_KEY).await?)
}

/// `POST /auth/logout`: the session is destroyed (its data and its id).
pub async fn logout(session: Session) -> Result<Response, ApiError> {
    session.destroy().await?;
    Ok(ok(json!({ "logged_out": true })))
}

/// `GET /auth/whoami`: the logged-in user, or 401 AUTH-REQUIRED.
pub async fn whoami(user: CurrentUser) -> Response {
    ok(user)
}

/// The name as stored: 3 to 32 ASCII letters, digits, `.`, `_` or `-`,
/// lowercased. One rule on every database: MariaDB's default collation
/// compares names without case and SQLite's and PostgreSQL's with it, so
/// `ALICE` would be alice on one and a second account on the others.
fn normalised_username(name: &str) -> Result<String, ApiError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if (3..=32).contains(&name.len()) && name.chars().all(allowed) {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(ApiError::UsernameInvalid)
    }
}

fn validate_password(password: &str) -> Result<(), ApiError> {
    if (8..=128).contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(ApiError::PasswordInvalid)
    }
}

/// Hashes running at once. Each Argon2id hash holds 19 MiB (the default,
/// OWASP, parameters) for tens of milliseconds: without a bound, a burst of
/// logins — anyone can send them — costs 19 MiB each at the same time (32
/// at once took the process to 600 MiB). As many as there are cores keeps
/// the CPU busy; more only wait longer holding memory.
fn hashing_permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        tokio::sync::Semaphore::new(cores)
    })
}

/// Runs `hash_work` (an Argon2 call) on the blocking pool once a hashing
/// permit is free.
async fn bounded_hashing<T: Send + 'static>(
    hash_work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let _permit = hashing_permits()
        .acquire()
        .await
        .map_err(|_| ApiError::Internal)?;
    tokio::task::spawn_blocking(hash_work)
        .await
        .map_err(|_| ApiError::Internal)
}

/// Argon2id with the crate's default (OWASP) parameters. Hashing takes tens
/// of milliseconds of CPU on purpose, so it runs off the async workers.
async fn hash_password(password: String) -> Result<String, ApiError> {
    bounded_hashing(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
    })
    .await?
    .map_err(|error| {
        tracing::error!("password hashing failed: {error}");
        ApiError::Internal
    })
}

async fn verify_password(password: String, stored: String) -> Result<bool, ApiError> {
    bounded_hashing(move || match PasswordHash::new(&stored) {
        Ok(hash) => Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok(),
        Err(error) => {
            tracing::error!("a stored password hash is unreadable: {error}");
            false
        }
    })
    .await
}

/// A valid hash of a random password, made once, for unknown user names.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(salt.as_str().as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .unwrap_or_default()
    })
}
