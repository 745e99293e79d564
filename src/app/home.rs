//! `GET /`: the index page.

use axum::response::Html;
use axum::routing::{MethodRouter, get};

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>nene</title></head>
<body>
<h1>nene</h1>
<p>This page comes from the front controller, through nginx and FastCGI.</p>
</body>
</html>
"#;

pub fn route() -> MethodRouter {
    get(|| async { Html(PAGE) })
}
