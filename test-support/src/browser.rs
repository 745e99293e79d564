//! A browser for tests: keeps the cookies nene sets (and drops removed ones)
//! and sends them back, so a test reads like a user's visit.

use std::collections::BTreeMap;

use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::Value;

#[derive(Clone)]
pub struct Browser {
    client: reqwest::Client,
    base: String,
    pub cookies: BTreeMap<String, String>,
    /// Every Set-Cookie header seen, in order.
    pub set_cookies: Vec<String>,
}

/// What a request returned.
pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, self.body))
    }

    /// The page without its body, for answers that differ run to run.
    pub fn status_only(self) -> Page {
        Page {
            body: String::new(),
            ..self
        }
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }
}

impl Browser {
    pub fn new(base: &str) -> Self {
        Self {
            client: crate::http_client(),
            base: base.trim_end_matches('/').to_string(),
            cookies: BTreeMap::new(),
            set_cookies: Vec::new(),
        }
    }

    /// A browser that opens a new connection for every request. A server
    /// that stops closes its idle kept connections, and a request sent on
    /// one at that moment fails (a real browser sends it again); tests of
    /// restarts without nginx in front use this one instead.
    pub fn without_keep_alive(base: &str) -> Self {
        Self {
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(std::time::Duration::from_secs(20))
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
            ..Self::new(base)
        }
    }

    /// This browser, answering a redirect with the redirect itself (its
    /// status and `Location`) rather than following it.
    pub fn not_following_redirects(mut self) -> Self {
        self.client = reqwest::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(20))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        self
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let request = self.client.get(format!("{}{}", self.base, path));
        self.send(request).await
    }

    pub async fn post_form(&mut self, path: &str, form: &str) -> Page {
        let request = self
            .client
            .post(format!("{}{}", self.base, path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_string());
        self.send(request).await
    }

    /// A GET with one more header (`traceparent`, …), cookies from the jar.
    pub async fn get_with_header(&mut self, path: &str, name: &str, value: &str) -> Page {
        let request = (self.client.get(format!("{}{}", self.base, path))).header(name, value);
        self.send(request).await
    }

    /// A request with a hand-written Cookie header instead of the jar.
    pub async fn get_with_cookie_header(&mut self, path: &str, cookie: &[u8]) -> Page {
        let value = reqwest::header::HeaderValue::from_bytes(cookie).expect("a sendable header");
        let request = self
            .client
            .get(format!("{}{}", self.base, path))
            .header(COOKIE, value);
        self.receive(request.send().await.expect("request")).await
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let request = if self.cookies.is_empty() {
            request
        } else {
            let header: Vec<String> = self
                .cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            request.header(COOKIE, header.join("; "))
        };
        let response = request.send().await.expect("request");
        self.receive(response).await
    }

    async fn receive(&mut self, response: reqwest::Response) -> Page {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        for set_cookie in headers.get_all(SET_COOKIE) {
            let text = set_cookie.to_str().unwrap().to_string();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let removed = text.to_ascii_lowercase().contains("max-age=0") || value.is_empty();
            if removed {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
            self.set_cookies.push(text);
        }
        let body = response.text().await.unwrap_or_default();
        Page {
            status,
            headers,
            body,
        }
    }

    /// The same browser (cookies and all) talking to another site address,
    /// e.g. a second nene instance serving the same sessions.
    pub fn with_base(&self, base: &str) -> Self {
        let mut browser = self.clone();
        browser.base = base.trim_end_matches('/').to_string();
        browser
    }

    /// The session id the browser holds.
    pub fn session_id(&self) -> Option<String> {
        self.cookies.get("NENESESSID").cloned()
    }

    /// `concurrency` copies of this browser (one session) each GET
    /// /session/counter `per_task` times, all at once; returns how many of
    /// those requests were answered 200.
    pub async fn hammer_counter(&self, concurrency: usize, per_task: usize) -> usize {
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let mut browser = self.clone();
            tasks.push(tokio::spawn(async move {
                let mut ok = 0;
                for _ in 0..per_task {
                    if browser.get("/session/counter").await.status == 200 {
                        ok += 1;
                    }
                }
                ok
            }));
        }
        let mut ok = 0;
        for task in tasks {
            ok += task.await.unwrap();
        }
        ok
    }
}
