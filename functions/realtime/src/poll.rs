//! The function URL: tokens for visitors, the event catch-up / polling fallback, and the
//! visitor's "talk to a person" and typing notices for networks without WebSockets.

use chatpad::agents::widget::{agent_not_found, check_origin};
use chatpad::auth::Caller;
use chatpad::auth::api_keys::RequestOrigin;
use chatpad::db;
use chatpad::realtime::events::{self, Event, Scope};
use chatpad::realtime::{Channel, VisitorClaims};
use chatpad::{ApiError, ApiResult, http, takeover};
use lambda_http::http::{Method, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Holder, RealtimeDeps, authenticate, member_conversation, uuid_param};

/// Largest request body of these routes.
const BODY_LIMIT: usize = 4 * 1024;

/// Handles one function URL request.
pub async fn handle(deps: &RealtimeDeps, req: Request) -> Response<Body> {
    let request_id = http::request_id(&req);
    let origin = http::origin(&req).map(str::to_owned);
    if req.method() == Method::OPTIONS {
        return http::respond(&request_id, Ok(http::preflight(origin.as_deref())));
    }
    let result = route(deps, &req).await;
    http::widget_respond(&request_id, origin.as_deref(), result)
}

async fn route(deps: &RealtimeDeps, req: &Request) -> ApiResult<Response<Body>> {
    let path = req.uri().path().trim_end_matches('/');
    let (method, handler) = match path {
        "/token" => (Method::POST, Route::Token),
        "/events" => (Method::GET, Route::Events),
        "/request-human" => (Method::POST, Route::RequestHuman),
        "/typing" => (Method::POST, Route::Typing),
        _ => {
            return Err(ApiError::NotFound {
                code: "route_not_found",
                message: format!("no such endpoint: {} {path}", req.method()),
            });
        }
    };
    http::require_method(req, method)?;
    match handler {
        Route::Token => token(deps, req).await,
        Route::Events => poll_events(deps, req).await,
        Route::RequestHuman => request_human(deps, req).await,
        Route::Typing => typing(deps, req).await,
    }
}

enum Route {
    Token,
    Events,
    RequestHuman,
    Typing,
}

fn origin_of(req: &Request) -> RequestOrigin<'_> {
    RequestOrigin {
        ip: http::client_ip(req),
        user_agent: http::user_agent(req),
    }
}

fn bearer(req: &Request) -> ApiResult<&str> {
    http::bearer_token(req).ok_or_else(|| {
        ApiError::unauthorized(
            "missing_credentials",
            "send Authorization: Bearer <realtime token or JWT>",
        )
    })
}

