//! A page with a form, as the README shows it: the CSRF token as a hidden
//! field, checked by `RequireCsrf`, and a flash message after the redirect.
//! `cargo run --example notes -- dev`, then open http://127.0.0.1:8080/notes.

use axum::Form;
use axum::response::{Html, Redirect};
use axum::routing::get;
use nene::{Controller, CsrfToken, Dispatcher, Flash, NotFoundPage, RequireCsrf, SessionError};
use serde::Deserialize;

#[derive(Deserialize)]
struct Note {
    note: String,
}

/// `GET /notes`: the messages of the last POST (once), and the form.
async fn show(csrf: CsrfToken, flash: Flash) -> Result<Html<String>, SessionError> {
    let mut page = String::new();
    for (kind, message) in flash.take().await? {
        page += &format!("<p class=\"{}\">{}</p>\n", escape(&kind), escape(&message));
    }
    page += &format!(
        r#"<form method="post">{}<input name="note"><button>Save</button></form>"#,
        csrf.hidden_field()
    );
    Ok(Html(page))
}

/// `POST /notes`: `RequireCsrf` has checked the token; back to the form.
async fn save(flash: Flash, Form(form): Form<Note>) -> Result<Redirect, SessionError> {
    flash
        .add("success", format!("Saved: {}", form.note))
        .await?;
    Ok(Redirect::to("/notes"))
}

/// What `htmlspecialchars` does: every value that is not the page's own.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn main() -> std::process::ExitCode {
    nene::run(|constants| {
        let notes = get(show).post(save).layer(RequireCsrf::new());
        Dispatcher::builder(NotFoundPage::load(&constants.settings().htdocs))
            .controller("notes", Controller::new().action("index", notes))
            .build()
    })
}
