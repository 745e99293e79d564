//! A real browser for tests: Debian's Chromium, headless, driven through
//! its `chromedriver` over the W3C WebDriver protocol, started on a free
//! loopback port and stopped when dropped.
//!
//! The protocol is JSON over HTTP and the tests use a dozen of its
//! commands, so they are sent with the HTTP client the tests already build
//! (reqwest) rather than with a WebDriver crate: one would add its own HTTP
//! stack to a build whose time is CI's bound.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use crate::{free_port, require_program_in};

/// The key under which WebDriver returns an element's reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver and the headless Chromium session it drives.
pub struct Chromium {
    driver: Child,
    client: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`
    session: String,
}

/// What a command answered with an error: WebDriver's error code and
/// message (e.g. `no such alert`).
#[derive(Debug)]
pub struct WebDriverError {
    pub error: String,
    pub message: String,
}

impl Chromium {
    /// A browser with JavaScript on.
    pub async fn start() -> Chromium {
        Self::start_with(true).await
    }

    /// A browser with JavaScript off, as a visitor who turned it off has it.
    pub async fn without_javascript() -> Chromium {
        Self::start_with(false).await
    }

    async fn start_with(javascript: bool) -> Chromium {
        let driver_program = require_program_in("chromedriver", "chromium-driver", &[]);
        let browser = require_program_in("chromium", "chromium", &[]);
        let port = free_port();
        let driver = Command::new(driver_program)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = client.get(format!("{base}/status")).send().await;
            if ready.is_ok_and(|answer| answer.status().is_success()) {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut prefs = json!({});
        if !javascript {
            prefs = json!({ "profile.managed_default_content_settings.javascript": 2 });
        }
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": browser,
                // --no-sandbox: CI runs as root, where Chromium's sandbox
                // cannot start.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1200,900"],
                "prefs": prefs,
            },
        }}});
        let answer = post(&client, &format!("{base}/session"), capabilities)
            .await
            .unwrap_or_else(|error| panic!("no Chromium session: {error:?}"));
        let id = answer["sessionId"].as_str().expect("a session id");
        Chromium {
            driver,
            client,
            session: format!("{base}/session/{id}"),
        }
    }

    async fn command(&self, path: &str, body: Value) -> Result<Value, WebDriverError> {
        post(&self.client, &format!("{}{path}", self.session), body).await
    }

    async fn query(&self, path: &str) -> Result<Value, WebDriverError> {
        let answer = self
            .client
            .get(format!("{}{path}", self.session))
            .send()
            .await
            .expect("a WebDriver answer");
        value_of(answer).await
    }

    /// Opens `url` and waits for it to load.
    pub async fn open(&self, url: &str) {
        self.command("/url", json!({ "url": url })).await.unwrap();
    }

    /// The address of the page shown.
    pub async fn url(&self) -> String {
        self.query("/url")
            .await
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The page's HTML as the browser has it now.
    pub async fn source(&self) -> String {
        self.query("/source")
            .await
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The text a user sees in the element `css` selects.
    pub async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        let text = self.query(&format!("/element/{element}/text")).await;
        text.unwrap().as_str().unwrap().to_string()
    }

    /// How many elements `css` selects.
    pub async fn count(&self, css: &str) -> usize {
        let found = self
            .command(
                "/elements",
                json!({ "using": "css selector", "value": css }),
            )
            .await
            .unwrap();
        found.as_array().map_or(0, Vec::len)
    }

    /// The element `css` selects; fails the test with the page when none.
    async fn find(&self, css: &str) -> String {
        match (self.command("/element", json!({ "using": "css selector", "value": css }))).await {
            Ok(found) => found[ELEMENT].as_str().unwrap().to_string(),
            Err(error) => panic!("no {css:?} ({error:?}) on:\n{}", self.source().await),
        }
    }

    /// Types `text` into the field `css` selects.
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        let path = format!("/element/{element}/value");
        self.command(&path, json!({ "text": text })).await.unwrap();
    }

    /// Clicks the element `css` selects, a button or link that leads to
    /// another page, and waits for that page.
    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        let page = self.find("html").await;
        let path = format!("/element/{element}/click");
        self.command(&path, json!({})).await.unwrap();
        self.wait_for_a_new_page(&page).await;
    }

    /// The browser's back button; waits for the page it goes back to.
    pub async fn back(&self) {
        let page = self.find("html").await;
        self.command("/back", json!({})).await.unwrap();
        self.wait_for_a_new_page(&page).await;
    }

    /// A form's submission goes on after the click is answered: the page is
    /// new once the old one's root element is gone (WebDriver calls it
    /// stale), and the next command waits for the new one to load.
    async fn wait_for_a_new_page(&self, old_root: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.query(&format!("/element/{old_root}/name")).await {
                Err(error) if error.error == "stale element reference" => return,
                Err(error) if error.error == "no such element" => return,
                _ => {}
            }
            assert!(Instant::now() < deadline, "no new page after 20 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs `script` in the page (JavaScript on) and returns its value.
    pub async fn run_script(&self, script: &str) -> Value {
        let body = json!({ "script": script, "args": [] });
        self.command("/execute/sync", body).await.unwrap()
    }

    /// The text of an open alert dialog, or the error that there is none.
    pub async fn alert_text(&self) -> Result<String, WebDriverError> {
        let text = self.query("/alert/text").await?;
        Ok(text.as_str().unwrap_or_default().to_string())
    }

    /// A PNG of the window, written to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let encoded = self.query("/screenshot").await.unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap())
            .expect("a base64 PNG");
        std::fs::write(path, png).expect("write the screenshot");
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // chromedriver ends its browsers when it is killed with its session
        // still open only if told; a DELETE first, best effort, then kill.
        let session = self.session.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let client = reqwest::Client::new();
                let _ = tokio::time::timeout(Duration::from_secs(5), client.delete(session).send())
                    .await;
            });
        })
        .join();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

async fn post(client: &reqwest::Client, url: &str, body: Value) -> Result<Value, WebDriverError> {
    let answer = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("a WebDriver answer");
    value_of(answer).await
}

/// The `value` of a WebDriver answer, or its error.
async fn value_of(answer: reqwest::Response) -> Result<Value, WebDriverError> {
    let status = answer.status();
    let text = answer.text().await.expect("a WebDriver body");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "value": text }));
    let value = body["value"].clone();
    if status.is_success() {
        Ok(value)
    } else {
        Err(WebDriverError {
            error: value["error"].as_str().unwrap_or_default().to_string(),
            message: value["message"].as_str().unwrap_or_default().to_string(),
        })
    }
}
