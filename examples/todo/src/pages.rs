//! The HTML pages beside the JSON API, for a browser with or without
//! JavaScript: `/account/register`, `/account/login`, `/account/logout`,
//! and the list at `/list` with `/list/add`, `/list/toggle` and
//! `/list/delete`. Server-rendered from templates/ (askama: one layout,
//! compiled with the application, every value escaped), forms
//! posted as `application/x-www-form-urlencoded` with the CSRF token as a
//! hidden field (nene's `RequireCsrf` checks it), POST/redirect/GET with a
//! flash message, a rejected input shown again with the error. The same
//! users, sessions and database as the API.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CACHE_CONTROL;
use axum::response::{Html, IntoResponse, Redirect, Response};
use nene::{CsrfToken, Flash, ReadOnlySession, Session};
use serde::Deserialize;

use crate::AppState;
use crate::auth::{self, Credentials, CurrentUser};
use crate::error::ApiError;
use crate::store::{StoreError, Todo};
use crate::todos::valid_title;

/// A page, never stored by a cache: it shows one user's data, and after
/// logging out the back button must not bring it back.
fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, [(CACHE_CONTROL, "no-store")], Html(html)).into_response(),
        Err(error) => {
            tracing::error!("a page's template failed: {error}");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
        }
    }
}

/// What every page's layout shows (templates/layout.html): the user, the
/// flash messages, the CSRF field of the logout form.
#[derive(Default)]
pub struct Layout {
    user: Option<CurrentUser>,
    flashes: Vec<(String, String)>,
    /// Markup already (nene's hidden field, hexadecimal inside): the one
    /// value the templates write with `|safe`.
    csrf_field: String,
}

impl Layout {
    async fn of(session: &Session, user: Option<CurrentUser>) -> Result<Layout, ApiError> {
        Ok(Layout {
            user,
            flashes: Flash::of(session.clone()).take().await?,
            csrf_field: CsrfToken::of(session).await?.hidden_field(),
        })
    }
}

/// templates/account.html: the login or the register form.
#[derive(Template)]
#[template(path = "account.html")]
struct AccountView<'a> {
    layout: Layout,
    page: &'a AccountPage,
    username: &'a str,
    error: Option<String>,
}

/// templates/list.html: my todos and the form for a new one.
#[derive(Template)]
#[template(path = "list.html")]
struct ListView<'a> {
    layout: Layout,
    todos: Vec<Todo>,
    title: &'a str,
    error: Option<String>,
}

/// templates/error.html.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorView<'a> {
    layout: Layout,
    status: StatusCode,
    message: &'a str,
}

/// An error as a page: not logged in goes to the login page, anything else
/// is the error page with the API's message and status.
pub struct PageError(ApiError);

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        PageError(error)
    }
}

impl From<nene::SessionError> for PageError {
    fn from(error: nene::SessionError) -> Self {
        PageError(error.into())
    }
}

