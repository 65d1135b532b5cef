//! An account's webhook endpoints: adding, listing, changing, deleting, and rotating their
//! signing secrets. Storage functions run in the caller's RLS transaction (admins and above).
//! Secrets are stored sealed ([`crate::crypto::SecretBox`]): the worker must read them again to
//! sign, so a hash would not do.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use super::events::EventType;
use super::signature::SigningSecret;
use crate::crypto::SecretBox;
use crate::db::{self, GenericClient};
use crate::net::GuardConfig;
use crate::pagination::{self, Page};
use crate::{ApiError, ApiResult};

/// Longest endpoint URL (as the table allows).
pub const MAX_URL_LEN: usize = 2048;
/// Hours the previous secret keeps signing after a rotation, unless the caller says.
pub const DEFAULT_GRACE_HOURS: i32 = 24;
/// The longest grace period a rotation may ask for (a week).
pub const MAX_GRACE_HOURS: i32 = 168;

/// A URL that may receive webhooks: absolute `http(s)` without credentials, at most 2048
/// characters, and not an IP literal the SSRF guard refuses. Host names are checked again by the
/// guard at every delivery (DNS can change), this is the early, clear refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    /// Checks `url` with the guard's allowlist (`SSRF_ALLOW_CIDRS`, loopback in local stacks).
    pub fn parse(url: &str, guard: &GuardConfig) -> ApiResult<Self> {
        if url.len() > MAX_URL_LEN {
            return Err(ApiError::invalid_field(
                "url",
                format!("must be at most {MAX_URL_LEN} characters long"),
            ));
        }
        let parsed = crate::knowledge::sources::check_url(url)?;
        let host = parsed.host_str().unwrap_or_default();
        let literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok();
        if let Some(ip) = literal
            && let Err(reason) = guard.check(ip)
        {
            return Err(ApiError::invalid_field(
                "url",
                format!("{ip} is a {reason} address, which webhooks may not reach"),
            ));
        }
        if host.eq_ignore_ascii_case("localhost") && guard.allow.is_empty() {
            return Err(ApiError::invalid_field(
                "url",
                "localhost is not reachable from ChatPad",
            ));
        }
        Ok(WebhookUrl(parsed.to_string()))
    }

    /// The URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A webhook endpoint as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    pub description: Option<String>,
    /// The event types delivered to this endpoint.
    pub events: Vec<EventType>,
    /// Disabled endpoints receive nothing; ChatPad disables one that answers 410 or fails for
    /// 5 days (see `disabledReason`).
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// Since when every delivery has failed; absent while healthy.
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the secret replaced by the last rotation still signs (a second signature).
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    /// The signing secret (`whsec_…`): only in the answers to creating an endpoint and to
    /// rotating its secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, url, description, events, enabled, disabled_reason, failing_since, \
     CASE WHEN previous_secret_expires_at > now() THEN previous_secret_expires_at END AS previous_secret_expires_at, \
     created_at, updated_at";

fn from_row(row: &Row) -> Webhook {
    let events: Vec<String> = row.get("events");
    Webhook {
        id: row.get("id"),
        url: row.get("url"),
        description: row.get("description"),
        events: events.iter().filter_map(|e| EventType::parse(e)).collect(),
        enabled: row.get("enabled"),
        disabled_reason: row.get("disabled_reason"),
        failing_since: row.get("failing_since"),
        previous_secret_expires_at: row.get("previous_secret_expires_at"),
        secret: None,
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    }
}

/// A new endpoint.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewWebhook {
    #[schema(max_length = 2048, example = "https://hooks.example/chatpad")]
    pub url: String,
    /// At least one event type.
    #[schema(min_items = 1)]
    pub events: Vec<EventType>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// Default `true`.
    pub enabled: Option<bool>,
}

/// Changes to an endpoint; absent fields stay as they are. Enabling an endpoint clears why it
/// was disabled.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookChanges {
    #[schema(max_length = 2048)]
    pub url: Option<String>,
    #[schema(min_items = 1)]
    pub events: Option<Vec<EventType>>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

/// How a secret rotation goes.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRotation {
    /// Hours the old secret keeps signing next to the new one (0 to 168, default 24): time to
    /// deploy the new secret to the receiver.
    #[schema(minimum = 0, maximum = 168)]
    pub grace_hours: Option<i32>,
}

fn check_events(events: &[EventType]) -> ApiResult<Vec<&'static str>> {
    if events.is_empty() {
        return Err(ApiError::invalid_field(
            "events",
            "must name at least one event type",
        ));
    }
    let mut names: Vec<&'static str> = events.iter().map(|e| e.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    Ok(names)
}

fn check_description(description: Option<&str>) -> ApiResult<()> {
    match description {
        Some(d) if d.chars().count() > 500 => Err(ApiError::invalid_field(
            "description",
            "must be at most 500 characters long",
        )),
        _ => Ok(()),
    }
}

/// Adds an endpoint to `account`; the answer carries its new secret. Refused (403) when the
/// account's plan lacks webhooks.
pub async fn create(
    tx: &impl GenericClient,
    secrets: &SecretBox,
    guard: &GuardConfig,
    account: Uuid,
    new: &NewWebhook,
) -> ApiResult<Webhook> {
    let url = WebhookUrl::parse(&new.url, guard)?;
    let events = check_events(&new.events)?;
    check_description(new.description.as_deref())?;
    let secret = SigningSecret::generate();
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO webhooks (user_id, url, description, events, enabled, secret_ciphertext)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
            ),
            &[
                &account,
                &url.as_str(),
                &new.description,
                &events,
                &new.enabled.unwrap_or(true),
                &secrets.seal(secret.as_bytes()),
            ],
        )
        .await?;
    Ok(Webhook {
        secret: Some(secret.to_text()),
        ..from_row(&row)
    })
}

