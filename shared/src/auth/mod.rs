//! Who is calling: signed-in users (JWT), API keys acting for their owner, and anonymous widget
//! visitors of one agent. A [`Caller`] becomes the claims Postgres policies read.

pub mod api_keys;
pub mod jwt;
pub mod key_management;
pub mod security_log;

use serde_json::{Value, json};
use uuid::Uuid;

/// The identity a request acts as, handed to Postgres by [`crate::db::begin_as`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A signed-in user (our user id, not the identity provider's subject).
    User { user_id: Uuid },
    /// An API key; it acts as its owner, limited to its scopes.
    ApiKey {
        user_id: Uuid,
        key_id: Uuid,
        scopes: Vec<String>,
    },
    /// An anonymous visitor chatting with one agent through the widget.
    Widget { agent_id: Uuid, visitor_id: String },
    /// Nobody yet (before authentication): sees only public catalogues.
    Anonymous,
    /// Our own background jobs (outbox relay, schedules). Sees no tenant's rows: it may only
    /// call the narrow `SECURITY DEFINER` functions that check for this role. Work for one
    /// account is done acting as that account's owner instead, under its policies.
    Service,
}

impl Caller {
    /// The JSON claims set with `set_config('request.jwt.claims', ..)`; see `auth.uid()`.
    pub fn claims(&self) -> Value {
        match self {
            Caller::User { user_id } => json!({ "role": "authenticated", "sub": user_id }),
            Caller::ApiKey {
                user_id,
                key_id,
                scopes,
            } => {
                json!({ "role": "authenticated", "sub": user_id, "api_key_id": key_id, "scopes": scopes })
            }
            Caller::Widget {
                agent_id,
                visitor_id,
            } => {
                json!({ "role": "widget", "agent_id": agent_id, "visitor_id": visitor_id })
            }
            Caller::Anonymous => json!({}),
            Caller::Service => json!({ "role": "service" }),
        }
    }

    /// The account user this caller acts as, if any.
    pub fn user_id(&self) -> Option<Uuid> {
        match self {
            Caller::User { user_id } | Caller::ApiKey { user_id, .. } => Some(*user_id),
            Caller::Widget { .. } | Caller::Anonymous | Caller::Service => None,
        }
    }
}
