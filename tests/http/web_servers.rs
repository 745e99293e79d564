//! nene behind each web server PHP sites run on, each configured the way its
//! own documentation configures PHP-FPM (the files in `deploy/`): nginx with
//! Debian's stock PHP snippet (and nene's own nginx template), Apache 2.4
//! with `ProxyPass` and with a `.php` handler plus `FallbackResource`,
//! lighttpd and Caddy. The same flows run against every server, like a
//! contract suite: pages, 404, static files, sessions, bodies (1 MB, chunked,
//! over nene's bound), HEAD, PHP's front-controller URLs, ping and status,
//! and whether FastCGI connections are kept. Where the servers differ (the
//! CONTENT_LENGTH of a chunked upload, PATH_INFO, connection reuse) a
//! server's [`Differences`] says how, and the flows check that.

use std::path::Path;

use nene_test_support::apache::{Apache, ApacheSite};
use nene_test_support::caddy::Caddy;
use nene_test_support::lighttpd::Lighttpd;
use nene_test_support::web_server::{PHP_SECRET, WebServer, php_style_docroot};
use nene_test_support::{Nene, Nginx, fcgi_client, free_port, http_client, wait_for_log};

/// nene's body bound here: above the 1 MB upload, below the 3 MB one.
const MAX_BODY_BYTES: &str = "2000000";
const ONE_MB: usize = 1_000_000;
const OVER_THE_BOUND: usize = 3_000_000;

/// nene's access log lines in these tests: the CGI params the servers
/// differ in, one `name=value` each (`-` for a param not sent), and a
/// request header.
const ACCESS_FORMAT: &str = "%m %{REQUEST_URI}e %s sn=%{SCRIPT_NAME}e pi=%{PATH_INFO}e \
                             host=%{Host}i ra=%{REMOTE_ADDR}e cl=%{CONTENT_LENGTH}e";

/// What nene receives as CONTENT_LENGTH for a chunked upload.
#[derive(Clone, Copy, Debug)]
enum ChunkedLength {
    /// No CONTENT_LENGTH: the body streams, the empty STDIN record ends it.
    Absent,
    /// `-1`, "length unknown": streamed likewise.
    Unknown,
    /// The server read the whole body first and sends its length.
    Counted,
}

/// How one server's FastCGI requests differ from the others' (from
/// [`Differences::TYPICAL`]).
struct Differences {
    chunked_length: ChunkedLength,
    /// FastCGI connections stay open between requests.
    keeps_connections: bool,
    /// `sn=… pi=…` in nene's log for `GET /index.php/health`.
    index_php_health: &'static str,
    /// The status of a bodyless POST sent without a Content-Length.
    post_without_length: u16,
    /// The status of `/session%2Fcounter`: nene's 400, or the server's own
    /// answer before nene sees it.
    encoded_slash: u16,
}

impl Differences {
    /// What most of the servers do: the whole chunked body counted, a
    /// FastCGI connection per request, `/index.php/health` split into
    /// SCRIPT_NAME and PATH_INFO, a bodyless POST served, and an encoded
    /// slash left to nene (its 400).
    const TYPICAL: Differences = Differences {
        chunked_length: ChunkedLength::Counted,
        keeps_connections: false,
        index_php_health: "sn=/index.php pi=/health ",
        post_without_length: 200,
        encoded_slash: 400,
    };

    /// Apache 2.4 with `mod_proxy_fcgi`, either way it is configured.
    const APACHE: Differences = Differences {
        chunked_length: ChunkedLength::Absent,
        keeps_connections: true,
        // Apache refuses it itself (AllowEncodedSlashes Off).
        encoded_slash: 404,
        ..Differences::TYPICAL
    };
}

/// A web server in front of its own nene, and what it does differently.
/// Fields drop in order: the web server stops before nene does.
struct Site {
    name: &'static str,
    server: Box<dyn WebServer>,
    nene: Nene,
    _docroot: tempfile::TempDir,
    differences: Differences,
}

impl Site {
    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// `GET path` through the web server, on a client of its own.
    async fn get(&self, path: &str) -> reqwest::Response {
        nene_test_support::get(&self.url(path)).await
    }

    /// The body of `GET path`, which must answer 200.
    async fn text_of(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}: {}", self.logs());
        response.text().await.unwrap()
    }

    /// `POST path` with `body` through the web server, on a client of its own.
    async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        nene_test_support::post(&self.url(path), body).await
    }

    /// Both logs, for a failed assertion.
    fn logs(&self) -> String {
        format!(
            "{} error log:\n{}\nnene's log:\n{}",
            self.name,
            self.server.error_log(),
            self.nene.log_text()
        )
    }

    /// nene's first access log line that starts with `start`, once it is
    /// written.
    fn access_line(&self, start: &str) -> String {
        let log = wait_for_log(&self.nene.log, start);
        log.lines()
            .find(|line| line.starts_with(start))
            .unwrap_or_else(|| panic!("{}: no line starts with {start:?}:\n{log}", self.name))
            .to_string()
    }
}

