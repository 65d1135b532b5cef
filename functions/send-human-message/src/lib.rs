//! POST `{"conversationId", "content"}` with `Authorization: Bearer <JWT>`: stores a `human`
//! message in a conversation under human takeover and publishes it (`message.created`) to the
//! visitor's and the inbox's WebSocket connections. Refused unless the caller is a member (or
//! above) of the conversation's account and the conversation is in takeover: 404 for another
//! tenant's conversation, 403 for a read-only role, 409 `not_in_takeover`.

use chatpad::auth::Caller;
use chatpad::auth::jwt::{self, JwtVerifier};
use chatpad::db::{self, Database};
use chatpad::ratelimit::{Limit, RateLimiter};
use chatpad::realtime::Publisher;
use chatpad::takeover::{self, HumanMessage};
use chatpad::{ApiError, ApiResult, Deps, http};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use uuid::Uuid;

/// Largest request body.
pub const BODY_LIMIT: usize = 64 * 1024;

/// What the function holds for its life.
pub struct SendDeps {
    pub db: Database,
    pub jwt: JwtVerifier,
    pub publisher: Publisher,
    pub limiter: RateLimiter,
    /// Messages per team member and minute.
    pub per_user: Limit,
}

impl SendDeps {
    /// Reads the configuration from the environment.
    pub async fn from_env() -> anyhow::Result<Self> {
        let deps = Deps::from_env()?;
        let sdk = chatpad::aws::sdk_config().await;
        Ok(SendDeps {
            jwt: JwtVerifier::new(&deps.config.jwt)?,
            db: deps.db,
            publisher: Publisher::from_env(&sdk)?,
            limiter: RateLimiter::from_env().await?,
            per_user: Limit::per_minute("human-message", 120),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SendRequest {
    conversation_id: Uuid,
    content: String,
}

/// Handles one request.
pub async fn handle(deps: &SendDeps, req: Request) -> Response<Body> {
    let request_id = http::request_id(&req);
    http::respond(&request_id, send(deps, &req).await)
}

async fn send(deps: &SendDeps, req: &Request) -> ApiResult<Response<Body>> {
    http::require_method(req, Method::POST)?;
    let token = http::bearer_token(req).ok_or_else(|| {
        ApiError::unauthorized("missing_credentials", "send Authorization: Bearer <JWT>")
    })?;
    let claims = deps.jwt.verify(token).await?;
    let body: SendRequest = http::parse_json(req, BODY_LIMIT)?;

    let mut client = deps.db.client().await?;
    let tx = db::begin_as(&mut client, &Caller::Anonymous).await?;
    let user_id = jwt::sign_in(&tx, &claims).await?;
    db::act_as(&tx, &Caller::User { user_id }).await?;
    deps.limiter
        .check(&deps.per_user, &user_id.to_string())
        .await?;
    let message: HumanMessage =
        takeover::send_human_message(&tx, user_id, body.conversation_id, &body.content).await?;
    deps.publisher.commit(tx).await?;
    http::json(StatusCode::CREATED, &message)
}
