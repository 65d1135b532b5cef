//! The event types an endpoint can subscribe to. Payloads are built by the database triggers
//! that emit them (`migrations/V11__webhooks.sql`) and documented in the README.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One kind of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum EventType {
    /// A visitor started a conversation (or a lead form created one).
    #[serde(rename = "conversation.created")]
    ConversationCreated,
    /// A conversation was closed; the payload carries its summary when one was written.
    #[serde(rename = "conversation.closed")]
    ConversationClosed,
    /// A visitor sent a message.
    #[serde(rename = "message.received")]
    MessageReceived,
    /// A visitor filled in the contact form.
    #[serde(rename = "lead.created")]
    LeadCreated,
    /// A team member took a conversation over from the bot.
    #[serde(rename = "takeover.started")]
    TakeoverStarted,
    /// The takeover ended (handed back to the bot, or closed).
    #[serde(rename = "takeover.ended")]
    TakeoverEnded,
}

impl EventType {
    /// Every event type.
    pub const ALL: [EventType; 6] = [
        EventType::ConversationCreated,
        EventType::ConversationClosed,
        EventType::MessageReceived,
        EventType::LeadCreated,
        EventType::TakeoverStarted,
        EventType::TakeoverEnded,
    ];

    /// The dotted name, as in payloads and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ConversationCreated => "conversation.created",
            EventType::ConversationClosed => "conversation.closed",
            EventType::MessageReceived => "message.received",
            EventType::LeadCreated => "lead.created",
            EventType::TakeoverStarted => "takeover.started",
            EventType::TakeoverEnded => "takeover.ended",
        }
    }

    /// The type named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_serde_and_parse() {
        for t in EventType::ALL {
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("lead.deleted"), None);
    }
}
