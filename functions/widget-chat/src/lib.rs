//! POST: a visitor's message in, the agent's grounded answer out — streamed as Server-Sent
//! Events (`Accept: text/event-stream` or `"stream": true`) or as one JSON object.
//!
//! Body: `{"agentId", "visitorId", "message", "conversationId"?, "stream"?, "attachments"?}`;
//! `attachments: [{"key"}]` names the visitor's own uploads (create-widget-upload), checked in
//! S3 (size, type, first bytes) before the message stores them.
//!
//! Public for the widget (the page's `Origin` must be one of the agent's allowed domains), or
//! for servers with `Authorization: Bearer <API key>`: the key needs the `chat:write` scope,
//! a plan with API access and an agent of its own account; it is rate-limited per key instead
//! of per IP and counted as an API call.
//!
//! Stream events: `start` (conversation and stored question ids) as soon as the question is
//! stored and its knowledge retrieved, `delta` (`{"text"}`) for each piece of the answer,
//! then `done` (the same object as the JSON mode's response: reply, citations, usage) or
//! `error` (`{"code", "message"}`) when the model fails mid-answer.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use chatpad::auth::api_keys::{self, RequestOrigin};
use chatpad::chat::attachments::AttachmentStore;
use chatpad::chat::{Chat, ChatLimits, Outcome, Question, Reply};
use chatpad::embeddings::Embedder;
use chatpad::llm::{Providers, sse};
use chatpad::outbox::Relay;
use chatpad::ratelimit::{Limit, NestedLimit, RateLimiter};
use chatpad::realtime::{Publisher, Routed};
use chatpad::{ApiError, ApiResult, Deps, http};
use futures::StreamExt;
use futures::future::{self, Either};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use lambda_http::http::header::{self, HeaderValue};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A question is at most a few thousand characters; the body a little more.
const BODY_LIMIT: usize = 32 * 1024;

/// The response body: a whole JSON document or an event stream.
pub type ChatBody = UnsyncBoxBody<Bytes, Infallible>;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ChatRequest {
    agent_id: Uuid,
    visitor_id: String,
    #[serde(default)]
    conversation_id: Option<Uuid>,
    message: String,
    #[serde(default)]
    stream: bool,
    /// Files uploaded through create-widget-upload, by key.
    #[serde(default)]
    attachments: Vec<AttachmentRef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttachmentRef {
    key: String,
}

/// The JSON response, and the `done` event of a stream.
#[derive(Serialize)]
#[serde(
    tag = "status",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
enum ChatResponse {
    /// The agent answered (from its model, by quoting its knowledge, or with its fallback).
    Answered {
        conversation_id: Uuid,
        conversation_created: bool,
        user_message_id: Uuid,
        #[serde(flatten)]
        reply: Reply,
    },
    /// A person has the conversation: the message is stored, their reply comes live.
    HumanTakeover {
        conversation_id: Uuid,
        conversation_created: bool,
        user_message_id: Uuid,
    },
    /// The account cannot take new conversations (plan limit); nothing was stored.
    Unavailable { text: String },
}

/// Requests per minute allowed to one IP, one visitor and one agent.
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    /// Per IP (per key for API callers), and per visitor within it: one DynamoDB write.
    pub per_ip_and_visitor: NestedLimit,
    pub per_agent: Limit,
}

impl RateLimits {
    /// The per-agent limit, `max` a minute. Every visitor of the agent shares it, so
    /// instances count it a second's worth at a time (at most 20; see [`Limit::leased`])
    /// rather than each request on the same DynamoDB item.
    pub fn per_agent(name: &'static str, max: u32) -> Limit {
        Limit::per_minute(name, max).leased((max / 60).clamp(1, 20))
    }

    /// `CHAT_RATE_LIMIT_PER_IP` (default 30 a minute), `CHAT_RATE_LIMIT_PER_VISITOR` (20),
    /// `CHAT_RATE_LIMIT_PER_AGENT` (600).
    pub fn from_env() -> anyhow::Result<Self> {
        let per_minute = |name: &str, default: u32| -> anyhow::Result<u32> {
            match std::env::var(name) {
                Ok(text) if !text.trim().is_empty() => text
                    .trim()
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| anyhow::anyhow!("{name} must be a positive integer")),
                _ => Ok(default),
            }
        };
        Ok(RateLimits {
            per_ip_and_visitor: NestedLimit::per_minute(
                "chat-ip",
                per_minute("CHAT_RATE_LIMIT_PER_IP", 30)?,
                per_minute("CHAT_RATE_LIMIT_PER_VISITOR", 20)?,
            ),
            per_agent: Self::per_agent("chat-agent", per_minute("CHAT_RATE_LIMIT_PER_AGENT", 600)?),
        })
    }
}

