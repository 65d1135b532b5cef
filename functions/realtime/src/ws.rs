//! The WebSocket API's routes. API Gateway holds the connections; this function only runs
//! for a connect, a disconnect or a client message, so an idle visitor costs nothing here.
//!
//! - `$connect?token=…[&accountId=…]`: a visitor token joins its conversation's channel; a
//!   team member's JWT joins the account's inbox channel (and sets them online). Any answer
//!   but 200 refuses the connection.
//! - `$disconnect`: forgets the connection (and the member's presence).
//! - `$default`: client messages — `ping`, `typing`, and for the inbox `subscribe` and
//!   `presence`. Answers and errors are posted back on the connection.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequestContext;
use chatpad::ApiError;
use chatpad::auth::api_keys::RequestOrigin;
use chatpad::db;
use chatpad::realtime::connections::Listener;
use chatpad::realtime::publish::Presence;
use chatpad::realtime::{Channel, Event};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Deserialize;
use uuid::Uuid;

use crate::{Holder, RealtimeDeps, authenticate, member_conversation, poll, uuid_param};

/// Largest client message, in bytes.
pub const MESSAGE_LIMIT: usize = 4 * 1024;

fn status(code: u16) -> Response<Body> {
    Response::builder()
        .status(code)
        .body(Body::Empty)
        .expect("static response")
}

fn refuse(err: &ApiError) -> Response<Body> {
    if let ApiError::Internal(cause) = err {
        tracing::error!(error = format!("{cause:#}"), "websocket connect failed");
    }
    let body = serde_json::json!({ "error": err.body() }).to_string();
    Response::builder()
        .status(err.status())
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("static response")
}

/// Handles one WebSocket event.
pub async fn handle(
    deps: &RealtimeDeps,
    ctx: &ApiGatewayWebsocketProxyRequestContext,
    req: &Request,
) -> Response<Body> {
    let Some(connection_id) = ctx.connection_id.as_deref() else {
        return status(400);
    };
    match ctx.route_key.as_deref().unwrap_or("$default") {
        "$connect" => match connect(deps, ctx, connection_id, req).await {
            Ok(()) => status(200),
            Err(err) => refuse(&err),
        },
        "$disconnect" => {
            disconnect(deps, connection_id).await;
            status(200)
        }
        _ => {
            let body: &[u8] = req.body().as_ref();
            if let Err(err) = message(deps, connection_id, body).await {
                if let ApiError::Internal(cause) = &err {
                    tracing::error!(error = format!("{cause:#}"), "websocket message failed");
                }
                let frame = serde_json::json!({ "type": "error", "error": err.body() });
                deps.publisher.post_to(connection_id, &frame).await;
            }
            status(200)
        }
    }
}

async fn connect(
    deps: &RealtimeDeps,
    ctx: &ApiGatewayWebsocketProxyRequestContext,
    connection_id: &str,
    req: &Request,
) -> chatpad::ApiResult<()> {
    let ip = ctx.identity.source_ip.clone().unwrap_or_default();
    deps.limiter.check(&deps.limits.connect_per_ip, &ip).await?;
    let query = req.query_string_parameters();
    let token = query.first("token").ok_or_else(|| {
        ApiError::unauthorized("missing_credentials", "connect with ?token=<token>")
    })?;
    let account = uuid_param(query.first("accountId"), "accountId")?;
    let origin = RequestOrigin {
        ip: ip.parse().ok(),
        user_agent: None,
    };
    match authenticate(deps, token, account, origin).await? {
        Holder::Visitor(claims) => {
            let listener = Listener::Visitor {
                agent_id: claims.aid,
                visitor_id: claims.sub.clone(),
                conversation_id: claims.cid,
            };
            deps.publisher
                .connections
                .add(
                    connection_id,
                    &listener,
                    &[Channel::Conversation(claims.cid)],
                )
                .await?;
        }
        Holder::Member {
            user_id,
            account,
            name,
        } => {
            let listener = Listener::Member {
                user_id,
                account,
                name: name.clone(),
            };
            // Presence first: API Gateway refuses posts to a connection still in `$connect`.
            deps.publisher
                .presence(account, user_id, &name, Presence::Connected)
                .await;
            deps.publisher
                .connections
                .add(connection_id, &listener, &[Channel::Account(account)])
                .await?;
        }
    }
    Ok(())
}

