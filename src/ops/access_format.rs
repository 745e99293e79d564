//! PHP-FPM's `access.format`: `%R - %u %t "%m %r%Q%q" %s %{mili}d` and the
//! other codes FPM documents, parsed once at start-up and rendered per request.
//!
//! Codes: `%C` (CPU, `-`), `%d` (duration; `%{seconds}d` default,
//! `%{mili}d`/`%{milliseconds}d`, `%{micro}d`/`%{microseconds}d`), `%{VAR}e`
//! (a CGI param), `%f` (SCRIPT_FILENAME), `%{Header}i` (request header),
//! `%l` (CONTENT_LENGTH), `%m` (method), `%M` (memory, `-`), `%n` (pool:
//! `nene`), `%{Header}o` (response header), `%p` (pid), `%q` (query),
//! `%Q` (`?` when there is a query), `%r` (path, no query), `%R` (remote
//! address), `%s` (status), `%t`/`%T` (time, `%d/%b/%Y:%H:%M:%S %z`), `%u`
//! (REMOTE_USER), `%%`; and nene's own `%X`, the request's trace id (32
//! hex digits, as `traceparent` carries it; `-` when the request is not
//! traced), to find a logged request in the trace collector.

use std::time::Duration;

use http::HeaderMap;

use crate::fastcgi::CgiParams;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Literal(String),
    Duration(DurationUnit),
    Param(String),
    RequestHeader(String),
    ResponseHeader(String),
    Method,
    Path,
    Query,
    QueryMark,
    Remote,
    Status,
    Time,
    Pid,
    Pool,
    /// CPU and memory: FPM's per-process figures have no meaning here.
    Unavailable,
    ContentLength,
    ScriptFilename,
    RemoteUser,
    TraceId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DurationUnit {
    Seconds,
    Millis,
    Micros,
}

/// A request target as sent (`REQUEST_URI`) split into its path and query:
/// what every access-log line shows (decision 0013), as PHP-FPM's `%r`
/// and `%q` do, whether the application answered or nene refused.
pub(super) fn split_target(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    }
}

/// A parsed `access.format`.
#[derive(Clone, Debug)]
pub struct AccessFormat {
    tokens: Vec<Token>,
}

/// An `access.format` nene cannot render; the text says which code.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AccessFormatError(String);

/// What one request looked like, for rendering a line.
pub struct AccessRecord<'a> {
    /// `%m`.
    pub method: &'a str,
    /// `%r`: the path without the query.
    pub path: &'a str,
    /// `%q` (and `%Q` when present).
    pub query: Option<&'a str>,
    /// `%s`.
    pub status: u16,
    /// `%d`: from the request's arrival at the operations layer to its answer.
    pub duration: Duration,
    /// The CGI params for `%R`, `%u`, `%f`, `%l` and `%{VAR}e`; `None` for a
    /// request that did not come through a server.
    pub params: Option<&'a CgiParams>,
    /// `%{Header}i`.
    pub request_headers: &'a HeaderMap,
    /// `%{Header}o`.
    pub response_headers: &'a HeaderMap,
    /// `%X`: the trace id, when the request is traced.
    pub trace_id: Option<&'a str>,
}

