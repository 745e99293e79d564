//! The example application: what the tests and the compose stack run, and a
//! template for a real one. `GET /` is an HTML page, `/health` a JSON probe.

mod health;
mod home;

use std::path::Path;

use crate::dispatch::{Controller, Dispatcher, NotFoundPage};

/// The example application's dispatcher, with its 404 page from `htdocs`.
pub fn example_app(htdocs: &Path) -> Dispatcher {
    Dispatcher::builder(NotFoundPage::load(htdocs))
        .controller("index", Controller::new().action("index", home::route()))
        .controller("health", Controller::new().action("index", health::route()))
        .build()
}
