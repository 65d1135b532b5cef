//! /v1/api-keys

use chatpad::auth::key_management::{self, ApiKeyInfo, CreatedApiKey, NewApiKey};
use chatpad::{ApiResult, http};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};

use crate::context::Ctx;

#[utoipa::path(get, path = "/v1/api-keys", tag = "api keys", security(("bearer" = [])),
    responses((status = 200, description = "The account's keys (never their secrets)", body = Vec<ApiKeyInfo>)))]
pub async fn list_api_keys(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    ctx.require_scope("admin")?;
    ctx.require_role("admin").await?;
    http::json(
        StatusCode::OK,
        &key_management::list(ctx.tx, ctx.session.account).await?,
    )
}

#[utoipa::path(post, path = "/v1/api-keys", tag = "api keys", security(("bearer" = [])),
    request_body = NewApiKey,
    responses((status = 201, description = "The key with its secret, shown this once", body = CreatedApiKey)))]
pub async fn create_api_key(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    ctx.require_scope("admin")?;
    ctx.require_role("admin").await?;
    let new: NewApiKey = ctx.body()?;
    let created = key_management::create(
        ctx.tx,
        ctx.session.account,
        &ctx.deps.deps.config.api_key_pepper,
        &new,
    )
    .await?;
    ctx.audit("api_key.created", "api_key", created.key.id)
        .await?;
    http::json(StatusCode::CREATED, &created)
}

#[utoipa::path(delete, path = "/v1/api-keys/{keyId}", tag = "api keys", security(("bearer" = [])),
    params(("keyId" = uuid::Uuid, Path, description = "API key id")),
    responses((status = 200, description = "The revoked key", body = ApiKeyInfo)))]
pub async fn revoke_api_key(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    ctx.require_scope("admin")?;
    ctx.require_role("admin").await?;
    let key = key_management::revoke(ctx.tx, ctx.params[0]).await?;
    ctx.audit("api_key.revoked", "api_key", key.id).await?;
    http::json(StatusCode::OK, &key)
}
