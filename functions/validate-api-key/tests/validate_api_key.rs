//! validate-api-key against real Postgres: valid, revoked, expired, unknown and malformed keys,
//! and what each use leaves in the security log and usage metrics.

use chatpad::Deps;
use chatpad::auth::api_keys;
use chatpad::ratelimit::Limit;
use chatpad::testing::TestDb;
use lambda_http::{Body, Request};
use secrecy::ExposeSecret;
use serde_json::Value;
use uuid::Uuid;
use validate_api_key::ValidateDeps;

struct Fixture {
    test: TestDb,
    deps: ValidateDeps,
    owner: Uuid,
}

async fn fixture() -> Fixture {
    let test = TestDb::new().await;
    // Each fixture its own limit name, so parallel tests do not share counters.
    let name: &'static str =
        Box::leak(format!("validate-test-{}", Uuid::new_v4()).into_boxed_str());
    let deps = ValidateDeps {
        deps: Deps::new(test.config()).unwrap(),
        limiter: chatpad::testing::rate_limiter().await,
        per_ip: Limit::new(name, 20, std::time::Duration::from_secs(86_400)),
    };
    let su = test.superuser().await;
    let owner: Uuid = su
        .query_one(
            "INSERT INTO users (auth_subject) VALUES ('owner') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // API access is a plan feature (Advanced and Pro).
    su.execute(
        "INSERT INTO subscriptions (user_id, plan_id) VALUES ($1, 'advanced')",
        &[&owner],
    )
    .await
    .unwrap();
    Fixture { test, deps, owner }
}

impl Fixture {
    /// Stores a new key for the owner the way the management API does; returns its plaintext.
    async fn key(&self, extra: &str) -> (Uuid, String) {
        let key = api_keys::generate(&self.deps.deps.config.api_key_pepper);
        let id: Uuid = self
            .test
            .superuser()
            .await
            .query_one(
                "INSERT INTO api_keys (user_id, name, prefix, key_hash, scopes) VALUES ($1, 'ci', $2, $3, '{chat:write,leads:read}')
                 RETURNING id",
                &[&self.owner, &key.prefix, &key.hash.as_slice()],
            )
            .await
            .unwrap()
            .get(0);
        if !extra.is_empty() {
            self.test
                .superuser()
                .await
                .execute(
                    &format!("UPDATE api_keys SET {extra} WHERE id = $1"),
                    &[&id],
                )
                .await
                .unwrap();
        }
        (id, key.plaintext.expose_secret().to_owned())
    }

    async fn call(&self, body: &str) -> (u16, Value) {
        let req = lambda_http::http::Request::builder()
            .method("POST")
            .header("content-type", "application/json")
            .header("user-agent", "integration-test")
            .body(Body::from(body.to_owned()))
            .unwrap();
        self.send(req).await
    }

    async fn send(&self, req: Request) -> (u16, Value) {
        let response = validate_api_key::handle(&self.deps, req).await;
        assert!(response.headers().contains_key("x-request-id"));
        let status = response.status().as_u16();
        let body: Value = serde_json::from_slice(response.body().as_ref()).expect("JSON body");
        (status, body)
    }

    async fn security_events(&self) -> Vec<(Option<Uuid>, String, Value)> {
        self.test
            .superuser()
            .await
            .query(
                "SELECT user_id, event_type, details FROM security_logs ORDER BY id",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    }
}

#[tokio::test]
async fn a_valid_key_is_accepted_and_its_use_recorded() {
    let f = fixture().await;
    let (id, key) = f.key("").await;
    let (status, body) = f.call(&format!(r#"{{"apiKey": "{key}"}}"#)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["valid"], true);
    assert_eq!(body["keyId"], id.to_string());
    assert_eq!(body["accountId"], f.owner.to_string());
    assert_eq!(
        body["scopes"],
        serde_json::json!(["chat:write", "leads:read"])
    );

    let su = f.test.superuser().await;
    let row = su
        .query_one(
            "SELECT last_used_at IS NOT NULL FROM api_keys WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    let calls: i32 = su
        .query_one(
            "SELECT api_calls FROM usage_metrics WHERE user_id = $1",
            &[&f.owner],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(calls, 1);
    let events = f.security_events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, Some(f.owner));
    assert_eq!(events[0].1, "api_key.used");

    // The bearer form works too and counts a second call.
    let req = lambda_http::http::Request::builder()
        .method("POST")
        .header("authorization", format!("Bearer {key}"))
        .body(Body::Empty)
        .unwrap();
    assert_eq!(f.send(req).await.0, 200);
    let calls: i32 = su
        .query_one(
            "SELECT api_calls FROM usage_metrics WHERE user_id = $1",
            &[&f.owner],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(calls, 2);
}

#[tokio::test]
async fn revoked_and_expired_keys_are_refused_and_logged_for_their_owner() {
    let f = fixture().await;
    let (_, revoked) = f.key("revoked_at = now()").await;
    let (_, expired) = f.key("expires_at = now() - interval '1 minute'").await;
    for key in [&revoked, &expired] {
        let (status, body) = f.call(&format!(r#"{{"apiKey": "{key}"}}"#)).await;
        assert_eq!(status, 401);
        assert_eq!(body["error"]["code"], "invalid_api_key");
    }
    let events = f.security_events().await;
    let reasons: Vec<(Option<Uuid>, &str, &str)> = events
        .iter()
        .map(|(o, t, d)| (*o, t.as_str(), d["reason"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (Some(f.owner), "api_key.rejected", "revoked"),
            (Some(f.owner), "api_key.rejected", "expired")
        ]
    );
    let usage: i64 = f
        .test
        .superuser()
        .await
        .query_one("SELECT count(*) FROM usage_metrics", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(usage, 0, "refused keys are not counted as API calls");
}

#[tokio::test]
async fn unknown_and_malformed_keys_get_the_same_answer() {
    let f = fixture().await;
    let (_, real) = f.key("").await;
    let unknown = api_keys::generate(&f.deps.deps.config.api_key_pepper);
    // Same prefix as a real key but other random characters: found by prefix, refused by hash.
    let forged = {
        let mut k = api_keys::generate(&f.deps.deps.config.api_key_pepper)
            .plaintext
            .expose_secret()
            .to_owned();
        k.replace_range(..17, &real[..17]);
        k
    };
    for key in [
        unknown.plaintext.expose_secret(),
        "cpk_live_short",
        "nonsense",
        forged.as_str(),
    ] {
        let (status, body) = f
            .call(&serde_json::json!({ "apiKey": key }).to_string())
            .await;
        assert_eq!(status, 401, "{key}");
        assert_eq!(body["error"]["code"], "invalid_api_key");
        assert_eq!(
            body["error"]["message"],
            "the API key is invalid, revoked or expired"
        );
    }
    let events = f.security_events().await;
    assert_eq!(events.len(), 4);
    assert!(
        events
            .iter()
            .all(|(owner, t, _)| owner.is_none() && t == "api_key.rejected")
    );
}

#[tokio::test]
async fn bad_requests_get_clear_json_errors() {
    let f = fixture().await;
    let (status, body) = f.call("{not json").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_json"))
    );
    let (status, body) = f.call(r#"{"key": "x"}"#).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_json"))
    );
    let (status, body) = f
        .call(&format!(r#"{{"apiKey": "{}"}}"#, "x".repeat(10_000)))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    let get = lambda_http::http::Request::builder()
        .method("GET")
        .body(Body::Empty)
        .unwrap();
    let (status, body) = f.send(get).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    assert!(body["requestId"].is_string());
}

#[tokio::test]
async fn a_client_over_the_rate_limit_gets_429_with_retry_after() {
    let f = fixture().await;
    let mut statuses = Vec::new();
    for _ in 0..22 {
        let req = lambda_http::http::Request::builder()
            .method("POST")
            .header("content-type", "application/json")
            .body(Body::from(r#"{"apiKey": "cpk_live_nope"}"#))
            .unwrap();
        let response = validate_api_key::handle(&f.deps, req).await;
        if response.status() == 429 {
            let retry: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=86_400).contains(&retry));
        }
        statuses.push(response.status().as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        20,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        2,
        "{statuses:?}"
    );
}
