//! WebSocket connections and agents' presence in DynamoDB (`REALTIME_TABLE`, keys `pk`/`sk`,
//! TTL on `expires_at`):
//! - `pk = "ch#<channel>"`, `sk = "listeners"`: the channel's connection ids as one string set
//!   (`conns`), so a publisher reads a channel in one `GetItem` (one item of ≤ 400 KB: about
//!   15,000 connections per channel). Added and removed atomically (`ADD` / `DELETE`); the
//!   item lives 2 h 10 min after the latest join — every member is younger than that;
//! - `pk = "conn#<connection id>"`, `sk = "meta"`: who the connection is and its channels, so
//!   `$disconnect` can remove it everywhere;
//! - `pk = "presence#<account>"`, `sk = <user id>`: an agent's status, kept alive by the inbox.
//!
//! API Gateway closes a connection after 2 hours at most, so items live 2 h 10 min; a
//! connection that vanished without `$disconnect` is also deleted the first time a publisher
//! gets 410 Gone for it.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How long connection items live (API Gateway's 2 h maximum plus a margin).
pub const CONNECTION_TTL: Duration = Duration::from_secs(2 * 3600 + 600);
/// How long an agent's presence lasts without a refresh (the inbox pings every 30 s).
pub const PRESENCE_TTL: Duration = Duration::from_secs(90);

/// A set of listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// A conversation's visitor and the team members looking at it.
    Conversation(Uuid),
    /// An account's inbox.
    Account(Uuid),
}

impl Channel {
    fn key(self) -> String {
        match self {
            Channel::Conversation(id) => format!("ch#conv:{id}"),
            Channel::Account(id) => format!("ch#acct:{id}"),
        }
    }
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Listener {
    /// A widget visitor, in one conversation.
    Visitor {
        agent_id: Uuid,
        visitor_id: String,
        conversation_id: Uuid,
    },
    /// A team member watching an account's inbox.
    Member {
        user_id: Uuid,
        account: Uuid,
        name: String,
    },
}

/// A connection's record: who, and the channels it listens on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub listener: Listener,
    pub channels: Vec<String>,
    /// When `$connect` ran (epoch milliseconds).
    #[serde(default)]
    pub connected_ms: u64,
}

/// The connection store.
#[derive(Debug, Clone)]
pub struct Connections {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

fn expires_in(ttl: Duration) -> AttributeValue {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    AttributeValue::N((now + ttl).as_secs().to_string())
}

/// The sort key of a channel's listener set.
const LISTENERS: &str = "listeners";

/// One listener of a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listening {
    pub channel_key: String,
    pub connection_id: String,
}

/// Now, in epoch milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

