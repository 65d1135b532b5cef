//! The caller, the catalogues (models, plans), the account's subscription and the API document.

use chatpad::agents::{self, Model};
use chatpad::billing::{self, Plan, SubscriptionSummary};
use chatpad::{ApiResult, http};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use crate::context::Ctx;

/// The OpenAPI 3.1 document of this API.
pub fn openapi() -> ApiResult<Response<Body>> {
    http::json(StatusCode::OK, &crate::openapi::ApiDoc::openapi())
}

/// Who is calling.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    pub user_id: Uuid,
    /// The account this request acts in.
    pub account_id: Uuid,
    /// `owner` or a team role in that account.
    pub role: String,
    /// Scopes when calling with an API key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Accounts the user can act in (send one as `X-Account-Id`).
    pub accounts: Vec<AccountMembership>,
}

/// An account the caller belongs to.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountMembership {
    pub account_id: Uuid,
    pub role: String,
}

#[utoipa::path(get, path = "/v1/me", tag = "account", security(("bearer" = [])),
    responses((status = 200, description = "The caller", body = Me)))]
pub async fn me(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    let user_id = ctx
        .session
        .caller
        .user_id()
        .expect("authenticated callers have a user");
    let rows = ctx
        .tx
        .query(
            "SELECT a, account_role(a) FROM unnest(accessible_accounts('client')) AS a ORDER BY account_role(a) <> 'owner', a",
            &[],
        )
        .await?;
    let accounts: Vec<AccountMembership> = rows
        .iter()
        .map(|r| AccountMembership {
            account_id: r.get(0),
            role: r.get(1),
        })
        .collect();
    let role = accounts
        .iter()
        .find(|a| a.account_id == ctx.session.account)
        .map_or("owner".into(), |a| a.role.clone());
    http::json(
        StatusCode::OK,
        &Me {
            user_id,
            account_id: ctx.session.account,
            role,
            scopes: ctx.session.key.as_ref().map(|k| k.scopes.clone()),
            accounts,
        },
    )
}

#[utoipa::path(get, path = "/v1/models", tag = "catalogue", security(("bearer" = [])),
    responses((status = 200, description = "Models an agent can use", body = Vec<Model>)))]
pub async fn list_models(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    http::json(StatusCode::OK, &agents::models(ctx.tx).await?)
}

#[utoipa::path(get, path = "/v1/plans", tag = "catalogue", security(("bearer" = [])),
    responses((status = 200, description = "Plans and their limits", body = Vec<Plan>)))]
pub async fn list_plans(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    http::json(StatusCode::OK, &billing::plans(ctx.tx).await?)
}

#[utoipa::path(get, path = "/v1/subscription", tag = "account", security(("bearer" = [])),
    responses((status = 200, description = "The account's plan and usage against every limit", body = SubscriptionSummary)))]
pub async fn get_subscription(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    http::json(
        StatusCode::OK,
        &billing::subscription(ctx.tx, ctx.session.account).await?,
    )
}
