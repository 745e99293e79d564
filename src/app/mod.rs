//! The example application: what the tests and the compose stack run, and a
//! template for a real one. `GET /` is an HTML page, `/health` a JSON probe,
//! `/notes` a form with a CSRF token and a flash message, `/session/*` shows
//! sessions, `/upload/*` takes large bodies.

mod health;
mod home;
mod html;
mod notes;
mod session_routes;
mod upload;

use nene::{Constants, Controller, Dispatcher, NotFoundPage};

/// The example application's dispatcher, with its 404 page from htdocs
/// (`server.layers_num` leading path segments are skipped by the
/// dispatcher itself).
pub fn example_app(constants: &Constants) -> Dispatcher {
    let settings = constants.settings();
    Dispatcher::builder(NotFoundPage::load(&settings.htdocs))
        .controller("index", Controller::new().action("index", home::route()))
        .controller("health", Controller::new().action("index", health::route()))
        .controller("notes", Controller::new().action("index", notes::route()))
        .controller(
            "session",
            Controller::new()
                .action("counter", session_routes::counter_route())
                .action("login", session_routes::login_route())
                .action("whoami", session_routes::whoami_route())
                .action("logout", session_routes::logout_route()),
        )
        .controller(
            "upload",
            Controller::new()
                .action("index", upload::form_route())
                .action("raw", upload::raw_route()),
        )
        .build()
}
