//! `GET /`: the index page, titled with the SITE_TITLE constant from site.ini.

use axum::response::Html;
use axum::routing::{MethodRouter, get};

use nene::Constants;

use super::html::escape;

async fn home(constants: Constants) -> Html<String> {
    let title = escape(constants.get("SITE_TITLE").unwrap_or("nene"));
    Html(format!(
        r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{title}</title></head>
<body>
<h1>{title}</h1>
<p>This page comes from the application, through nene's front controller.</p>
</body>
</html>
"#
    ))
}

pub fn route() -> MethodRouter {
    get(home)
}