fn start_nene() -> Nene {
    Nene::start(&[
        ("NENE_SERVER__MAX_BODY_BYTES", MAX_BODY_BYTES),
        ("NENE_ACCESS__FORMAT", ACCESS_FORMAT),
    ])
}

fn values(pairs: &[(&str, String)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.clone()))
        .collect()
}

/// The flows, in order, against one server.
async fn contract(site: Site) {
    pages(&site).await;
    unknown_route(&site).await;
    static_file(&site).await;
    session_counter(&site).await;
    login_whoami_logout(&site).await;
    one_megabyte_body(&site).await;
    chunked_body(&site).await;
    bodies_over_the_bound(&site).await;
    head(&site).await;
    php_front_controller_urls(&site).await;
    encoded_slash(&site).await;
    ping_and_status(&site).await;
    connections(&site).await;
    // Last: by now nene has logged every request the flows sent it.
    static_files_never_reach_nene(&site);
}

async fn pages(site: &Site) {
    assert!(
        site.text_of("/").await.contains("<h1>nene example</h1>"),
        "{}",
        site.name
    );
    let health = site.get("/health").await;
    assert_eq!(health.status(), 200, "GET /health: {}", site.logs());
    assert_eq!(health.headers()["content-type"], "application/json");
    assert_eq!(health.text().await.unwrap(), r#"{"status":"ok"}"#);
}

async fn unknown_route(site: &Site) {
    let missing = site.get("/no/such/thing").await;
    assert_eq!(missing.status(), 404, "{}", site.logs());
    // nene's 404 page, passed through (no server intercepts it).
    let page = std::fs::read_to_string(nene_test_support::htdocs().join("404.html")).unwrap();
    assert_eq!(missing.text().await.unwrap(), page, "{}", site.name);
}

async fn static_file(site: &Site) {
    let robots = site.get("/robots.txt").await;
    assert_eq!(robots.status(), 200, "{}", site.logs());
    assert!(
        robots.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
        "{}: {:?}",
        site.name,
        robots.headers()
    );
    let file = std::fs::read_to_string(nene_test_support::htdocs().join("robots.txt")).unwrap();
    assert_eq!(robots.text().await.unwrap(), file, "{}", site.name);
}

fn static_files_never_reach_nene(site: &Site) {
    let log = site.nene.log_text();
    assert!(
        !log.contains("robots.txt"),
        "{} should serve static files itself:\n{log}",
        site.name
    );
}

/// The `NAME=value` of the session cookie a response set, if any.
fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with("NENESESSID="))
        .map(|value| value.split(';').next().unwrap().to_string())
}

