//! `/notes`: a page with a form, as a PHP site has them: the form carries
//! the session's CSRF token as a hidden field, a POST with a missing or
//! wrong token is refused 403 before the handler ([`RequireCsrf`]), a valid
//! one redirects back (POST/redirect/GET) with a flash message, and an
//! empty note shows the form again with the error. Works without
//! JavaScript.

use axum::Form;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get};
use serde::Deserialize;

use nene::{CsrfToken, Flash, RequireCsrf, SessionError};

use super::html::escape;

#[derive(Deserialize)]
struct Note {
    note: String,
}

/// `GET /notes`: the form, and the messages of the last POST.
async fn show(csrf: CsrfToken, flash: Flash) -> Result<Html<String>, SessionError> {
    let messages = flash.take().await?;
    Ok(page(&csrf, &messages, "", None))
}

/// `POST /notes` (urlencoded `note`, with `_token`): back to the form.
async fn save(
    csrf: CsrfToken,
    flash: Flash,
    Form(form): Form<Note>,
) -> Result<Response, SessionError> {
    let note = form.note.trim();
    if note.is_empty() {
        let html = page(&csrf, &[], &form.note, Some("A note cannot be empty."));
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, html).into_response());
    }
    flash.add("success", format!("Saved: {note}")).await?;
    Ok(Redirect::to("/notes").into_response())
}

fn page(
    csrf: &CsrfToken,
    messages: &[(String, String)],
    input: &str,
    error: Option<&str>,
) -> Html<String> {
    let messages: String = messages
        .iter()
        .map(|(kind, text)| format!("<p class=\"{}\">{}</p>\n", escape(kind), escape(text)))
        .collect();
    let error = error.map_or(String::new(), |error| {
        format!("<p class=\"error\">{}</p>\n", escape(error))
    });
    Html(format!(
        r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Notes</title></head>
<body>
<h1>Notes</h1>
{messages}{error}<form method="post" action="/notes">
{token}
<input name="note" value="{input}">
<button>Save</button>
</form>
</body>
</html>
"#,
        token = csrf.hidden_field(),
        input = escape(input),
    ))
}

pub fn route() -> MethodRouter {
    get(show).post(save).layer(RequireCsrf::new())
}
