//! Human takeover: a team member takes a conversation from the bot, answers the visitor
//! themselves, and hands it back (or closes it).
//!
//! While a conversation is in `human_takeover` the chat pipeline stores the visitor's messages
//! and never calls the model (`chat::Outcome::HumanTakeover`). Joining and leaving each store
//! a `system` line the visitor sees ("Sam joined the conversation"). When the bot resumes, its
//! prompt holds the team member's replies as the business's side of the conversation
//! (`chat::recent_history`), so it carries on instead of repeating itself.
//!
//! Every function takes the caller's transaction: row-level security lets members and up
//! (`member`, `manager`, `admin`, `super_admin`, the owner) write takeovers and messages;
//! [`require_responder`] turns a lower role into a clear 403 and another tenant's conversation
//! into a 404. The events for the widget and the inbox are written by triggers
//! (`conversation_events`) and published by the caller after commit.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::GenericClient;
use crate::pagination::{self, Page};
use crate::{ApiError, ApiResult};

/// Longest message a team member can send, in characters.
pub const MAX_HUMAN_MESSAGE_CHARS: usize = 8_000;
/// Longest closing summary, in characters (the takeovers table's limit).
pub const MAX_SUMMARY_CHARS: usize = 4_000;

/// A conversation as the inbox lists it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InboxConversation {
    pub id: Uuid,
    pub agent_id: Uuid,
    pub visitor_id: String,
    /// `active`, `human_takeover` or `closed`.
    pub status: String,
    /// The visitor asked for a person.
    pub needs_human: bool,
    /// The bot had no answer to one of the visitor's questions (an open knowledge gap).
    pub unanswered: bool,
    pub assigned_to: Option<Uuid>,
    /// The visitor's latest message.
    pub last_message: Option<String>,
    pub last_message_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// A takeover record: who took the conversation, when, and how it ended.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Takeover {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub taken_by: Option<Uuid>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// `returned_to_bot` or `closed`, once ended.
    pub end_action: Option<String>,
    pub summary: Option<String>,
}

/// How a takeover ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndAction {
    /// The bot answers again.
    ReturnedToBot,
    /// The conversation is closed; the visitor's next message starts a new one.
    Closed,
}

impl EndAction {
    fn as_str(self) -> &'static str {
        match self {
            EndAction::ReturnedToBot => "returned_to_bot",
            EndAction::Closed => "closed",
        }
    }
}

/// A team member's stored message.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HumanMessage {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub role: String,
    pub content: String,
    pub sender_id: Uuid,
    pub created_at: DateTime<Utc>,
}

fn takeover(row: &Row) -> Takeover {
    Takeover {
        id: row.get("id"),
        conversation_id: row.get("conversation_id"),
        taken_by: row.get("taken_by"),
        started_at: row.get("started_at"),
        ended_at: row.get("ended_at"),
        end_action: row.get("end_action"),
        summary: row.get("summary"),
    }
}

fn conversation_not_found() -> ApiError {
    ApiError::NotFound {
        code: "conversation_not_found",
        message: "conversation not found".into(),
    }
}

/// Checks that the caller may answer `conversation` (member or above in its account) and
/// returns its status. 404 when the caller cannot see it at all, 403 for a read-only role.
pub async fn require_responder(tx: &impl GenericClient, conversation: Uuid) -> ApiResult<String> {
    let row = tx
        .query_opt(
            "SELECT status, role_rank(account_role(user_id)) >= role_rank('member')
             FROM conversations WHERE id = $1",
            &[&conversation],
        )
        .await?
        .ok_or_else(conversation_not_found)?;
    if !row.get::<_, bool>(1) {
        return Err(ApiError::forbidden(
            "role_forbidden",
            "answering conversations needs the member role or above",
        ));
    }
    Ok(row.get(0))
}

