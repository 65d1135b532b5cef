//! POST /validate-api-key: checks an API key and says what it may do. The handler is a plain
//! async function; `main.rs` only wires it to the Lambda runtime.

use chatpad::auth::Caller;
use chatpad::auth::api_keys::{self, RequestOrigin};
use chatpad::ratelimit::{Limit, RateLimiter};
use chatpad::{ApiError, ApiResult, Deps, db, http};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};

/// Keys are short; anything much larger is not a key.
const BODY_LIMIT: usize = 4 * 1024;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ValidateRequest {
    api_key: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ValidKeyResponse {
    valid: bool,
    key_id: uuid::Uuid,
    account_id: uuid::Uuid,
    scopes: Vec<String>,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// What the function holds for its life.
pub struct ValidateDeps {
    pub deps: Deps,
    pub limiter: RateLimiter,
    /// Validations per client IP and minute (`PUBLIC_RATE_LIMIT_PER_MINUTE`, default 60): a
    /// public endpoint that answers "is this key valid" must not be a guessing oracle.
    pub per_ip: Limit,
}

impl ValidateDeps {
    /// Reads the configuration from the environment.
    pub async fn from_env() -> anyhow::Result<Self> {
        let per_minute = std::env::var("PUBLIC_RATE_LIMIT_PER_MINUTE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60);
        Ok(ValidateDeps {
            deps: Deps::from_env()?,
            limiter: RateLimiter::from_env().await?,
            per_ip: Limit::per_minute("validate-api-key", per_minute),
        })
    }
}

/// Handles one request; never fails (errors become JSON error responses).
pub async fn handle(deps: &ValidateDeps, req: Request) -> Response<Body> {
    let request_id = http::request_id(&req);
    http::respond(&request_id, validate(deps, &req).await)
}

async fn validate(deps: &ValidateDeps, req: &Request) -> ApiResult<Response<Body>> {
    http::require_method(req, Method::POST)?;
    let ip = http::client_ip(req).map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    deps.limiter.check(&deps.per_ip, &ip).await?;
    let deps = &deps.deps;
    // The key may come as a bearer token (how API clients send it) or in the JSON body.
    let candidate = match http::bearer_token(req) {
        Some(token) => token.to_owned(),
        None => http::parse_json::<ValidateRequest>(req, BODY_LIMIT)?.api_key,
    };
    let origin = RequestOrigin {
        ip: http::client_ip(req),
        user_agent: http::user_agent(req),
    };

    let mut client = deps.db.client().await?;
    let tx = db::begin_as(&mut client, &Caller::Anonymous).await?;
    let outcome =
        api_keys::verify(&tx, &deps.config.api_key_pepper, candidate.trim(), origin).await?;
    tx.commit().await?;

    let key = outcome.map_err(|_| {
        // One message for every reason, so probing learns nothing; the log has the reason.
        ApiError::unauthorized(
            "invalid_api_key",
            "the API key is invalid, revoked or expired",
        )
    })?;
    http::json(
        StatusCode::OK,
        &ValidKeyResponse {
            valid: true,
            key_id: key.key_id,
            account_id: key.owner_id,
            scopes: key.scopes,
            expires_at: key.expires_at,
        },
    )
}
