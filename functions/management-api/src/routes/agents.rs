//! /v1/agents

use chatpad::agents::{self, Agent, AgentFields, AgentQuery, AgentStatus};
use chatpad::pagination::Page;
use chatpad::{ApiError, ApiResult, http};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};

use super::no_content;
use crate::context::Ctx;

#[utoipa::path(get, path = "/v1/agents", tag = "agents", security(("bearer" = [])),
    params(
        ("status" = Option<AgentStatus>, Query, description = "Only agents with this status"),
        ("q" = Option<String>, Query, description = "Case-insensitive substring of the name"),
        ("sort" = Option<String>, Query, description = "created_at, updated_at or name; prefix - for descending (default -created_at)"),
        chatpad::pagination::PageParams,
    ),
    responses((status = 200, description = "A page of agents", body = Page<Agent>)))]
pub async fn list_agents(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    ctx.require_scope("agents:read")?;
    let status = match ctx.query("status") {
        None => None,
        Some("active") => Some(AgentStatus::Active),
        Some("disabled") => Some(AgentStatus::Disabled),
        Some(_) => {
            return Err(ApiError::invalid_field(
                "status",
                "must be active or disabled",
            ));
        }
    };
    let query = AgentQuery {
        status,
        search: ctx.query("q"),
        sort: ctx.query("sort"),
        cursor: ctx.query("cursor"),
        limit: ctx.query_as("limit", "an integer")?,
    };
    http::json(
        StatusCode::OK,
        &agents::list(ctx.tx, ctx.session.account, &query).await?,
    )
}

#[utoipa::path(post, path = "/v1/agents", tag = "agents", security(("bearer" = [])),
    request_body = AgentFields,
    responses((status = 201, description = "The new agent", body = Agent)))]
pub async fn create_agent(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    ctx.require_scope("agents:write")?;
    ctx.require_role("manager").await?;
    let fields: AgentFields = ctx.body()?;
    let agent = agents::create(ctx.tx, ctx.session.account, &fields).await?;
    ctx.audit("agent.created", "agent", agent.id).await?;
    http::json(StatusCode::CREATED, &agent)
}

#[utoipa::path(get, path = "/v1/agents/{agentId}", tag = "agents", security(("bearer" = [])),
    params(("agentId" = uuid::Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "The agent", body = Agent)))]
pub async fn get_agent(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    ctx.require_scope("agents:read")?;
    http::json(StatusCode::OK, &agents::get(ctx.tx, ctx.params[0]).await?)
}

#[utoipa::path(patch, path = "/v1/agents/{agentId}", tag = "agents", security(("bearer" = [])),
    params(("agentId" = uuid::Uuid, Path, description = "Agent id")),
    request_body = AgentFields,
    responses((status = 200, description = "The updated agent", body = Agent)))]
pub async fn update_agent(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    ctx.require_scope("agents:write")?;
    ctx.require_role("manager").await?;
    let fields: AgentFields = ctx.body()?;
    let agent = agents::update(ctx.tx, ctx.params[0], &fields).await?;
    ctx.audit("agent.updated", "agent", agent.id).await?;
    http::json(StatusCode::OK, &agent)
}

#[utoipa::path(delete, path = "/v1/agents/{agentId}", tag = "agents", security(("bearer" = [])),
    params(("agentId" = uuid::Uuid, Path, description = "Agent id")),
    responses((status = 204, description = "Deleted with its conversations, knowledge and leads")))]
pub async fn delete_agent(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    ctx.require_scope("agents:write")?;
    ctx.require_role("manager").await?;
    agents::delete(ctx.tx, ctx.params[0]).await?;
    ctx.audit("agent.deleted", "agent", ctx.params[0]).await?;
    no_content()
}