async fn disconnect(deps: &RealtimeDeps, connection_id: &str) {
    match deps.publisher.connections.remove(connection_id).await {
        Ok(Some(record)) => {
            if let Listener::Member {
                user_id,
                account,
                name,
            } = record.listener
            {
                deps.publisher
                    .presence(account, user_id, &name, Presence::Disconnected)
                    .await;
            }
        }
        Ok(None) => {}
        Err(err) => tracing::warn!(error = format!("{err:#}"), "forgetting a connection failed"),
    }
}

/// A client message.
#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
enum ClientMessage {
    Ping,
    Typing {
        typing: bool,
        /// The conversation a team member types in (visitors have only one).
        #[serde(default, rename = "conversationId")]
        conversation_id: Option<String>,
    },
    Subscribe {
        #[serde(rename = "conversationId")]
        conversation_id: String,
    },
    Presence {
        status: String,
    },
}

async fn message(deps: &RealtimeDeps, connection_id: &str, body: &[u8]) -> chatpad::ApiResult<()> {
    if body.len() > MESSAGE_LIMIT {
        return Err(ApiError::PayloadTooLarge {
            limit: MESSAGE_LIMIT,
        });
    }
    deps.limiter
        .check(&deps.limits.messages, &format!("conn:{connection_id}"))
        .await?;
    let message: ClientMessage =
        serde_json::from_slice(body).map_err(|err| ApiError::BadRequest {
            code: "invalid_message",
            message: format!("not a message this channel understands: {err}"),
        })?;
    if let ClientMessage::Ping = message {
        deps.publisher
            .post_to(connection_id, &serde_json::json!({ "type": "pong" }))
            .await;
        return Ok(());
    }
    let record = deps
        .publisher
        .connections
        .get(connection_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("unknown_connection", "reconnect first"))?;
    match (record.listener, message) {
        (
            Listener::Visitor {
                agent_id,
                visitor_id,
                conversation_id,
            },
            ClientMessage::Typing { typing, .. },
        ) => {
            let claims = chatpad::realtime::VisitorClaims {
                sub: visitor_id,
                aid: agent_id,
                cid: conversation_id,
                exp: 0,
                iss: String::new(),
                aud: String::new(),
            };
            let account = poll::visitor_account(deps, &claims).await?;
            poll::publish_visitor_typing(deps, &claims, account, typing).await;
            Ok(())
        }
        (Listener::Visitor { .. }, _) => Err(ApiError::forbidden(
            "inbox_only",
            "only the team's inbox may subscribe or set presence",
        )),
        (
            Listener::Member {
                user_id, account, ..
            },
            ClientMessage::Subscribe { conversation_id },
        ) => {
            let conversation = parse_conversation(&conversation_id)?;
            check_member_conversation(deps, user_id, account, conversation).await?;
            deps.publisher
                .connections
                .subscribe(connection_id, Channel::Conversation(conversation))
                .await?;
            deps.publisher
                .post_to(
                    connection_id,
                    &serde_json::json!({ "type": "subscribed", "conversationId": conversation }),
                )
                .await;
            Ok(())
        }
        (
            Listener::Member {
                user_id,
                account,
                name,
            },
            ClientMessage::Typing {
                typing,
                conversation_id,
            },
        ) => {
            let conversation = parse_conversation(conversation_id.as_deref().unwrap_or(""))?;
            check_member_conversation(deps, user_id, account, conversation).await?;
            let event = Event::ephemeral(
                "typing",
                Some(conversation),
                serde_json::json!({ "from": "agent", "name": name, "typing": typing }),
            );
            deps.publisher
                .send_logged(&[Channel::Conversation(conversation)], &event)
                .await;
            Ok(())
        }
        (
            Listener::Member {
                user_id,
                account,
                name,
            },
            ClientMessage::Presence { status },
        ) => {
            if !matches!(status.as_str(), "online" | "away") {
                return Err(ApiError::invalid_field("status", "must be online or away"));
            }
            deps.publisher
                .presence(account, user_id, &name, Presence::Status(&status))
                .await;
            Ok(())
        }
        (Listener::Member { .. }, ClientMessage::Ping) => Ok(()),
    }
}

fn parse_conversation(text: &str) -> chatpad::ApiResult<Uuid> {
    Uuid::parse_str(text).map_err(|_| ApiError::invalid_field("conversationId", "must be a UUID"))
}

async fn check_member_conversation(
    deps: &RealtimeDeps,
    user_id: Uuid,
    account: Uuid,
    conversation: Uuid,
) -> chatpad::ApiResult<()> {
    let mut client = deps.db.client().await?;
    let tx = db::begin_as(&mut client, &chatpad::auth::Caller::User { user_id }).await?;
    member_conversation(&tx, account, conversation).await?;
    tx.commit().await?;
    Ok(())
}
