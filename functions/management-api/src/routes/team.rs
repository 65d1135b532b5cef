//! /v1/team and /v1/invitations/{invitationId}/accept

use chatpad::team::{self, Invitation, RoleChange, TeamMember};
use chatpad::{ApiError, ApiResult, http};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};

use crate::context::Ctx;

#[utoipa::path(get, path = "/v1/team", tag = "team", security(("bearer" = [])),
    responses((status = 200, description = "Members and pending invitations", body = Vec<TeamMember>)))]
pub async fn list_team(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    ctx.require_scope("admin")?;
    http::json(
        StatusCode::OK,
        &team::list(ctx.tx, ctx.session.account).await?,
    )
}

#[utoipa::path(post, path = "/v1/team", tag = "team", security(("bearer" = [])),
    request_body = Invitation,
    responses((status = 201, description = "The pending invitation", body = TeamMember)))]
pub async fn invite_member(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    ctx.require_scope("admin")?;
    ctx.require_role("admin").await?;
    let invitation: Invitation = ctx.body()?;
    let member = team::invite(ctx.tx, ctx.session.account, &invitation).await?;
    ctx.audit("team.invited", "team_member", member.id).await?;
    http::json(StatusCode::CREATED, &member)
}

#[utoipa::path(patch, path = "/v1/team/{memberId}", tag = "team", security(("bearer" = [])),
    params(("memberId" = uuid::Uuid, Path, description = "Team member id")),
    request_body = RoleChange,
    responses((status = 200, description = "The member with the new role", body = TeamMember)))]
pub async fn change_member_role(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    ctx.require_scope("admin")?;
    ctx.require_role("admin").await?;
    let change: RoleChange = ctx.body()?;
    let member = team::change_role(ctx.tx, ctx.params[0], change.role).await?;
    ctx.audit("team.role_changed", "team_member", member.id)
        .await?;
    http::json(StatusCode::OK, &member)
}

#[utoipa::path(delete, path = "/v1/team/{memberId}", tag = "team", security(("bearer" = [])),
    params(("memberId" = uuid::Uuid, Path, description = "Team member id")),
    responses((status = 204, description = "Removed (or invitation withdrawn)")))]
pub async fn remove_member(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    ctx.require_scope("admin")?;
    ctx.require_role("admin").await?;
    let member = team::remove(ctx.tx, ctx.params[0]).await?;
    ctx.audit("team.removed", "team_member", member.id).await?;
    super::no_content()
}

#[utoipa::path(post, path = "/v1/invitations/{invitationId}/accept", tag = "team", security(("bearer" = [])),
    params(("invitationId" = uuid::Uuid, Path, description = "Invitation id (from the invitation email)")),
    responses((status = 200, description = "The caller is now a member", body = TeamMember)))]
pub async fn accept_invitation(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    if ctx.session.key.is_some() {
        return Err(ApiError::forbidden(
            "user_required",
            "invitations are accepted by signed-in users, not API keys",
        ));
    }
    let member = team::accept(ctx.tx, ctx.params[0]).await?;
    // Logged in the account joined, as the new member.
    let mut event =
        chatpad::auth::security_log::SecurityEvent::new(Some(member.account_id), "team.joined");
    event.resource_type = Some("team_member");
    event.resource_id = Some(member.id.to_string());
    chatpad::auth::security_log::record(ctx.tx, &event).await?;
    http::json(StatusCode::OK, &member)
}
