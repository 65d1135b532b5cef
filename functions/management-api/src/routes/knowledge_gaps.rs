//! /v1/agents/{agentId}/knowledge-gaps and /v1/knowledge-gaps/{gapId}: the questions an agent
//! could not answer from its knowledge.

use chatpad::chat::gaps::{self, KnowledgeGap};
use chatpad::pagination::Page;
use chatpad::{ApiResult, http};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::context::Ctx;

/// A change of a knowledge gap.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GapChange {
    /// True once the knowledge that answers it was added; false reopens it.
    pub resolved: bool,
}

#[utoipa::path(get, path = "/v1/agents/{agentId}/knowledge-gaps", tag = "knowledge", security(("bearer" = [])),
    params(
        ("agentId" = uuid::Uuid, Path, description = "Agent id"),
        ("resolved" = Option<bool>, Query, description = "Resolved gaps (true) or open ones (false, the default)"),
        chatpad::pagination::PageParams,
    ),
    responses((status = 200, description = "Questions the agent had no good knowledge for, newest first", body = Page<KnowledgeGap>)))]
pub async fn list_knowledge_gaps(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    ctx.require_scope("knowledge:read")?;
    let page = gaps::list(
        ctx.tx,
        ctx.params[0],
        ctx.query_as("resolved", "true or false")?,
        ctx.query("cursor"),
        ctx.query_as("limit", "an integer")?,
    )
    .await?;
    http::json(StatusCode::OK, &page)
}

#[utoipa::path(patch, path = "/v1/knowledge-gaps/{gapId}", tag = "knowledge", security(("bearer" = [])),
    params(("gapId" = uuid::Uuid, Path, description = "Knowledge gap id")),
    request_body = GapChange,
    responses((status = 200, description = "The updated gap", body = KnowledgeGap)))]
pub async fn update_knowledge_gap(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    ctx.require_scope("knowledge:write")?;
    ctx.require_role("manager").await?;
    let change: GapChange = ctx.body()?;
    let gap = gaps::set_resolved(ctx.tx, ctx.params[0], change.resolved).await?;
    ctx.audit("knowledge_gap.updated", "knowledge_gap", gap.id)
        .await?;
    http::json(StatusCode::OK, &gap)
}