/// What the function holds for its life.
pub struct WidgetChatDeps {
    pub chat: Chat,
    /// Sends the webhook events the conversation's rows emitted (outbox) right after the
    /// answer; without it the scheduler's sweep sends them within a minute.
    pub relay: Option<Relay>,
    /// Pushes the stored messages to the conversation's and the inbox's WebSocket
    /// connections; without it clients see them when they poll `GET /events`.
    pub publisher: Option<Publisher>,
    /// Mixed into API key hashes (`API_KEY_PEPPER`).
    pub api_key_pepper: SecretString,
    pub limiter: RateLimiter,
    pub limits: RateLimits,
    /// The uploads bucket: attachments are checked there before a message keeps them.
    pub attachments: AttachmentStore,
}

impl WidgetChatDeps {
    /// Reads the configuration from the environment and loads the embedding model.
    pub async fn from_env() -> anyhow::Result<Self> {
        let deps = Deps::from_env()?;
        let sdk = chatpad::aws::sdk_config().await;
        Ok(WidgetChatDeps {
            relay: Some(Relay::from_env(&sdk)?),
            publisher: Some(Publisher::from_env(&sdk)?),
            api_key_pepper: deps.config.api_key_pepper,
            chat: Chat {
                db: deps.db,
                embedder: Embedder::from_env()?,
                providers: Providers::from_env()?,
                limits: ChatLimits::from_env()?,
            },
            limiter: RateLimiter::from_env().await?,
            limits: RateLimits::from_env()?,
            attachments: AttachmentStore::from_env(&sdk)?,
        })
    }
}

/// Handles one request; never fails (errors become JSON error responses).
pub async fn handle(deps: Arc<WidgetChatDeps>, req: Request) -> Response<ChatBody> {
    let request_id = http::request_id(&req);
    let origin = http::origin(&req).map(str::to_owned);
    if req.method() == Method::OPTIONS {
        return full(http::respond(
            &request_id,
            Ok(http::preflight(origin.as_deref())),
        ));
    }
    match chat(&deps, &req, origin.as_deref(), &request_id).await {
        // Errors (a refused page included) as every widget endpoint answers them.
        Err(err) => full(http::widget_respond(
            &request_id,
            origin.as_deref(),
            Err(err),
        )),
        Ok(mut response) => {
            let headers = response.headers_mut();
            if let Some(origin) = origin.as_deref() {
                http::allow_origin(headers, origin);
            }
            if let Ok(value) = HeaderValue::from_str(&request_id) {
                headers.insert(http::REQUEST_ID_HEADER, value);
            }
            response
        }
    }
}

async fn chat(
    deps: &Arc<WidgetChatDeps>,
    req: &Request,
    origin: Option<&str>,
    request_id: &str,
) -> ApiResult<Response<ChatBody>> {
    http::require_method(req, Method::POST)?;
    let body: ChatRequest = http::parse_json(req, BODY_LIMIT)?;
    let streaming = body.stream
        || req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/event-stream"));
    let key = match http::bearer_token(req) {
        Some(token) => Some(
            api_keys::authorize_for_agent(
                &deps.chat.db,
                &deps.api_key_pepper,
                token,
                RequestOrigin {
                    ip: http::client_ip(req),
                    user_agent: http::user_agent(req),
                },
                body.agent_id,
                "chat:write",
            )
            .await?,
        ),
        None => None,
    };
    // The limits' round trips run alongside the question's own work (`Chat::start`), which
    // commits nothing until they let it in; attached files are only read once they have.
    let admission = rate_limits(deps, req, key, body.agent_id, &body.visitor_id);
    let keys: Vec<String> = body.attachments.into_iter().map(|a| a.key).collect();
    let (attachments, admission) = if keys.is_empty() {
        (Vec::new(), Either::Left(admission))
    } else {
        admission.await?;
        let verified = deps
            .attachments
            .verify(body.agent_id, &body.visitor_id, &keys)
            .await?;
        (verified, Either::Right(future::ready(Ok(()))))
    };

    let question = Question {
        agent_id: body.agent_id,
        visitor_id: body.visitor_id,
        conversation_id: body.conversation_id,
        message: body.message,
        // A server calling with its key is no web page: there is no origin to check.
        origin: origin.filter(|_| key.is_none()).map(str::to_owned),
        attachments,
    };
    // Boxed: a large future, kept off the stack (debug builds run tests on small stacks).
    let outcome = Box::pin(deps.chat.start(question, admission)).await?;
    let mut pending = match outcome {
        Outcome::Unavailable { message } => {
            relay_events(deps).await;
            return respond(streaming, ChatResponse::Unavailable { text: message });
        }
        Outcome::HumanTakeover {
            conversation_id,
            conversation_created,
            user_message_id,
            events,
        } => {
            // The team member answering sees the visitor's message now.
            publish(deps, &events).await;
            relay_events(deps).await;
            return respond(
                streaming,
                ChatResponse::HumanTakeover {
                    conversation_id,
                    conversation_created,
                    user_message_id,
                },
            );
        }
        Outcome::Answer(pending) => pending,
    };

    let (conversation_id, conversation_created, user_message_id) = (
        pending.conversation_id,
        pending.conversation_created,
        pending.user_message_id,
    );
    let answered = move |reply| ChatResponse::Answered {
        conversation_id,
        conversation_created,
        user_message_id,
        reply,
    };
    if !streaming {
        publish(deps, &pending.events).await;
        let reply = pending.answer(&deps.chat, &mut |_| {}).await;
        if let Ok(reply) = &reply {
            publish(deps, &reply.events).await;
        }
        relay_events(deps).await;
        return json_response(&answered(reply?));
    }

    let (sender, receiver) = futures::channel::mpsc::unbounded::<Bytes>();
    let send = move |name: &str, data: String| {
        // The only failure is a receiver gone (the visitor left): nothing to do about it.
        let _ = sender.unbounded_send(Bytes::from(sse::encode(name, &data)));
    };
    send(
        "start",
        serde_json::json!({
            "conversationId": conversation_id,
            "conversationCreated": conversation_created,
            "userMessageId": user_message_id,
        })
        .to_string(),
    );
    let deps = Arc::clone(deps);
    let request_id = request_id.to_owned();
    tokio::spawn(async move {
        let mut on_delta =
            |text: &str| send("delta", serde_json::json!({ "text": text }).to_string());
        // The team's inbox learns of the question while the answer is already on its way.
        let question_events = std::mem::take(&mut pending.events);
        let (_, result) = tokio::join!(
            publish(&deps, &question_events),
            pending.answer(&deps.chat, &mut on_delta)
        );
        match result {
            Ok(reply) => {
                let events = reply.events.clone();
                send("done", to_json(&answered(reply)));
                publish(&deps, &events).await;
            }
            Err(err) => {
                let body = serde_json::json!({
                    "code": err.code(),
                    "message": err.body().message,
                    "requestId": request_id,
                });
                if let ApiError::Internal(cause) = &err {
                    tracing::error!(request_id, error = format!("{cause:#}"), "answer failed");
                }
                send("error", body.to_string());
            }
        }
        // After the last event: the visitor is not kept waiting for it.
        relay_events(&deps).await;
    });
    Ok(event_stream(receiver.map(Ok)))
}

