//! Leads: contact details visitors leave through the widget's form, linked to their
//! conversation, and how the account's team lists, qualifies and exports them.
//!
//! Capturing a lead only writes rows: the database's triggers emit `lead.created` (and
//! `conversation.created` when the form started the conversation) in the same transaction, see
//! [`crate::webhooks`].
//!
//! - [`form`]: checking a submission against the agent's configured fields.

pub mod form;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::agents::Agent;
use crate::db::{self, GenericClient};
use crate::pagination::{self, Page};
use crate::{ApiError, ApiResult};

pub use form::ValidLead;

/// Identical submissions of one visitor within this window make one lead.
pub const DUPLICATE_WINDOW_MINUTES: i32 = 10;
/// Rows in one CSV export at most.
pub const MAX_EXPORT_ROWS: i64 = 50_000;
/// The statuses a lead moves through.
pub const STATUSES: [&str; 5] = ["new", "contacted", "qualified", "converted", "lost"];

/// A lead as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Lead {
    pub id: Uuid,
    pub agent_id: Uuid,
    pub conversation_id: Option<Uuid>,
    pub visitor_id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// Every field of the form as submitted.
    #[schema(value_type = Object)]
    pub fields: Value,
    /// `new`, `contacted`, `qualified`, `converted` or `lost`.
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, agent_id, conversation_id, visitor_id, name, email, phone, fields, \
     status, created_at, updated_at";

fn from_row(row: &Row) -> Lead {
    Lead {
        id: row.get("id"),
        agent_id: row.get("agent_id"),
        conversation_id: row.get("conversation_id"),
        visitor_id: row.get("visitor_id"),
        name: row.get("name"),
        email: row.get("email"),
        phone: row.get("phone"),
        fields: row.get("fields"),
        status: row.get("status"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    }
}

// ---------------------------------------------------------------------------------------------
// Capture (the widget, as the visitor)
// ---------------------------------------------------------------------------------------------

/// What the widget's contact form sends.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeadSubmission {
    pub agent_id: Uuid,
    pub visitor_id: String,
    /// The conversation the form was filled in; absent = start one.
    pub conversation_id: Option<Uuid>,
    pub fields: Map<String, Value>,
}

impl LeadSubmission {
    /// Checks the visitor id (1 to 128 printable characters).
    pub fn check(&self) -> ApiResult<()> {
        let v = &self.visitor_id;
        if v.is_empty() || v.chars().count() > 128 || v.chars().any(char::is_control) {
            return Err(ApiError::invalid_field(
                "visitorId",
                "must be 1 to 128 printable characters",
            ));
        }
        Ok(())
    }
}

/// What capturing did.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Captured {
    pub lead_id: Uuid,
    pub conversation_id: Uuid,
    /// `true` when the form started the conversation.
    pub conversation_created: bool,
    /// `true` when an identical submission of this visitor was already stored moments ago:
    /// nothing new was created.
    pub duplicate: bool,
}

