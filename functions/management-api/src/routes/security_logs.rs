//! /v1/security-logs

use chatpad::auth::security_log::{self, LogQuery, SecurityLogEntry};
use chatpad::pagination::Page;
use chatpad::{ApiResult, http};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};

use crate::context::Ctx;

#[utoipa::path(get, path = "/v1/security-logs", tag = "security", security(("bearer" = [])),
    params(
        ("eventType" = Option<String>, Query, description = "An event type, or a prefix ending in a dot (api_key.)"),
        ("actor" = Option<uuid::Uuid>, Query, description = "The user who acted"),
        ("since" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "From this time (RFC 3339), inclusive"),
        ("until" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "Until this time (RFC 3339), exclusive"),
        chatpad::pagination::PageParams,
    ),
    responses((status = 200, description = "A page of entries, newest first", body = Page<SecurityLogEntry>)))]
pub async fn list_security_logs(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    ctx.require_scope("admin")?;
    ctx.require_role("admin").await?;
    let query = LogQuery {
        event_type: ctx.query("eventType"),
        actor: ctx.query_as("actor", "a user id (UUID)")?,
        since: ctx.query_as("since", "an RFC 3339 time")?,
        until: ctx.query_as("until", "an RFC 3339 time")?,
        cursor: ctx.query("cursor"),
        limit: ctx.query_as("limit", "an integer")?,
    };
    http::json(
        StatusCode::OK,
        &security_log::list(ctx.tx, ctx.session.account, &query).await?,
    )
}