/// Publishes the realtime events of this request's writes (failures are only logged: the
/// clients catch up from `GET /events`).
async fn publish(deps: &WidgetChatDeps, events: &[Routed]) {
    if let Some(publisher) = &deps.publisher {
        publisher.publish(events).await;
    }
}

/// Relays the webhook events this request's writes emitted (`message.received`,
/// `conversation.created`); a failure leaves them for the scheduler's sweep.
async fn relay_events(deps: &WidgetChatDeps) {
    if let Some(relay) = &deps.relay
        && let Err(err) = relay.run(&deps.chat.db, 20).await
    {
        tracing::warn!(
            error = format!("{err:#}"),
            "outbox relay after the answer failed"
        );
    }
}

/// Per-IP (per-key for API callers) and per-visitor limits in one write, and the per-agent
/// limit beside it, when the returned future runs.
fn rate_limits<'a>(
    deps: &'a WidgetChatDeps,
    req: &Request,
    key: Option<Uuid>,
    agent_id: Uuid,
    visitor_id: &str,
) -> impl Future<Output = ApiResult<()>> + Send + 'a {
    let ip = match key {
        Some(key) => format!("key:{key}"),
        None => http::client_ip(req).map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()),
    };
    let visitor = format!("{agent_id}:{visitor_id}");
    let agent = agent_id.to_string();
    async move {
        futures::try_join!(
            deps.limiter
                .check_nested(&deps.limits.per_ip_and_visitor, &ip, &visitor),
            deps.limiter.check(&deps.limits.per_agent, &agent),
        )?;
        Ok(())
    }
}

/// `response` as a JSON document or as a stream holding just the `done` event.
fn respond(streaming: bool, response: ChatResponse) -> ApiResult<Response<ChatBody>> {
    if streaming {
        let event = Bytes::from(sse::encode("done", &to_json(&response)));
        Ok(event_stream(futures::stream::iter([Ok(event)])))
    } else {
        json_response(&response)
    }
}

fn to_json(response: &ChatResponse) -> String {
    serde_json::to_string(response).unwrap_or_else(|err| {
        tracing::error!(error = %err, "serialising a chat response");
        "{}".into()
    })
}

fn json_response(response: &ChatResponse) -> ApiResult<Response<ChatBody>> {
    Ok(full(http::json(StatusCode::OK, response)?))
}

fn event_stream(
    events: impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
) -> Response<ChatBody> {
    let body = StreamBody::new(events.map(|event| event.map(Frame::data)));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(BodyExt::boxed_unsync(body))
        .expect("static headers are valid")
}

/// A whole (non-streamed) response in the stream-capable body type.
fn full(response: Response<Body>) -> Response<ChatBody> {
    response.map(|body| {
        let bytes = Bytes::copy_from_slice(body.as_ref());
        BodyExt::boxed_unsync(Full::new(bytes))
    })
}
