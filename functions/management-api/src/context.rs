//! Authentication and the per-request context handed to route handlers.

use std::collections::HashMap;

use chatpad::auth::api_keys::{self, RequestOrigin, VerifiedKey};
use chatpad::auth::security_log::{self, SecurityEvent};
use chatpad::auth::{Caller, jwt};
use chatpad::db::{self, Transaction};
use chatpad::{ApiError, ApiResult, http};
use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::router::{self, Route};
use crate::{BODY_LIMIT, ManagementDeps, routes};

/// Header selecting which account a signed-in user acts in (default: their own).
pub const ACCOUNT_HEADER: &str = "x-account-id";

/// Who is calling and for which account.
pub struct Session {
    pub caller: Caller,
    /// The account acted in.
    pub account: Uuid,
    /// Set when the caller is an API key.
    pub key: Option<VerifiedKey>,
}

/// Everything a route handler needs.
pub struct Ctx<'a> {
    pub deps: &'a ManagementDeps,
    pub tx: &'a Transaction<'a>,
    pub session: &'a Session,
    pub req: &'a Request,
    /// The route's UUID path parameters, in order.
    pub params: Vec<Uuid>,
    pub query: HashMap<String, String>,
}

impl Ctx<'_> {
    /// The request's JSON body.
    pub fn body<T: DeserializeOwned>(&self) -> ApiResult<T> {
        http::parse_json(self.req, BODY_LIMIT)
    }

    /// A query parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// A query parameter parsed as `T`, with a 422 naming it when it does not parse.
    pub fn query_as<T: std::str::FromStr>(
        &self,
        name: &str,
        expected: &str,
    ) -> ApiResult<Option<T>> {
        self.query(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| ApiError::invalid_field(name, format!("must be {expected}")))
            })
            .transpose()
    }

    /// Requires an API key caller to hold `scope` (users are governed by their role alone).
    pub fn require_scope(&self, scope: &str) -> ApiResult<()> {
        match &self.session.key {
            Some(key) if !key.allows(scope) => Err(ApiError::forbidden(
                "insufficient_scope",
                format!("this API key lacks the {scope} scope"),
            )),
            _ => Ok(()),
        }
    }

    /// Requires the caller's role in the account to be at least `role` (`owner`, `admin`,
    /// `manager`, `member`, `client`). Row-level security enforces the same rules; this check
    /// only turns what would be an empty list or a silent no-op into a clear 403.
    pub async fn require_role(&self, role: &str) -> ApiResult<()> {
        let allowed: bool = self
            .tx
            .query_one(
                "SELECT role_rank(account_role($1)) >= role_rank($2)",
                &[&self.session.account, &role],
            )
            .await?
            .get(0);
        if allowed {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "role_forbidden",
                format!("this needs the {role} role or above in this account"),
            ))
        }
    }

    /// Records a change in the security log, in the same transaction as the change.
    pub async fn audit(
        &self,
        event_type: &str,
        resource_type: &str,
        resource_id: impl ToString,
    ) -> ApiResult<()> {
        let mut event = SecurityEvent::new(Some(self.session.account), event_type);
        event.resource_type = Some(resource_type);
        event.resource_id = Some(resource_id.to_string());
        event.ip = http::client_ip(self.req);
        event.user_agent = http::user_agent(self.req);
        if let Some(key) = &self.session.key {
            event.details = serde_json::json!({ "apiKeyId": key.key_id });
        }
        security_log::record(self.tx, &event).await
    }
}