/// One endpoint.
pub async fn get(tx: &impl GenericClient, id: Uuid) -> ApiResult<Webhook> {
    let row = tx
        .query_opt(
            &format!("SELECT {COLUMNS} FROM webhooks WHERE id = $1"),
            &[&id],
        )
        .await?;
    Ok(from_row(
        &row.ok_or_else(|| ApiError::not_found("webhook"))?,
    ))
}

/// A page of `account`'s endpoints, newest first.
pub async fn list(
    tx: &impl GenericClient,
    account: Uuid,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> ApiResult<Page<Webhook>> {
    let limit = pagination::limit(limit)?;
    let (after_time, after_id) = pagination::time_cursor(cursor)?.unzip();
    let rows = tx
        .query(
            &format!(
                "SELECT {COLUMNS} FROM webhooks
                 WHERE user_id = $1 AND ($3::uuid IS NULL OR (created_at, id) < ($2, $3))
                 ORDER BY created_at DESC, id DESC LIMIT $4"
            ),
            &[&account, &after_time, &after_id, &(limit + 1)],
        )
        .await?;
    let hooks = rows.iter().map(from_row).collect();
    Ok(pagination::page(hooks, limit, |w: &Webhook| {
        pagination::time_cursor_of(w.created_at, w.id)
    }))
}

/// Changes an endpoint.
pub async fn update(
    tx: &impl GenericClient,
    guard: &GuardConfig,
    id: Uuid,
    changes: &WebhookChanges,
) -> ApiResult<Webhook> {
    let url = changes
        .url
        .as_deref()
        .map(|u| WebhookUrl::parse(u, guard))
        .transpose()?;
    let events = changes.events.as_deref().map(check_events).transpose()?;
    check_description(changes.description.as_deref())?;
    let row = tx
        .query_opt(
            &format!(
                "UPDATE webhooks SET url = coalesce($2, url), events = coalesce($3, events),
                   description = coalesce($4, description), enabled = coalesce($5, enabled),
                   disabled_reason = CASE WHEN $5 THEN NULL ELSE disabled_reason END,
                   failing_since = CASE WHEN $5 AND NOT enabled THEN NULL ELSE failing_since END
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[
                &id,
                &url.as_ref().map(WebhookUrl::as_str),
                &events,
                &changes.description,
                &changes.enabled,
            ],
        )
        .await?;
    match row {
        Some(row) => Ok(from_row(&row)),
        None => Err(db::not_found_or_forbidden(tx, "webhooks", id, "webhook").await),
    }
}

/// Deletes an endpoint with its delivery log.
pub async fn delete(tx: &impl GenericClient, id: Uuid) -> ApiResult<()> {
    match tx
        .execute("DELETE FROM webhooks WHERE id = $1", &[&id])
        .await?
    {
        0 => Err(db::not_found_or_forbidden(tx, "webhooks", id, "webhook").await),
        _ => Ok(()),
    }
}

/// Replaces the signing secret; the old one keeps signing (a second signature in every
/// delivery) for the grace period. The answer carries the new secret.
pub async fn rotate_secret(
    tx: &impl GenericClient,
    secrets: &SecretBox,
    id: Uuid,
    rotation: &SecretRotation,
) -> ApiResult<Webhook> {
    let grace = rotation.grace_hours.unwrap_or(DEFAULT_GRACE_HOURS);
    if !(0..=MAX_GRACE_HOURS).contains(&grace) {
        return Err(ApiError::invalid_field(
            "graceHours",
            format!("must be between 0 and {MAX_GRACE_HOURS}"),
        ));
    }
    let secret = SigningSecret::generate();
    let row = tx
        .query_opt(
            &format!(
                "UPDATE webhooks SET previous_secret_ciphertext = secret_ciphertext,
                   previous_secret_expires_at = now() + make_interval(hours => $2),
                   secret_ciphertext = $3
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[&id, &grace, &secrets.seal(secret.as_bytes())],
        )
        .await?;
    match row {
        Some(row) => Ok(Webhook {
            secret: Some(secret.to_text()),
            ..from_row(&row)
        }),
        None => Err(db::not_found_or_forbidden(tx, "webhooks", id, "webhook").await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> GuardConfig {
        GuardConfig {
            allow: crate::net::parse_allow_list("127.0.0.1/32").unwrap(),
            ..GuardConfig::default()
        }
    }

    #[test]
    fn webhook_urls_are_checked_against_the_guard() {
        let prod = GuardConfig::default();
        assert!(WebhookUrl::parse("https://hooks.example.com/in?x=1", &prod).is_ok());
        for bad in [
            "ftp://example.com/",
            "https://user:pw@example.com/",
            "/relative",
            "http://169.254.169.254/latest",
            "http://10.0.0.1/",
            "http://[::1]:8080/",
            "http://localhost:3000/",
        ] {
            let err = WebhookUrl::parse(bad, &prod).unwrap_err();
            assert_eq!(err.status(), 422, "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(2100));
        assert!(WebhookUrl::parse(&long, &prod).is_err());
        // The local stack's allowlist lets tests reach their loopback receiver.
        assert!(WebhookUrl::parse("http://127.0.0.1:9999/hook", &local()).is_ok());
    }

    #[test]
    fn events_must_be_named_and_are_deduplicated() {
        assert!(check_events(&[]).is_err());
        assert_eq!(
            check_events(&[EventType::LeadCreated, EventType::LeadCreated]).unwrap(),
            ["lead.created"]
        );
    }
}
