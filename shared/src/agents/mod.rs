//! Agents: the chatbots an account configures (model, persona, appearance, lead form,
//! retrieval settings). Storage functions run inside the caller's RLS transaction, so whether a
//! caller may read or change an agent is decided by Postgres.

pub mod help_articles;
mod validate;
pub mod widget;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::{self, GenericClient};
use crate::pagination::{Cursor, Page, Sort};
use crate::{ApiError, ApiResult};

pub use validate::validate;

/// An agent as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    pub id: Uuid,
    /// The account owner.
    pub account_id: Uuid,
    pub name: String,
    /// One of the enabled models (GET /v1/models).
    pub model: String,
    pub system_prompt: String,
    pub temperature: f32,
    pub greeting: String,
    pub fallback_message: String,
    pub appearance: Appearance,
    /// Origins allowed to embed the widget (host names); empty allows any.
    pub allowed_domains: Vec<String>,
    pub help_center_enabled: bool,
    pub lead_form_fields: Vec<LeadFormField>,
    pub status: AgentStatus,
    pub retrieval: RetrievalSettings,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Agent {
    /// Whether a widget request from `origin` (the `Origin` header) may use this agent; see
    /// [`origin_allowed`].
    pub fn allows_origin(&self, origin: Option<&str>) -> bool {
        origin_allowed(&self.allowed_domains, origin)
    }
}

/// Any origin when `domains` is empty; otherwise the origin's host (with its port, when the
/// entry names one) must be a listed domain, or a subdomain of a `*.` entry.
pub fn origin_allowed(domains: &[String], origin: Option<&str>) -> bool {
    if domains.is_empty() {
        return true;
    }
    let Some(url) = origin.and_then(|o| url::Url::parse(o).ok()) else {
        return false;
    };
    let Some(host) = url.host_str().map(str::to_ascii_lowercase) else {
        return false;
    };
    let with_port = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.clone(),
    };
    domains.iter().any(|entry| {
        let entry = entry.to_ascii_lowercase();
        let candidate = if entry.contains(':') {
            &with_port
        } else {
            &host
        };
        match entry.strip_prefix("*.") {
            Some(parent) => candidate
                .strip_suffix(parent)
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            None => *candidate == entry,
        }
    })
}

/// How the widget looks.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Appearance {
    /// `#RRGGBB`
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^#[0-9A-Fa-f]{6}$")]
    pub primary_color: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^#[0-9A-Fa-f]{6}$")]
    pub text_color: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^#[0-9A-Fa-f]{6}$")]
    pub background_color: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<WidgetPosition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launcher_icon: Option<LauncherIcon>,
    /// An https URL of the agent's avatar image.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^https://", max_length = 2048)]
    pub avatar_url: Option<String>,
    /// A CSS font family name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 80, pattern = "^[^;{}<>]+$")]
    pub font: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dark_mode: Option<DarkMode>,
    /// Hide "powered by ChatPad" (plans with custom branding).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hide_branding: Option<bool>,
}

/// Corner of the page the launcher sits in.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum WidgetPosition {
    BottomRight,
    BottomLeft,
}

/// The launcher button's icon.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum LauncherIcon {
    Chat,
    Message,
    Help,
    Sparkle,
}

/// Colour scheme.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DarkMode {
    Light,
    Dark,
    Auto,
}

/// One field of the widget's contact form.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeadFormField {
    /// Machine name, `[a-z][a-z0-9_]*`.
    #[schema(pattern = "^[a-z][a-z0-9_]{0,39}$")]
    pub name: String,
    #[schema(min_length = 1, max_length = 80, pattern = "\\S")]
    pub label: String,
    #[serde(rename = "type")]
    pub kind: LeadFieldKind,
    #[serde(default)]
    pub required: bool,
    /// Choices of a `select` field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// Input type of a contact form field.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LeadFieldKind {
    Text,
    Email,
    Phone,
    Textarea,
    Select,
}

/// Whether the agent answers visitors.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AgentStatus {
    Active,
    Disabled,
}

impl AgentStatus {
    fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Active => "active",
            AgentStatus::Disabled => "disabled",
        }
    }
}

/// How answers are grounded in knowledge.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RetrievalSettings {
    pub embedding_model: String,
    /// `vector` or `hybrid` (full-text + vector, fused by reciprocal rank).
    pub mode: String,
    pub match_threshold: f32,
    pub match_count: i32,
    pub chunk_size_tokens: i32,
    pub chunk_overlap_tokens: i32,
}

