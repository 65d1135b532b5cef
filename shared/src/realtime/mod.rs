//! Realtime: conversation events pushed to browsers over API Gateway WebSocket connections.
//!
//! - [`events`]: the persisted events (`conversation_events`, written by triggers with each
//!   change) — read back by the writer to publish them, and by clients to catch up.
//! - [`token`]: short-lived visitor tokens scoped to one conversation.
//! - [`connections`]: who listens on which channel, and agents' presence, in DynamoDB.
//! - [`publish`]: fan-out of events to a channel's connections through the API Gateway
//!   management API (`@connections`), dropping connections that are gone.
//!
//! Channels: every conversation has one (its visitor, and team members who subscribed to it),
//! every account has one (its team's inbox). A persisted event goes to both.

pub mod connections;
pub mod events;
pub mod publish;
pub mod token;

pub use connections::{Channel, Connections};
pub use events::{Event, Routed};
pub use publish::Publisher;
pub use token::{VisitorClaims, VisitorTokens};
