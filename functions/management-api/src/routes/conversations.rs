//! /v1/conversations: the team's inbox — conversations needing a person, taking one over from
//! the bot, handing it back or closing it, and assigning it to a team member. Member and up
//! may respond; the changes reach the widget and the inbox live (published after commit).

use chatpad::pagination::Page;
use chatpad::takeover::{self, EndAction, InboxConversation, Takeover};
use chatpad::{ApiError, ApiResult, http};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::context::Ctx;

/// How a takeover ends.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TakeoverEnd {
    /// `returned_to_bot` (the bot answers again) or `closed`.
    pub action: EndAction,
    /// What happened, kept on the takeover and (when closing) on the conversation.
    #[schema(max_length = 4000)]
    pub summary: Option<String>,
}

/// An assignment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Assignment {
    /// A team member (member role or above) of this account; null unassigns.
    pub user_id: Option<Uuid>,
}

/// The conversation's assignee after the change.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Assigned {
    pub conversation_id: Uuid,
    pub assigned_to: Option<Uuid>,
}

/// The signed-in team member: the inbox is for people (a takeover records who took it), so
/// API keys are refused.
fn person(ctx: &Ctx<'_>) -> ApiResult<Uuid> {
    match (&ctx.session.key, ctx.session.caller.user_id()) {
        (None, Some(user)) => Ok(user),
        _ => Err(ApiError::forbidden(
            "person_only",
            "the inbox is for signed-in team members, not API keys",
        )),
    }
}

#[utoipa::path(get, path = "/v1/conversations/attention", tag = "conversations", security(("bearer" = [])),
    params(
        chatpad::pagination::PageParams,
    ),
    responses((status = 200, description = "Open conversations where the visitor asked for a person or the bot had no answer, most recent activity first", body = Page<InboxConversation>)))]
pub async fn list_attention(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    person(ctx)?;
    let page = takeover::list_attention(
        ctx.tx,
        ctx.session.account,
        ctx.query("cursor"),
        ctx.query_as("limit", "an integer")?,
    )
    .await?;
    http::json(StatusCode::OK, &page)
}

#[utoipa::path(post, path = "/v1/conversations/{conversationId}/takeover", tag = "conversations", security(("bearer" = [])),
    params(("conversationId" = uuid::Uuid, Path, description = "Conversation id")),
    responses((status = 201, description = "The caller took the conversation over: the bot stops answering and the visitor sees them join", body = Takeover)))]
pub async fn start_takeover(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    let user = person(ctx)?;
    let takeover = takeover::start(ctx.tx, user, ctx.params[0]).await?;
    ctx.audit("takeover.started", "conversation", ctx.params[0])
        .await?;
    http::json(StatusCode::CREATED, &takeover)
}

#[utoipa::path(post, path = "/v1/conversations/{conversationId}/takeover/end", tag = "conversations", security(("bearer" = [])),
    params(("conversationId" = uuid::Uuid, Path, description = "Conversation id")),
    request_body = TakeoverEnd,
    responses((status = 200, description = "The takeover ended: back to the bot, or the conversation closed", body = Takeover)))]
pub async fn end_takeover(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    let user = person(ctx)?;
    let end: TakeoverEnd = ctx.body()?;
    let takeover = takeover::end(
        ctx.tx,
        user,
        ctx.params[0],
        end.action,
        end.summary.as_deref(),
    )
    .await?;
    ctx.audit("takeover.ended", "conversation", ctx.params[0])
        .await?;
    http::json(StatusCode::OK, &takeover)
}

#[utoipa::path(put, path = "/v1/conversations/{conversationId}/assignee", tag = "conversations", security(("bearer" = [])),
    params(("conversationId" = uuid::Uuid, Path, description = "Conversation id")),
    request_body = Assignment,
    responses((status = 200, description = "The conversation's assignee", body = Assigned)))]
pub async fn assign(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    person(ctx)?;
    let assignment: Assignment = ctx.body()?;
    let assigned_to = takeover::assign(ctx.tx, ctx.params[0], assignment.user_id).await?;
    ctx.audit("conversation.assigned", "conversation", ctx.params[0])
        .await?;
    http::json(
        StatusCode::OK,
        &Assigned {
            conversation_id: ctx.params[0],
            assigned_to,
        },
    )
}
