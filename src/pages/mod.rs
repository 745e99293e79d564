//! What a site of server-rendered pages needs next to [`Session`](crate::Session),
//! as PHP frameworks ship it: a CSRF token bound to the session
//! ([`CsrfToken`] for the form, [`RequireCsrf`] to check every
//! state-changing request) and flash messages ([`Flash`]: set before a
//! redirect, read once on the next page).

mod csrf;
mod flash;

pub use csrf::{CsrfChecked, CsrfToken, RequireCsrf};
pub use flash::Flash;
