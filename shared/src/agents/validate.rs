//! Validation of agent fields: every problem is reported at once, per field, as a 422.

use std::collections::BTreeMap;

use serde_json::json;

use super::{AgentFields, LeadFieldKind};
use crate::db::GenericClient;
use crate::{ApiError, ApiResult};

fn hex_colour(value: &str) -> bool {
    value.len() == 7 && value.starts_with('#') && value[1..].chars().all(|c| c.is_ascii_hexdigit())
}

/// A host name as allowed in `allowedDomains`: letters, digits, dots, hyphens, an optional
/// leading `*.` wildcard and an optional port.
fn domain(value: &str) -> bool {
    let host = value.strip_prefix("*.").unwrap_or(value);
    let host = host.split_once(':').map_or(
        host,
        |(h, port)| if port.parse::<u16>().is_ok() { h } else { "" },
    );
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn length(
    errors: &mut BTreeMap<&'static str, String>,
    field: &'static str,
    value: &Option<String>,
    min: usize,
    max: usize,
) {
    if let Some(v) = value {
        let n = v.chars().count();
        if n < min || n > max {
            errors.insert(field, format!("must be {min} to {max} characters long"));
        }
    }
}

/// Checks `fields`; the model must be an enabled entry of the model catalogue.
pub async fn validate(tx: &impl GenericClient, fields: &AgentFields) -> ApiResult<()> {
    let mut errors = BTreeMap::new();
    length(&mut errors, "name", &fields.name, 1, 120);
    length(
        &mut errors,
        "systemPrompt",
        &fields.system_prompt,
        0,
        20_000,
    );
    length(&mut errors, "greeting", &fields.greeting, 0, 1_000);
    length(
        &mut errors,
        "fallbackMessage",
        &fields.fallback_message,
        1,
        1_000,
    );
    if fields.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        errors.insert("name", "must not be blank".into());
    }
    if fields
        .temperature
        .is_some_and(|t| !(0.0..=2.0).contains(&t))
    {
        errors.insert("temperature", "must be between 0 and 2".into());
    }
    if let Some(a) = &fields.appearance {
        for (field, colour) in [
            ("appearance.primaryColor", &a.primary_color),
            ("appearance.textColor", &a.text_color),
            ("appearance.backgroundColor", &a.background_color),
        ] {
            if colour.as_deref().is_some_and(|c| !hex_colour(c)) {
                errors.insert(field, "must be a #RRGGBB colour".into());
            }
        }
        if a.avatar_url
            .as_deref()
            .is_some_and(|u| !u.starts_with("https://") || u.len() > 2048)
        {
            errors.insert(
                "appearance.avatarUrl",
                "must be an https URL of at most 2048 characters".into(),
            );
        }
        if a.font
            .as_deref()
            .is_some_and(|f| f.is_empty() || f.len() > 80 || f.contains([';', '{', '}', '<', '>']))
        {
            errors.insert(
                "appearance.font",
                "must be a font family name of at most 80 characters".into(),
            );
        }
    }
    if let Some(domains) = &fields.allowed_domains {
        if domains.len() > 100 {
            errors.insert("allowedDomains", "at most 100 domains".into());
        } else if let Some(bad) = domains.iter().find(|d| !domain(d)) {
            errors.insert(
                "allowedDomains",
                format!("{bad:?} is not a host name (e.g. example.com or *.example.com)"),
            );
        }
    }
    if let Some(form) = &fields.lead_form_fields {
        let mut names = std::collections::HashSet::new();
        if form.len() > 20 {
            errors.insert("leadFormFields", "at most 20 fields".into());
        }
        for f in form {
            let valid_name = !f.name.is_empty()
                && f.name.len() <= 40
                && f.name.starts_with(|c: char| c.is_ascii_lowercase())
                && f.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid_name {
                errors.insert(
                    "leadFormFields",
                    format!("field name {:?} must match [a-z][a-z0-9_]* (≤ 40)", f.name),
                );
            } else if !names.insert(&f.name) {
                errors.insert(
                    "leadFormFields",
                    format!("field name {:?} is used twice", f.name),
                );
            } else if f.label.trim().is_empty() || f.label.chars().count() > 80 {
                errors.insert(
                    "leadFormFields",
                    format!("field {:?} needs a label of 1 to 80 characters", f.name),
                );
            } else if (f.kind == LeadFieldKind::Select) == f.options.is_empty() {
                errors.insert(
                    "leadFormFields",
                    format!(
                        "field {:?}: options are required for select fields only",
                        f.name
                    ),
                );
            }
        }
    }
    if fields
        .retrieval_mode
        .as_deref()
        .is_some_and(|m| m != "vector" && m != "hybrid")
    {
        errors.insert("retrievalMode", "must be vector or hybrid".into());
    }
    if fields
        .match_threshold
        .is_some_and(|t| !(-1.0..=1.0).contains(&t))
    {
        errors.insert("matchThreshold", "must be between -1 and 1".into());
    }
    if fields.match_count.is_some_and(|n| !(1..=50).contains(&n)) {
        errors.insert("matchCount", "must be between 1 and 50".into());
    }
    if fields
        .chunk_size_tokens
        .is_some_and(|n| !(32..=2000).contains(&n))
    {
        errors.insert("chunkSizeTokens", "must be between 32 and 2000".into());
    }
    if fields
        .chunk_overlap_tokens
        .is_some_and(|n| !(0..=500).contains(&n))
    {
        errors.insert("chunkOverlapTokens", "must be between 0 and 500".into());
    }
    if let Some(model) = &fields.model {
        let known: Vec<String> = tx
            .query("SELECT id FROM ai_models WHERE enabled ORDER BY id", &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !known.contains(model) {
            errors.insert(
                "model",
                format!("unknown model; available: {}", known.join(", ")),
            );
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    let message = errors
        .iter()
        .map(|(f, m)| format!("{f}: {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    Err(ApiError::Validation {
        message,
        details: json!({ "fields": errors }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_and_colours() {
        for ok in [
            "example.com",
            "*.example.com",
            "localhost:8080",
            "shop.example.co.uk",
        ] {
            assert!(domain(ok), "{ok}");
        }
        for bad in [
            "",
            "http://example.com",
            "exa mple.com",
            "example..com",
            "a.com:99999",
            "<script>",
        ] {
            assert!(!domain(bad), "{bad}");
        }
        assert!(hex_colour("#1a2B3c"));
        assert!(!hex_colour("red") && !hex_colour("#12345") && !hex_colour("#12345g"));
    }
}
