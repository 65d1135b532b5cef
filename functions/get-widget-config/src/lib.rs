//! GET `?agentId=…` or POST `{"agentId": "…"}`: the public configuration the widget renders
//! an agent with. One query, no transaction, no model; an `ETag` (a hash of the body) answers
//! `If-None-Match` with 304, and GET responses may be cached for a minute.
//!
//! Browser calls (with an `Origin`) from pages outside the agent's allowed domains get 403
//! and no CORS headers; allowed pages get their origin echoed.
//!
//! GET `/articles?agentId=&q=` lists the agent's published help-center articles (searchable)
//! for the widget's help center, under the same Origin rules.
//!
//! Not rate-limited per caller: a DynamoDB round trip would cost more than the answer, which
//! is public and cacheable. The function's reserved concurrency (template.yaml) bounds abuse.

use chatpad::agents::widget::agent_not_found;
use chatpad::agents::{self, help_articles, widget};
use chatpad::auth::Caller;
use chatpad::{ApiError, ApiResult, Deps, db, http};
use lambda_http::http::header;
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The only field is an id.
const BODY_LIMIT: usize = 1024;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConfigRequest {
    agent_id: Uuid,
}

/// Handles one request; never fails (errors become JSON error responses).
pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let request_id = http::request_id(&req);
    let origin = http::origin(&req);
    if req.method() == Method::OPTIONS {
        return http::respond(&request_id, Ok(http::preflight(origin)));
    }
    let result = match req.uri().path().trim_end_matches('/') {
        "/articles" => articles(deps, &req, origin).await,
        _ => config(deps, &req, origin).await,
    };
    http::widget_respond(&request_id, origin, result)
}

/// A published help-center article as the widget shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PublicArticle {
    id: Uuid,
    title: String,
    body_markdown: String,
    category: Option<String>,
}

/// GET `/articles?agentId=&q=&cursor=`: the agent's published help-center articles in display
/// order, optionally a full-text search. Read as a widget visitor, so row-level security
/// limits it to published articles of an active agent; a disabled help center is a 404.
async fn articles(deps: &Deps, req: &Request, origin: Option<&str>) -> ApiResult<Response<Body>> {
    http::require_method(req, Method::GET)?;
    let params = req.query_string_parameters_ref();
    let param = |name: &str| params.and_then(|p| p.first(name)).map(str::trim);
    let agent_id = param("agentId")
        .ok_or_else(|| ApiError::invalid_field("agentId", "pass the agent's id as ?agentId="))?
        .parse::<Uuid>()
        .map_err(|_| ApiError::invalid_field("agentId", "must be a UUID"))?;
    let search = param("q").filter(|q| !q.is_empty());
    if search.is_some_and(|q| q.chars().count() > 200) {
        return Err(ApiError::invalid_field(
            "q",
            "must be at most 200 characters long",
        ));
    }
    let visitor = Caller::Widget {
        agent_id,
        visitor_id: "help-center".into(),
    };
    let mut client = deps.db.client().await?;
    let tx = db::begin_as(&mut client, &visitor).await?;
    let agent = match agents::get(&tx, agent_id).await {
        Ok(agent) => agent,
        Err(ApiError::NotFound { .. }) => return Err(agent_not_found()),
        Err(err) => return Err(err),
    };
    widget::check_origin(&agent.allowed_domains, origin)?;
    if !agent.help_center_enabled {
        return Err(ApiError::NotFound {
            code: "help_center_disabled",
            message: "this agent has no help center".into(),
        });
    }
    let page =
        help_articles::list(&tx, agent_id, Some(true), search, param("cursor"), Some(20)).await?;
    let data: Vec<PublicArticle> = page
        .data
        .into_iter()
        .map(|a| PublicArticle {
            id: a.id,
            title: a.title,
            body_markdown: a.body_markdown,
            category: a.category,
        })
        .collect();
    let mut response = http::json(
        StatusCode::OK,
        &serde_json::json!({ "data": data, "nextCursor": page.next_cursor }),
    )?;
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("public, max-age=60"),
    );
    Ok(response)
}

async fn config(deps: &Deps, req: &Request, origin: Option<&str>) -> ApiResult<Response<Body>> {
    let agent_id = match *req.method() {
        Method::GET => {
            let params = req.query_string_parameters_ref();
            let id = params.and_then(|p| p.first("agentId")).ok_or_else(|| {
                ApiError::invalid_field("agentId", "pass the agent's id as ?agentId=")
            })?;
            id.parse::<Uuid>()
                .map_err(|_| ApiError::invalid_field("agentId", "must be a UUID"))?
        }
        Method::POST => http::parse_json::<ConfigRequest>(req, BODY_LIMIT)?.agent_id,
        _ => return Err(ApiError::MethodNotAllowed),
    };

    let client = deps.db.client().await?;
    let config = widget::load(&client, agent_id)
        .await?
        .ok_or_else(agent_not_found)?;
    widget::check_origin(&config.allowed_domains, origin)?;

    let body = serde_json::to_vec(&config).map_err(|err| ApiError::Internal(err.into()))?;
    let digest = Sha256::digest(&body);
    let etag = format!("\"{}\"", hex(&digest[..16]));
    let cache = if req.method() == Method::GET {
        "public, max-age=60, stale-while-revalidate=300"
    } else {
        "no-cache"
    };
    let not_modified = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let builder = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, cache);
    Ok(if not_modified {
        builder.status(StatusCode::NOT_MODIFIED).body(Body::Empty)
    } else {
        builder
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
    }
    .expect("valid headers"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
