//! Checking a contact-form submission against the agent's configured fields.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::ApiError;
use crate::agents::{LeadFieldKind, LeadFormField};

/// Longest value of a one-line field (`text`, `select`), in characters.
pub const MAX_TEXT_CHARS: usize = 500;
/// Longest value of a `textarea`, in characters.
pub const MAX_TEXTAREA_CHARS: usize = 5000;
/// Longest e-mail address (RFC 5321).
pub const MAX_EMAIL_CHARS: usize = 320;
/// Longest phone number as typed.
pub const MAX_PHONE_CHARS: usize = 40;

/// The form of an agent that configured none: a name and a required e-mail address.
pub fn default_form() -> Vec<LeadFormField> {
    let field = |name: &str, label: &str, kind, required| LeadFormField {
        name: name.into(),
        label: label.into(),
        kind,
        required,
        options: Vec::new(),
    };
    vec![
        field("name", "Name", LeadFieldKind::Text, false),
        field("email", "Email", LeadFieldKind::Email, true),
    ]
}

/// A submission that passed the form's checks.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidLead {
    /// Every filled-in field, trimmed (empty optional fields are left out).
    pub fields: Map<String, Value>,
    /// The field named `name`, if any.
    pub name: Option<String>,
    /// The first `email` field (lower-cased domain kept as typed).
    pub email: Option<String>,
    /// The first `phone` field.
    pub phone: Option<String>,
}

fn is_email(value: &str) -> bool {
    let Some((local, domain)) = value.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

fn is_phone(value: &str) -> bool {
    let digits = value.chars().filter(char::is_ascii_digit).count();
    (5..=20).contains(&digits)
        && value
            .strip_prefix('+')
            .unwrap_or(value)
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '(' | ')' | '-' | '.' | '/'))
}

/// Checks `submitted` against `form`: every required field filled in, no unknown field, each
/// value of its field's type and length. All problems are reported at once (422, by field).
pub fn validate(
    form: &[LeadFormField],
    submitted: &Map<String, Value>,
) -> Result<ValidLead, ApiError> {
    let mut errors: BTreeMap<String, String> = BTreeMap::new();
    for name in submitted.keys() {
        if !form.iter().any(|f| &f.name == name) {
            errors.insert(
                format!("fields.{name}"),
                "is not a field of this form".into(),
            );
        }
    }
    let mut lead = ValidLead {
        fields: Map::new(),
        name: None,
        email: None,
        phone: None,
    };
    for field in form {
        let key = format!("fields.{}", field.name);
        let value = match submitted.get(&field.name) {
            None | Some(Value::Null) => "",
            Some(Value::String(s)) => s.trim(),
            Some(_) => {
                errors.insert(key, "must be a string".into());
                continue;
            }
        };
        if value.is_empty() {
            if field.required {
                errors.insert(key, "is required".into());
            }
            continue;
        }
        let chars = value.chars().count();
        let problem = match field.kind {
            LeadFieldKind::Email if chars > MAX_EMAIL_CHARS || !is_email(value) => {
                Some("must be an e-mail address".to_owned())
            }
            LeadFieldKind::Phone if chars > MAX_PHONE_CHARS || !is_phone(value) => {
                Some("must be a phone number (digits, spaces, + ( ) - . /)".to_owned())
            }
            LeadFieldKind::Text if chars > MAX_TEXT_CHARS => {
                Some(format!("must be at most {MAX_TEXT_CHARS} characters long"))
            }
            LeadFieldKind::Textarea if chars > MAX_TEXTAREA_CHARS => Some(format!(
                "must be at most {MAX_TEXTAREA_CHARS} characters long"
            )),
            LeadFieldKind::Select if !field.options.iter().any(|o| o == value) => {
                Some(format!("must be one of: {}", field.options.join(", ")))
            }
            _ => None,
        };
        if let Some(problem) = problem {
            errors.insert(key, problem);
            continue;
        }
        match field.kind {
            LeadFieldKind::Email if lead.email.is_none() => lead.email = Some(value.to_owned()),
            LeadFieldKind::Phone if lead.phone.is_none() => lead.phone = Some(value.to_owned()),
            LeadFieldKind::Text if field.name == "name" => {
                lead.name = Some(value.chars().take(200).collect())
            }
            _ => {}
        }
        lead.fields
            .insert(field.name.clone(), Value::String(value.to_owned()));
    }
    if errors.is_empty() {
        Ok(lead)
    } else {
        Err(ApiError::Validation {
            message: format!(
                "the form has {} invalid field(s): {}",
                errors.len(),
                errors.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
            details: serde_json::json!({ "fields": errors }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn form() -> Vec<LeadFormField> {
        let mut form = default_form();
        form.push(LeadFormField {
            name: "phone".into(),
            label: "Phone".into(),
            kind: LeadFieldKind::Phone,
            required: false,
            options: Vec::new(),
        });
        form.push(LeadFormField {
            name: "plan".into(),
            label: "Plan".into(),
            kind: LeadFieldKind::Select,
            required: false,
            options: vec!["basic".into(), "pro".into()],
        });
        form
    }

    fn submit(value: Value) -> Result<ValidLead, ApiError> {
        validate(&form(), value.as_object().unwrap())
    }

    #[test]
    fn a_valid_submission_fills_the_contact_columns() {
        let lead = submit(json!({"name": " Ada ", "email": "ada@example.com", "phone": "+44 20 7946 0958", "plan": "pro"})).unwrap();
        assert_eq!(lead.name.as_deref(), Some("Ada"));
        assert_eq!(lead.email.as_deref(), Some("ada@example.com"));
        assert_eq!(lead.phone.as_deref(), Some("+44 20 7946 0958"));
        assert_eq!(lead.fields["name"], "Ada");
        // Optional fields left empty are not stored.
        let lead = submit(json!({"email": "b@example.org", "phone": ""})).unwrap();
        assert_eq!(lead.fields.len(), 1);
    }

    #[test]
    fn every_problem_is_named_by_field() {
        let err = submit(json!({"email": "not-an-email", "phone": "call me", "plan": "gold", "extra": "x", "name": 5})).unwrap_err();
        let ApiError::Validation { details, .. } = err else {
            panic!("expected a 422")
        };
        let fields = details["fields"].as_object().unwrap();
        for key in [
            "fields.email",
            "fields.phone",
            "fields.plan",
            "fields.extra",
            "fields.name",
        ] {
            assert!(fields.contains_key(key), "{key}: {details}");
        }
        let err = submit(json!({"name": "x".repeat(501)})).unwrap_err();
        assert_eq!(err.status(), 422);
        let ApiError::Validation { details, .. } = err else {
            panic!()
        };
        assert!(
            details["fields"]["fields.email"]
                .as_str()
                .unwrap()
                .contains("required")
        );
        assert!(
            details["fields"]["fields.name"]
                .as_str()
                .unwrap()
                .contains("500")
        );
    }

    #[test]
    fn emails_and_phones() {
        for ok in [
            "a@b.co",
            "first.last+tag@sub.example.com",
            "jörg@münchen.de",
        ] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in ["a@b", "@b.com", "a b@c.com", "a@.com", "a@com.", "a@b..com"] {
            assert!(!is_email(bad), "{bad}");
        }
        for ok in ["+1 (555) 010-9999", "0201234567", "12345"] {
            assert!(is_phone(ok), "{ok}");
        }
        for bad in ["1234", "phone", "+1 555 010 999x", "1".repeat(21).as_str()] {
            assert!(!is_phone(bad), "{bad}");
        }
    }
}