async fn session_counter(site: &Site) {
    let client = http_client();
    let first = site.get("/session/counter").await;
    assert_eq!(first.status(), 200, "{}", site.logs());
    let cookie = session_cookie(&first).unwrap_or_else(|| panic!("{}: no cookie", site.name));
    assert_eq!(first.text().await.unwrap(), r#"{"count":1}"#);
    let second = client
        .get(site.url("/session/counter"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        second.text().await.unwrap(),
        r#"{"count":2}"#,
        "{}",
        site.name
    );
}

async fn login_whoami_logout(site: &Site) {
    let client = http_client();
    let login = client
        .post(site.url("/session/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("user=alice")
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200, "{}", site.logs());
    let cookie = session_cookie(&login).unwrap_or_else(|| panic!("{}: no cookie", site.name));
    assert_eq!(login.text().await.unwrap(), r#"{"user":"alice"}"#);
    let whoami = |cookie: String| {
        let request = client
            .get(site.url("/session/whoami"))
            .header("cookie", cookie);
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    assert_eq!(
        whoami(cookie.clone()).await,
        r#"{"user":"alice"}"#,
        "{}",
        site.name
    );
    // A POST with no body and no Content-Length (curl -X POST does that):
    // lighttpd wants the length and answers 411 itself.
    let without_length = client
        .post(site.url("/session/logout"))
        .header("cookie", "NENESESSID=not-this-one")
        .send()
        .await
        .unwrap();
    assert_eq!(
        without_length.status(),
        site.differences.post_without_length,
        "{}",
        site.logs()
    );
    // As a browser's form sends it.
    let logout = client
        .post(site.url("/session/logout"))
        .header("cookie", &cookie)
        .header("content-length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 200, "{}", site.logs());
    assert_eq!(logout.text().await.unwrap(), r#"{"status":"logged out"}"#);
    assert_eq!(whoami(cookie).await, r#"{"user":null}"#, "{}", site.name);
}

/// Bytes that are not all alike, so a reordered or dropped chunk shows.
fn body_of(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// `POST /upload/raw` answers the length and SHA-1 of the body it read.
fn raw_upload_answer(body: &[u8]) -> String {
    format!(
        r#"{{"bytes":{},"sha1":"{}"}}"#,
        body.len(),
        crate::sha1_hex(body)
    )
}

/// `body` as a stream of 64 KiB chunks: reqwest sends it with
/// `Transfer-Encoding: chunked` and no Content-Length.
fn chunked(body: &[u8]) -> reqwest::Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    reqwest::Body::wrap_stream(futures::stream::iter(chunks))
}

/// Posts 1 MB to `/upload/raw?flow={flow}`, chunked or with its length,
/// checks the answer, and returns nene's access log line for it.
async fn upload_one_megabyte(site: &Site, flow: &str, send_chunked: bool) -> String {
    let body = body_of(ONE_MB);
    let path = format!("/upload/raw?flow={flow}");
    let sent = if send_chunked {
        chunked(&body)
    } else {
        body.clone().into()
    };
    let response = site.post(&path, sent).await;
    assert_eq!(response.status(), 200, "{}", site.logs());
    assert_eq!(response.text().await.unwrap(), raw_upload_answer(&body));
    site.access_line(&format!("POST {path} 200"))
}

async fn one_megabyte_body(site: &Site) {
    let line = upload_one_megabyte(site, "length", false).await;
    assert!(
        line.ends_with(&format!(" cl={ONE_MB}")),
        "{}: {line}",
        site.name
    );
}

async fn chunked_body(site: &Site) {
    let line = upload_one_megabyte(site, "chunked", true).await;
    let expected = match site.differences.chunked_length {
        ChunkedLength::Absent => "cl=-".to_string(),
        ChunkedLength::Unknown => "cl=-1".to_string(),
        ChunkedLength::Counted => format!("cl={ONE_MB}"),
    };
    assert!(
        line.ends_with(&format!(" {expected}")),
        "{}: a chunked upload should reach nene with {expected}: {line}",
        site.name
    );
}

/// nene's own 413 for a body over `server.max_body_bytes`, whether the
/// length was declared or not; the server's own limits are set above it.
async fn bodies_over_the_bound(site: &Site) {
    let body = body_of(OVER_THE_BOUND);
    for (how, sent) in [
        ("declared", body.clone().into()),
        ("streamed", chunked(&body)),
    ] {
        let refused = site.post("/upload/raw", sent).await;
        assert_eq!(refused.status(), 413, "{how}: {}", site.logs());
        assert_eq!(
            refused.text().await.unwrap(),
            "request body too large\n",
            "{how}"
        );
    }
    let next = site.get("/health").await;
    assert_eq!(next.status(), 200, "{}", site.logs());
}

async fn head(site: &Site) {
    let response = http_client()
        .head(site.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", site.logs());
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(response.bytes().await.unwrap().is_empty());
}

/// A PHP site's URLs keep working: nene routes on REQUEST_URI, which every
/// server sends as the client wrote it, whatever it did to SCRIPT_NAME and
/// PATH_INFO.
async fn php_front_controller_urls(site: &Site) {
    let client = http_client();
    let get = |path: &'static str| {
        let request = client.get(site.url(path));
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    assert_eq!(
        get("/index.php/health").await,
        (200, r#"{"status":"ok"}"#.to_string()),
        "{}",
        site.logs()
    );
    for path in ["/index.php", "/index.php?x=1"] {
        let (status, body) = get(path).await;
        assert_eq!(status, 200, "{path}: {}", site.logs());
        assert!(
            body.contains("<h1>nene example</h1>"),
            "{}: {path}",
            site.name
        );
    }
    // Any other .php file in the document root (a PHP site's, while it
    // moves over) goes to nene too, never out as a file with its source.
    let (status, body) = get("/config.php").await;
    assert!(
        !body.contains(PHP_SECRET),
        "{}: /config.php was served as a file ({status}): {body}",
        site.name
    );
    assert_eq!(status, 404, "{}: /config.php: {}", site.name, site.logs());
    let line = site.access_line("GET /index.php/health 200");
    assert!(
        line.contains(site.differences.index_php_health),
        "{}: expected {} in {line}",
        site.name,
        site.differences.index_php_health
    );
}

/// An encoded slash could walk around an application's prefix check; it
/// never reaches a route.
async fn encoded_slash(site: &Site) {
    let response = site.get("/session%2Fcounter").await;
    assert_eq!(
        response.status(),
        site.differences.encoded_slash,
        "{}",
        site.logs()
    );
}

async fn ping_and_status(site: &Site) {
    assert!(site.text_of("/ping").await.starts_with("pong"));
    // pm.status_allow is 127.0.0.1 and ::1: every server sends the client's
    // address, here loopback, as REMOTE_ADDR.
    assert!(
        site.text_of("/status").await.contains("accepted conn:"),
        "{}",
        site.name
    );
    let line = site.access_line("GET /status 200");
    assert!(line.contains(" ra=127.0.0.1 "), "{}: {line}", site.name);
    assert!(line.contains(" host=127.0.0.1:"), "{}: {line}", site.name);
}

/// nene's count of accepted connections, asked directly over FastCGI (the
/// asking connection included).
async fn accepted_connections(nene: &Nene) -> u64 {
    let status = fcgi_client::get(&nene.addr, "/status?json").await;
    let json: serde_json::Value = serde_json::from_slice(status.body()).unwrap();
    json["accepted conn"].as_u64().unwrap()
}

async fn connections(site: &Site) {
    const REQUESTS: u64 = 10;
    let before = accepted_connections(&site.nene).await;
    let client = http_client();
    for _ in 0..REQUESTS {
        let response = client.get(site.url("/health")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{}", site.logs());
    }
    // Minus the connection that asks.
    let opened = accepted_connections(&site.nene).await - before - 1;
    if site.differences.keeps_connections {
        // One per server process that took a request, at most (Apache: 2).
        assert!(
            opened <= 2,
            "{}: {opened} FastCGI connections for {REQUESTS} requests",
            site.name
        );
    } else {
        assert_eq!(
            opened, REQUESTS,
            "{}: one connection per request",
            site.name
        );
    }
}

/// Starts nene and, in front of it, the web server `start_server` starts on
/// a document root shared with a PHP site (whose .php files are never
/// handed out as files); then runs the flows against them.
async fn run_contract(
    name: &'static str,
    differences: Differences,
    start_server: impl FnOnce(&str, &Path) -> Box<dyn WebServer>,
) {
    let nene = start_nene();
    let docroot = php_style_docroot();
    let server = start_server(&nene.upstream, docroot.path());
    contract(Site {
        name,
        server,
        nene,
        _docroot: docroot,
        differences,
    })
    .await;
}

/// What starts nginx with the template at `template` (a path from the
/// repository's root), its values set for nene's upstream and the document
/// root, plus `extra`.
fn nginx_from_template(
    template: &'static str,
    extra: &'static [(&'static str, &'static str)],
) -> impl FnOnce(&str, &Path) -> Box<dyn WebServer> {
    move |upstream, docroot| {
        let mut pairs = vec![
            ("NGINX_LISTEN", format!("127.0.0.1:{}", free_port())),
            ("NENE_UPSTREAM", upstream.to_string()),
            ("NENE_HTDOCS", docroot.display().to_string()),
            ("NENE_MAX_BODY", "16m".to_string()),
        ];
        pairs.extend(extra.iter().map(|(name, value)| (*name, value.to_string())));
        Box::new(Nginx::start_template(template, &values(&pairs)))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_nginx_with_debians_php_snippet() {
    let differences = Differences {
        // location ~ \.php$ does not match /index.php/health: it reaches
        // the front controller through try_files, unsplit.
        index_php_health: "sn=/index.php pi=- ",
        ..Differences::TYPICAL
    };
    let nginx = nginx_from_template("deploy/nginx/php-style.conf.template", &[]);
    run_contract("nginx (Debian's fastcgi-php.conf)", differences, nginx).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_nginx_with_nenes_template() {
    let differences = Differences {
        keeps_connections: true,
        index_php_health: "sn=/index.php/health pi=- ",
        ..Differences::TYPICAL
    };
    let nginx = nginx_from_template(
        "deploy/nginx/nene.conf.template",
        &[("NENE_FASTCGI_KEEP_CONN", "on")],
    );
    run_contract(
        "nginx (deploy/nginx/nene.conf.template)",
        differences,
        nginx,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_apache_with_proxypass() {
    let differences = Differences {
        index_php_health: "sn=/index.php/health pi=- ",
        ..Differences::APACHE
    };
    run_contract("Apache (ProxyPass)", differences, |upstream, docroot| {
        Box::new(Apache::start(ApacheSite::ProxyPass, upstream, docroot))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_apache_with_a_php_handler_and_fallback_resource() {
    run_contract(
        "Apache (FilesMatch SetHandler, FallbackResource)",
        Differences::APACHE,
        |upstream, docroot| Box::new(Apache::start(ApacheSite::PhpHandler, upstream, docroot)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_lighttpd() {
    let differences = Differences {
        post_without_length: 411,
        ..Differences::TYPICAL
    };
    run_contract("lighttpd", differences, |upstream, docroot| {
        Box::new(Lighttpd::start(upstream, docroot))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_caddy() {
    let differences = Differences {
        chunked_length: ChunkedLength::Unknown,
        ..Differences::TYPICAL
    };
    run_contract("Caddy", differences, |upstream, docroot| {
        Box::new(Caddy::start(upstream, docroot))
    })
    .await;
}