/// Routes, authenticates and runs one request.
pub async fn run(deps: &ManagementDeps, req: &Request) -> ApiResult<Response<Body>> {
    let (route, params) = router::resolve(req.method(), req.uri().path())?;
    if route == Route::OpenApi {
        return routes::meta::openapi();
    }
    let query = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();

    let mut client = deps.deps.db.client().await?;
    let tx = db::begin_as(&mut client, &Caller::Anonymous).await?;
    let session = match authenticate(deps, &tx, req).await? {
        Ok(session) => session,
        Err(refusal) => {
            // The failed attempt is logged and committed; the caller gets the 401.
            tx.commit().await?;
            return Err(refusal);
        }
    };
    let caller_key = match &session.key {
        Some(key) => format!("key:{}", key.key_id),
        None => format!("user:{}", session.caller.user_id().unwrap_or_default()),
    };
    deps.limiter.check(&deps.per_caller, &caller_key).await?;
    let ctx = Ctx {
        deps,
        tx: &tx,
        session: &session,
        req,
        params,
        query,
    };
    let response = routes::dispatch(route, &ctx).await?;
    if req.method() == Method::GET {
        tx.commit().await?;
    } else {
        // Conversation changes (takeovers, assignment) reach the widget and the inbox live.
        deps.publisher.commit(tx).await?;
        // Jobs the change queued (ingestion, file deletion) go to SQS now; if this fails the
        // scheduler's sweep sends them within a minute.
        drop(client);
        if let Err(err) = deps.relay.run(&deps.deps.db, 50).await {
            tracing::warn!(
                error = format!("{err:#}"),
                "outbox relay after the request failed"
            );
        }
    }
    Ok(response)
}

/// Verifies the bearer credential and settles the account. The outer `Result` is a failure of
/// ours; the inner one a refusal to send to the caller after committing its log entry.
async fn authenticate(
    deps: &ManagementDeps,
    tx: &Transaction<'_>,
    req: &Request,
) -> ApiResult<Result<Session, ApiError>> {
    let origin = RequestOrigin {
        ip: http::client_ip(req),
        user_agent: http::user_agent(req),
    };
    let Some(token) = http::bearer_token(req) else {
        return Ok(Err(ApiError::unauthorized(
            "missing_credentials",
            "send Authorization: Bearer <JWT or API key>",
        )));
    };

    if token.starts_with("cpk_") {
        return Ok(
            match api_keys::verify(tx, &deps.deps.config.api_key_pepper, token, origin).await? {
                Err(_) => Err(ApiError::unauthorized(
                    "invalid_api_key",
                    "the API key is invalid, revoked or expired",
                )),
                Ok(key) => {
                    match api_keys::require_api_access(tx, key.owner_id).await {
                        Err(refusal @ ApiError::PlanLimit { .. }) => return Ok(Err(refusal)),
                        other => other?,
                    }
                    Ok(Session {
                        caller: key.caller(),
                        account: key.owner_id,
                        key: Some(key),
                    })
                }
            },
        );
    }

    let claims = match deps.jwt.verify(token).await {
        Ok(claims) => claims,
        Err(refusal) => {
            let mut event = SecurityEvent::new(None, "auth.failed");
            event.ip = origin.ip;
            event.user_agent = origin.user_agent;
            event.details = serde_json::json!({ "reason": refusal.code() });
            security_log::record(tx, &event).await?;
            return Ok(Err(refusal));
        }
    };
    let user_id = jwt::sign_in(tx, &claims).await?;
    let caller = Caller::User { user_id };
    db::act_as(tx, &caller).await?;
    let account = match req
        .headers()
        .get(ACCOUNT_HEADER)
        .map(|v| v.to_str().ok().and_then(|s| Uuid::parse_str(s).ok()))
    {
        None => user_id,
        Some(None) => {
            return Ok(Err(ApiError::BadRequest {
                code: "invalid_account_header",
                message: format!("{ACCOUNT_HEADER} must be an account id (UUID)"),
            }));
        }
        Some(Some(account)) => {
            let role: Option<String> = tx
                .query_one("SELECT account_role($1)", &[&account])
                .await?
                .get(0);
            if role.is_none() {
                return Ok(Err(ApiError::not_found("account")));
            }
            account
        }
    };
    Ok(Ok(Session {
        caller,
        account,
        key: None,
    }))
}
