//! /v1/agents/{agentId}/help-articles and /v1/help-articles/{articleId}

use chatpad::agents::help_articles::{self, HelpArticle, HelpArticleFields};
use chatpad::pagination::Page;
use chatpad::{ApiResult, http};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};

use super::no_content;
use crate::context::Ctx;

#[utoipa::path(get, path = "/v1/agents/{agentId}/help-articles", tag = "help articles", security(("bearer" = [])),
    params(
        ("agentId" = uuid::Uuid, Path, description = "Agent id"),
        ("published" = Option<bool>, Query, description = "Only published (true) or drafts (false)"),
        ("q" = Option<String>, Query, description = "Full-text search in title and body"),
        chatpad::pagination::PageParams,
    ),
    responses((status = 200, description = "A page of articles in display order", body = Page<HelpArticle>)))]
pub async fn list_help_articles(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    ctx.require_scope("agents:read")?;
    let page = help_articles::list(
        ctx.tx,
        ctx.params[0],
        ctx.query_as("published", "true or false")?,
        ctx.query("q"),
        ctx.query("cursor"),
        ctx.query_as("limit", "an integer")?,
    )
    .await?;
    http::json(StatusCode::OK, &page)
}

#[utoipa::path(post, path = "/v1/agents/{agentId}/help-articles", tag = "help articles", security(("bearer" = [])),
    params(("agentId" = uuid::Uuid, Path, description = "Agent id")),
    request_body = HelpArticleFields,
    responses((status = 201, description = "The new article", body = HelpArticle)))]
pub async fn create_help_article(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    ctx.require_scope("agents:write")?;
    ctx.require_role("manager").await?;
    let article = help_articles::create(ctx.tx, ctx.params[0], &ctx.body()?).await?;
    ctx.audit("help_article.created", "help_article", article.id)
        .await?;
    http::json(StatusCode::CREATED, &article)
}

#[utoipa::path(get, path = "/v1/help-articles/{articleId}", tag = "help articles", security(("bearer" = [])),
    params(("articleId" = uuid::Uuid, Path, description = "Article id")),
    responses((status = 200, description = "The article", body = HelpArticle)))]
pub async fn get_help_article(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    ctx.require_scope("agents:read")?;
    http::json(
        StatusCode::OK,
        &help_articles::get(ctx.tx, ctx.params[0]).await?,
    )
}

#[utoipa::path(patch, path = "/v1/help-articles/{articleId}", tag = "help articles", security(("bearer" = [])),
    params(("articleId" = uuid::Uuid, Path, description = "Article id")),
    request_body = HelpArticleFields,
    responses((status = 200, description = "The updated article", body = HelpArticle)))]
pub async fn update_help_article(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    ctx.require_scope("agents:write")?;
    ctx.require_role("manager").await?;
    let article = help_articles::update(ctx.tx, ctx.params[0], &ctx.body()?).await?;
    ctx.audit("help_article.updated", "help_article", article.id)
        .await?;
    http::json(StatusCode::OK, &article)
}

#[utoipa::path(delete, path = "/v1/help-articles/{articleId}", tag = "help articles", security(("bearer" = [])),
    params(("articleId" = uuid::Uuid, Path, description = "Article id")),
    responses((status = 204, description = "Deleted")))]
pub async fn delete_help_article(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    ctx.require_scope("agents:write")?;
    ctx.require_role("manager").await?;
    help_articles::delete(ctx.tx, ctx.params[0]).await?;
    ctx.audit("help_article.deleted", "help_article", ctx.params[0])
        .await?;
    no_content()
}
