//! Configuration, read once per cold start. A missing required variable fails fast, naming it.

use anyhow::{Context, bail};
use secrecy::SecretString;

/// Settings every function needs: the database and how callers are authenticated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Postgres URL of the application role (cannot bypass row-level security).
    pub database_url: SecretString,
    /// How management callers' JWTs are verified.
    pub jwt: JwtConfig,
    /// Server-side pepper mixed into API key hashes.
    pub api_key_pepper: SecretString,
}

/// JWT verification: an HS256 shared secret (local/dev) or a JWKS URL (Cognito, Auth0,
/// Supabase) with RS256/ES256. Issuer and audience are always checked.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    pub hs256_secret: Option<SecretString>,
    pub jwks_url: Option<String>,
    pub issuer: String,
    pub audience: String,
}

/// Issuer and audience of locally signed (HS256) tokens when none are configured.
pub const DEV_ISSUER: &str = "chatpad-dev";
/// See [`DEV_ISSUER`].
pub const DEV_AUDIENCE: &str = "chatpad";

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (tests pass their own).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let required = |name: &str| {
            var(name).with_context(|| format!("environment variable {name} is required"))
        };

        let jwt = JwtConfig {
            hs256_secret: var("JWT_HS256_SECRET").map(SecretString::from),
            jwks_url: var("JWT_JWKS_URL"),
            issuer: var("JWT_ISSUER").unwrap_or_else(|| DEV_ISSUER.into()),
            audience: var("JWT_AUDIENCE").unwrap_or_else(|| DEV_AUDIENCE.into()),
        };
        match (&jwt.hs256_secret, &jwt.jwks_url) {
            (Some(_), Some(_)) => bail!("set either JWT_HS256_SECRET or JWT_JWKS_URL, not both"),
            (None, None) => {
                bail!("environment variable JWT_HS256_SECRET or JWT_JWKS_URL is required")
            }
            (None, Some(_)) if var("JWT_ISSUER").is_none() || var("JWT_AUDIENCE").is_none() => {
                bail!("JWT_JWKS_URL needs JWT_ISSUER and JWT_AUDIENCE")
            }
            _ => {}
        }
        Ok(Config {
            database_url: SecretString::from(required("DATABASE_URL")?),
            jwt,
            api_key_pepper: SecretString::from(required("API_KEY_PEPPER")?),
        })
    }
}

/// Reads a required variable naming it in the error (for function-specific settings).
pub fn required_var(name: &str) -> anyhow::Result<String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .with_context(|| format!("environment variable {name} is required"))
}
