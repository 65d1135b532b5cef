//! /v1/agents/{agentId}/knowledge… and /v1/knowledge/{sourceId}…: an agent's knowledge
//! sources — upload URLs, adding, listing, re-syncing, deleting — and their chunks.

use chatpad::knowledge::files::{self, UploadRequest, UploadTicket};
use chatpad::knowledge::sources::{self, ChunkView, NewSource, Source, SourceChanges};
use chatpad::pagination::Page;
use chatpad::{ApiResult, http};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};

use super::no_content;
use crate::context::Ctx;

#[utoipa::path(get, path = "/v1/agents/{agentId}/knowledge", tag = "knowledge", security(("bearer" = [])),
    params(
        ("agentId" = uuid::Uuid, Path, description = "Agent id"),
        ("status" = Option<String>, Query, description = "Only sources in this status: pending, processing, ready or error"),
        chatpad::pagination::PageParams,
    ),
    responses((status = 200, description = "A page of sources, newest first", body = Page<Source>)))]
pub async fn list_sources(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    ctx.require_scope("knowledge:read")?;
    let page = sources::list(
        ctx.tx,
        ctx.params[0],
        ctx.query("status"),
        ctx.query("cursor"),
        ctx.query_as("limit", "an integer")?,
    )
    .await?;
    http::json(StatusCode::OK, &page)
}

#[utoipa::path(post, path = "/v1/agents/{agentId}/knowledge/uploads", tag = "knowledge", security(("bearer" = [])),
    params(("agentId" = uuid::Uuid, Path, description = "Agent id")),
    request_body = UploadRequest,
    responses((status = 201, description = "PUT the file's bytes to `url` with exactly these `headers`, then add a `file` source with the `uploadId`", body = UploadTicket)))]
pub async fn create_upload(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    ctx.require_scope("knowledge:write")?;
    ctx.require_role("manager").await?;
    let ticket = files::create_upload(ctx.tx, &ctx.deps.files, ctx.params[0], &ctx.body()?).await?;
    http::json(StatusCode::CREATED, &ticket)
}

#[utoipa::path(post, path = "/v1/agents/{agentId}/knowledge", tag = "knowledge", security(("bearer" = [])),
    params(("agentId" = uuid::Uuid, Path, description = "Agent id")),
    request_body = NewSource,
    responses((status = 201, description = "The new source, `pending`: processing starts in the background", body = Source)))]
pub async fn create_source(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    ctx.require_scope("knowledge:write")?;
    ctx.require_role("manager").await?;
    let source = sources::create(ctx.tx, &ctx.deps.files, ctx.params[0], &ctx.body()?).await?;
    ctx.audit("knowledge_source.created", "knowledge_source", source.id)
        .await?;
    http::json(StatusCode::CREATED, &source)
}

#[utoipa::path(get, path = "/v1/knowledge/{sourceId}", tag = "knowledge", security(("bearer" = [])),
    params(("sourceId" = uuid::Uuid, Path, description = "Knowledge source id")),
    responses((status = 200, description = "The source with its status and progress", body = Source)))]
pub async fn get_source(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    ctx.require_scope("knowledge:read")?;
    http::json(StatusCode::OK, &sources::get(ctx.tx, ctx.params[0]).await?)
}

#[utoipa::path(patch, path = "/v1/knowledge/{sourceId}", tag = "knowledge", security(("bearer" = [])),
    params(("sourceId" = uuid::Uuid, Path, description = "Knowledge source id")),
    request_body = SourceChanges,
    responses((status = 200, description = "The updated source", body = Source)))]
pub async fn update_source(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    ctx.require_scope("knowledge:write")?;
    ctx.require_role("manager").await?;
    let source = sources::update(ctx.tx, ctx.params[0], &ctx.body()?).await?;
    ctx.audit("knowledge_source.updated", "knowledge_source", source.id)
        .await?;
    http::json(StatusCode::OK, &source)
}

#[utoipa::path(post, path = "/v1/knowledge/{sourceId}/sync", tag = "knowledge", security(("bearer" = [])),
    params(("sourceId" = uuid::Uuid, Path, description = "Knowledge source id")),
    responses((status = 202, description = "Queued again; web sources skip unchanged pages", body = Source)))]
pub async fn resync_source(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    ctx.require_scope("knowledge:write")?;
    ctx.require_role("manager").await?;
    let source = sources::resync(ctx.tx, ctx.params[0]).await?;
    ctx.audit("knowledge_source.resynced", "knowledge_source", source.id)
        .await?;
    http::json(StatusCode::ACCEPTED, &source)
}

#[utoipa::path(delete, path = "/v1/knowledge/{sourceId}", tag = "knowledge", security(("bearer" = [])),
    params(("sourceId" = uuid::Uuid, Path, description = "Knowledge source id")),
    responses((status = 204, description = "Deleted with its chunks; its file is deleted in the background")))]
pub async fn delete_source(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    ctx.require_scope("knowledge:write")?;
    ctx.require_role("manager").await?;
    sources::delete(ctx.tx, ctx.params[0]).await?;
    ctx.audit(
        "knowledge_source.deleted",
        "knowledge_source",
        ctx.params[0],
    )
    .await?;
    no_content()
}

#[utoipa::path(get, path = "/v1/knowledge/{sourceId}/chunks", tag = "knowledge", security(("bearer" = [])),
    params(
        ("sourceId" = uuid::Uuid, Path, description = "Knowledge source id"),
        chatpad::pagination::PageParams,
    ),
    responses((status = 200, description = "A page of the source's chunks in document order", body = Page<ChunkView>)))]
pub async fn list_chunks(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    ctx.require_scope("knowledge:read")?;
    let page = sources::list_chunks(
        ctx.tx,
        ctx.params[0],
        ctx.query("cursor"),
        ctx.query_as("limit", "an integer")?,
    )
    .await?;
    http::json(StatusCode::OK, &page)
}
