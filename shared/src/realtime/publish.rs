//! Fan-out: each event goes to every connection of its channels through the API Gateway
//! management API (`POST @connections/{id}`); a connection answering 410 Gone is deleted.
//!
//! Publishing never fails the change that produced the events: errors are logged, and the
//! clients recover what they missed from `GET /events` (the events are in Postgres).

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Context;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use futures::StreamExt;
use uuid::Uuid;

use super::connections::{Channel, Connections, Listening, now_ms};
use super::events::{Event, Routed};
use crate::db::Transaction;
use crate::{ApiError, ApiResult};

/// Posts in flight at once during a fan-out.
const CONCURRENCY: usize = 128;
/// API Gateway answers 410 for a connection whose `$connect` has not returned yet: a
/// connection younger than this is not removed for a 410.
const CONNECT_GRACE_MS: u64 = 10_000;

/// Publishes events to WebSocket connections.
#[derive(Debug, Clone)]
pub struct Publisher {
    pub connections: Connections,
    api: aws_sdk_apigatewaymanagement::Client,
}

/// What one fan-out did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fanout {
    pub delivered: usize,
    pub gone: usize,
    pub failed: usize,
    /// Time spent listing the channels' connections, in milliseconds.
    pub listed_ms: u64,
}

impl Publisher {
    /// A publisher posting to `callback_url` (`https://{api}.execute-api.{region}.amazonaws.com/{stage}`,
    /// or the dev gateway's URL locally).
    pub fn new(sdk: &aws_config::SdkConfig, callback_url: &str, connections: Connections) -> Self {
        // The endpoint is set explicitly: AWS_ENDPOINT_URL (moto, locally) is not API Gateway.
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
            .endpoint_url(callback_url)
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_secs(3))
                    .build(),
            )
            .build();
        Publisher {
            connections,
            api: aws_sdk_apigatewaymanagement::Client::from_conf(config),
        }
    }

    /// From `REALTIME_TABLE` and `REALTIME_CALLBACK_URL`.
    pub fn from_env(sdk: &aws_config::SdkConfig) -> anyhow::Result<Self> {
        let table = crate::config::required_var("REALTIME_TABLE")?;
        let callback = crate::config::required_var("REALTIME_CALLBACK_URL")?;
        Ok(Self::new(
            sdk,
            &callback,
            Connections::new(crate::aws::dynamodb_client(sdk), table),
        ))
    }

    /// Reads the events `tx` wrote, commits it, then publishes them. The commit's result is
    /// the caller's; publishing only logs its failures.
    pub async fn commit(&self, tx: Transaction<'_>) -> ApiResult<()> {
        let events = super::events::written_in(&tx).await?;
        tx.commit().await.map_err(ApiError::from)?;
        self.publish(&events).await;
        Ok(())
    }

    /// Publishes persisted events to their conversation's and account's channels.
    pub async fn publish(&self, events: &[Routed]) {
        for routed in events {
            let mut channels = vec![Channel::Account(routed.account)];
            if let Some(conversation) = routed.event.conversation_id {
                channels.push(Channel::Conversation(conversation));
            }
            self.send_logged(&channels, &routed.event).await;
        }
    }

    /// Sends `event` to `channels`, logging failures.
    pub async fn send_logged(&self, channels: &[Channel], event: &Event) -> Fanout {
        let started = std::time::Instant::now();
        match self.send(channels, event).await {
            Ok(fanout) => {
                let elapsed_ms = started.elapsed().as_millis() as u64;
                if fanout.failed > 0 {
                    tracing::warn!(kind = %event.kind, failed = fanout.failed, "some realtime posts failed");
                }
                if fanout.delivered + fanout.gone > 0 {
                    tracing::info!(
                        kind = %event.kind,
                        delivered = fanout.delivered,
                        gone = fanout.gone,
                        listed_ms = fanout.listed_ms,
                        elapsed_ms,
                        "realtime fan-out"
                    );
                }
                fanout
            }
            Err(err) => {
                tracing::warn!(kind = %event.kind, error = format!("{err:#}"), "publishing a realtime event failed");
                Fanout::default()
            }
        }
    }

    /// Sends `event` once to every connection listening on any of `channels`.
    pub async fn send(&self, channels: &[Channel], event: &Event) -> anyhow::Result<Fanout> {
        let payload = serde_json::to_vec(event).context("encoding an event")?;
        let started = std::time::Instant::now();
        let mut seen = HashSet::new();
        let mut targets = Vec::new();
        for channel in channels {
            for listening in self.connections.listeners(*channel).await? {
                if seen.insert(listening.connection_id.clone()) {
                    targets.push(listening);
                }
            }
        }
        let listed_ms = started.elapsed().as_millis() as u64;
        let results: Vec<PostResult> = futures::stream::iter(targets)
            .map(|listening| {
                let payload = payload.clone();
                async move {
                    let result = self.post(&listening.connection_id, payload).await;
                    if result == PostResult::Gone {
                        self.forget_gone(&listening).await;
                    }
                    result
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut fanout = Fanout {
            listed_ms,
            ..Fanout::default()
        };
        for result in results {
            match result {
                PostResult::Delivered => fanout.delivered += 1,
                PostResult::Gone => fanout.gone += 1,
                PostResult::Failed => fanout.failed += 1,
            }
        }
        Ok(fanout)
    }

    /// A connection answered 410. Unless it is still in its `$connect` (API Gateway answers
    /// 410 until `$connect` returns), it is removed from the channel — and forgotten when it
    /// vanished without a `$disconnect`.
    async fn forget_gone(&self, listening: &Listening) {
        let record = match self.connections.get(&listening.connection_id).await {
            Ok(record) => record,
            Err(err) => {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "reading a gone connection failed"
                );
                return;
            }
        };
        if record
            .as_ref()
            .is_some_and(|r| now_ms().saturating_sub(r.connected_ms) <= CONNECT_GRACE_MS)
        {
            return;
        }
        self.connections
            .remove_listener(&listening.channel_key, &listening.connection_id)
            .await;
        if record.is_some()
            && let Err(err) = self.connections.remove(&listening.connection_id).await
        {
            tracing::warn!(
                error = format!("{err:#}"),
                "forgetting a gone connection failed"
            );
        }
    }

    /// Sends a frame to one connection; `Ok(false)` when it is gone.
    pub async fn post_to(&self, connection_id: &str, value: &impl serde::Serialize) -> bool {
        let payload = serde_json::to_vec(value).unwrap_or_default();
        self.post(connection_id, payload).await == PostResult::Delivered
    }

    async fn post(&self, connection_id: &str, payload: Vec<u8>) -> PostResult {
        match self
            .api
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(payload))
            .send()
            .await
        {
            Ok(_) => PostResult::Delivered,
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_gone_exception())
                    || err.raw_response().map(|r| r.status().as_u16()) == Some(410) =>
            {
                PostResult::Gone
            }
            Err(err) => {
                tracing::debug!(connection_id, error = %aws_sdk_apigatewaymanagement::error::DisplayErrorContext(&err), "post to connection failed");
                PostResult::Failed
            }
        }
    }

    /// Closes a connection from the server side (e.g. its account access was revoked).
    pub async fn disconnect(&self, connection_id: &str) {
        let _ = self
            .api
            .delete_connection()
            .connection_id(connection_id)
            .send()
            .await;
    }

    /// An agent's presence changed: stored (connected, disconnected or a new status), and
    /// told to the account's inbox only when it really changed — an agent with many tabs
    /// open does not announce each of them.
    pub async fn presence(&self, account: Uuid, user_id: Uuid, name: &str, change: Presence<'_>) {
        let (changed, status) = match change {
            Presence::Connected => (
                self.connections
                    .presence_connected(account, user_id, name)
                    .await,
                "online",
            ),
            Presence::Disconnected => (
                self.connections
                    .presence_disconnected(account, user_id)
                    .await,
                "offline",
            ),
            Presence::Status(status) => (
                self.connections
                    .set_presence(account, user_id, name, status)
                    .await,
                status,
            ),
        };
        match changed {
            Ok(false) => {}
            Ok(true) => {
                let event = Event::ephemeral(
                    "presence",
                    None,
                    serde_json::json!({ "userId": user_id, "name": name, "status": status }),
                );
                self.send_logged(&[Channel::Account(account)], &event).await;
            }
            Err(err) => tracing::warn!(error = format!("{err:#}"), "storing presence failed"),
        }
    }
}

/// A change of an agent's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence<'a> {
    Connected,
    Disconnected,
    /// `online` or `away`, set by the inbox.
    Status(&'a str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PostResult {
    Delivered,
    Gone,
    Failed,
}
