//! JWT verification for management calls. Algorithms are pinned per mode (HS256 with a shared
//! secret for local/dev; RS256 or ES256 with keys from a JWKS URL for Cognito, Auth0, Supabase)
//! and `exp`, `iss`, `aud` and `sub` are required and checked.

use std::time::{Duration, Instant};

use anyhow::Context;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;
use uuid::Uuid;

use crate::ApiError;
use crate::config::JwtConfig;

/// How long fetched signing keys are trusted before they are fetched again.
const JWKS_TTL: Duration = Duration::from_secs(600);
/// An unknown `kid` triggers a refetch (key rotation), but at most this often.
const JWKS_MIN_REFETCH: Duration = Duration::from_secs(30);

/// The claims we read from a token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenClaims {
    /// The identity provider's subject.
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub exp: u64,
    pub iss: String,
    pub aud: String,
}

/// Verifies bearer tokens. Build once per cold start; JWKS keys are cached inside.
pub struct JwtVerifier {
    issuer: String,
    audience: String,
    mode: Mode,
}

enum Mode {
    Hs256(DecodingKey),
    Jwks {
        url: String,
        http: reqwest::Client,
        cache: RwLock<Option<(Instant, JwkSet)>>,
    },
}

impl JwtVerifier {
    /// A verifier for the configured mode.
    pub fn new(config: &JwtConfig) -> anyhow::Result<Self> {
        let mode = match (&config.hs256_secret, &config.jwks_url) {
            (Some(secret), _) => {
                Mode::Hs256(DecodingKey::from_secret(secret.expose_secret().as_bytes()))
            }
            (None, Some(url)) => Mode::Jwks {
                url: url.clone(),
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .context("building the JWKS client")?,
                cache: RwLock::new(None),
            },
            (None, None) => anyhow::bail!("no JWT verification configured"),
        };
        Ok(JwtVerifier {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            mode,
        })
    }

    fn validation(&self, algorithms: &[Algorithm]) -> Validation {
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms.to_vec();
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation
    }

    /// Verifies `token` and returns its claims, or a 401 saying what is wrong.
    pub async fn verify(&self, token: &str) -> Result<TokenClaims, ApiError> {
        let invalid = |why: &str| {
            ApiError::unauthorized(
                "invalid_token",
                format!("the bearer token is invalid: {why}"),
            )
        };
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("not a JWT"))?;
        let (key, algorithms) = match &self.mode {
            Mode::Hs256(key) => (key.clone(), vec![Algorithm::HS256]),
            Mode::Jwks { .. } => {
                if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
                    return Err(invalid("algorithm not allowed"));
                }
                let kid = header.kid.as_deref().ok_or_else(|| invalid("no key id"))?;
                (
                    self.jwks_key(kid)
                        .await?
                        .ok_or_else(|| invalid("unknown signing key"))?,
                    vec![header.alg],
                )
            }
        };
        jsonwebtoken::decode::<TokenClaims>(token, &key, &self.validation(&algorithms))
            .map(|data| data.claims)
            .map_err(|err| match err.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    ApiError::unauthorized("token_expired", "the bearer token has expired")
                }
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => invalid("wrong issuer"),
                jsonwebtoken::errors::ErrorKind::InvalidAudience => invalid("wrong audience"),
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => {
                    invalid("algorithm not allowed")
                }
                jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(claim) => {
                    invalid(&format!("missing claim {claim}"))
                }
                _ => invalid("signature or claims do not verify"),
            })
    }

    async fn jwks_key(&self, kid: &str) -> Result<Option<DecodingKey>, ApiError> {
        let Mode::Jwks { url, http, cache } = &self.mode else {
            return Ok(None);
        };
        let find = |set: &JwkSet| {
            set.find(kid)
                .and_then(|jwk| DecodingKey::from_jwk(jwk).ok())
        };
        if let Some((fetched, set)) = cache.read().await.as_ref() {
            let found = find(set);
            if found.is_some() && fetched.elapsed() < JWKS_TTL {
                return Ok(found);
            }
            if found.is_none() && fetched.elapsed() < JWKS_MIN_REFETCH {
                return Ok(None);
            }
        }
        let set: JwkSet = async { http.get(url).send().await?.error_for_status()?.json().await }
            .await
            .map_err(|err: reqwest::Error| {
                ApiError::Internal(
                    anyhow::Error::new(err).context(format!("fetching JWKS from {url}")),
                )
            })?;
        let found = find(&set);
        *cache.write().await = Some((Instant::now(), set));
        Ok(found)
    }
}

/// Signs an HS256 token, for local development (`make dev` prints one) and tests.
pub fn issue_dev_token(
    secret: &SecretString,
    config: &JwtConfig,
    subject: &str,
    email: Option<&str>,
    ttl: Duration,
) -> String {
    let exp = (chrono::Utc::now() + ttl).timestamp() as u64;
    let claims = TokenClaims {
        sub: subject.into(),
        email: email.map(Into::into),
        exp,
        iss: config.issuer.clone(),
        aud: config.audience.clone(),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.expose_secret().as_bytes()),
    )
    .expect("HS256 signing cannot fail")
}

/// Finds or creates our user for a verified token's subject; returns our user id.
pub async fn sign_in(
    client: &impl crate::db::GenericClient,
    claims: &TokenClaims,
) -> Result<Uuid, ApiError> {
    let row = client
        .query_one(
            "SELECT public.ensure_user($1, $2)",
            &[&claims.sub, &claims.email],
        )
        .await?;
    Ok(row.get(0))
}
