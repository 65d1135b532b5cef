//! JWT verification: HS256 for local use, RS256 from a JWKS served over real HTTP, with the
//! algorithm pinned and `exp`, `iss`, `aud` enforced.

use std::time::Duration;

use chatpad::auth::jwt::{JwtVerifier, TokenClaims, issue_dev_token};
use chatpad::config::JwtConfig;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "a-test-secret-that-is-long-enough-for-hs256";

fn hs_config() -> JwtConfig {
    JwtConfig {
        hs256_secret: Some(SecretString::from(SECRET)),
        jwks_url: None,
        issuer: "https://issuer.test/".into(),
        audience: "chatpad".into(),
    }
}

fn claims(exp_offset: i64) -> TokenClaims {
    TokenClaims {
        sub: "user-1".into(),
        email: Some("u@example.com".into()),
        exp: (chrono::Utc::now().timestamp() + exp_offset) as u64,
        iss: "https://issuer.test/".into(),
        aud: "chatpad".into(),
    }
}

fn sign_hs(claims: &TokenClaims, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

async fn code_of(verifier: &JwtVerifier, token: &str) -> &'static str {
    verifier.verify(token).await.unwrap_err().code()
}

#[tokio::test]
async fn hs256_tokens_verify_and_bad_ones_say_why() {
    let verifier = JwtVerifier::new(&hs_config()).unwrap();
    let token = issue_dev_token(
        &SecretString::from(SECRET),
        &hs_config(),
        "user-1",
        Some("u@example.com"),
        Duration::from_secs(60),
    );
    let verified = verifier.verify(&token).await.unwrap();
    assert_eq!(verified.sub, "user-1");
    assert_eq!(verified.email.as_deref(), Some("u@example.com"));

    assert_eq!(
        code_of(&verifier, &sign_hs(&claims(-3600), SECRET)).await,
        "token_expired"
    );
    assert_eq!(
        code_of(
            &verifier,
            &sign_hs(&claims(60), "another-secret-entirely-0123456789")
        )
        .await,
        "invalid_token"
    );
    let mut wrong_iss = claims(60);
    wrong_iss.iss = "https://evil.test/".into();
    assert_eq!(
        code_of(&verifier, &sign_hs(&wrong_iss, SECRET)).await,
        "invalid_token"
    );
    let mut wrong_aud = claims(60);
    wrong_aud.aud = "someone-else".into();
    assert_eq!(
        code_of(&verifier, &sign_hs(&wrong_aud, SECRET)).await,
        "invalid_token"
    );
    assert_eq!(code_of(&verifier, "not.a.jwt").await, "invalid_token");
}

#[tokio::test]
async fn unsigned_and_algorithm_confused_tokens_are_refused() {
    let verifier = JwtVerifier::new(&hs_config()).unwrap();
    // alg "none": header and payload with an empty signature.
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let payload = serde_json::to_string(&claims(60)).unwrap();
    let none = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&payload)
    );
    assert_eq!(code_of(&verifier, &none).await, "invalid_token");
    // An RS256 token presented to an HS256 verifier.
    let rsa = EncodingKey::from_rsa_pem(include_bytes!("fixtures/jwt-test-rsa.pem")).unwrap();
    let rs = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims(60), &rsa).unwrap();
    assert_eq!(code_of(&verifier, &rs).await, "invalid_token");
}

/// Serves the fixture JWKS over HTTP on loopback; returns its URL and a request counter.
async fn serve_jwks() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let body = include_str!("fixtures/jwt-test-jwks.json");
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        }
    });
    (url, hits)
}

#[tokio::test]
async fn rs256_tokens_verify_against_a_jwks_url_which_is_cached() {
    let (url, hits) = serve_jwks().await;
    let config = JwtConfig {
        hs256_secret: None,
        jwks_url: Some(url),
        ..hs_config()
    };
    let verifier = JwtVerifier::new(&config).unwrap();
    let rsa = EncodingKey::from_rsa_pem(include_bytes!("fixtures/jwt-test-rsa.pem")).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("test-key-1".into());
    let token = jsonwebtoken::encode(&header, &claims(60), &rsa).unwrap();
    assert_eq!(verifier.verify(&token).await.unwrap().sub, "user-1");
    assert_eq!(verifier.verify(&token).await.unwrap().sub, "user-1");
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "keys fetched once and cached"
    );

    let mut unknown = Header::new(Algorithm::RS256);
    unknown.kid = Some("rotated-away".into());
    let token = jsonwebtoken::encode(&unknown, &claims(60), &rsa).unwrap();
    assert_eq!(code_of(&verifier, &token).await, "invalid_token");

    // HS256 signed with the public key material must not pass a JWKS verifier.
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some("test-key-1".into());
    let forged = jsonwebtoken::encode(
        &hs_header,
        &claims(60),
        &EncodingKey::from_secret(b"public"),
    )
    .unwrap();
    assert_eq!(code_of(&verifier, &forged).await, "invalid_token");
}