/// The visitor of a visitor token; 403 for anyone else.
async fn visitor(deps: &RealtimeDeps, req: &Request) -> ApiResult<VisitorClaims> {
    match authenticate(deps, bearer(req)?, None, origin_of(req)).await {
        Ok(Holder::Visitor(claims)) => Ok(claims),
        Ok(Holder::Member { .. }) => Err(ApiError::forbidden(
            "visitor_only",
            "this endpoint takes a visitor's realtime token",
        )),
        Err(err) => Err(err),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TokenRequest {
    agent_id: Uuid,
    visitor_id: String,
    conversation_id: Uuid,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenResponse {
    token: String,
    expires_at: chrono::DateTime<chrono::Utc>,
    websocket_url: String,
    poll_url: String,
}

/// `POST /token`: a visitor token for their conversation, authorised like widget-chat (the
/// conversation must be this visitor's with this agent, the page an allowed origin).
async fn token(deps: &RealtimeDeps, req: &Request) -> ApiResult<Response<Body>> {
    let body: TokenRequest = http::parse_json(req, BODY_LIMIT)?;
    let ip = http::client_ip(req).map_or_else(|| "unknown".into(), |ip| ip.to_string());
    deps.limiter.check(&deps.limits.connect_per_ip, &ip).await?;
    if body.visitor_id.is_empty() || body.visitor_id.len() > 128 {
        return Err(ApiError::invalid_field(
            "visitorId",
            "must be 1-128 characters",
        ));
    }
    let caller = Caller::Widget {
        agent_id: body.agent_id,
        visitor_id: body.visitor_id.clone(),
    };
    let mut client = deps.db.client().await?;
    let tx = db::begin_as(&mut client, &caller).await?;
    let allowed: Vec<String> = tx
        .query_opt(
            "SELECT allowed_domains FROM agents WHERE id = $1",
            &[&body.agent_id],
        )
        .await?
        .ok_or_else(agent_not_found)?
        .get(0);
    check_origin(&allowed, http::origin(req))?;
    // Row-level security shows a visitor only its own conversations with this agent.
    tx.query_opt(
        "SELECT 1 FROM conversations WHERE id = $1",
        &[&body.conversation_id],
    )
    .await?
    .ok_or_else(|| ApiError::NotFound {
        code: "conversation_not_found",
        message: "no such conversation for this visitor and agent".into(),
    })?;
    tx.commit().await?;

    let (token, expires_at) =
        deps.tokens
            .issue(body.agent_id, &body.visitor_id, body.conversation_id);
    let base = match &deps.public_url {
        Some(url) => url.clone(),
        None => {
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("localhost");
            format!("https://{host}")
        }
    };
    http::json(
        StatusCode::OK,
        &TokenResponse {
            token,
            expires_at,
            websocket_url: deps.websocket_url.clone(),
            poll_url: format!("{base}/events"),
        },
    )
}

#[derive(Debug, Serialize)]
struct EventsPage {
    events: Vec<Event>,
    cursor: String,
}

/// `GET /events?after=<cursor>`: persisted events after the cursor, oldest first. A visitor
/// reads their conversation; a member a conversation (`conversationId=`) or the account's
/// inbox (`accountId=`, default their own).
async fn poll_events(deps: &RealtimeDeps, req: &Request) -> ApiResult<Response<Body>> {
    let query = req.query_string_parameters();
    let after = events::parse_cursor(query.first("after"))?;
    let conversation = uuid_param(query.first("conversationId"), "conversationId")?;
    let account = uuid_param(query.first("accountId"), "accountId")?;
    let holder = authenticate(deps, bearer(req)?, account, origin_of(req)).await?;
    deps.limiter
        .check(&deps.limits.poll_per_holder, &holder.limit_key())
        .await?;

    let mut client = deps.db.client().await?;
    let tx = db::begin_as(&mut client, &holder.caller()).await?;
    let scope = match &holder {
        Holder::Visitor(claims) => {
            if conversation.is_some_and(|c| c != claims.cid) {
                return Err(ApiError::forbidden(
                    "conversation_forbidden",
                    "this token is for another conversation",
                ));
            }
            Scope::Conversation(claims.cid)
        }
        Holder::Member { account, .. } => match conversation {
            Some(conversation) => {
                member_conversation(&tx, *account, conversation).await?;
                Scope::Conversation(conversation)
            }
            None => Scope::Account(*account),
        },
    };
    let events = events::since(&tx, scope, after).await?;
    tx.commit().await?;
    let cursor = events
        .last()
        .and_then(|e| e.id.clone())
        .unwrap_or_else(|| after.to_string());
    http::json(StatusCode::OK, &EventsPage { events, cursor })
}

/// `POST /request-human`: the visitor asks for a person; the inbox hears of it.
async fn request_human(deps: &RealtimeDeps, req: &Request) -> ApiResult<Response<Body>> {
    let claims = visitor(deps, req).await?;
    deps.limiter
        .check(&deps.limits.request_human, &claims.cid.to_string())
        .await?;
    let caller = Caller::Widget {
        agent_id: claims.aid,
        visitor_id: claims.sub.clone(),
    };
    let mut client = deps.db.client().await?;
    let tx = db::begin_as(&mut client, &caller).await?;
    takeover::request_human(&tx, claims.cid).await?;
    deps.publisher.commit(tx).await?;
    http::json(StatusCode::OK, &serde_json::json!({ "needsHuman": true }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TypingRequest {
    typing: bool,
}

/// `POST /typing`: the visitor is typing (or stopped), for the team's inbox.
async fn typing(deps: &RealtimeDeps, req: &Request) -> ApiResult<Response<Body>> {
    let claims = visitor(deps, req).await?;
    let body: TypingRequest = http::parse_json(req, BODY_LIMIT)?;
    deps.limiter
        .check(&deps.limits.messages, &format!("conv:{}", claims.cid))
        .await?;
    let account = visitor_account(deps, &claims).await?;
    publish_visitor_typing(deps, &claims, account, body.typing).await;
    Ok(Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Body::Empty)
        .expect("static response"))
}

/// The account that owns a visitor's conversation (for the inbox channel).
pub async fn visitor_account(deps: &RealtimeDeps, claims: &VisitorClaims) -> ApiResult<Uuid> {
    let caller = Caller::Widget {
        agent_id: claims.aid,
        visitor_id: claims.sub.clone(),
    };
    let mut client = deps.db.client().await?;
    let tx = db::begin_as(&mut client, &caller).await?;
    let account = tx
        .query_opt(
            "SELECT user_id FROM conversations WHERE id = $1",
            &[&claims.cid],
        )
        .await?
        .ok_or_else(|| ApiError::NotFound {
            code: "conversation_not_found",
            message: "conversation not found".into(),
        })?
        .get(0);
    tx.commit().await?;
    Ok(account)
}

/// Tells the conversation and its account's inbox that the visitor is typing.
pub async fn publish_visitor_typing(
    deps: &RealtimeDeps,
    claims: &VisitorClaims,
    account: Uuid,
    typing: bool,
) {
    let event = Event::ephemeral(
        "typing",
        Some(claims.cid),
        serde_json::json!({ "from": "visitor", "name": null, "typing": typing }),
    );
    deps.publisher
        .send_logged(
            &[Channel::Conversation(claims.cid), Channel::Account(account)],
            &event,
        )
        .await;
}