impl AccessFormat {
    /// Parses PHP-FPM's `access.format` syntax; an unknown code is an error.
    pub fn parse(format: &str) -> Result<Self, AccessFormatError> {
        let mut tokens = Vec::new();
        let mut literal = String::new();
        let mut chars = format.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                literal.push(c);
                continue;
            }
            let argument = if chars.peek() == Some(&'{') {
                chars.next();
                let mut argument = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => argument.push(c),
                        None => return Err(AccessFormatError("a %{ without its closing }".into())),
                    }
                }
                Some(argument)
            } else {
                None
            };
            let code = chars
                .next()
                .ok_or_else(|| AccessFormatError("a lone % at the end".into()))?;
            if code == '%' {
                literal.push('%');
                continue;
            }
            if !literal.is_empty() {
                tokens.push(Token::Literal(one_line(std::mem::take(&mut literal))));
            }
            tokens.push(token(code, argument)?);
        }
        if !literal.is_empty() {
            tokens.push(Token::Literal(one_line(literal)));
        }
        Ok(Self { tokens })
    }

    /// One access-log line for `record`, never spanning two lines: every
    /// value is escaped and the format's own line breaks were made spaces
    /// when it was parsed. Written into one string, without a temporary
    /// string per value (the default format's line cost five allocations).
    pub fn render(&self, record: &AccessRecord<'_>) -> String {
        let mut line = String::with_capacity(128);
        for token in &self.tokens {
            match token {
                Token::Literal(text) => line.push_str(text),
                Token::Duration(unit) => {
                    // Three decimals in integers, rounded half up: a float
                    // formatted with a precision cost more than the rest
                    // of the line.
                    let nanos = record.duration.as_nanos();
                    match unit {
                        DurationUnit::Seconds => {
                            push_thousandths((nanos + 500_000) / 1_000_000, &mut line)
                        }
                        DurationUnit::Millis => push_thousandths((nanos + 500) / 1000, &mut line),
                        DurationUnit::Micros => push_number(record.duration.as_micros(), &mut line),
                    }
                }
                Token::Param(name) => push_escaped(&mut line, param(record, name)),
                Token::RequestHeader(name) => {
                    push_escaped(&mut line, header(record.request_headers, name))
                }
                Token::ResponseHeader(name) => {
                    push_escaped(&mut line, header(record.response_headers, name))
                }
                Token::Method => push_escaped(&mut line, record.method),
                Token::Path => push_escaped(&mut line, record.path),
                Token::Query => push_escaped(&mut line, record.query.unwrap_or("")),
                Token::QueryMark => {
                    if record.query.is_some_and(|q| !q.is_empty()) {
                        line.push('?');
                    }
                }
                Token::Remote => push_escaped(&mut line, param(record, "REMOTE_ADDR")),
                Token::Status => push_number(record.status, &mut line),
                Token::Time => push_now(&mut line),
                Token::Pid => push_number(std::process::id(), &mut line),
                Token::Pool => line.push_str("nene"),
                Token::Unavailable => line.push('-'),
                Token::ContentLength => push_escaped(&mut line, param(record, "CONTENT_LENGTH")),
                Token::ScriptFilename => push_escaped(&mut line, param(record, "SCRIPT_FILENAME")),
                Token::RemoteUser => push_escaped(&mut line, param(record, "REMOTE_USER")),
                Token::TraceId => line.push_str(record.trace_id.unwrap_or("-")),
            }
        }
        line
    }
}

fn token(code: char, argument: Option<String>) -> Result<Token, AccessFormatError> {
    let needs =
        |what: &str| AccessFormatError(format!("%{code} needs an argument: %{{{what}}}{code}"));
    Ok(match code {
        'C' | 'M' => Token::Unavailable,
        'd' => Token::Duration(match argument.as_deref() {
            None | Some("seconds") => DurationUnit::Seconds,
            Some("mili") | Some("milli") | Some("miliseconds") | Some("milliseconds") => {
                DurationUnit::Millis
            }
            Some("micro") | Some("microseconds") => DurationUnit::Micros,
            Some(other) => {
                return Err(AccessFormatError(format!(
                    "%{{{other}}}d: the unit is seconds, mili or micro"
                )));
            }
        }),
        'e' => Token::Param(argument.ok_or_else(|| needs("VARIABLE"))?),
        'i' => Token::RequestHeader(argument.ok_or_else(|| needs("Header-Name"))?),
        'o' => Token::ResponseHeader(argument.ok_or_else(|| needs("Header-Name"))?),
        'f' => Token::ScriptFilename,
        'l' => Token::ContentLength,
        'm' => Token::Method,
        'n' => Token::Pool,
        'p' => Token::Pid,
        'q' => Token::Query,
        'Q' => Token::QueryMark,
        'r' => Token::Path,
        'R' => Token::Remote,
        's' => Token::Status,
        't' | 'T' => {
            if argument.is_some() {
                return Err(AccessFormatError(format!(
                    "%{{…}}{code}: custom time formats are not supported; %{code} prints %d/%b/%Y:%H:%M:%S %z"
                )));
            }
            Token::Time
        }
        'u' => Token::RemoteUser,
        'X' => Token::TraceId,
        other => {
            return Err(AccessFormatError(format!(
                "%{other} is not a format code (codes: C d e f i l m M n o p q Q r R s t T u %)"
            )));
        }
    })
}