/// Fields a caller sets when creating or updating an agent; absent fields are left alone.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentFields {
    #[schema(min_length = 1, max_length = 120, pattern = "\\S")]
    pub name: Option<String>,
    pub model: Option<String>,
    #[schema(max_length = 20000)]
    pub system_prompt: Option<String>,
    #[schema(minimum = 0.0, maximum = 2.0)]
    pub temperature: Option<f32>,
    #[schema(max_length = 1000)]
    pub greeting: Option<String>,
    #[schema(min_length = 1, max_length = 1000)]
    pub fallback_message: Option<String>,
    /// Merged into the current appearance.
    pub appearance: Option<Appearance>,
    #[schema(max_items = 100)]
    pub allowed_domains: Option<Vec<String>>,
    pub help_center_enabled: Option<bool>,
    #[schema(max_items = 20)]
    pub lead_form_fields: Option<Vec<LeadFormField>>,
    pub status: Option<AgentStatus>,
    /// `vector` or `hybrid`.
    #[schema(pattern = "^(vector|hybrid)$")]
    pub retrieval_mode: Option<String>,
    #[schema(minimum = -1.0, maximum = 1.0)]
    pub match_threshold: Option<f32>,
    #[schema(minimum = 1, maximum = 50)]
    pub match_count: Option<i32>,
    #[schema(minimum = 32, maximum = 2000)]
    pub chunk_size_tokens: Option<i32>,
    #[schema(minimum = 0, maximum = 500)]
    pub chunk_overlap_tokens: Option<i32>,
}

/// Filters and order of an agent listing.
#[derive(Debug, Default)]
pub struct AgentQuery<'a> {
    pub status: Option<AgentStatus>,
    /// Case-insensitive substring of the name.
    pub search: Option<&'a str>,
    pub sort: Option<&'a str>,
    pub cursor: Option<&'a str>,
    pub limit: Option<i64>,
}

const SORTS: &[&str] = &["created_at", "updated_at", "name"];

