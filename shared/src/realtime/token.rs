//! Visitor tokens: short-lived (15 min), scoped to one conversation, HS256-signed with
//! `REALTIME_TOKEN_SECRET` — a secret of their own, since production may verify team members'
//! JWTs through JWKS and have no shared secret at all. Browsers cannot set headers on a
//! WebSocket, so the token travels in `$connect`'s query string; its short life limits what a
//! leaked URL (logs, history) is worth.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ApiError;

/// How long a visitor token is valid.
pub const TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
/// Issuer and audience of visitor tokens: never accepted where a team JWT is expected.
const ISSUER: &str = "chatpad-realtime";
const AUDIENCE: &str = "chatpad-visitor";

/// What a visitor token grants: one conversation of one agent, for one visitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitorClaims {
    /// The visitor id.
    pub sub: String,
    /// The agent.
    pub aid: Uuid,
    /// The conversation.
    pub cid: Uuid,
    pub exp: u64,
    pub iss: String,
    pub aud: String,
}

/// Signs and verifies visitor tokens.
#[derive(Clone)]
pub struct VisitorTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for VisitorTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VisitorTokens(..)")
    }
}

impl VisitorTokens {
    /// Keys from `secret` (at least 32 bytes).
    pub fn new(secret: &SecretString) -> anyhow::Result<Self> {
        let bytes = secret.expose_secret().as_bytes();
        anyhow::ensure!(
            bytes.len() >= 32,
            "REALTIME_TOKEN_SECRET must be at least 32 characters"
        );
        Ok(VisitorTokens {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
        })
    }

    /// Reads `REALTIME_TOKEN_SECRET`.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::new(&SecretString::from(crate::config::required_var(
            "REALTIME_TOKEN_SECRET",
        )?))
    }

    /// A token for `visitor` in `conversation` of `agent`, and when it expires.
    pub fn issue(&self, agent: Uuid, visitor: &str, conversation: Uuid) -> (String, DateTime<Utc>) {
        let expires_at = Utc::now() + TOKEN_TTL;
        let claims = VisitorClaims {
            sub: visitor.into(),
            aid: agent,
            cid: conversation,
            exp: expires_at.timestamp() as u64,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail");
        (token, expires_at)
    }

    /// The claims of a valid, unexpired visitor token; a 401 otherwise.
    pub fn verify(&self, token: &str) -> Result<VisitorClaims, ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        jsonwebtoken::decode::<VisitorClaims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|err| match err.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    ApiError::unauthorized("token_expired", "the realtime token has expired")
                }
                _ => ApiError::unauthorized("invalid_token", "the realtime token is invalid"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(secret: &str) -> VisitorTokens {
        VisitorTokens::new(&SecretString::from(secret.to_owned())).unwrap()
    }

    #[test]
    fn a_token_names_its_conversation_and_only_its_key_verifies_it() {
        let a = tokens("a-secret-that-is-at-least-32-bytes-long");
        let b = tokens("another-secret-at-least-32-bytes-long!!");
        let conversation = Uuid::new_v4();
        let (token, expires_at) = a.issue(Uuid::new_v4(), "visitor-1", conversation);
        let claims = a.verify(&token).unwrap();
        assert_eq!(claims.cid, conversation);
        assert_eq!(claims.sub, "visitor-1");
        assert!(expires_at > Utc::now() + Duration::from_secs(14 * 60));
        assert_eq!(b.verify(&token).unwrap_err().code(), "invalid_token");
        assert_eq!(a.verify("not.a.token").unwrap_err().code(), "invalid_token");
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(VisitorTokens::new(&SecretString::from("short".to_owned())).is_err());
    }
}
