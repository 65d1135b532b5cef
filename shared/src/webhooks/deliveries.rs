//! The delivery log an account's admins see: every event sent to an endpoint, its status, the
//! receiver's last answer and timing, each attempt, and a way to send one again (replay).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::GenericClient;
use crate::pagination::{self, Page};
use crate::{ApiError, ApiResult};

/// One event's delivery to one endpoint.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: Uuid,
    pub webhook_id: Uuid,
    /// The event's id, sent as `webhook-id`: the same in every attempt and replay.
    pub event_id: Uuid,
    pub event_type: String,
    /// `pending` → `succeeded`, or `retrying` (waiting for `nextAttemptAt`) → … → `failed`.
    pub status: String,
    /// Attempts made so far.
    pub attempts: i32,
    /// The HTTP status of the last attempt; absent when no response came.
    pub response_status: Option<i32>,
    /// How long the last attempt took, in milliseconds.
    pub response_ms: Option<i32>,
    /// Why the last attempt failed.
    pub error: Option<String>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The body sent (`{"id", "type", "timestamp", "data"}`).
    #[schema(value_type = Object)]
    pub payload: Value,
    pub created_at: DateTime<Utc>,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub attempt: i32,
    pub response_status: Option<i32>,
    pub response_ms: i32,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A delivery with each of its attempts, oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: Delivery,
    pub attempt_log: Vec<Attempt>,
}

const COLUMNS: &str = "id, webhook_id, event_id, event_type, status, attempts, response_status, \
     response_ms, error, last_attempt_at, next_attempt_at, payload, created_at";

fn from_row(row: &Row) -> Delivery {
    Delivery {
        id: row.get("id"),
        webhook_id: row.get("webhook_id"),
        event_id: row.get("event_id"),
        event_type: row.get("event_type"),
        status: row.get("status"),
        attempts: row.get("attempts"),
        response_status: row.get("response_status"),
        response_ms: row.get("response_ms"),
        error: row.get("error"),
        last_attempt_at: row.get("last_attempt_at"),
        next_attempt_at: row.get("next_attempt_at"),
        payload: row.get("payload"),
        created_at: row.get("created_at"),
    }
}

/// A page of an endpoint's deliveries, newest first, optionally of one status.
pub async fn list(
    tx: &impl GenericClient,
    webhook: Uuid,
    status: Option<&str>,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> ApiResult<Page<Delivery>> {
    super::endpoints::get(tx, webhook).await?;
    if let Some(status) = status
        && !matches!(status, "pending" | "retrying" | "succeeded" | "failed")
    {
        return Err(ApiError::invalid_field(
            "status",
            "must be pending, retrying, succeeded or failed",
        ));
    }
    let limit = pagination::limit(limit)?;
    let (after_time, after_id) = pagination::time_cursor(cursor)?.unzip();
    let rows = tx
        .query(
            &format!(
                "SELECT {COLUMNS} FROM webhook_deliveries
                 WHERE webhook_id = $1 AND ($2::text IS NULL OR status = $2)
                   AND ($4::uuid IS NULL OR (created_at, id) < ($3, $4))
                 ORDER BY created_at DESC, id DESC LIMIT $5"
            ),
            &[&webhook, &status, &after_time, &after_id, &(limit + 1)],
        )
        .await?;
    let deliveries = rows.iter().map(from_row).collect();
    Ok(pagination::page(deliveries, limit, |d: &Delivery| {
        pagination::time_cursor_of(d.created_at, d.id)
    }))
}

/// One delivery with its attempts.
pub async fn get(tx: &impl GenericClient, id: Uuid) -> ApiResult<DeliveryDetail> {
    let row = tx
        .query_opt(
            &format!("SELECT {COLUMNS} FROM webhook_deliveries WHERE id = $1"),
            &[&id],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("webhook delivery"))?;
    let attempts = tx
        .query(
            "SELECT attempt, response_status, response_ms, error, created_at
             FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt, id",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| Attempt {
            attempt: r.get("attempt"),
            response_status: r.get("response_status"),
            response_ms: r.get("response_ms"),
            error: r.get("error"),
            created_at: r.get("created_at"),
        })
        .collect();
    Ok(DeliveryDetail {
        delivery: from_row(&row),
        attempt_log: attempts,
    })
}

/// Sends a finished delivery once more (same event id, one attempt, no retries).
pub async fn replay(tx: &impl GenericClient, id: Uuid) -> ApiResult<DeliveryDetail> {
    let outcome: String = tx
        .query_one("SELECT replay_webhook_delivery($1)", &[&id])
        .await?
        .get(0);
    match outcome.as_str() {
        "queued" => get(tx, id).await,
        "in_progress" => Err(ApiError::Conflict {
            code: "delivery_in_progress",
            message: "this delivery is still being attempted or waits for a retry".into(),
        }),
        "endpoint_disabled" => Err(ApiError::Conflict {
            code: "webhook_disabled",
            message: "the endpoint is disabled; enable it first".into(),
        }),
        _ => Err(ApiError::not_found("webhook delivery")),
    }
}
