//! The security log: authentication events, API key use, team changes, resource changes.
//! Rows are appended through `log_security_event`, which checks the caller may write for that
//! account; nobody can edit or delete them.

use serde_json::Value;
use uuid::Uuid;

use crate::ApiResult;

/// One entry of the security log.
#[derive(Debug, Clone)]
pub struct SecurityEvent<'a> {
    /// The account the event belongs to; `None` when no account could be identified.
    pub account: Option<Uuid>,
    /// Dotted name, e.g. `api_key.used`, `auth.failed`, `agent.updated`.
    pub event_type: &'a str,
    pub resource_type: Option<&'a str>,
    pub resource_id: Option<String>,
    pub ip: Option<std::net::IpAddr>,
    pub user_agent: Option<&'a str>,
    pub details: Value,
}

impl<'a> SecurityEvent<'a> {
    /// An event of `event_type` for `account`, with nothing else filled in.
    pub fn new(account: Option<Uuid>, event_type: &'a str) -> Self {
        SecurityEvent {
            account,
            event_type,
            resource_type: None,
            resource_id: None,
            ip: None,
            user_agent: None,
            details: Value::Object(Default::default()),
        }
    }
}

/// Appends `event` inside the caller's transaction (it commits or rolls back with the change).
pub async fn record(
    tx: &impl crate::db::GenericClient,
    event: &SecurityEvent<'_>,
) -> ApiResult<()> {
    tx.execute(
        "SELECT public.log_security_event($1, $2, $3, $4, $5::text::inet, $6, $7)",
        &[
            &event.account,
            &event.event_type,
            &event.resource_type,
            &event.resource_id,
            &event.ip.map(|ip| ip.to_string()),
            &event.user_agent,
            &event.details,
        ],
    )
    .await?;
    Ok(())
}

/// A security log entry as listed.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecurityLogEntry {
    pub id: i64,
    pub event_type: String,
    /// The user who acted, if known.
    pub actor_id: Option<Uuid>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Filters of a security log listing.
#[derive(Debug, Default)]
pub struct LogQuery<'a> {
    /// Exact event type, or a prefix ending in `.` (e.g. `api_key.`).
    pub event_type: Option<&'a str>,
    pub actor: Option<Uuid>,
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    pub cursor: Option<&'a str>,
    pub limit: Option<i64>,
}

/// A page of `account`'s log, newest first (admins only, by RLS).
pub async fn list(
    tx: &impl crate::db::GenericClient,
    account: Uuid,
    query: &LogQuery<'_>,
) -> ApiResult<crate::pagination::Page<SecurityLogEntry>> {
    use crate::pagination::{Cursor, limit, page};
    let limit = limit(query.limit)?;
    // Entries are numbered, so the cursor's value is the last id.
    let before = match query.cursor.map(Cursor::decode).transpose()? {
        Some(c) => c.value.as_i64().unwrap_or(i64::MAX),
        None => i64::MAX,
    };
    let pattern = query.event_type.map(|t| {
        if t.ends_with('.') {
            format!("{t}%")
        } else {
            t.to_owned()
        }
    });
    let rows = tx
        .query(
            "SELECT id, event_type, actor_id, resource_type, resource_id, host(ip) AS ip, user_agent, details, created_at
             FROM security_logs
             WHERE user_id = $1 AND id < $2
               AND ($3::text IS NULL OR event_type LIKE $3)
               AND ($4::uuid IS NULL OR actor_id = $4)
               AND ($5::timestamptz IS NULL OR created_at >= $5)
               AND ($6::timestamptz IS NULL OR created_at < $6)
             ORDER BY id DESC LIMIT $7",
            &[&account, &before, &pattern, &query.actor, &query.since, &query.until, &(limit + 1)],
        )
        .await?;
    let entries = rows
        .iter()
        .map(|r| SecurityLogEntry {
            id: r.get("id"),
            event_type: r.get("event_type"),
            actor_id: r.get("actor_id"),
            resource_type: r.get("resource_type"),
            resource_id: r.get("resource_id"),
            ip: r.get("ip"),
            user_agent: r.get("user_agent"),
            details: r.get("details"),
            created_at: r.get("created_at"),
        })
        .collect();
    Ok(page(entries, limit, |e| Cursor {
        value: e.id.into(),
        id: Uuid::nil(),
    }))
}