fn from_row(row: &Row) -> ApiResult<Agent> {
    // Both JSON columns are only ever written from these types, so they parse back.
    let appearance =
        serde_json::from_value(row.get("appearance")).map_err(|e| ApiError::Internal(e.into()))?;
    let lead_form_fields = serde_json::from_value(row.get("lead_form_fields"))
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(Agent {
        id: row.get("id"),
        account_id: row.get("user_id"),
        name: row.get("name"),
        model: row.get("model"),
        system_prompt: row.get("system_prompt"),
        temperature: row.get("temperature"),
        greeting: row.get("greeting"),
        fallback_message: row.get("fallback_message"),
        appearance,
        allowed_domains: row.get("allowed_domains"),
        help_center_enabled: row.get("help_center_enabled"),
        lead_form_fields,
        status: if row.get::<_, String>("status") == "active" {
            AgentStatus::Active
        } else {
            AgentStatus::Disabled
        },
        retrieval: RetrievalSettings {
            embedding_model: row.get("embedding_model"),
            mode: row.get("retrieval_mode"),
            match_threshold: row.get("match_threshold"),
            match_count: row.get("match_count"),
            chunk_size_tokens: row.get("chunk_size_tokens"),
            chunk_overlap_tokens: row.get("chunk_overlap_tokens"),
        },
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

/// Creates an agent in `account` (RLS requires the caller to be a manager or above there).
pub async fn create(
    tx: &impl GenericClient,
    account: Uuid,
    fields: &AgentFields,
) -> ApiResult<Agent> {
    let name = fields
        .name
        .as_deref()
        .ok_or_else(|| ApiError::invalid_field("name", "is required"))?;
    validate(tx, fields).await?;
    let id: Uuid = tx
        .query_one(
            "INSERT INTO agents (user_id, name) VALUES ($1, $2) RETURNING id",
            &[&account, &name],
        )
        .await?
        .get(0);
    apply(tx, id, fields).await
}

/// One agent, if the caller can see it.
pub async fn get(tx: &impl GenericClient, id: Uuid) -> ApiResult<Agent> {
    let row = tx
        .query_opt("SELECT * FROM agents WHERE id = $1", &[&id])
        .await?;
    from_row(&row.ok_or_else(|| ApiError::not_found("agent"))?)
}

/// Updates the given fields of an agent.
pub async fn update(tx: &impl GenericClient, id: Uuid, fields: &AgentFields) -> ApiResult<Agent> {
    validate(tx, fields).await?;
    apply(tx, id, fields).await
}

async fn apply(tx: &impl GenericClient, id: Uuid, f: &AgentFields) -> ApiResult<Agent> {
    let appearance = f
        .appearance
        .as_ref()
        .map(|a| serde_json::to_value(a).expect("serialisable"));
    let lead_fields = f
        .lead_form_fields
        .as_ref()
        .map(|l| serde_json::to_value(l).expect("serialisable"));
    let status = f.status.map(AgentStatus::as_str);
    let domains = f
        .allowed_domains
        .as_ref()
        .map(|d| d.iter().map(|s| s.to_ascii_lowercase()).collect::<Vec<_>>());
    let row = tx
        .query_opt(
            "UPDATE agents SET
               name = coalesce($2, name),
               model = coalesce($3, model),
               system_prompt = coalesce($4, system_prompt),
               temperature = coalesce($5, temperature),
               greeting = coalesce($6, greeting),
               fallback_message = coalesce($7, fallback_message),
               appearance = appearance || coalesce($8, '{}'::jsonb),
               allowed_domains = coalesce($9, allowed_domains),
               help_center_enabled = coalesce($10, help_center_enabled),
               lead_form_fields = coalesce($11, lead_form_fields),
               status = coalesce($12, status),
               retrieval_mode = coalesce($13, retrieval_mode),
               match_threshold = coalesce($14, match_threshold),
               match_count = coalesce($15, match_count),
               chunk_size_tokens = coalesce($16, chunk_size_tokens),
               chunk_overlap_tokens = coalesce($17, chunk_overlap_tokens)
             WHERE id = $1 RETURNING *",
            &[
                &id,
                &f.name,
                &f.model,
                &f.system_prompt,
                &f.temperature,
                &f.greeting,
                &f.fallback_message,
                &appearance,
                &domains,
                &f.help_center_enabled,
                &lead_fields,
                &status,
                &f.retrieval_mode,
                &f.match_threshold,
                &f.match_count,
                &f.chunk_size_tokens,
                &f.chunk_overlap_tokens,
            ],
        )
        .await?;
    match row {
        Some(row) => from_row(&row),
        None => Err(db::not_found_or_forbidden(tx, "agents", id, "agent").await),
    }
}

/// Deletes an agent with everything it owns (conversations, knowledge, leads).
pub async fn delete(tx: &impl GenericClient, id: Uuid) -> ApiResult<()> {
    match tx
        .execute("DELETE FROM agents WHERE id = $1", &[&id])
        .await?
    {
        0 => Err(db::not_found_or_forbidden(tx, "agents", id, "agent").await),
        _ => Ok(()),
    }
}

/// A page of the account's agents.
pub async fn list(
    tx: &impl GenericClient,
    account: Uuid,
    query: &AgentQuery<'_>,
) -> ApiResult<Page<Agent>> {
    let sort = Sort::parse(query.sort, SORTS)?;
    let limit = crate::pagination::limit(query.limit)?;
    let cursor = query.cursor.map(Cursor::decode).transpose()?;
    let mut sql = String::from(
        "SELECT * FROM agents WHERE user_id = $1 AND ($2::text IS NULL OR status = $2)
           AND ($3::text IS NULL OR name ILIKE '%' || replace(replace($3, '%', '\\%'), '_', '\\_') || '%')",
    );
    if cursor.is_some() {
        sql.push_str(&format!(" AND {}", sort.after(4, 5)));
    }
    sql.push_str(&format!(
        " ORDER BY {} LIMIT {}",
        sort.order_by(),
        limit + 1
    ));
    let status = query.status.map(AgentStatus::as_str);
    let rows = match &cursor {
        Some(c) => {
            let value = c
                .value
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| c.value.to_string());
            tx.query(&sql, &[&account, &status, &query.search, &value, &c.id])
                .await?
        }
        None => tx.query(&sql, &[&account, &status, &query.search]).await?,
    };
    let agents = rows.iter().map(from_row).collect::<ApiResult<Vec<_>>>()?;
    Ok(crate::pagination::page(agents, limit, |a| Cursor {
        value: match sort.column {
            "name" => Value::String(a.name.clone()),
            "updated_at" => Value::String(a.updated_at.to_rfc3339()),
            _ => Value::String(a.created_at.to_rfc3339()),
        },
        id: a.id,
    }))
}

/// An entry of the model catalogue.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Model {
    /// `provider/name`, e.g. `google/gemini-2.5-flash`.
    pub id: String,
    pub provider: String,
    pub display_name: String,
    pub use_case: String,
    /// 1 (economical) to 3 (premium).
    pub cost_tier: i16,
    pub is_default: bool,
}

/// The enabled models an agent can use (data: a deployment adds rows to `ai_models`).
pub async fn models(tx: &impl GenericClient) -> ApiResult<Vec<Model>> {
    let rows = tx
        .query(
            "SELECT id, provider, display_name, use_case, cost_tier, is_default FROM ai_models
             WHERE enabled ORDER BY is_default DESC, cost_tier, id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Model {
            id: r.get(0),
            provider: r.get(1),
            display_name: r.get(2),
            use_case: r.get(3),
            cost_tier: r.get(4),
            is_default: r.get(5),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::origin_allowed;

    #[test]
    fn origins_match_listed_domains_ports_and_wildcards() {
        let domains: Vec<String> = ["example.com", "*.shop.io", "localhost:8080"]
            .map(String::from)
            .to_vec();
        let allowed = |o: &str| origin_allowed(&domains, Some(o));
        assert!(allowed("https://example.com"));
        assert!(allowed("https://EXAMPLE.com:8443"));
        assert!(allowed("https://eu.shop.io"));
        assert!(allowed("http://localhost:8080"));
        assert!(!allowed("https://shop.io"));
        assert!(!allowed("https://evilshop.io"));
        assert!(!allowed("https://example.com.evil.net"));
        assert!(!allowed("http://localhost:3000"));
        assert!(!allowed("null"));
        assert!(!origin_allowed(&domains, None));
        assert!(origin_allowed(&[], None));
    }
}