/// Open conversations that need a person, newest activity first: the visitor asked for one,
/// or the bot had no answer. Conversations already taken over are not listed.
pub async fn list_attention(
    tx: &impl GenericClient,
    account: Uuid,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> ApiResult<Page<InboxConversation>> {
    let limit = pagination::limit(limit)?;
    let after = pagination::time_cursor(cursor)?;
    let (after_at, after_id) = match after {
        Some((at, id)) => (Some(at), Some(id)),
        None => (None, None),
    };
    let rows = tx
        .query(
            "SELECT c.id, c.agent_id, c.visitor_id, c.status, c.needs_human, c.assigned_to,
                    c.last_message_at, c.created_at,
                    EXISTS (SELECT 1 FROM knowledge_gaps g WHERE g.conversation_id = c.id
                            AND g.resolved_at IS NULL) AS unanswered,
                    (SELECT m.content FROM messages m WHERE m.conversation_id = c.id
                       AND m.role = 'user' ORDER BY m.created_at DESC LIMIT 1) AS last_message
             FROM conversations c
             WHERE c.user_id = $1 AND c.status = 'active'
               AND (c.needs_human OR EXISTS (SELECT 1 FROM knowledge_gaps g
                                             WHERE g.conversation_id = c.id
                                               AND g.resolved_at IS NULL))
               AND ($2::timestamptz IS NULL OR (c.last_message_at, c.id) < ($2, $3))
             ORDER BY c.last_message_at DESC, c.id DESC
             LIMIT $4",
            &[&account, &after_at, &after_id, &(limit + 1)],
        )
        .await?;
    let items = rows
        .iter()
        .map(|row| InboxConversation {
            id: row.get("id"),
            agent_id: row.get("agent_id"),
            visitor_id: row.get("visitor_id"),
            status: row.get("status"),
            needs_human: row.get("needs_human"),
            unanswered: row.get("unanswered"),
            assigned_to: row.get("assigned_to"),
            last_message: row.get("last_message"),
            last_message_at: row.get("last_message_at"),
            created_at: row.get("created_at"),
        })
        .collect();
    Ok(pagination::page(items, limit, |c| {
        pagination::time_cursor_of(c.last_message_at, c.id)
    }))
}

/// The caller's name as visitors see it.
async fn public_name(tx: &impl GenericClient, user: Uuid) -> ApiResult<String> {
    Ok(tx
        .query_one("SELECT public_user_name($1)", &[&user])
        .await?
        .get::<_, Option<String>>(0)
        .unwrap_or_else(|| "A team member".into()))
}

async fn system_line(
    tx: &impl GenericClient,
    conversation: Uuid,
    user: Uuid,
    text: String,
) -> ApiResult<()> {
    tx.execute(
        "INSERT INTO messages (conversation_id, role, content, sender_id)
         VALUES ($1, 'system', $2, $3)",
        &[&conversation, &text, &user],
    )
    .await?;
    Ok(())
}

/// `user` takes `conversation` over: the bot stops answering, the visitor sees that they
/// joined. 409 when it is closed or someone already has it.
pub async fn start(tx: &impl GenericClient, user: Uuid, conversation: Uuid) -> ApiResult<Takeover> {
    match require_responder(tx, conversation).await?.as_str() {
        "closed" => {
            return Err(ApiError::Conflict {
                code: "conversation_closed",
                message: "this conversation is closed".into(),
            });
        }
        "human_takeover" => {
            return Err(ApiError::Conflict {
                code: "takeover_in_progress",
                message: "a team member has already taken this conversation over".into(),
            });
        }
        _ => {}
    }
    let row = tx
        .query_one(
            "INSERT INTO takeovers (conversation_id, taken_by) VALUES ($1, $2) RETURNING *",
            &[&conversation, &user],
        )
        .await
        .map_err(|err| match ApiError::from(err) {
            ApiError::Conflict { .. } => ApiError::Conflict {
                code: "takeover_in_progress",
                message: "a team member has already taken this conversation over".into(),
            },
            other => other,
        })?;
    tx.execute(
        "UPDATE conversations SET status = 'human_takeover', needs_human = false,
                assigned_to = coalesce(assigned_to, $2)
         WHERE id = $1",
        &[&conversation, &user],
    )
    .await?;
    let name = public_name(tx, user).await?;
    system_line(
        tx,
        conversation,
        user,
        format!("{name} joined the conversation"),
    )
    .await?;
    Ok(takeover(&row))
}

/// Ends the open takeover of `conversation`: back to the bot, or closed with an optional
/// summary. The visitor sees that the team member left.
pub async fn end(
    tx: &impl GenericClient,
    user: Uuid,
    conversation: Uuid,
    action: EndAction,
    summary: Option<&str>,
) -> ApiResult<Takeover> {
    require_responder(tx, conversation).await?;
    let summary = summary.map(str::trim).filter(|s| !s.is_empty());
    if summary.is_some_and(|s| s.chars().count() > MAX_SUMMARY_CHARS) {
        return Err(ApiError::invalid_field(
            "summary",
            format!("at most {MAX_SUMMARY_CHARS} characters"),
        ));
    }
    let row = tx
        .query_opt(
            "UPDATE takeovers SET ended_at = now(), end_action = $2, summary = $3
             WHERE conversation_id = $1 AND ended_at IS NULL RETURNING *",
            &[&conversation, &action.as_str(), &summary],
        )
        .await?
        .ok_or_else(|| ApiError::Conflict {
            code: "no_takeover",
            message: "this conversation is not taken over".into(),
        })?;
    let name = public_name(tx, user).await?;
    system_line(
        tx,
        conversation,
        user,
        format!("{name} left the conversation"),
    )
    .await?;
    match action {
        EndAction::ReturnedToBot => {
            tx.execute(
                "UPDATE conversations SET status = 'active' WHERE id = $1",
                &[&conversation],
            )
            .await?
        }
        EndAction::Closed => {
            tx.execute(
                "UPDATE conversations SET status = 'closed', closed_at = now(), needs_human = false,
                        summary = coalesce($2, summary)
                 WHERE id = $1",
                &[&conversation, &summary],
            )
            .await?
        }
    };
    Ok(takeover(&row))
}

/// Assigns `conversation` to `assignee` (a member or above of its account), or unassigns it.
pub async fn assign(
    tx: &impl GenericClient,
    conversation: Uuid,
    assignee: Option<Uuid>,
) -> ApiResult<Option<Uuid>> {
    require_responder(tx, conversation).await?;
    if let Some(assignee) = assignee {
        let eligible: bool = tx
            .query_one(
                "SELECT c.user_id = $2 OR EXISTS (
                          SELECT 1 FROM team_members tm
                          WHERE tm.owner_id = c.user_id AND tm.member_id = $2
                            AND tm.status = 'active'
                            AND role_rank(tm.role) >= role_rank('member'))
                 FROM conversations c WHERE c.id = $1",
                &[&conversation, &assignee],
            )
            .await?
            .get(0);
        if !eligible {
            return Err(ApiError::invalid_field(
                "userId",
                "must be a team member of this account who may answer conversations",
            ));
        }
    }
    tx.execute(
        "UPDATE conversations SET assigned_to = $2 WHERE id = $1",
        &[&conversation, &assignee],
    )
    .await?;
    Ok(assignee)
}

