//! The realtime function: WebSocket events (see [`ws`]) and the function URL's routes (see
//! [`poll`]) over the shared realtime domain (`chatpad::realtime`).
//!
//! Who may listen:
//! - a **visitor** with a token from `POST /token` (15 minutes, one conversation);
//! - a **team member** with their JWT, for an account where they are `member` or above: the
//!   account's inbox, and any of its conversations. A member of another account gets a 403.

pub mod poll;
pub mod ws;

use chatpad::auth::jwt::{self, JwtVerifier};
use chatpad::auth::{Caller, api_keys::RequestOrigin};
use chatpad::db::{self, Database, GenericClient};
use chatpad::ratelimit::{Limit, RateLimiter};
use chatpad::realtime::{Publisher, VisitorClaims, VisitorTokens};
use chatpad::{ApiError, ApiResult, Deps};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use uuid::Uuid;

/// Rate limits of the public routes and messages.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `POST /token` and `$connect` per client IP.
    pub connect_per_ip: Limit,
    /// `GET /events` per token holder (polling every 3 s is 20 a minute).
    pub poll_per_holder: Limit,
    /// `POST /request-human` per conversation.
    pub request_human: Limit,
    /// Typing notices (HTTP or WebSocket) and other client messages per connection / holder.
    pub messages: Limit,
}

impl Limits {
    /// The defaults, with `REALTIME_CONNECT_RATE_PER_MINUTE` (tokens and connections per IP,
    /// default 60) overridable: a load test from one address needs more.
    pub fn from_env() -> anyhow::Result<Self> {
        let mut limits = Limits::default();
        if let Ok(text) = std::env::var("REALTIME_CONNECT_RATE_PER_MINUTE")
            && !text.trim().is_empty()
        {
            let max = text.trim().parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                anyhow::anyhow!("REALTIME_CONNECT_RATE_PER_MINUTE must be a positive integer")
            })?;
            limits.connect_per_ip = Limit::per_minute("rt-connect-ip", max);
        }
        Ok(limits)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect_per_ip: Limit::per_minute("rt-connect-ip", 60),
            poll_per_holder: Limit::per_minute("rt-poll", 120),
            request_human: Limit::per_minute("rt-request-human", 6),
            messages: Limit::per_minute("rt-messages", 120),
        }
    }
}

/// What the function holds for its life.
pub struct RealtimeDeps {
    pub db: Database,
    pub jwt: JwtVerifier,
    pub tokens: VisitorTokens,
    pub publisher: Publisher,
    pub limiter: RateLimiter,
    pub limits: Limits,
    /// The WebSocket URL clients connect to (`REALTIME_WEBSOCKET_URL`).
    pub websocket_url: String,
    /// This function's public URL (`REALTIME_PUBLIC_URL`), for `pollUrl`; when unset it is
    /// derived from the request's host.
    pub public_url: Option<String>,
}

impl RealtimeDeps {
    /// Reads the configuration from the environment (no network access until the first call).
    pub async fn from_env() -> anyhow::Result<Self> {
        let deps = Deps::from_env()?;
        let sdk = chatpad::aws::sdk_config().await;
        Ok(RealtimeDeps {
            jwt: JwtVerifier::new(&deps.config.jwt)?,
            db: deps.db,
            tokens: VisitorTokens::from_env()?,
            publisher: Publisher::from_env(&sdk)?,
            limiter: RateLimiter::from_env().await?,
            limits: Limits::from_env()?,
            websocket_url: chatpad::config::required_var("REALTIME_WEBSOCKET_URL")?,
            public_url: std::env::var("REALTIME_PUBLIC_URL")
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| v.trim_end_matches('/').to_owned()),
        })
    }
}

/// Handles one event: a WebSocket route or a function URL request.
pub async fn handle(deps: &RealtimeDeps, req: Request) -> Response<Body> {
    if let Some(RequestContext::WebSocket(ctx)) = req.request_context_ref() {
        let ctx = ctx.clone();
        return ws::handle(deps, &ctx, &req).await;
    }
    poll::handle(deps, req).await
}

/// Who holds a token: a visitor in one conversation, or a team member in one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    Visitor(VisitorClaims),
    Member {
        user_id: Uuid,
        account: Uuid,
        name: String,
    },
}

impl Holder {
    /// The caller whose row-level security applies.
    pub fn caller(&self) -> Caller {
        match self {
            Holder::Visitor(claims) => Caller::Widget {
                agent_id: claims.aid,
                visitor_id: claims.sub.clone(),
            },
            Holder::Member { user_id, .. } => Caller::User { user_id: *user_id },
        }
    }

    /// A key for per-holder rate limits.
    pub fn limit_key(&self) -> String {
        match self {
            Holder::Visitor(claims) => format!("conv:{}", claims.cid),
            Holder::Member { user_id, .. } => format!("user:{user_id}"),
        }
    }
}

/// Authenticates `token`: a visitor token, else a team member's JWT for `account` (their own
/// account when `None`), where they must be `member` or above.
pub async fn authenticate(
    deps: &RealtimeDeps,
    token: &str,
    account: Option<Uuid>,
    origin: RequestOrigin<'_>,
) -> ApiResult<Holder> {
    match deps.tokens.verify(token) {
        Ok(claims) => return Ok(Holder::Visitor(claims)),
        Err(err) if err.code() == "token_expired" => return Err(err),
        Err(_) => {}
    }
    let claims = deps.jwt.verify(token).await?;
    let mut client = deps.db.client().await?;
    let tx = db::begin_as(&mut client, &Caller::Anonymous).await?;
    let user_id = jwt::sign_in(&tx, &claims).await?;
    db::act_as(&tx, &Caller::User { user_id }).await?;
    let account = account.unwrap_or(user_id);
    let row = tx
        .query_one(
            "SELECT coalesce(role_rank(account_role($1)) >= role_rank('member'), false),
                    public_user_name($2)",
            &[&account, &user_id],
        )
        .await?;
    tx.commit().await?;
    if !row.get::<_, bool>(0) {
        tracing::info!(%user_id, %account, ip = ?origin.ip, "inbox access refused");
        return Err(ApiError::forbidden(
            "account_forbidden",
            "you are not a member of this account who may answer conversations",
        ));
    }
    Ok(Holder::Member {
        user_id,
        account,
        name: row
            .get::<_, Option<String>>(1)
            .unwrap_or_else(|| "A team member".into()),
    })
}

/// Checks that a member may read `conversation` (it is in their account); 404 otherwise.
pub async fn member_conversation(
    tx: &impl GenericClient,
    account: Uuid,
    conversation: Uuid,
) -> ApiResult<()> {
    tx.query_opt(
        "SELECT 1 FROM conversations WHERE id = $1 AND user_id = $2",
        &[&conversation, &account],
    )
    .await?
    .map(|_| ())
    .ok_or_else(|| ApiError::NotFound {
        code: "conversation_not_found",
        message: "conversation not found".into(),
    })
}

/// Parses an optional UUID parameter, with a 422 naming it.
pub fn uuid_param(value: Option<&str>, name: &str) -> ApiResult<Option<Uuid>> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| Uuid::parse_str(v).map_err(|_| ApiError::invalid_field(name, "must be a UUID")))
        .transpose()
}
