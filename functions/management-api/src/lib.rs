//! The management API. Each request: match a route → authenticate (JWT or API key) inside a
//! transaction → act as the caller for row-level security → run the route's thin handler →
//! commit. Handlers live in `routes/`, one file per resource; the domain is in `chatpad`.

mod context;
pub mod openapi;
mod router;
mod routes;

use chatpad::auth::jwt::JwtVerifier;
use chatpad::{Deps, http};
use lambda_http::{Body, Request, Response};

pub use router::{ROUTES, Route};

/// Body size limit of every management request.
pub const BODY_LIMIT: usize = 256 * 1024;

/// What the function holds for its life.
pub struct ManagementDeps {
    pub deps: Deps,
    pub jwt: JwtVerifier,
}

impl ManagementDeps {
    /// Builds the dependencies from `deps` (no network access until the first request).
    pub fn new(deps: Deps) -> anyhow::Result<Self> {
        let jwt = JwtVerifier::new(&deps.config.jwt)?;
        Ok(ManagementDeps { deps, jwt })
    }

    /// Reads the configuration from the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::new(Deps::from_env()?)
    }
}

/// Handles one request; never fails (errors become JSON error responses).
pub async fn handle(deps: &ManagementDeps, req: Request) -> Response<Body> {
    let request_id = http::request_id(&req);
    let span = tracing::info_span!("management", request_id, method = %req.method(), path = req.uri().path());
    let _enter = span.enter();
    http::respond(&request_id, context::run(deps, &req).await)
}
