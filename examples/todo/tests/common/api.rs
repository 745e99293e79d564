//! One simulated user of the API: a reqwest client with its own cookie jar
//! (so its own session) and the CSRF token it was last given.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use reqwest::cookie::CookieStore;
use serde_json::{Value, json};

/// What one request returned.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Answer {
    async fn of(response: reqwest::Response) -> Answer {
        Answer {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap_or_default(),
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, self.body))
    }

    /// `error.code` of a failure envelope (asserting it is one).
    pub fn code(&self) -> String {
        let json = self.json();
        assert_eq!(json["success"], false, "not a failure: {}", self.body);
        json["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error.code: {}", self.body))
            .to_string()
    }

    /// `data` of a success envelope (asserting it is one).
    pub fn data(&self) -> Value {
        let json = self.json();
        assert_eq!(
            json["success"], true,
            "not a success ({}): {}",
            self.status, self.body
        );
        json["data"].clone()
    }

    /// Asserts status and error code together.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status, self.code().as_str()),
            (status, code),
            "body: {}",
            self.body
        );
    }

    pub fn assert_ok(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "body: {}", self.body);
        self.data()
    }
}

pub struct User {
    client: reqwest::Client,
    jar: Arc<reqwest::cookie::Jar>,
    base: String,
    /// The token sent as X-CSRF-Token on state-changing requests.
    pub csrf: Option<String>,
}

impl User {
    pub fn new(base: &str) -> User {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let client = reqwest::Client::builder()
            .no_proxy()
            .cookie_provider(jar.clone())
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        User {
            client,
            jar,
            base: base.to_string(),
            csrf: None,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The session id this user's jar holds.
    pub fn session_id(&self) -> Option<String> {
        let url = self.base.parse().unwrap();
        let header = self.jar.cookies(&url)?;
        header
            .to_str()
            .unwrap()
            .split("; ")
            .find_map(|pair| pair.strip_prefix("NENESESSID="))
            .map(str::to_string)
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.request(Method::GET, path, None).await
    }

    /// An HTML form posted in the caller's trace `traceparent` (as a load
    /// balancer sends it), with the current CSRF token as a header.
    pub async fn post_form_traced(&self, path: &str, form: &str, traceparent: &str) -> Answer {
        let mut request = (self.client.post(self.url(path)))
            .header("traceparent", traceparent)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_string());
        if let Some(token) = &self.csrf {
            request = request.header("x-csrf-token", token);
        }
        Answer::of(request.send().await.expect("request")).await
    }

    /// A request with a JSON body (when given) and the current CSRF token.
    pub async fn request(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let body = body.map(|body| body.to_string());
        self.raw(method, path, body.as_deref(), self.csrf.clone().as_deref())
            .await
    }

    /// A request with a body as given (even malformed) and the given token.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        csrf: Option<&str>,
    ) -> Answer {
        let mut request = self.client.request(method, self.url(path));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        if let Some(token) = csrf {
            request = request.header("x-csrf-token", token);
        }
        Answer::of(request.send().await.expect("request")).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.request(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.request(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.request(Method::DELETE, path, None).await
    }

    /// GET /auth/csrf and keep the token.
    pub async fn fetch_csrf(&mut self) -> String {
        let answer = self.get("/auth/csrf").await;
        let token = answer.assert_ok(200)["csrf_token"]
            .as_str()
            .expect("a token")
            .to_string();
        self.csrf = Some(token.clone());
        token
    }

    pub async fn register(&mut self, username: &str, password: &str) -> Answer {
        if self.csrf.is_none() {
            self.fetch_csrf().await;
        }
        self.post(
            "/auth/register",
            json!({ "username": username, "password": password }),
        )
        .await
    }

    /// POST /auth/login; on success keeps the rotated CSRF token.
    pub async fn login(&mut self, username: &str, password: &str) -> Answer {
        if self.csrf.is_none() {
            self.fetch_csrf().await;
        }
        let answer = self
            .post(
                "/auth/login",
                json!({ "username": username, "password": password }),
            )
            .await;
        if answer.status == 200 {
            let token = answer.data()["csrf_token"].as_str().unwrap().to_string();
            self.csrf = Some(token);
        }
        answer
    }

    /// A new user registered and logged in.
    pub async fn signed_up(base: &str, username: &str, password: &str) -> User {
        let mut user = User::new(base);
        user.register(username, password).await.assert_ok(201);
        user.login(username, password).await.assert_ok(200);
        user
    }

    /// POST /todo/index; the new todo's id.
    pub async fn create_todo(&self, title: &str) -> i64 {
        let answer = self.post("/todo/index", json!({ "title": title })).await;
        answer.assert_ok(201)["id"].as_i64().expect("an id")
    }

    /// The titles of GET /todo/index, in order.
    pub async fn titles(&self) -> Vec<String> {
        let answer = self.get("/todo/index").await;
        answer
            .assert_ok(200)
            .as_array()
            .expect("a list")
            .iter()
            .map(|todo| todo["title"].as_str().unwrap().to_string())
            .collect()
    }
}

/// A GET with nothing but a hand-written session cookie.
pub async fn get_with_session(base: &str, path: &str, session_id: &str) -> Answer {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = client
        .get(format!("{base}{path}"))
        .header("cookie", format!("NENESESSID={session_id}"))
        .send()
        .await
        .expect("request");
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap_or_default(),
    }
}
