//! Webhooks: customers' endpoints, the events sent to them and their signed delivery.
//!
//! - [`events`]: the event types. Events are emitted by database triggers in the transaction of
//!   the change (`migrations/V11__webhooks.sql`): one delivery row and one outbox row per
//!   subscribed endpoint.
//! - [`endpoints`]: adding, changing, deleting endpoints and rotating their secrets.
//! - [`deliveries`]: the delivery log and replays.
//! - [`delivery`]: the worker's side — one attempt per queue message, Standard Webhooks
//!   signatures ([`signature`]), retries on the [`schedule`].

pub mod deliveries;
pub mod delivery;
pub mod endpoints;
pub mod events;
pub mod schedule;
pub mod signature;
