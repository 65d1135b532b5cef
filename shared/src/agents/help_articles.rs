//! Help-center articles of an agent (Markdown), shown in the widget when the help center is on.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::{self, GenericClient};
use crate::pagination::{Cursor, Page};
use crate::{ApiError, ApiResult};

/// A help article.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HelpArticle {
    pub id: Uuid,
    pub agent_id: Uuid,
    pub title: String,
    pub body_markdown: String,
    pub category: Option<String>,
    pub published: bool,
    pub position: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Fields to set; absent ones stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HelpArticleFields {
    #[schema(min_length = 1, max_length = 300, pattern = "\\S")]
    pub title: Option<String>,
    #[schema(max_length = 100000)]
    pub body_markdown: Option<String>,
    #[schema(max_length = 100)]
    pub category: Option<String>,
    pub published: Option<bool>,
    pub position: Option<i32>,
}

fn from_row(row: &Row) -> HelpArticle {
    HelpArticle {
        id: row.get("id"),
        agent_id: row.get("agent_id"),
        title: row.get("title"),
        body_markdown: row.get("body_markdown"),
        category: row.get("category"),
        published: row.get("published"),
        position: row.get("position"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    }
}

fn validate(f: &HelpArticleFields) -> ApiResult<()> {
    if f.title
        .as_deref()
        .is_some_and(|t| t.trim().is_empty() || t.chars().count() > 300)
    {
        return Err(ApiError::invalid_field(
            "title",
            "must be 1 to 300 characters long",
        ));
    }
    if f.body_markdown
        .as_deref()
        .is_some_and(|b| b.len() > 100_000)
    {
        return Err(ApiError::invalid_field(
            "bodyMarkdown",
            "must be at most 100,000 bytes",
        ));
    }
    if f.category
        .as_deref()
        .is_some_and(|c| c.chars().count() > 100)
    {
        return Err(ApiError::invalid_field(
            "category",
            "must be at most 100 characters long",
        ));
    }
    Ok(())
}

/// Creates an article for `agent`.
pub async fn create(
    tx: &impl GenericClient,
    agent: Uuid,
    f: &HelpArticleFields,
) -> ApiResult<HelpArticle> {
    let title = f
        .title
        .as_deref()
        .ok_or_else(|| ApiError::invalid_field("title", "is required"))?;
    validate(f)?;
    // The agent must be visible: otherwise its id is as good as unknown.
    super::get(tx, agent).await?;
    let row = tx
        .query_one(
            "INSERT INTO help_articles (agent_id, title, body_markdown, category, published, position)
             VALUES ($1, $2, coalesce($3, ''), $4, coalesce($5, false), coalesce($6, 0)) RETURNING *",
            &[&agent, &title, &f.body_markdown, &f.category, &f.published, &f.position],
        )
        .await?;
    Ok(from_row(&row))
}

/// One article.
pub async fn get(tx: &impl GenericClient, id: Uuid) -> ApiResult<HelpArticle> {
    let row = tx
        .query_opt("SELECT * FROM help_articles WHERE id = $1", &[&id])
        .await?;
    Ok(from_row(
        &row.ok_or_else(|| ApiError::not_found("help article"))?,
    ))
}

/// Updates the given fields.
pub async fn update(
    tx: &impl GenericClient,
    id: Uuid,
    f: &HelpArticleFields,
) -> ApiResult<HelpArticle> {
    validate(f)?;
    let row = tx
        .query_opt(
            "UPDATE help_articles SET title = coalesce($2, title), body_markdown = coalesce($3, body_markdown),
               category = coalesce($4, category), published = coalesce($5, published), position = coalesce($6, position)
             WHERE id = $1 RETURNING *",
            &[&id, &f.title, &f.body_markdown, &f.category, &f.published, &f.position],
        )
        .await?;
    match row {
        Some(row) => Ok(from_row(&row)),
        None => Err(db::not_found_or_forbidden(tx, "help_articles", id, "help article").await),
    }
}

/// Deletes an article.
pub async fn delete(tx: &impl GenericClient, id: Uuid) -> ApiResult<()> {
    match tx
        .execute("DELETE FROM help_articles WHERE id = $1", &[&id])
        .await?
    {
        0 => Err(db::not_found_or_forbidden(tx, "help_articles", id, "help article").await),
        _ => Ok(()),
    }
}

/// A page of an agent's articles in display order, optionally only published ones or those
/// matching a full-text search.
pub async fn list(
    tx: &impl GenericClient,
    agent: Uuid,
    published: Option<bool>,
    search: Option<&str>,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> ApiResult<Page<HelpArticle>> {
    super::get(tx, agent).await?;
    let limit = crate::pagination::limit(limit)?;
    let after = cursor.map(Cursor::decode).transpose()?;
    let (position, after_id) = match &after {
        Some(c) => (c.value.as_i64().unwrap_or(i64::MIN) as i32, Some(c.id)),
        None => (i32::MIN, None),
    };
    let rows = tx
        .query(
            "SELECT * FROM help_articles
             WHERE agent_id = $1 AND ($2::bool IS NULL OR published = $2)
               AND ($3::text IS NULL OR search @@ websearch_to_tsquery('simple', $3))
               AND ($5::uuid IS NULL OR (position, id) > ($4, $5))
             ORDER BY position, id LIMIT $6",
            &[
                &agent,
                &published,
                &search,
                &position,
                &after_id,
                &(limit + 1),
            ],
        )
        .await?;
    let articles = rows.iter().map(from_row).collect();
    Ok(crate::pagination::page(articles, limit, |a| Cursor {
        value: a.position.into(),
        id: a.id,
    }))
}