/// Stores a lead of `agent` from its visitor (the transaction acts as that widget visitor),
/// linked to the given conversation or to a new one. Identical submissions within
/// [`DUPLICATE_WINDOW_MINUTES`] return the lead already stored.
pub async fn capture(
    tx: &impl GenericClient,
    agent: &Agent,
    submission: &LeadSubmission,
    lead: &ValidLead,
) -> ApiResult<Captured> {
    let fields = Value::Object(lead.fields.clone());
    // Two identical submissions at once (a double click) serialise here, so the second one
    // finds the first.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('chatpad.lead:' || $1::uuid::text || ':' || $2, 0))",
        &[&agent.id, &submission.visitor_id],
    )
    .await?;
    if let Some(row) = tx
        .query_opt(
            "SELECT id, conversation_id FROM leads
             WHERE agent_id = $1 AND visitor_id = $2 AND fields = $3
               AND created_at > now() - make_interval(mins => $4)
             ORDER BY created_at DESC LIMIT 1",
            &[
                &agent.id,
                &submission.visitor_id,
                &fields,
                &DUPLICATE_WINDOW_MINUTES,
            ],
        )
        .await?
        && let Some(conversation_id) = row.get::<_, Option<Uuid>>("conversation_id")
    {
        return Ok(Captured {
            lead_id: row.get("id"),
            conversation_id,
            conversation_created: false,
            duplicate: true,
        });
    }
    let (conversation_id, conversation_created) = match submission.conversation_id {
        Some(id) => {
            let found = tx
                .query_opt(
                    "SELECT id FROM conversations WHERE id = $1 AND agent_id = $2",
                    &[&id, &agent.id],
                )
                .await?;
            if found.is_none() {
                return Err(ApiError::invalid_field(
                    "conversationId",
                    "no such conversation of this visitor",
                ));
            }
            (id, false)
        }
        None => (
            start_conversation(tx, agent, &submission.visitor_id).await?,
            true,
        ),
    };
    let lead_id: Uuid = tx
        .query_one(
            "INSERT INTO leads (agent_id, conversation_id, visitor_id, name, email, phone, fields)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            &[
                &agent.id,
                &conversation_id,
                &submission.visitor_id,
                &lead.name,
                &lead.email,
                &lead.phone,
                &fields,
            ],
        )
        .await?
        .get(0);
    Ok(Captured {
        lead_id,
        conversation_id,
        conversation_created,
        duplicate: false,
    })
}

/// Starts a conversation of the visitor (the form was filled in before any chat) and counts it
/// in the account's usage. The chat engine's own conversation start should replace this once it
/// is shared.
async fn start_conversation(
    tx: &impl GenericClient,
    agent: &Agent,
    visitor: &str,
) -> ApiResult<Uuid> {
    let id: Uuid = tx
        .query_one(
            "INSERT INTO conversations (agent_id, visitor_id, metadata)
             VALUES ($1, $2, '{\"startedBy\": \"lead_form\"}') RETURNING id",
            &[&agent.id, &visitor],
        )
        .await?
        .get(0);
    tx.execute(
        "SELECT record_usage($1, p_conversations => 1)",
        &[&agent.account_id],
    )
    .await?;
    Ok(id)
}

// ---------------------------------------------------------------------------------------------
// The team's side (management API)
// ---------------------------------------------------------------------------------------------

/// Filters of a lead listing or export.
#[derive(Debug, Default, Clone)]
pub struct LeadQuery<'a> {
    pub agent: Option<Uuid>,
    pub status: Option<&'a str>,
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Created before.
    pub until: Option<DateTime<Utc>>,
}

impl LeadQuery<'_> {
    fn check(&self) -> ApiResult<()> {
        if let Some(status) = self.status
            && !STATUSES.contains(&status)
        {
            return Err(ApiError::invalid_field(
                "status",
                format!("must be one of {}", STATUSES.join(", ")),
            ));
        }
        Ok(())
    }
}

const FILTER: &str = "user_id = $1 AND ($2::uuid IS NULL OR agent_id = $2)
     AND ($3::text IS NULL OR status = $3) AND ($4::timestamptz IS NULL OR created_at >= $4)
     AND ($5::timestamptz IS NULL OR created_at < $5)";

/// A page of `account`'s leads, newest first.
pub async fn list(
    tx: &impl GenericClient,
    account: Uuid,
    query: &LeadQuery<'_>,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> ApiResult<Page<Lead>> {
    query.check()?;
    let limit = pagination::limit(limit)?;
    let (after_time, after_id) = pagination::time_cursor(cursor)?.unzip();
    let rows = tx
        .query(
            &format!(
                "SELECT {COLUMNS} FROM leads WHERE {FILTER}
                   AND ($7::uuid IS NULL OR (created_at, id) < ($6, $7))
                 ORDER BY created_at DESC, id DESC LIMIT $8"
            ),
            &[
                &account,
                &query.agent,
                &query.status,
                &query.since,
                &query.until,
                &after_time,
                &after_id,
                &(limit + 1),
            ],
        )
        .await?;
    let leads = rows.iter().map(from_row).collect();
    Ok(pagination::page(leads, limit, |l: &Lead| {
        pagination::time_cursor_of(l.created_at, l.id)
    }))
}