impl Connections {
    /// A store over `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Connections {
            client,
            table: table.into(),
        }
    }

    /// Records a new connection listening on `channels`.
    pub async fn add(
        &self,
        connection_id: &str,
        listener: &Listener,
        channels: &[Channel],
    ) -> anyhow::Result<()> {
        let record = Connection {
            listener: listener.clone(),
            channels: channels.iter().map(|c| c.key()).collect(),
            connected_ms: now_ms(),
        };
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("conn#{connection_id}")))
            .item("sk", s("meta"))
            .item("record", s(serde_json::to_string(&record)?))
            .item("expires_at", expires_in(CONNECTION_TTL))
            .send()
            .await
            .with_context(|| format!("recording connection {connection_id}"))?;
        for channel in channels {
            self.put_listener(connection_id, *channel).await?;
        }
        Ok(())
    }

    async fn put_listener(&self, connection_id: &str, channel: Channel) -> anyhow::Result<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(channel.key()))
            .key("sk", s(LISTENERS))
            .update_expression("ADD conns :c SET expires_at = :exp")
            .expression_attribute_values(":c", AttributeValue::Ss(vec![connection_id.into()]))
            .expression_attribute_values(":exp", expires_in(CONNECTION_TTL))
            .send()
            .await
            .with_context(|| format!("adding connection {connection_id} to {}", channel.key()))?;
        Ok(())
    }

    /// Adds a channel to an existing connection (an agent opening a conversation).
    pub async fn subscribe(&self, connection_id: &str, channel: Channel) -> anyhow::Result<()> {
        let mut record = self
            .get(connection_id)
            .await?
            .context("subscribing an unknown connection")?;
        if !record.channels.contains(&channel.key()) {
            record.channels.push(channel.key());
            // A long-open inbox could collect channels without end: keep the latest 50.
            if record.channels.len() > 50 {
                record.channels.remove(1);
            }
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(format!("conn#{connection_id}")))
                .key("sk", s("meta"))
                .update_expression("SET #r = :r")
                .expression_attribute_names("#r", "record")
                .expression_attribute_values(":r", s(serde_json::to_string(&record)?))
                .send()
                .await
                .with_context(|| format!("updating connection {connection_id}"))?;
        }
        self.put_listener(connection_id, channel).await
    }

    /// The record of a connection, if it is known.
    pub async fn get(&self, connection_id: &str) -> anyhow::Result<Option<Connection>> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("conn#{connection_id}")))
            .key("sk", s("meta"))
            .consistent_read(true)
            .send()
            .await
            .with_context(|| format!("reading connection {connection_id}"))?
            .item;
        let Some(item) = item else { return Ok(None) };
        let record = item
            .get("record")
            .and_then(|v| v.as_s().ok())
            .context("connection item without record")?;
        Ok(Some(serde_json::from_str(record)?))
    }

    /// Forgets a connection everywhere; returns its record when it was known.
    pub async fn remove(&self, connection_id: &str) -> anyhow::Result<Option<Connection>> {
        let record = self.get(connection_id).await?;
        if let Some(record) = &record {
            for channel in &record.channels {
                self.remove_listener(channel, connection_id).await;
            }
        }
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("conn#{connection_id}")))
            .key("sk", s("meta"))
            .send()
            .await
            .with_context(|| format!("removing connection {connection_id}"))?;
        Ok(record)
    }

    /// Removes one connection from one channel (it disconnected, or answered 410 Gone).
    pub async fn remove_listener(&self, channel_key: &str, connection_id: &str) {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(channel_key))
            .key("sk", s(LISTENERS))
            .update_expression("DELETE conns :c")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":c", AttributeValue::Ss(vec![connection_id.into()]))
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
            Err(err) => {
                tracing::warn!(error = %aws_sdk_dynamodb::error::DisplayErrorContext(&err), connection_id, "removing a connection from a channel failed")
            }
        }
    }

    /// The listeners of `channel`, in one read.
    pub async fn listeners(&self, channel: Channel) -> anyhow::Result<Vec<Listening>> {
        let key = channel.key();
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(key.clone()))
            .key("sk", s(LISTENERS))
            .projection_expression("conns")
            .send()
            .await
            .with_context(|| format!("listing the listeners of {key}"))?
            .item;
        let ids = item
            .as_ref()
            .and_then(|item| item.get("conns"))
            .and_then(|v| v.as_ss().ok())
            .cloned()
            .unwrap_or_default();
        Ok(ids
            .into_iter()
            .map(|connection_id| Listening {
                channel_key: key.clone(),
                connection_id,
            })
            .collect())
    }

    fn presence_update(
        &self,
        account: Uuid,
        user_id: Uuid,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("presence#{account}")))
            .key("sk", s(user_id.to_string()))
            .expression_attribute_values(":exp", expires_in(PRESENCE_TTL))
    }

    /// An agent's inbox connected: counts the connection and marks them online. True when it
    /// is their first connection (they just came online).
    pub async fn presence_connected(
        &self,
        account: Uuid,
        user_id: Uuid,
        name: &str,
    ) -> anyhow::Result<bool> {
        let old = self
            .presence_update(account, user_id)
            .update_expression(
                "ADD connections :one SET #s = :online, #n = :name, expires_at = :exp",
            )
            .expression_attribute_names("#s", "status")
            .expression_attribute_names("#n", "name")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":online", s("online"))
            .expression_attribute_values(":name", s(name))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedOld)
            .send()
            .await
            .with_context(|| format!("recording the presence of {user_id}"))?
            .attributes;
        Ok(count(old.as_ref()) <= 0)
    }

    /// An agent's inbox disconnected. True when it was their last connection (they went
    /// offline); the presence item is then deleted.
    pub async fn presence_disconnected(
        &self,
        account: Uuid,
        user_id: Uuid,
    ) -> anyhow::Result<bool> {
        let new = self
            .presence_update(account, user_id)
            .update_expression("ADD connections :minus SET expires_at = :exp")
            .expression_attribute_values(":minus", AttributeValue::N("-1".into()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .with_context(|| format!("updating the presence of {user_id}"))?
            .attributes;
        if count(new.as_ref()) > 0 {
            return Ok(false);
        }
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("presence#{account}")))
            .key("sk", s(user_id.to_string()))
            .send()
            .await
            .with_context(|| format!("clearing the presence of {user_id}"))?;
        Ok(true)
    }

    /// Sets an agent's status (`online` or `away`) and keeps their presence alive. True when
    /// the status changed.
    pub async fn set_presence(
        &self,
        account: Uuid,
        user_id: Uuid,
        name: &str,
        status: &str,
    ) -> anyhow::Result<bool> {
        let old = self
            .presence_update(account, user_id)
            .update_expression("SET #s = :status, #n = :name, expires_at = :exp")
            .expression_attribute_names("#s", "status")
            .expression_attribute_names("#n", "name")
            .expression_attribute_values(":status", s(status))
            .expression_attribute_values(":name", s(name))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedOld)
            .send()
            .await
            .with_context(|| format!("recording the presence of {user_id}"))?
            .attributes;
        let before = old
            .as_ref()
            .and_then(|a| a.get("status"))
            .and_then(|v| v.as_s().ok());
        Ok(before.map(String::as_str) != Some(status))
    }

    /// The agents present in an account: (user id, name, status).
    pub async fn present(&self, account: Uuid) -> anyhow::Result<Vec<(String, String, String)>> {
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(format!("presence#{account}")))
            .send()
            .await
            .with_context(|| format!("listing the presence in {account}"))?;
        let text = |item: &HashMap<String, AttributeValue>, key: &str| {
            item.get(key)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default()
        };
        Ok(page
            .items()
            .iter()
            .map(|item| (text(item, "sk"), text(item, "name"), text(item, "status")))
            .collect())
    }
}

fn count(attributes: Option<&HashMap<String, AttributeValue>>) -> i64 {
    attributes
        .and_then(|a| a.get("connections"))
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
