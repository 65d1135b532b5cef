//! /v1/webhooks… and /v1/webhook-deliveries/…: the account's webhook endpoints, their signing
//! secrets and their delivery log (admins and above; API keys need the `admin` scope).

use chatpad::pagination::Page;
use chatpad::webhooks::deliveries::{self, Delivery, DeliveryDetail};
use chatpad::webhooks::endpoints::{self, NewWebhook, SecretRotation, Webhook, WebhookChanges};
use chatpad::{ApiResult, http};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};

use super::no_content;
use crate::context::Ctx;

/// Webhooks are account administration: the `admin` scope and role.
async fn require_admin(ctx: &Ctx<'_>) -> ApiResult<()> {
    ctx.require_scope("admin")?;
    ctx.require_role("admin").await
}

#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    params(
        chatpad::pagination::PageParams,
    ),
    responses((status = 200, description = "A page of the account's endpoints, newest first", body = Page<Webhook>)))]
pub async fn list_webhooks(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    require_admin(ctx).await?;
    let page = endpoints::list(
        ctx.tx,
        ctx.session.account,
        ctx.query("cursor"),
        ctx.query_as("limit", "an integer")?,
    )
    .await?;
    http::json(StatusCode::OK, &page)
}

#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    request_body = NewWebhook,
    responses((status = 201, description = "The endpoint with its signing secret (`secret`, `whsec_…`). Plans with webhooks: advanced, pro", body = Webhook)))]
pub async fn create_webhook(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    require_admin(ctx).await?;
    let deps = ctx.deps;
    let hook = endpoints::create(
        ctx.tx,
        &deps.secrets,
        &deps.guard,
        ctx.session.account,
        &ctx.body()?,
    )
    .await?;
    ctx.audit("webhook.created", "webhook", hook.id).await?;
    http::json(StatusCode::CREATED, &hook)
}

#[utoipa::path(get, path = "/v1/webhooks/{webhookId}", tag = "webhooks", security(("bearer" = [])),
    params(("webhookId" = uuid::Uuid, Path, description = "Webhook endpoint id")),
    responses((status = 200, description = "The endpoint", body = Webhook)))]
pub async fn get_webhook(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    require_admin(ctx).await?;
    http::json(
        StatusCode::OK,
        &endpoints::get(ctx.tx, ctx.params[0]).await?,
    )
}

#[utoipa::path(patch, path = "/v1/webhooks/{webhookId}", tag = "webhooks", security(("bearer" = [])),
    params(("webhookId" = uuid::Uuid, Path, description = "Webhook endpoint id")),
    request_body = WebhookChanges,
    responses((status = 200, description = "The updated endpoint", body = Webhook)))]
pub async fn update_webhook(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    require_admin(ctx).await?;
    let changes: WebhookChanges = ctx.body()?;
    let hook = endpoints::update(ctx.tx, &ctx.deps.guard, ctx.params[0], &changes).await?;
    ctx.audit("webhook.updated", "webhook", hook.id).await?;
    http::json(StatusCode::OK, &hook)
}

#[utoipa::path(delete, path = "/v1/webhooks/{webhookId}", tag = "webhooks", security(("bearer" = [])),
    params(("webhookId" = uuid::Uuid, Path, description = "Webhook endpoint id")),
    responses((status = 204, description = "Deleted with its delivery log")))]
pub async fn delete_webhook(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    require_admin(ctx).await?;
    endpoints::delete(ctx.tx, ctx.params[0]).await?;
    ctx.audit("webhook.deleted", "webhook", ctx.params[0])
        .await?;
    no_content()
}

#[utoipa::path(post, path = "/v1/webhooks/{webhookId}/rotate-secret", tag = "webhooks", security(("bearer" = [])),
    params(("webhookId" = uuid::Uuid, Path, description = "Webhook endpoint id")),
    request_body = SecretRotation,
    responses((status = 200, description = "The endpoint with its new secret; the old one keeps signing until `previousSecretExpiresAt`", body = Webhook)))]
pub async fn rotate_webhook_secret(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    require_admin(ctx).await?;
    let rotation: SecretRotation = ctx.body()?;
    let hook =
        endpoints::rotate_secret(ctx.tx, &ctx.deps.secrets, ctx.params[0], &rotation).await?;
    ctx.audit("webhook.secret_rotated", "webhook", hook.id)
        .await?;
    http::json(StatusCode::OK, &hook)
}

#[utoipa::path(get, path = "/v1/webhooks/{webhookId}/deliveries", tag = "webhooks", security(("bearer" = [])),
    params(
        ("webhookId" = uuid::Uuid, Path, description = "Webhook endpoint id"),
        ("status" = Option<String>, Query, description = "Only deliveries in this status: pending, retrying, succeeded or failed"),
        chatpad::pagination::PageParams,
    ),
    responses((status = 200, description = "A page of the endpoint's deliveries, newest first", body = Page<Delivery>)))]
pub async fn list_webhook_deliveries(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    require_admin(ctx).await?;
    let page = deliveries::list(
        ctx.tx,
        ctx.params[0],
        ctx.query("status"),
        ctx.query("cursor"),
        ctx.query_as("limit", "an integer")?,
    )
    .await?;
    http::json(StatusCode::OK, &page)
}

#[utoipa::path(get, path = "/v1/webhook-deliveries/{deliveryId}", tag = "webhooks", security(("bearer" = [])),
    params(("deliveryId" = uuid::Uuid, Path, description = "Delivery id")),
    responses((status = 200, description = "The delivery and each of its attempts", body = DeliveryDetail)))]
pub async fn get_webhook_delivery(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    require_admin(ctx).await?;
    http::json(
        StatusCode::OK,
        &deliveries::get(ctx.tx, ctx.params[0]).await?,
    )
}

#[utoipa::path(post, path = "/v1/webhook-deliveries/{deliveryId}/replay", tag = "webhooks", security(("bearer" = [])),
    params(("deliveryId" = uuid::Uuid, Path, description = "Delivery id")),
    responses((status = 202, description = "Queued: one more attempt with the same event id (`webhook-id`)", body = DeliveryDetail)))]
pub async fn replay_webhook_delivery(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    require_admin(ctx).await?;
    let delivery = deliveries::replay(ctx.tx, ctx.params[0]).await?;
    ctx.audit(
        "webhook_delivery.replayed",
        "webhook_delivery",
        ctx.params[0],
    )
    .await?;
    http::json(StatusCode::ACCEPTED, &delivery)
}
