//! What the embeddable widget may know about an agent: its public configuration and which web
//! pages may embed it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Appearance, LeadFormField};
use crate::ApiResult;
use crate::db::GenericClient;

/// The widget's view of an agent (`get-widget-config`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WidgetConfig {
    pub agent_id: Uuid,
    pub name: String,
    pub greeting: String,
    pub appearance: Appearance,
    pub lead_form_fields: Vec<LeadFormField>,
    /// The agent has a help center with at least one published article.
    pub help_center: bool,
    pub features: WidgetFeatures,
    pub updated_at: DateTime<Utc>,
    /// Not sent: the widget has no use for the list, and it would tell scrapers where else the
    /// agent lives.
    #[serde(skip)]
    pub allowed_domains: Vec<String>,
    /// Not sent: what the agent says when it has no answer (chat uses it).
    #[serde(skip)]
    pub fallback_message: String,
}

/// What the widget shows, by the owner's plan.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WidgetFeatures {
    /// Show "powered by ChatPad": always, unless the agent hides it on a plan with custom
    /// branding.
    pub powered_by: bool,
    /// A contact form is configured.
    pub lead_form: bool,
    /// Visitors can ask for a person.
    pub human_handoff: bool,
}

/// The widget configuration of an active agent, or `None` for an unknown or disabled one.
/// One query through `widget_config` (a narrow definer function returning public fields only),
/// so it needs no transaction.
pub async fn load(client: &impl GenericClient, agent_id: Uuid) -> ApiResult<Option<WidgetConfig>> {
    let Some(row) = client
        .query_opt(
            "SELECT id, name, greeting, fallback_message, appearance, allowed_domains,
                    lead_form_fields, help_center, custom_branding, updated_at
             FROM public.widget_config($1)",
            &[&agent_id],
        )
        .await?
    else {
        return Ok(None);
    };
    // Stored values were validated on write; a row that no longer parses (an older shape)
    // degrades to defaults rather than breaking every visitor's widget.
    let appearance: Appearance = serde_json::from_value(row.get("appearance")).unwrap_or_default();
    let lead_form_fields: Vec<LeadFormField> =
        serde_json::from_value(row.get("lead_form_fields")).unwrap_or_default();
    let custom_branding: bool = row.get("custom_branding");
    Ok(Some(WidgetConfig {
        agent_id: row.get("id"),
        name: row.get("name"),
        greeting: row.get("greeting"),
        features: WidgetFeatures {
            powered_by: !(custom_branding && appearance.hide_branding == Some(true)),
            lead_form: !lead_form_fields.is_empty(),
            human_handoff: true,
        },
        appearance,
        lead_form_fields,
        help_center: row.get("help_center"),
        updated_at: row.get("updated_at"),
        allowed_domains: row.get("allowed_domains"),
        fallback_message: row.get("fallback_message"),
    }))
}

/// The 404 of an unknown or disabled agent (visitors cannot tell the two apart).
pub fn agent_not_found() -> crate::ApiError {
    crate::ApiError::NotFound {
        code: "agent_not_found",
        message: "no active agent with this id".into(),
    }
}

/// The error code of a page the agent does not allow.
pub const ORIGIN_NOT_ALLOWED: &str = "origin_not_allowed";

/// 403 `origin_not_allowed` unless the page at `origin` (a browser call's `Origin`) may use an
/// agent whose allowed domains are `allowed`; calls without an `Origin` are no page. ChatPad's
/// own hosted chat page (`HOSTED_CHAT_ORIGIN`) may use every agent.
pub fn check_origin(allowed: &[String], origin: Option<&str>) -> crate::ApiResult<()> {
    match origin {
        Some(origin) if !origin_allowed(allowed, origin) && !is_hosted_chat(origin) => {
            Err(crate::ApiError::forbidden(
                ORIGIN_NOT_ALLOWED,
                "this agent cannot be used from this web site (not in its allowed domains)",
            ))
        }
        _ => Ok(()),
    }
}

/// Whether `origin` is the hosted chat page's (serve-widget's `/chat/<agentId>`): the origin of
/// serve-widget's function URL or of the custom domain in front of it, from
/// `HOSTED_CHAT_ORIGIN` (read once; unset = no hosted page). Every widget endpoint reads it
/// here, so it is not part of each function's typed config.
fn is_hosted_chat(origin: &str) -> bool {
    static HOSTED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    HOSTED
        .get_or_init(|| {
            std::env::var("HOSTED_CHAT_ORIGIN")
                .ok()
                .map(|v| v.trim().trim_end_matches('/').to_ascii_lowercase())
                .filter(|v| !v.is_empty())
        })
        .as_deref()
        .is_some_and(|hosted| origin.eq_ignore_ascii_case(hosted))
}

/// Whether a browser page at `origin` (the `Origin` header, e.g. `https://shop.example.com`)
/// may use an agent whose allowed domains are `allowed`. An empty list allows every page; an
/// entry `example.com` allows that host on any port, `*.example.com` its subdomains (not the
/// apex), `example.com:8443` that host on that port only. Opaque origins (`null`) are refused
/// when the list is not empty.
fn origin_allowed(allowed: &[String], origin: &str) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let Ok(url) = url::Url::parse(origin) else {
        return false;
    };
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return false;
    };
    let host = host.to_ascii_lowercase();
    allowed.iter().any(|entry| {
        let entry = entry.to_ascii_lowercase();
        let (pattern, entry_port) = match entry.rsplit_once(':') {
            Some((name, p)) => (name.to_owned(), p.parse::<u16>().ok()),
            None => (entry.clone(), None),
        };
        let host_matches = match pattern.strip_prefix("*.") {
            Some(parent) => host
                .strip_suffix(parent)
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            None => host == pattern,
        };
        host_matches && entry_port.is_none_or(|p| p == port)
    })
}

#[cfg(test)]
mod tests {
    use super::origin_allowed;

    #[test]
    fn origins() {
        let list = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(origin_allowed(&[], "https://anything.test"));
        let allowed = list(&["example.com", "*.shop.test", "localhost:8080"]);
        assert!(origin_allowed(&allowed, "https://example.com"));
        assert!(origin_allowed(&allowed, "https://EXAMPLE.com:444"));
        assert!(!origin_allowed(&allowed, "https://www.example.com"));
        assert!(!origin_allowed(&allowed, "https://example.com.evil.test"));
        assert!(origin_allowed(&allowed, "https://a.shop.test"));
        assert!(origin_allowed(&allowed, "https://a.b.shop.test"));
        assert!(!origin_allowed(&allowed, "https://shop.test"));
        assert!(!origin_allowed(&allowed, "https://evilshop.test"));
        assert!(origin_allowed(&allowed, "http://localhost:8080"));
        assert!(!origin_allowed(&allowed, "http://localhost:8081"));
        assert!(!origin_allowed(&allowed, "null"));
        assert!(!origin_allowed(&allowed, "not a url"));
    }
}
