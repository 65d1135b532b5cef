//! The management API. Each request: match a route → authenticate (JWT or API key) inside a
//! transaction → act as the caller for row-level security → run the route's thin handler →
//! commit. Handlers live in `routes/`, one file per resource; the domain is in `chatpad`.

mod context;
pub mod openapi;
mod router;
mod routes;

use chatpad::auth::jwt::JwtVerifier;
use chatpad::crypto::SecretBox;
use chatpad::knowledge::files::FileStore;
use chatpad::net::GuardConfig;
use chatpad::outbox::Relay;
use chatpad::ratelimit::{Limit, RateLimiter};
use chatpad::realtime::Publisher;
use chatpad::{Deps, http};
use lambda_http::{Body, Request, Response};

pub use router::{ROUTES, Route};

/// Body size limit of every management request.
pub const BODY_LIMIT: usize = 256 * 1024;

/// What the function holds for its life.
pub struct ManagementDeps {
    pub deps: Deps,
    pub jwt: JwtVerifier,
    pub limiter: RateLimiter,
    /// Requests per authenticated caller (user or API key) and minute
    /// (`API_RATE_LIMIT_PER_MINUTE`, default 1200).
    pub per_caller: Limit,
    /// Knowledge files (upload URLs, checks of uploaded objects).
    pub files: FileStore,
    /// Hands jobs written by a request to SQS right after it commits.
    pub relay: Relay,
    /// Seals webhook signing secrets (`ENCRYPTION_KEY`).
    pub secrets: SecretBox,
    /// The SSRF guard's settings, to refuse webhook URLs early (`SSRF_ALLOW_CIDRS`).
    pub guard: GuardConfig,
    /// Publishes the realtime events of each change after it commits (`REALTIME_TABLE`,
    /// `REALTIME_CALLBACK_URL`).
    pub publisher: Publisher,
}

impl ManagementDeps {
    /// Reads the configuration from the environment (no network access until the first request).
    pub async fn from_env() -> anyhow::Result<Self> {
        let deps = Deps::from_env()?;
        let per_minute = std::env::var("API_RATE_LIMIT_PER_MINUTE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1200);
        let sdk = chatpad::aws::sdk_config().await;
        Ok(ManagementDeps {
            files: FileStore::from_env(&sdk)?,
            relay: Relay::from_env(&sdk)?,
            publisher: Publisher::from_env(&sdk)?,
            secrets: SecretBox::from_base64_key(&chatpad::config::required_var("ENCRYPTION_KEY")?)?,
            guard: GuardConfig::from_env()?,
            jwt: JwtVerifier::new(&deps.config.jwt)?,
            deps,
            limiter: RateLimiter::from_env().await?,
            per_caller: Limit::per_minute("management-api", per_minute),
        })
    }
}

/// Handles one request; never fails (errors become JSON error responses).
pub async fn handle(deps: &ManagementDeps, req: Request) -> Response<Body> {
    let request_id = http::request_id(&req);
    let span = tracing::info_span!("management", request_id, method = %req.method(), path = req.uri().path());
    let _enter = span.enter();
    http::respond(&request_id, context::run(deps, &req).await)
}
