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
