//! NeNe's sample TODO application on nene: users, login and a per-user TODO
//! REST API, answered in a JSON envelope, on SQLite, MariaDB/MySQL or
//! PostgreSQL (one DSN setting). `main` is nene's; `build` opens the
//! database and wires the controllers (NeNe's `/{controller}/{action}`).

mod auth;
mod db;
mod envelope;
mod error;
mod pages;
mod sqlite;
mod store;
mod todos;

use axum::response::IntoResponse;
use axum::routing::{get, post};
use nene::{Application, Constants, Controller, Dispatcher, NotFoundPage, RequireCsrf};
use tower::Layer;

use crate::db::{DEFAULT_DSN, Db, DbError};
use crate::error::ApiError;

/// What every handler shares: the database pool (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
}

/// Called once by nene at start-up; an error stops it with exit status 1
/// (and its message, DSN redacted, on stderr).
async fn build(constants: Constants) -> Result<impl Application, DbError> {
    let dsn = constants
        .get("TODO_DATABASE_DSN")
        .filter(|dsn| !dsn.trim().is_empty())
        .unwrap_or(DEFAULT_DSN);
    let state = AppState {
        db: Db::open(dsn).await?,
    };
    let auth = Controller::new()
        .action("csrf", get(auth::csrf_token))
        .action("register", post(auth::register).with_state(state.clone()))
        .action("login", post(auth::login).with_state(state.clone()))
        .action("logout", post(auth::logout))
        .action("whoami", get(auth::whoami));
    let todo = Controller::new()
        .action(
            "index",
            get(todos::list)
                .post(todos::create)
                .with_state(state.clone()),
        )
        .action(
            "item",
            get(todos::show)
                .put(todos::update)
                .delete(todos::delete)
                .with_state(state.clone()),
        );
    // The HTML pages (pages.rs) on the same users and database.
    let account = Controller::new()
        .action(
            "login",
            get(pages::login_page)
                .post(pages::login)
                .with_state(state.clone()),
        )
        .action(
            "register",
            get(pages::register_page)
                .post(pages::register)
                .with_state(state.clone()),
        )
        .action("logout", post(pages::logout));
    let list = Controller::new()
        .action("index", get(pages::list).with_state(state.clone()))
        .action("add", post(pages::add).with_state(state.clone()))
        .action("toggle", post(pages::toggle).with_state(state.clone()))
        .action("delete", post(pages::delete).with_state(state));
    let dispatcher = Dispatcher::builder(NotFoundPage::load(&constants.settings().htdocs))
        .controller("auth", auth)
        .controller("todo", todo)
        .controller("account", account)
        .controller("list", list)
        .build();
    // nene's CSRF check wraps the whole dispatcher: every state-changing
    // request passes it, whichever action it is for. A refusal is the API's
    // error envelope on its paths, the error page on the pages'.
    let csrf = RequireCsrf::new().rejection(|request| {
        let path = request.uri.path();
        if path.starts_with("/account") || path.starts_with("/list") {
            pages::csrf_refused()
        } else {
            ApiError::CsrfInvalid.into_response()
        }
    });
    Ok(csrf.layer(dispatcher))
}

fn main() -> std::process::ExitCode {
    return_large_blocks_to_the_system();
    nene::run_async(build)
}

/// glibc serves an allocation over its mmap threshold from its own mapping,
/// but raises the threshold to the size of each such block freed: after
/// the first login, every Argon2 block (19 MiB) comes from an arena and
/// stays resident after it is freed (measured: 11 MiB before a burst of
/// logins, 127 MiB after). A fixed threshold keeps the behaviour of the
/// first login: the block is unmapped when the hash is done.
fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any
    // thread is started.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}
