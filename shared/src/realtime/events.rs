//! Conversation events as clients receive them (WebSocket frames and `GET /events`), and the
//! persisted ones in `conversation_events` (migrations/V12__takeover_realtime.sql).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::db::GenericClient;
use crate::{ApiError, ApiResult};

/// Most events one `GET /events` returns.
pub const PAGE_SIZE: i64 = 100;

/// One event, as sent to clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// The catch-up cursor (increasing per conversation); `None` for ephemeral events
    /// (typing, presence), which are never stored.
    pub id: Option<String>,
    /// `message.created`, `takeover.started`, `takeover.ended`, `conversation.updated`,
    /// `typing` or `presence`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The conversation; `None` only for presence, which concerns a whole account.
    pub conversation_id: Option<Uuid>,
    pub at: DateTime<Utc>,
    pub data: Value,
}

impl Event {
    /// An ephemeral event (not stored, not replayed).
    pub fn ephemeral(kind: &str, conversation_id: Option<Uuid>, data: Value) -> Self {
        Event {
            id: None,
            kind: kind.into(),
            conversation_id,
            at: Utc::now(),
            data,
        }
    }
}

/// An event with the account whose inbox channel it also goes to.
#[derive(Debug, Clone, PartialEq)]
pub struct Routed {
    pub account: Uuid,
    pub event: Event,
}

/// Which events a reader asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One conversation (a visitor, or a team member looking at it).
    Conversation(Uuid),
    /// Every conversation of an account (the team's inbox). Within a conversation ids follow
    /// commit order; across conversations two concurrent writers may commit out of id order,
    /// so an inbox that reconnects should also reload its lists, not trust the cursor alone.
    Account(Uuid),
}

/// A client's cursor: the id of the last event it saw ("0" or absent: from the start).
pub fn parse_cursor(text: Option<&str>) -> ApiResult<i64> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(0),
        Some(t) => {
            t.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                ApiError::invalid_field("after", "must be an event id from this API")
            })
        }
    }
}

fn routed(row: &Row) -> Routed {
    let id: i64 = row.get("id");
    Routed {
        account: row.get("user_id"),
        event: Event {
            id: Some(id.to_string()),
            kind: row.get("type"),
            conversation_id: Some(row.get("conversation_id")),
            at: row.get("created_at"),
            data: row.get("data"),
        },
    }
}

/// The events the open transaction wrote so far, oldest first: what its writer publishes
/// once it has committed. Read as the writer, under its row-level security.
pub async fn written_in(tx: &impl GenericClient) -> ApiResult<Vec<Routed>> {
    let statement = tx
        .prepare_cached(
            "SELECT id, conversation_id, user_id, type, data, created_at
             FROM conversation_events WHERE xact = pg_current_xact_id() ORDER BY id",
        )
        .await?;
    let rows = tx.query(&statement, &[]).await?;
    Ok(rows.iter().map(routed).collect())
}

/// Persisted events of `scope` after `after`, oldest first, at most [`PAGE_SIZE`]; the caller's
/// row-level security decides what it may read (another tenant's scope reads as empty).
pub async fn since(tx: &impl GenericClient, scope: Scope, after: i64) -> ApiResult<Vec<Event>> {
    let (column, id) = match scope {
        Scope::Conversation(id) => ("conversation_id", id),
        Scope::Account(id) => ("user_id", id),
    };
    let rows = tx
        .query(
            &format!(
                "SELECT id, conversation_id, user_id, type, data, created_at
                 FROM conversation_events WHERE {column} = $1 AND id > $2 ORDER BY id LIMIT $3"
            ),
            &[&id, &after, &PAGE_SIZE],
        )
        .await?;
    Ok(rows.iter().map(|row| routed(row).event).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_non_negative_integers() {
        assert_eq!(parse_cursor(None).unwrap(), 0);
        assert_eq!(parse_cursor(Some("")).unwrap(), 0);
        assert_eq!(parse_cursor(Some("42")).unwrap(), 42);
        assert!(parse_cursor(Some("-1")).is_err());
        assert!(parse_cursor(Some("abc")).is_err());
    }

    #[test]
    fn events_serialise_as_the_contract_says() {
        let event = Event::ephemeral(
            "typing",
            Some(Uuid::nil()),
            serde_json::json!({ "from": "visitor", "name": null, "typing": true }),
        );
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["id"], Value::Null);
        assert_eq!(json["type"], "typing");
        assert_eq!(json["conversationId"], Uuid::nil().to_string());
        assert!(json["at"].as_str().unwrap().ends_with('Z'));
    }
}
