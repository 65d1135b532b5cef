//! Helpers of the HTTP tests: signed-in users calling the running management-api.
#![allow(dead_code)] // each test binary uses its own subset

use std::time::Duration;

use chatpad::auth::jwt::issue_dev_token;
use chatpad::config::JwtConfig;
use chatpad::testing::env_var;
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::Value;

pub fn base_url() -> String {
    let port = env_var("CARGO_LAMBDA_PORT").unwrap_or_else(|| "9000".into());
    format!("http://localhost:{port}/lambda-url/management-api")
}

/// Sends a request, retrying (twice at most) when `cargo lambda watch`'s emulator itself fails
/// it: it answers 500 with its own problem document (its pooled connection to the function can
/// drop a request under load before the function sees it), or, rarely, never answers a GET
/// of a large body (seen with the 266 KB OpenAPI document: 1 in ~400 under load). Our functions
/// never produce that body, so no error of ours is retried away, and only GETs are re-sent
/// after silence.
pub async fn send(request: reqwest::RequestBuilder) -> reqwest::Response {
    let is_get = request
        .try_clone()
        .and_then(|r| r.build().ok())
        .is_some_and(|r| r.method() == Method::GET);
    for _ in 0..2 {
        let attempt = request
            .try_clone()
            .expect("requests without streaming bodies clone");
        let response = match tokio::time::timeout(EMULATOR_SILENCE, attempt.send()).await {
            Ok(response) => response.expect("management-api is reachable (make test starts it)"),
            Err(_) if is_get => continue,
            Err(_) => panic!("management-api did not answer within {EMULATOR_SILENCE:?}"),
        };
        if response.status() != StatusCode::INTERNAL_SERVER_ERROR {
            return response;
        }
        let body = response.text().await.unwrap_or_default();
        assert!(
            body.contains("httpstatuses.com"),
            "the function answered 500: {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    request
        .send()
        .await
        .expect("management-api is reachable (make test starts it)")
}

/// How long a request may go unanswered before the emulator is taken to have lost it.
const EMULATOR_SILENCE: Duration = Duration::from_secs(20);

/// A signed-in user of the API.
pub struct User {
    pub http: reqwest::Client,
    pub token: String,
    pub email: String,
    pub account: Option<String>,
}

impl User {
    pub fn new(name: &str) -> User {
        let email = format!("{name}-{}@example.com", uuid::Uuid::new_v4().simple());
        let config = JwtConfig {
            hs256_secret: None,
            jwks_url: None,
            issuer: env_var("JWT_ISSUER").unwrap_or_else(|| chatpad::config::DEV_ISSUER.into()),
            audience: env_var("JWT_AUDIENCE")
                .unwrap_or_else(|| chatpad::config::DEV_AUDIENCE.into()),
        };
        let secret = SecretString::from(env_var("JWT_HS256_SECRET").expect("JWT_HS256_SECRET"));
        let token = issue_dev_token(
            &secret,
            &config,
            &format!("sub-{email}"),
            Some(&email),
            Duration::from_secs(600),
        );
        User {
            http: reqwest::Client::new(),
            token,
            email,
            account: None,
        }
    }

    pub fn with_key(key: &str) -> User {
        User {
            http: reqwest::Client::new(),
            token: key.into(),
            email: String::new(),
            account: None,
        }
    }

    /// Acts in another account (X-Account-Id).
    pub fn in_account(mut self, account: &str) -> User {
        self.account = Some(account.into());
        self
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", base_url()))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(120));
        if let Some(account) = &self.account {
            request = request.header("x-account-id", account);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = send(request).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).expect("JSON body")
            },
        )
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, None).await
    }

    /// Signs in and returns the user's account id.
    pub async fn sign_in(&self) -> String {
        let (status, me) = self.get("/v1/me").await;
        assert_eq!(status, StatusCode::OK, "{me}");
        me["accountId"].as_str().unwrap().to_owned()
    }
}

/// A connection as the owner role (platform-operator fixtures and checks, outside RLS policies).
pub async fn owner_db() -> tokio_postgres::Client {
    let url = env_var("MIGRATION_DATABASE_URL").unwrap();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// Puts an account on a plan, as a platform operator would (the owner role, in SQL).
pub async fn set_plan(account: &str, plan: &str) {
    owner_db()
        .await
        .execute(
            "INSERT INTO subscriptions (user_id, plan_id) VALUES ($1::text::uuid, $2)
             ON CONFLICT (user_id) DO UPDATE SET plan_id = EXCLUDED.plan_id",
            &[&account, &plan],
        )
        .await
        .unwrap();
}

pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// The `field` of every item of a page's `data`.
pub fn field<'a>(page: &'a Value, field: &str) -> Vec<&'a str> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item[field].as_str().unwrap())
        .collect()
}
