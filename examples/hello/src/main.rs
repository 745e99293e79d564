//! The smallest application on nene: `GET /hello` greets with the site's
//! title (a constant from ini/site.ini) and counts visits in the session.

use axum::routing::get;
use nene::{Constants, Controller, Dispatcher, NotFoundPage, Session, SessionError};

/// `GET /hello` (controller `hello`, action `index`).
async fn hello(session: Session, constants: Constants) -> Result<String, SessionError> {
    let visits = session.get::<u64>("visits").await?.unwrap_or(0) + 1;
    session.insert("visits", visits).await?;
    let site = constants.get("SITE_TITLE").unwrap_or("nene");
    Ok(format!("Hello from {site}! Visit number {visits}.\n"))
}

fn main() -> std::process::ExitCode {
    nene::run(|constants| {
        Dispatcher::builder(NotFoundPage::load(&constants.settings().htdocs))
            .controller("hello", Controller::new().action("index", get(hello)))
            .build()
    })
}