/// A team member's reply, stored as a `human` message. Refused (409) unless the conversation
/// is in takeover: the bot and a person never answer at the same time.
pub async fn send_human_message(
    tx: &impl GenericClient,
    user: Uuid,
    conversation: Uuid,
    content: &str,
) -> ApiResult<HumanMessage> {
    let content = content.trim();
    if content.is_empty() {
        return Err(ApiError::invalid_field("content", "must not be empty"));
    }
    if content.chars().count() > MAX_HUMAN_MESSAGE_CHARS {
        return Err(ApiError::invalid_field(
            "content",
            format!("at most {MAX_HUMAN_MESSAGE_CHARS} characters"),
        ));
    }
    if require_responder(tx, conversation).await? != "human_takeover" {
        return Err(ApiError::Conflict {
            code: "not_in_takeover",
            message: "take the conversation over before answering the visitor".into(),
        });
    }
    let row = tx
        .query_one(
            "INSERT INTO messages (conversation_id, role, content, sender_id)
             VALUES ($1, 'human', $2, $3) RETURNING id, created_at",
            &[&conversation, &content, &user],
        )
        .await?;
    Ok(HumanMessage {
        id: row.get(0),
        conversation_id: conversation,
        role: "human".into(),
        content: content.into(),
        sender_id: user,
        created_at: row.get(1),
    })
}

/// The visitor asks for a person (runs as the widget visitor): flags the conversation for
/// the inbox. A no-op when already flagged or taken over; 409 when it is closed.
pub async fn request_human(tx: &impl GenericClient, conversation: Uuid) -> ApiResult<()> {
    let status: String = tx
        .query_opt(
            "SELECT status FROM conversations WHERE id = $1",
            &[&conversation],
        )
        .await?
        .ok_or_else(conversation_not_found)?
        .get(0);
    match status.as_str() {
        "closed" => Err(ApiError::Conflict {
            code: "conversation_closed",
            message: "this conversation is closed".into(),
        }),
        "human_takeover" => Ok(()),
        _ => {
            tx.execute(
                "UPDATE conversations SET needs_human = true WHERE id = $1 AND NOT needs_human",
                &[&conversation],
            )
            .await?;
            Ok(())
        }
    }
}
