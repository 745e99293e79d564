//! Masking passwords out of DSN text, even text that does not parse: no
//! start-up error or log line ever shows a DSN password.

use super::parse::percent_decode;

/// `text` with anything that may be a password replaced by `***`: the
/// password of `scheme://user:password@…` (everything before the last `@`
/// when there is no `user:`), and the value of query parameters named like
/// a password. Works on text that does not parse, so start-up errors never
/// print a password; it masks too much rather than too little.
pub fn redact_dsn(text: &str) -> String {
    let split = match text.find("://") {
        Some(at) => at + 3,
        None => text.find(':').map_or(0, |at| at + 1),
    };
    let (head, rest) = text.split_at(split);
    let rest = match rest.rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let masked = match userinfo.find(':') {
                Some(colon) => format!("{}:***", &userinfo[..colon]),
                None => "***".to_string(),
            };
            format!("{masked}{}", &rest[at..])
        }
        None => rest.to_string(),
    };
    let text = format!("{head}{rest}");
    match text.split_once('?') {
        Some((before, query)) => {
            // Once a secret key is seen, the rest of the query is masked
            // too: a password with an unencoded `&` (`password=abc&def`)
            // would otherwise show its tail as the next "option".
            let mut shown = Vec::new();
            for pair in query.split('&') {
                match pair.split_once('=') {
                    Some((key, _)) if is_secret_name(key) => {
                        shown.push(format!("{key}=***"));
                        break;
                    }
                    _ => shown.push(pair.to_string()),
                }
            }
            format!("{before}?{}", shown.join("&"))
        }
        None => text,
    }
}

/// Whether a query parameter is (or is a misspelling of) one whose value is secret.
pub(crate) fn is_secret_name(key: &str) -> bool {
    let key = percent_decode(key)
        .unwrap_or_else(|| key.to_string())
        .to_ascii_lowercase();
    ["pass", "pwd", "secret", "auth", "token"]
        .iter()
        .any(|word| key.contains(word))
        || strsim::jaro_winkler(&key, "password") > 0.8
}
