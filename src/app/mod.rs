//! The example application: what the tests and the compose stack run, and a
//! template for a real one. `GET /` is an HTML page, `/health` a JSON probe,
//! `/session/*` shows sessions.

mod health;
mod home;
mod session_routes;

use std::path::Path;

use crate::dispatch::{Controller, Dispatcher, NotFoundPage};

/// The example application's dispatcher, with its 404 page from `htdocs`
/// and `layers_num` leading path segments skipped.
pub fn example_app(htdocs: &Path, layers_num: usize) -> Dispatcher {
    Dispatcher::builder(NotFoundPage::load(htdocs))
        .controller("index", Controller::new().action("index", home::route()))
        .controller("health", Controller::new().action("index", health::route()))
        .controller(
            "session",
            Controller::new()
                .action("counter", session_routes::counter_route())
                .action("login", session_routes::login_route())
                .action("whoami", session_routes::whoami_route())
                .action("logout", session_routes::logout_route()),
        )
        .skip_segments(layers_num)
        .build()
}
