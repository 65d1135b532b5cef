//! Knowledge gaps: questions an agent could not answer from its knowledge, listed for the
//! owner so they know what to add.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ApiResult;
use crate::db::GenericClient;
use crate::pagination::{Page, time_cursor, time_cursor_of};

/// One unanswered question.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KnowledgeGap {
    pub id: Uuid,
    pub agent_id: Uuid,
    pub conversation_id: Option<Uuid>,
    pub question: String,
    /// Cosine similarity of the closest chunk retrieved; absent when retrieval returned nothing.
    pub best_similarity: Option<f32>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Records that `question` in `conversation` found nothing good enough (inside the visitor's
/// transaction: the policy only lets a visitor record gaps of their own conversation).
pub async fn record(
    tx: &impl GenericClient,
    agent: Uuid,
    conversation: Uuid,
    question: &str,
    best_similarity: Option<f64>,
) -> ApiResult<()> {
    tx.execute(
        "INSERT INTO knowledge_gaps (agent_id, conversation_id, question, best_similarity)
         VALUES ($1, $2, $3, $4::float8::real)",
        &[&agent, &conversation, &question, &best_similarity],
    )
    .await?;
    Ok(())
}

fn from_row(row: &tokio_postgres::Row) -> KnowledgeGap {
    KnowledgeGap {
        id: row.get("id"),
        agent_id: row.get("agent_id"),
        conversation_id: row.get("conversation_id"),
        question: row.get("question"),
        best_similarity: row.get("best_similarity"),
        resolved_at: row.get("resolved_at"),
        created_at: row.get("created_at"),
    }
}

/// The gaps of `agent`, newest first; `resolved` filters (absent: open ones only).
pub async fn list(
    tx: &impl GenericClient,
    agent: Uuid,
    resolved: Option<bool>,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> ApiResult<Page<KnowledgeGap>> {
    crate::agents::get(tx, agent).await?;
    let limit = crate::pagination::limit(limit)?;
    let (after_time, after_id) = match time_cursor(cursor)? {
        Some((time, id)) => (Some(time), Some(id)),
        None => (None, None),
    };
    let rows = tx
        .query(
            "SELECT * FROM knowledge_gaps
             WHERE agent_id = $1 AND (resolved_at IS NOT NULL) = $2
               AND ($4::uuid IS NULL OR (created_at, id) < ($3, $4))
             ORDER BY created_at DESC, id DESC LIMIT $5",
            &[
                &agent,
                &resolved.unwrap_or(false),
                &after_time,
                &after_id,
                &(limit + 1),
            ],
        )
        .await?;
    let gaps = rows.iter().map(from_row).collect();
    Ok(crate::pagination::page(gaps, limit, |g| {
        time_cursor_of(g.created_at, g.id)
    }))
}

/// Marks a gap resolved (the owner added the knowledge) or open again.
pub async fn set_resolved(
    tx: &impl GenericClient,
    gap: Uuid,
    resolved: bool,
) -> ApiResult<KnowledgeGap> {
    let row = tx
        .query_opt(
            "UPDATE knowledge_gaps
             SET resolved_at = CASE WHEN $2 THEN coalesce(resolved_at, now()) END
             WHERE id = $1 RETURNING *",
            &[&gap, &resolved],
        )
        .await?;
    match row {
        Some(row) => Ok(from_row(&row)),
        None => {
            Err(crate::db::not_found_or_forbidden(tx, "knowledge_gaps", gap, "knowledge gap").await)
        }
    }
}