/// A change of a lead's status.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeadChanges {
    /// `new`, `contacted`, `qualified`, `converted` or `lost`.
    #[schema(pattern = "^(new|contacted|qualified|converted|lost)$")]
    pub status: String,
}

/// Moves a lead to another status.
pub async fn update(tx: &impl GenericClient, id: Uuid, changes: &LeadChanges) -> ApiResult<Lead> {
    LeadQuery {
        status: Some(&changes.status),
        ..Default::default()
    }
    .check()?;
    let row = tx
        .query_opt(
            &format!("UPDATE leads SET status = $2 WHERE id = $1 RETURNING {COLUMNS}"),
            &[&id, &changes.status],
        )
        .await?;
    match row {
        Some(row) => Ok(from_row(&row)),
        None => Err(db::not_found_or_forbidden(tx, "leads", id, "lead").await),
    }
}

/// `account`'s leads as CSV (oldest first): the fixed columns, then one column per form field
/// found. Cells that a spreadsheet would run as a formula are prefixed with `'`.
pub async fn export_csv(
    tx: &impl GenericClient,
    account: Uuid,
    query: &LeadQuery<'_>,
) -> ApiResult<Vec<u8>> {
    query.check()?;
    let rows = tx
        .query(
            &format!("SELECT {COLUMNS} FROM leads WHERE {FILTER} ORDER BY created_at, id LIMIT $6"),
            &[
                &account,
                &query.agent,
                &query.status,
                &query.since,
                &query.until,
                &MAX_EXPORT_ROWS,
            ],
        )
        .await?;
    let leads: Vec<Lead> = rows.iter().map(from_row).collect();
    let mut extra: Vec<String> = leads
        .iter()
        .filter_map(|l| l.fields.as_object())
        .flat_map(|f| f.keys().cloned())
        .filter(|k| !matches!(k.as_str(), "name" | "email" | "phone"))
        .collect();
    extra.sort();
    extra.dedup();
    let mut out = csv::Writer::from_writer(Vec::new());
    let fixed = [
        "id",
        "created_at",
        "status",
        "agent_id",
        "conversation_id",
        "visitor_id",
        "name",
        "email",
        "phone",
    ];
    let internal = |e: csv::Error| ApiError::Internal(anyhow::Error::new(e).context("writing CSV"));
    out.write_record(
        fixed
            .iter()
            .copied()
            .chain(extra.iter().map(String::as_str)),
    )
    .map_err(internal)?;
    for lead in &leads {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let mut record = vec![
            lead.id.to_string(),
            lead.created_at.to_rfc3339(),
            lead.status.clone(),
            lead.agent_id.to_string(),
            lead.conversation_id
                .map(|c| c.to_string())
                .unwrap_or_default(),
            opt(&lead.visitor_id),
            opt(&lead.name),
            opt(&lead.email),
            opt(&lead.phone),
        ];
        record.extend(extra.iter().map(|k| match &lead.fields[k] {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        }));
        out.write_record(record.iter().map(|cell| defuse(cell).into_owned()))
            .map_err(internal)?;
    }
    out.into_inner()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("finishing CSV: {e}")))
}

/// A cell a spreadsheet would evaluate (`=`, `+`, `-`, `@`, tab, CR) is made plain text.
fn defuse(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_defused() {
        assert_eq!(defuse("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(defuse("+44 20"), "'+44 20");
        assert_eq!(defuse("ada@example.com"), "ada@example.com");
    }
}