impl From<StoreError> for PageError {
    fn from(error: StoreError) -> Self {
        PageError(error.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        if matches!(self.0, ApiError::AuthRequired) {
            return Redirect::to("/account/login").into_response();
        }
        let status = self.0.status();
        let message = self.0.to_string();
        let view = ErrorView {
            layout: Layout::default(),
            status,
            message: &message,
        };
        render(status, &view)
    }
}

/// The refused-CSRF page, for the pages' paths (the API's answer its own).
pub fn csrf_refused() -> Response {
    let view = ErrorView {
        layout: Layout::default(),
        status: StatusCode::FORBIDDEN,
        message: "The form was too old or not sent from this site. Go back, reload the page and send it again.",
    };
    render(StatusCode::FORBIDDEN, &view)
}

/// The logged-in user (read without the session's lock), or the way to
/// the login page.
async fn user_of(session: &ReadOnlySession) -> Result<CurrentUser, PageError> {
    Ok(auth::signed_in(session)
        .await?
        .ok_or(ApiError::AuthRequired)?)
}

/// What the login and register pages differ in.
struct AccountPage {
    heading: &'static str,
    action: &'static str,
    password_autocomplete: &'static str,
    other_text: &'static str,
    other_link: &'static str,
    other_href: &'static str,
}

const LOGIN: AccountPage = AccountPage {
    heading: "Log in",
    action: "/account/login",
    password_autocomplete: "current-password",
    other_text: "No account yet?",
    other_link: "Register",
    other_href: "/account/register",
};

const REGISTER: AccountPage = AccountPage {
    heading: "Register",
    action: "/account/register",
    password_autocomplete: "new-password",
    other_text: "Registered already?",
    other_link: "Log in",
    other_href: "/account/login",
};

async fn account_page(
    session: &Session,
    page: &AccountPage,
    username: &str,
    error: Option<ApiError>,
) -> Result<Response, PageError> {
    let status = error.as_ref().map_or(StatusCode::OK, ApiError::status);
    let view = AccountView {
        layout: Layout::of(session, None).await?,
        page,
        username,
        error: error.map(|error| error.to_string()),
    };
    Ok(render(status, &view))
}

/// The form again with `error` and the name kept, when the user can fix
/// it (a 4xx); anything else is the error page.
async fn account_form_again(
    session: &Session,
    page: &AccountPage,
    username: &str,
    error: ApiError,
) -> Result<Response, PageError> {
    if !error.status().is_client_error() {
        return Err(error.into());
    }
    account_page(session, page, username, Some(error)).await
}

/// `GET /account/login`.
pub async fn login_page(session: Session) -> Result<Response, PageError> {
    account_page(&session, &LOGIN, "", None).await
}

/// `POST /account/login` (`username`, `password`): to the list, or the
/// form again with the error and the name kept.
pub async fn login(
    State(state): State<AppState>,
    session: Session,
    Form(input): Form<Credentials>,
) -> Result<Response, PageError> {
    let username = input.username.clone();
    match auth::authenticate(&state.db, input).await {
        Ok(user) => {
            auth::sign_in(&session, &user).await?;
            let welcome = format!("Welcome, {}.", user.username);
            Flash::of(session).add("success", welcome).await?;
            Ok(Redirect::to("/list").into_response())
        }
        Err(error) => account_form_again(&session, &LOGIN, &username, error).await,
    }
}

/// `GET /account/register`.
pub async fn register_page(session: Session) -> Result<Response, PageError> {
    account_page(&session, &REGISTER, "", None).await
}

/// `POST /account/register`: to the login page (registering does not log
/// in, as in the API), or the form again with the error.
pub async fn register(
    State(state): State<AppState>,
    session: Session,
    Form(input): Form<Credentials>,
) -> Result<Response, PageError> {
    let username = input.username.clone();
    match auth::create_account(&state.db, input).await {
        Ok(user) => {
            let created = format!("Account {} created: log in.", user.username);
            Flash::of(session).add("success", created).await?;
            Ok(Redirect::to("/account/login").into_response())
        }
        Err(error) => account_form_again(&session, &REGISTER, &username, error).await,
    }
}

/// `POST /account/logout`: the session is gone, and the login page next.
pub async fn logout(session: Session) -> Result<Response, PageError> {
    session.destroy().await?;
    Ok(Redirect::to("/account/login").into_response())
}

async fn list_page(
    state: &AppState,
    session: &Session,
    user: CurrentUser,
    status: StatusCode,
    title: &str,
    error: Option<String>,
) -> Result<Response, PageError> {
    let todos = state.db.list_todos(user.id).await?;
    let view = ListView {
        layout: Layout::of(session, Some(user)).await?,
        todos,
        title,
        error,
    };
    Ok(render(status, &view))
}

/// `GET /list`: my todos, and the form for a new one.
pub async fn list(
    State(state): State<AppState>,
    read: ReadOnlySession,
    session: Session,
) -> Result<Response, PageError> {
    let user = user_of(&read).await?;
    list_page(&state, &session, user, StatusCode::OK, "", None).await
}

#[derive(Deserialize)]
pub struct NewTitle {
    title: String,
}

/// `POST /list/add` (`title`): back to the list, or the list with the
/// error and the title kept.
pub async fn add(
    State(state): State<AppState>,
    read: ReadOnlySession,
    session: Session,
    Form(input): Form<NewTitle>,
) -> Result<Response, PageError> {
    let user = user_of(&read).await?;
    match valid_title(Some(&input.title)) {
        Ok(title) => {
            state.db.create_todo(user.id, &title).await?;
            Flash::of(session)
                .add("success", format!("Added {title}."))
                .await?;
            Ok(Redirect::to("/list").into_response())
        }
        Err(error) => {
            let status = error.status();
            let message = Some(error.to_string());
            list_page(&state, &session, user, status, &input.title, message).await
        }
    }
}

#[derive(Deserialize)]
pub struct Item {
    id: String,
}

impl Item {
    fn id(&self) -> Result<i64, ApiError> {
        (self.id.parse::<i64>().ok())
            .filter(|id| *id > 0)
            .ok_or_else(|| ApiError::input(StatusCode::BAD_REQUEST, "no such todo"))
    }
}

/// `POST /list/toggle` (`id`): done becomes not done and the other way.
pub async fn toggle(
    State(state): State<AppState>,
    read: ReadOnlySession,
    Form(item): Form<Item>,
) -> Result<Response, PageError> {
    let user = user_of(&read).await?;
    let id = item.id()?;
    let todo = (state.db.get_todo(user.id, id).await?).ok_or(ApiError::TodoNotFound)?;
    let changed = state
        .db
        .update_todo(user.id, id, None, Some(!todo.done))
        .await?;
    changed.ok_or(ApiError::TodoNotFound)?;
    Ok(Redirect::to("/list").into_response())
}

/// `POST /list/delete` (`id`).
pub async fn delete(
    State(state): State<AppState>,
    read: ReadOnlySession,
    session: Session,
    Form(item): Form<Item>,
) -> Result<Response, PageError> {
    let user = user_of(&read).await?;
    let id = item.id()?;
    let todo = (state.db.get_todo(user.id, id).await?).ok_or(ApiError::TodoNotFound)?;
    if !state.db.delete_todo(user.id, id).await? {
        return Err(ApiError::TodoNotFound.into());
    }
    let deleted = format!("Deleted {}.", todo.title);
    Flash::of(session).add("success", deleted).await?;
    Ok(Redirect::to("/list").into_response())
}