/// Appends `number` in decimal.
fn push_number(number: impl itoa::Integer, line: &mut String) {
    line.push_str(itoa::Buffer::new().format(number));
}

/// `thousandths` as a number with three decimals (`1500` → `1.500`).
fn push_thousandths(thousandths: u128, line: &mut String) {
    push_number(thousandths / 1000, line);
    let decimals = thousandths % 1000;
    line.push('.');
    for digit in [decimals / 100, decimals / 10 % 10, decimals % 10] {
        line.push(char::from(b'0' + digit as u8));
    }
}

/// A line break in the format itself becomes a space: one request is one
/// line.
fn one_line(literal: String) -> String {
    literal.replace(['\r', '\n'], " ")
}

/// Appends a value a client controls, with control bytes, DEL, `"` and
/// `\` written as `\xHH` (as nginx escapes its access log): no value can
/// end a quoted field, forge a field or a line, or send terminal escapes to
/// whoever reads the log. Runs of plain bytes are copied whole (all of a
/// value, nearly always).
fn push_escaped(line: &mut String, value: &str) {
    let mut plain = 0;
    for (at, byte) in value.bytes().enumerate() {
        if byte < b' ' || byte == b'\x7f' || byte == b'"' || byte == b'\\' {
            line.push_str(&value[plain..at]);
            line.push_str("\\x");
            line.push(char::from(HEX[usize::from(byte >> 4)]));
            line.push(char::from(HEX[usize::from(byte & 0xf)]));
            plain = at + 1;
        }
    }
    line.push_str(&value[plain..]);
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn param<'a>(record: &'a AccessRecord<'_>, name: &str) -> &'a str {
    record
        .params
        .and_then(|p| p.get_str(name))
        .filter(|v| !v.is_empty())
        .unwrap_or("-")
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
}

/// `%t`: `07/Dec/2026:21:03:11 +0000`, as PHP-FPM writes it.
const TIME_FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
    "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
);

/// Appends the time as `%t` shows it (`07/Dec/2026:21:03:11 +0000`).
/// Formatted once a second per thread, as nginx caches its time strings:
/// formatting a date cost about as much as the rest of the line.
fn push_now(line: &mut String) {
    use std::cell::RefCell;
    use time::OffsetDateTime;
    thread_local! {
        /// The second last formatted on this thread, and its text.
        static LAST: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
    }
    let now = std::time::SystemTime::now();
    let unix_second = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() as i64);
    LAST.with_borrow_mut(|(second, text)| {
        if *second != unix_second {
            *second = unix_second;
            *text = OffsetDateTime::from(now)
                .format(TIME_FORMAT)
                .unwrap_or_default();
        }
        line.push_str(text);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn the_trace_id_is_logged_when_there_is_one() {
        let format = AccessFormat::parse("%s %X").unwrap();
        let no_headers = HeaderMap::new();
        let record = |trace_id| AccessRecord {
            method: "GET",
            path: "/",
            query: None,
            status: 200,
            duration: Duration::ZERO,
            params: None,
            request_headers: &no_headers,
            response_headers: &no_headers,
            trace_id,
        };
        let id = "0af7651916cd43dd8448eb211c80319c";
        assert_eq!(format.render(&record(Some(id))), format!("200 {id}"));
        assert_eq!(format.render(&record(None)), "200 -");
    }

    #[test]
    fn the_default_format_renders_like_php_fpm() {
        let format =
            AccessFormat::parse("%R - %u %t \"%m %r%Q%q\" %s %{mili}d %{Content-Type}o %%")
                .unwrap();
        let params = CgiParams::new(vec![(Bytes::from("REMOTE_ADDR"), Bytes::from("10.0.0.7"))]);
        let mut response_headers = HeaderMap::new();
        response_headers.insert("content-type", "application/json".parse().unwrap());
        let line = format.render(&AccessRecord {
            method: "GET",
            path: "/session/counter",
            query: Some("a=1"),
            status: 200,
            duration: Duration::from_micros(1500),
            params: Some(&params),
            request_headers: &HeaderMap::new(),
            response_headers: &response_headers,
            trace_id: None,
        });
        assert!(line.starts_with("10.0.0.7 - - "), "{line}");
        assert!(
            line.ends_with("\"GET /session/counter?a=1\" 200 1.500 application/json %"),
            "{line}"
        );
    }

    #[test]
    fn unknown_codes_are_refused() {
        assert!(AccessFormat::parse("%Z").is_err());
        assert!(AccessFormat::parse("%{X").is_err());
        assert!(AccessFormat::parse("%e").is_err());
        assert!(AccessFormat::parse("%{hours}d").is_err());
    }

    #[test]
    fn client_values_cannot_forge_fields_or_send_terminal_escapes() {
        let format = AccessFormat::parse("\"%u\" \"%{HTTP_X}e\" %s").unwrap();
        let params = CgiParams::new(vec![
            (Bytes::from("REMOTE_USER"), Bytes::from("eve\" 200 \"admin")),
            (
                Bytes::from("HTTP_X"),
                Bytes::from("\x1b[31mred\0nul\\back\x7f"),
            ),
        ]);
        let line = format.render(&AccessRecord {
            method: "GET",
            path: "/",
            query: None,
            status: 404,
            duration: Duration::ZERO,
            params: Some(&params),
            request_headers: &HeaderMap::new(),
            response_headers: &HeaderMap::new(),
            trace_id: None,
        });
        assert_eq!(
            line,
            r#""eve\x22 200 \x22admin" "\x1B[31mred\x00nul\x5Cback\x7F" 404"#
        );
    }

    #[test]
    fn a_line_never_spans_two_lines() {
        let line = line_of("%r", "/a\r\nforged line", Duration::ZERO);
        assert_eq!(line, "/a\\x0D\\x0Aforged line");
    }

    /// `format` rendered for a GET of `path` answered 200 after `duration`.
    fn line_of(format: &str, path: &str, duration: Duration) -> String {
        AccessFormat::parse(format).unwrap().render(&AccessRecord {
            method: "GET",
            path,
            query: None,
            status: 200,
            duration,
            params: None,
            request_headers: &HeaderMap::new(),
            response_headers: &HeaderMap::new(),
            trace_id: None,
        })
    }

    #[test]
    fn a_line_break_in_the_format_is_a_space_and_letters_stay_as_sent() {
        assert_eq!(
            line_of("%s\r\n%r", "/café/été", Duration::ZERO),
            "200  /café/été"
        );
    }

    #[test]
    fn the_time_is_this_second_on_every_line() {
        use time::OffsetDateTime;
        let shown = |at: OffsetDateTime| at.format(TIME_FORMAT).unwrap();
        for round in 0..3 {
            if round > 0 {
                std::thread::sleep(Duration::from_millis(600));
            }
            let before = shown(OffsetDateTime::now_utc());
            let line = line_of("[%t]", "/", Duration::ZERO);
            let after = shown(OffsetDateTime::now_utc());
            assert!(
                line == format!("[{before}]") || line == format!("[{after}]"),
                "{line} is not between {before} and {after}"
            );
            // PHP-FPM's shape, `[08/Dec/2026:03:52:01 +0000]`.
            let shape: String = (line.chars())
                .map(|c| match c {
                    '0'..='9' => '9',
                    'A'..='Z' | 'a'..='z' => 'a',
                    other => other,
                })
                .collect();
            assert_eq!(shape, "[99/aaa/9999:99:99:99 +9999]", "{line}");
        }
    }

    #[test]
    fn durations_have_three_decimals_rounded_half_up() {
        for (nanos, shown) in [
            (0, "0.000 0.000 0"),
            (1_500_000, "0.002 1.500 1500"),
            (1_499_499, "0.001 1.499 1499"),
            (1_499_500, "0.001 1.500 1499"),
            (2_345_678_901, "2.346 2345.679 2345678"),
            (999_999_999, "1.000 1000.000 999999"),
        ] {
            let line = line_of("%d %{mili}d %{micro}d", "/", Duration::from_nanos(nanos));
            assert_eq!(line, shown, "{nanos} ns");
        }
    }
}
