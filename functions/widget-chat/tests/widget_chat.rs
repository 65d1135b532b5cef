//! widget-chat called in-process against real parts: Postgres (row-level security as the
//! visitor), the local all-MiniLM-L6-v2 embedder, DynamoDB rate limits on moto, and model
//! providers played by loopback servers speaking OpenAI's and Anthropic's streaming formats.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chatpad::auth::{Caller, api_keys};
use chatpad::chat::attachments::{AttachmentStore, visitor_prefix};
use chatpad::chat::{Chat, ChatLimits};
use chatpad::llm::anthropic::AnthropicChat;
use chatpad::llm::openai::OpenAiChat;
use chatpad::llm::{Endpoint, Providers, sse};
use chatpad::ratelimit::NestedLimit;
use chatpad::takeover::{self, EndAction};
use chatpad::testing::http::{Part, Reply, Seen, Server, respond};
use chatpad::testing::{SeedSource, TestDb, aws_config, env_var, local_embedder, rate_limiter};
use http_body_util::BodyExt;
use lambda_http::http::header;
use lambda_http::{Body, Request};
use serde_json::{Value, json};
use tokio::sync::Notify;
use uuid::Uuid;
use widget_chat::{ChatBody, RateLimits, WidgetChatDeps};

/// The pepper of `TestDb::config`.
const PEPPER: &str = "test-pepper";

const REFUNDS: &str = "Refunds are issued to the original card within 5 business days after \
                       the cancellation is confirmed.";

struct Fixture {
    test: TestDb,
    owner: Uuid,
    agent: Uuid,
}

/// An owner on `plan` with one agent whose knowledge is a PDF guide about billing (pages 1-2)
/// and a web page about shipping.
async fn fixture(plan: Option<&str>) -> Fixture {
    let test = TestDb::new().await;
    let owner = test.user(plan).await;
    let agent = test.agent(owner).await;
    let embedder = local_embedder().await;
    test.knowledge(
        agent,
        &embedder,
        &[
            SeedSource {
                kind: "pdf",
                title: "Billing guide",
                source: "billing.pdf",
                chunks: &[
                    (
                        "Invoices are emailed on the first day of every month.",
                        json!({"page": 1}),
                    ),
                    (REFUNDS, json!({"page": 2, "section": "Refunds"})),
                ],
            },
            SeedSource {
                kind: "url",
                title: "Shipping",
                source: "https://shop.test/shipping",
                chunks: &[(
                    "Orders ship from Lisbon within two days. Express delivery costs 9 euros.",
                    json!({"url": "https://shop.test/shipping"}),
                )],
            },
        ],
    )
    .await;
    Fixture { test, owner, agent }
}

fn limits(per_visitor: u32) -> RateLimits {
    // Names of their own per run, so counters from earlier runs in the same minute do not count.
    let name = |kind: &str| -> &'static str {
        Box::leak(format!("chat-test-{kind}-{}", Uuid::new_v4()).into_boxed_str())
    };
    RateLimits {
        per_ip_and_visitor: NestedLimit::per_minute(name("ip"), 10_000, per_visitor),
        per_agent: RateLimits::per_agent(name("agent"), 10_000),
    }
}

async fn deps(test: &TestDb, providers: Providers, chat_limits: ChatLimits) -> Arc<WidgetChatDeps> {
    Arc::new(WidgetChatDeps {
        relay: None,
        publisher: None,
        api_key_pepper: PEPPER.to_owned().into(),
        chat: Chat {
            db: test.db.clone(),
            embedder: local_embedder().await,
            providers,
            limits: chat_limits,
        },
        limiter: rate_limiter().await,
        limits: limits(1_000),
        attachments: attachment_store().await,
    })
}

async fn attachment_store() -> AttachmentStore {
    let sdk = aws_config().await;
    AttachmentStore::new(
        chatpad::aws::s3_client(&sdk),
        env_var("UPLOADS_BUCKET").expect("UPLOADS_BUCKET"),
    )
}

fn endpoint(url: String) -> Endpoint {
    Endpoint {
        url,
        api_key: Some("sk-test-key".to_owned().into()),
        idle_timeout: Duration::from_secs(10),
        total_timeout: Duration::from_secs(30),
    }
}

fn openai(server: &Server) -> Providers {
    let url = server.url("/v1/chat/completions").to_string();
    Providers {
        openai: Some(OpenAiChat::new(endpoint(url), false).unwrap()),
        anthropic: None,
    }
}

fn post(body: Value) -> Request {
    lambda_http::http::Request::builder()
        .method("POST")
        .uri("/")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn ask(agent: Uuid, visitor: &str, message: &str) -> Value {
    json!({ "agentId": agent, "visitorId": visitor, "message": message })
}

async fn call(deps: &Arc<WidgetChatDeps>, req: Request) -> (u16, Value) {
    let response = widget_chat::handle(Arc::clone(deps), req).await;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Reads stream frames until one completes an event, returning the events so far.
async fn next_events(body: &mut ChatBody, decoder: &mut sse::Decoder) -> Vec<sse::Event> {
    loop {
        let frame = body.frame().await.expect("the stream ended early").unwrap();
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let events = decoder.feed(&data).unwrap();
        if !events.is_empty() {
            return events;
        }
    }
}

/// OpenAI-style stream chunks: text deltas, then a usage chunk and `[DONE]`.
fn openai_chunk(text: &str) -> Part {
    let chunk = json!({"id": "c1", "object": "chat.completion.chunk",
                       "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]});
    Part::Bytes(format!("data: {chunk}\n\n").into_bytes())
}

fn openai_end(prompt: u32, completion: u32) -> Part {
    let usage = json!({"id": "c1", "object": "chat.completion.chunk", "choices": [],
                       "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}});
    Part::Bytes(format!("data: {usage}\n\ndata: [DONE]\n\n").into_bytes())
}

fn event_stream(parts: Vec<Part>) -> Reply {
    Reply::Stream {
        status: 200,
        headers: vec![("Content-Type", "text/event-stream".into())],
        parts,
    }
}

#[tokio::test]
async fn extractive_answer_quotes_the_right_source_and_is_stored() {
    let f = fixture(None).await;
    let deps = deps(&f.test, Providers::default(), ChatLimits::default()).await;
    let (status, body) = call(
        &deps,
        post(ask(
            f.agent,
            "visitor-1",
            "How long do refunds take after I cancel?",
        )),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "answered");
    assert_eq!(body["answeredBy"], "extractive");
    assert_eq!(body["conversationCreated"], true);
    let text = body["text"].as_str().unwrap();
    assert!(text.starts_with("Here is what I found"), "{text}");
    assert!(text.contains("5 business days"), "{text}");
    let citation = &body["citations"][0];
    assert_eq!(citation["title"], "Billing guide");
    assert_eq!(citation["fileName"], "billing.pdf");
    assert_eq!(citation["page"], 2);
    assert_eq!(citation["section"], "Refunds");

    // Stored: the question and the answer with the chunk it quoted; usage counted.
    let su = f.test.superuser().await;
    let conversation: Uuid = body["conversationId"].as_str().unwrap().parse().unwrap();
    let rows = su
        .query(
            "SELECT m.role, m.content, m.chunk_ids, m.latency_ms, c.content AS chunk
             FROM messages m LEFT JOIN knowledge_chunks c ON c.id = m.chunk_ids[1]
             WHERE m.conversation_id = $1 ORDER BY m.created_at",
            &[&conversation],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get::<_, &str>("role"), "user");
    assert_eq!(rows[1].get::<_, &str>("role"), "assistant");
    assert_eq!(rows[1].get::<_, &str>("content"), text);
    assert_eq!(rows[1].get::<_, Option<&str>>("chunk"), Some(REFUNDS));
    assert!(rows[1].get::<_, Option<i32>>("latency_ms").is_some());
    let usage = su
        .query_one(
            "SELECT conversations, messages FROM usage_metrics WHERE user_id = $1",
            &[&f.owner],
        )
        .await
        .unwrap();
    assert_eq!(usage.get::<_, i32>(0), 1);
    assert_eq!(usage.get::<_, i32>(1), 2);
}

#[tokio::test]
async fn questions_at_once_on_a_two_connection_pool_are_all_answered() {
    // Two connections, as each widget-chat instance has. A hybrid question ranks its words on
    // a second connection only if one is free: four questions each holding one connection
    // never wait on each other for another (they did, for the pool's 10 s, then failed).
    let f = fixture(None).await;
    let mut lambda_sized =
        Arc::into_inner(deps(&f.test, Providers::default(), ChatLimits::default()).await)
            .expect("only reference");
    lambda_sized.chat.db =
        chatpad::db::Database::connect_lazy(&f.test.app_url.clone().into(), 2).unwrap();
    let deps = Arc::new(lambda_sized);
    let question = "How long do refunds take after I cancel?";
    let answers = futures::future::join_all(
        (0..4).map(|i| call(&deps, post(ask(f.agent, &format!("visitor-{i}"), question)))),
    )
    .await;
    for (status, body) in answers {
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["answeredBy"], "extractive", "{body}");
        assert_eq!(body["citations"][0]["title"], "Billing guide", "{body}");
    }
}

#[tokio::test]
async fn openai_compatible_answer_streams_as_it_arrives() {
    let f = fixture(None).await;
    let gate = Arc::new(Notify::new());
    let held = Arc::clone(&gate);
    let server = Server::start(move |_: &Seen, _| {
        event_stream(vec![
            openai_chunk("Refunds take five business days "),
            Part::Wait(Arc::clone(&held)),
            openai_chunk("[1]."),
            openai_end(321, 9),
        ])
    })
    .await;
    let deps = deps(&f.test, openai(&server), ChatLimits::default()).await;

    let mut req = post(ask(f.agent, "visitor-2", "How long do refunds take?"));
    req.headers_mut()
        .insert(header::ACCEPT, "text/event-stream".parse().unwrap());
    let response = widget_chat::handle(Arc::clone(&deps), req).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut body = response.into_body();
    let mut decoder = sse::Decoder::default();
    let mut events = Vec::new();
    // The first delta arrives while the provider still holds the rest of its answer back: the
    // answer is streamed, not buffered.
    while !events
        .iter()
        .any(|e: &sse::Event| e.name.as_deref() == Some("delta"))
    {
        events.extend(next_events(&mut body, &mut decoder).await);
    }
    assert_eq!(events[0].name.as_deref(), Some("start"));
    let delta: Value = serde_json::from_str(&events[1].data).unwrap();
    assert_eq!(delta["text"], "Refunds take five business days ");
    gate.notify_one();
    let rest: Bytes = body.collect().await.unwrap().to_bytes();
    events.extend(decoder.feed(&rest).unwrap());
    let done = events
        .iter()
        .find(|e| e.name.as_deref() == Some("done"))
        .expect("a done event");
    let done: Value = serde_json::from_str(&done.data).unwrap();
    assert_eq!(done["text"], "Refunds take five business days [1].");
    assert_eq!(done["answeredBy"], "model");
    assert_eq!(done["promptTokens"], 321);
    assert_eq!(done["completionTokens"], 9);
    assert_eq!(done["citations"].as_array().unwrap().len(), 1);
    assert_eq!(done["citations"][0]["page"], 2);

    // What the provider was sent: the agent's model, a bearer key, the framed knowledge.
    let request = &server.requests()[0];
    assert_eq!(request.header("authorization"), Some("Bearer sk-test-key"));
    let sent: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(sent["model"], "google/gemini-2.5-flash");
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["messages"][0]["role"], "system");
    let user = sent["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(user.contains("<excerpt id=\"1\" source=\"Billing guide, page 2\">"));
    assert!(user.ends_with("How long do refunds take?"));

    let su = f.test.superuser().await;
    let tokens: (i32, i32) = su
        .query_one(
            "SELECT prompt_tokens, completion_tokens FROM messages WHERE role = 'assistant'",
            &[],
        )
        .await
        .map(|row| (row.get(0), row.get(1)))
        .unwrap();
    assert_eq!(tokens, (321, 9));
}

#[tokio::test]
async fn anthropic_messages_api_with_conversation_memory() {
    let f = fixture(None).await;
    f.test
        .superuser()
        .await
        .execute(
            "UPDATE agents SET model = 'anthropic/claude-3.5-sonnet' WHERE id = $1",
            &[&f.agent],
        )
        .await
        .unwrap();
    let server = Server::start(|_: &Seen, _| {
        let event = |name: &str, data: Value| Part::Bytes(sse::encode(name, &data.to_string()).into_bytes());
        event_stream(vec![
            event("message_start", json!({"type": "message_start", "message": {"id": "m1", "type": "message", "role": "assistant", "content": [], "usage": {"input_tokens": 250, "output_tokens": 1}}})),
            event("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
            event("ping", json!({"type": "ping"})),
            event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Within 5 business "}})),
            event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "days [1]."}})),
            event("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
            event("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 12}})),
            event("message_stop", json!({"type": "message_stop"})),
        ])
    })
    .await;
    let providers = Providers {
        openai: None,
        anthropic: Some(
            AnthropicChat::new(endpoint(server.url("/v1/messages").to_string())).unwrap(),
        ),
    };
    let deps = deps(&f.test, providers, ChatLimits::default()).await;

    let (status, first) = call(&deps, post(ask(f.agent, "v3", "How long do refunds take?"))).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["text"], "Within 5 business days [1].");
    assert_eq!(first["promptTokens"], 250);
    assert_eq!(first["completionTokens"], 12);

    let mut second = ask(f.agent, "v3", "And for express refunds?");
    second["conversationId"] = first["conversationId"].clone();
    let (status, answer) = call(&deps, post(second)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["conversationCreated"], false);

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].header("x-api-key"), Some("sk-test-key"));
    assert_eq!(requests[1].header("anthropic-version"), Some("2023-06-01"));
    let sent: Value = serde_json::from_slice(&requests[1].body).unwrap();
    assert_eq!(sent["model"], "claude-3.5-sonnet");
    assert!(sent["system"].as_str().unwrap().contains("reply exactly"));
    // The earlier turn is remembered: question, answer, then the new question.
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[0]["content"], "How long do refunds take?");
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["content"], "Within 5 business days [1].");
    assert!(
        messages[2]["content"]
            .as_str()
            .unwrap()
            .ends_with("And for express refunds?")
    );
}

#[tokio::test]
async fn provider_failures_are_retried_once_then_reported_kindly() {
    let f = fixture(None).await;
    let server = Server::start(|_: &Seen, _| {
        respond(
            503,
            "application/json",
            r#"{"error":{"message":"overloaded"}}"#,
        )
    })
    .await;
    let deps = deps(&f.test, openai(&server), ChatLimits::default()).await;
    let (status, body) = call(&deps, post(ask(f.agent, "v4", "How long do refunds take?"))).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "model_unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("talk to a person")
    );
    assert_eq!(server.requests().len(), 2, "one retry on a 503");

    let refusing = Server::start(|_: &Seen, _| {
        respond(
            400,
            "application/json",
            r#"{"error":{"message":"bad model"}}"#,
        )
    })
    .await;
    let deps = self::deps(&f.test, openai(&refusing), ChatLimits::default()).await;
    let (status, _) = call(&deps, post(ask(f.agent, "v4", "How long do refunds take?"))).await;
    assert_eq!(status, 502);
    assert_eq!(refusing.requests().len(), 1, "no retry on a 400");
}

#[tokio::test]
async fn no_good_match_gives_the_fallback_and_records_a_gap() {
    let f = fixture(None).await;
    let server =
        Server::start(|_: &Seen, _| respond(500, "text/plain", "must not be called")).await;
    let deps = deps(&f.test, openai(&server), ChatLimits::default()).await;
    let question = "What is the boiling point of liquid nitrogen on Mars?";
    let (status, body) = call(&deps, post(ask(f.agent, "v5", question))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["answeredBy"], "fallback");
    assert_eq!(body["offerHuman"], true);
    assert_eq!(
        body["text"],
        "I don't have information about that yet. Would you like to talk to a person?"
    );
    assert!(body["citations"].as_array().unwrap().is_empty());
    assert!(server.requests().is_empty(), "the model is not asked");

    let su = f.test.superuser().await;
    let gap = su
        .query_one(
            "SELECT question, best_similarity, conversation_id::text FROM knowledge_gaps WHERE agent_id = $1",
            &[&f.agent],
        )
        .await
        .unwrap();
    assert_eq!(gap.get::<_, &str>(0), question);
    // Nothing came back above the threshold, so no similarity is known.
    assert_eq!(gap.get::<_, Option<f32>>(1), None);
    assert_eq!(
        gap.get::<_, &str>(2),
        body["conversationId"].as_str().unwrap()
    );
}

#[tokio::test]
async fn human_takeover_stores_the_message_without_calling_the_model() {
    let f = fixture(None).await;
    let server =
        Server::start(|_: &Seen, _| respond(500, "text/plain", "must not be called")).await;
    let deps = deps(&f.test, openai(&server), ChatLimits::default()).await;
    let (_, first) = call(&deps, post(ask(f.agent, "v6", "Hello"))).await;
    let conversation = first["conversationId"].clone();
    let su = f.test.superuser().await;
    su.execute(
        "UPDATE conversations SET status = 'human_takeover' WHERE id = $1::text::uuid",
        &[&conversation.as_str().unwrap()],
    )
    .await
    .unwrap();
    let calls_before = server.requests().len();

    let mut next = ask(f.agent, "v6", "Are you a person now?");
    next["conversationId"] = conversation.clone();
    next["stream"] = json!(true);
    let response = widget_chat::handle(Arc::clone(&deps), post(next)).await;
    assert_eq!(response.status(), 200);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let events = sse::Decoder::default().feed(&bytes).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].name.as_deref(), Some("done"));
    let done: Value = serde_json::from_str(&events[0].data).unwrap();
    assert_eq!(done["status"], "human_takeover");
    assert_eq!(
        server.requests().len(),
        calls_before,
        "the model is not asked"
    );
    let stored: i64 = su
        .query_one(
            "SELECT count(*) FROM messages WHERE content = 'Are you a person now?' AND role = 'user'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 1);
}

#[tokio::test]
async fn after_a_takeover_the_bot_resumes_with_the_persons_replies_as_its_own_side() {
    let f = fixture(None).await;
    let server = Server::start(|_: &Seen, _| {
        event_stream(vec![
            openai_chunk("Refunds take five business days [1]."),
            openai_end(100, 8),
        ])
    })
    .await;
    let deps = deps(&f.test, openai(&server), ChatLimits::default()).await;
    let (_, first) = call(&deps, post(ask(f.agent, "v7", "Hello, my parcel is late"))).await;
    let conversation: Uuid = first["conversationId"].as_str().unwrap().parse().unwrap();

    // The owner takes over, answers, hands back to the bot (as the management API does).
    let mut client = f.test.db.client().await.unwrap();
    let tx = chatpad::db::begin_as(&mut client, &Caller::User { user_id: f.owner })
        .await
        .unwrap();
    takeover::start(&tx, f.owner, conversation).await.unwrap();
    takeover::send_human_message(&tx, f.owner, conversation, "I have reshipped it today.")
        .await
        .unwrap();
    takeover::end(&tx, f.owner, conversation, EndAction::ReturnedToBot, None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    drop(client);

    let mut next = ask(f.agent, "v7", "How long do refunds take?");
    next["conversationId"] = json!(conversation);
    let (status, body) = call(&deps, post(next)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["answeredBy"], "model");

    // The model saw the person's reply as the business's side, and no joined/left lines.
    let sent: Value = serde_json::from_slice(&server.requests().last().unwrap().body).unwrap();
    let turns: Vec<(String, String)> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_owned(),
                m["content"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        turns.contains(&("assistant".into(), "I have reshipped it today.".into())),
        "{turns:?}"
    );
    assert!(
        !turns
            .iter()
            .any(|(_, text)| text.contains("joined the conversation")
                || text.contains("left the conversation")),
        "{turns:?}"
    );
}

#[tokio::test]
async fn limits_refuse_with_clear_errors() {
    let f = fixture(None).await;
    let chat_limits = ChatLimits {
        max_message_chars: 200,
        max_conversation_messages: 4,
        ..ChatLimits::default()
    };
    let mut deps = deps(&f.test, Providers::default(), chat_limits).await;

    // Message size: a 422 naming the limit; a body over 32 KiB: 413.
    let (status, body) = call(&deps, post(ask(f.agent, "v7", &"x".repeat(201)))).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"]["limit"], 200);
    let (status, _) = call(&deps, post(ask(f.agent, "v7", &"x".repeat(40_000)))).await;
    assert_eq!(status, 413);
    let (status, body) = call(
        &deps,
        post(json!({"agentId": "nope", "visitorId": "v", "message": "hi"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_json"))
    );
    let (status, body) = call(&deps, post(ask(Uuid::new_v4(), "v7", "hi"))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("agent_not_found"))
    );
    let (status, _) = call(&deps, post(ask(f.agent, "bad visitor id!", "hi"))).await;
    assert_eq!(status, 422);

    // Conversation length: two exchanges fill 4 messages, the next is refused.
    let (_, first) = call(&deps, post(ask(f.agent, "v7", "How long do refunds take?"))).await;
    let mut next = ask(f.agent, "v7", "And invoices?");
    next["conversationId"] = first["conversationId"].clone();
    assert_eq!(call(&deps, post(next.clone())).await.0, 200);
    let (status, body) = call(&deps, post(next)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conversation_too_long"))
    );

    // Another visitor cannot continue this conversation.
    let mut foreign = ask(f.agent, "someone-else", "hi");
    foreign["conversationId"] = first["conversationId"].clone();
    let (status, body) = call(&deps, post(foreign)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("conversation_not_found"))
    );

    // Per-visitor rate limit: 429 with Retry-After once exceeded. Counters are per minute
    // window: a run that crosses into the next minute starts again, as a fresh visitor.
    Arc::get_mut(&mut deps).unwrap().limits = limits(2);
    let minute = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 60
    };
    let (response, visitor) = loop {
        let window = minute();
        let visitor = format!("v8-{}", Uuid::new_v4().simple());
        for _ in 0..2 {
            assert_eq!(
                call(&deps, post(ask(f.agent, &visitor, "Shipping?")))
                    .await
                    .0,
                200
            );
        }
        let response =
            widget_chat::handle(Arc::clone(&deps), post(ask(f.agent, &visitor, "Shipping?"))).await;
        if minute() == window {
            break (response, visitor);
        }
    };
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key(header::RETRY_AFTER));
    // The refused question's own work ran alongside its limits, but nothing of it was kept.
    let questions: i64 = f
        .test
        .superuser()
        .await
        .query_one(
            "SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id
             WHERE c.visitor_id = $1 AND m.role = 'user'",
            &[&visitor],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(questions, 2, "only the two admitted questions are stored");
}

#[tokio::test]
async fn over_the_monthly_plan_limit_the_visitor_gets_the_fallback_and_the_owner_a_log() {
    let f = fixture(None).await;
    let su = f.test.superuser().await;
    su.execute(
        "UPDATE plans SET max_conversations_per_month = 1 WHERE id = 'basic'",
        &[],
    )
    .await
    .unwrap();
    let deps = deps(&f.test, Providers::default(), ChatLimits::default()).await;
    assert_eq!(
        call(&deps, post(ask(f.agent, "first", "Hello"))).await.0,
        200
    );
    let (status, body) = call(&deps, post(ask(f.agent, "second", "Hello"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(
        body["text"],
        "I don't have information about that yet. Would you like to talk to a person?"
    );
    let conversations: i64 = su
        .query_one("SELECT count(*) FROM conversations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(conversations, 1, "nothing stored for the refused visitor");
    let logged = su
        .query_one(
            "SELECT user_id, details->>'limit' FROM security_logs WHERE event_type = 'plan.limit_reached'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(logged.get::<_, Uuid>(0), f.owner);
    assert_eq!(logged.get::<_, &str>(1), "max_conversations_per_month");
}

#[tokio::test]
async fn only_allowed_origins_may_chat_and_read_the_answer() {
    let f = fixture(None).await;
    f.test
        .superuser()
        .await
        .execute(
            "UPDATE agents SET allowed_domains = '{shop.test}' WHERE id = $1",
            &[&f.agent],
        )
        .await
        .unwrap();
    let deps = deps(&f.test, Providers::default(), ChatLimits::default()).await;
    let from = |origin: &str| {
        let mut req = post(ask(f.agent, "v9", "How long do refunds take?"));
        req.headers_mut()
            .insert(header::ORIGIN, origin.parse().unwrap());
        req
    };
    let refused = widget_chat::handle(Arc::clone(&deps), from("https://evil.test")).await;
    assert_eq!(refused.status(), 403);
    assert!(
        !refused
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
    let allowed = widget_chat::handle(Arc::clone(&deps), from("https://shop.test")).await;
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        allowed.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://shop.test"
    );
}

/// Stores a key with `scopes` for `owner`, as the management API does; returns its plaintext.
async fn api_key(test: &TestDb, owner: Uuid, scopes: &[&str]) -> String {
    use secrecy::ExposeSecret;
    let key = api_keys::generate(&PEPPER.to_owned().into());
    let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
    test.superuser()
        .await
        .execute(
            "INSERT INTO api_keys (user_id, name, prefix, key_hash, scopes) VALUES ($1, 'server', $2, $3, $4)",
            &[&owner, &key.prefix, &key.hash.as_slice(), &scopes],
        )
        .await
        .unwrap();
    key.plaintext.expose_secret().to_owned()
}

#[tokio::test]
async fn api_key_callers_need_the_scope_the_plan_and_their_own_agent() {
    let f = fixture(Some("advanced")).await;
    let deps = deps(&f.test, Providers::default(), ChatLimits::default()).await;
    let with_key = |key: &str, origin: Option<&str>| {
        let mut req = post(ask(f.agent, "crm-42", "How long do refunds take?"));
        req.headers_mut().insert(
            header::AUTHORIZATION,
            format!("Bearer {key}").parse().unwrap(),
        );
        if let Some(origin) = origin {
            req.headers_mut()
                .insert(header::ORIGIN, origin.parse().unwrap());
        }
        req
    };
    f.test
        .superuser()
        .await
        .execute(
            "UPDATE agents SET allowed_domains = '{shop.test}' WHERE id = $1",
            &[&f.agent],
        )
        .await
        .unwrap();

    // A server with a chat:write key: answered, whatever page origin it may forward.
    let good = api_key(&f.test, f.owner, &["chat:write"]).await;
    let (status, body) = call(&deps, with_key(&good, Some("https://elsewhere.test"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["answeredBy"], "extractive");
    let su = f.test.superuser().await;
    let api_calls: i32 = su
        .query_one(
            "SELECT api_calls FROM usage_metrics WHERE user_id = $1",
            &[&f.owner],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(api_calls, 1);

    let narrow = api_key(&f.test, f.owner, &["leads:read"]).await;
    let (status, body) = call(&deps, with_key(&narrow, None)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("insufficient_scope"))
    );
    let (status, body) = call(&deps, with_key("cpk_live_not-a-key", None)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_api_key"))
    );

    // Another account's key cannot use this agent.
    let other = f.test.user(Some("advanced")).await;
    let foreign = api_key(&f.test, other, &["chat:write"]).await;
    let (status, body) = call(&deps, with_key(&foreign, None)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("agent_not_found"))
    );

    // After a downgrade to a plan without API access, the key stops working.
    su.execute("DELETE FROM subscriptions WHERE user_id = $1", &[&f.owner])
        .await
        .unwrap();
    let (status, body) = call(&deps, with_key(&good, None)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("plan_limit_exceeded"))
    );
}

#[tokio::test]
async fn the_visitor_message_event_is_relayed_right_after_the_answer() {
    let f = fixture(Some("advanced")).await;
    // An endpoint subscribed to visitor messages: the message's trigger writes the event to
    // the outbox with the message, and widget-chat relays it to the webhook queue at once.
    f.test
        .superuser()
        .await
        .execute(
            "INSERT INTO webhooks (user_id, url, events, secret_ciphertext)
             VALUES ($1, 'https://hooks.example.com/in', '{message.received}', '\\x00')",
            &[&f.owner],
        )
        .await
        .unwrap();
    let sqs = chatpad::aws::sqs_client(&chatpad::testing::aws_config().await);
    let [ingest, webhooks] = chatpad::testing::own_queues(&sqs, "chat-relay").await;
    let mut deps = deps(&f.test, Providers::default(), ChatLimits::default()).await;
    Arc::get_mut(&mut deps).unwrap().relay = Some(chatpad::outbox::Relay::new(
        sqs.clone(),
        ingest,
        webhooks.clone(),
    ));
    let (status, body) = call(
        &deps,
        post(ask(f.agent, "v10", "How long do refunds take?")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let received = sqs
        .receive_message()
        .queue_url(&webhooks)
        .max_number_of_messages(10)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap();
    assert_eq!(received.messages().len(), 1, "{received:?}");
}

#[tokio::test]
async fn a_message_keeps_the_visitors_checked_attachments_and_refuses_others() {
    let f = fixture(None).await;
    let deps = deps(&f.test, Providers::default(), ChatLimits::default()).await;
    let sdk = aws_config().await;
    let s3 = chatpad::aws::s3_client(&sdk);
    let bucket = env_var("UPLOADS_BUCKET").unwrap();
    let put = |key: String, content_type: &'static str, bytes: &'static [u8]| {
        let (s3, bucket) = (s3.clone(), bucket.clone());
        async move {
            s3.put_object()
                .bucket(bucket)
                .key(&key)
                .content_type(content_type)
                .body(bytes.to_vec().into())
                .send()
                .await
                .unwrap();
            key
        }
    };
    let mine = visitor_prefix(f.agent, "visitor-a");
    let pdf = put(
        format!("{mine}{}/invoice.pdf", Uuid::now_v7()),
        "application/pdf",
        b"%PDF-1.7 a tiny pdf",
    )
    .await;
    let fake_png = put(
        format!("{mine}{}/photo.png", Uuid::now_v7()),
        "image/png",
        b"<html>not a png</html>",
    )
    .await;
    let theirs = put(
        format!(
            "{}{}/other.pdf",
            visitor_prefix(f.agent, "visitor-b"),
            Uuid::now_v7()
        ),
        "application/pdf",
        b"%PDF-1.7 someone else's",
    )
    .await;

    let with = |keys: &[&str]| {
        let mut body = ask(f.agent, "visitor-a", "Here is my invoice, refunds?");
        body["attachments"] = keys.iter().map(|k| json!({ "key": k })).collect();
        post(body)
    };
    for (keys, why) in [
        (vec![theirs.as_str()], "another visitor's upload"),
        (vec![fake_png.as_str()], "bytes that are not a PNG"),
        (
            vec![format!("{mine}{}/missing.pdf", Uuid::now_v7()).leak() as &str],
            "an object never uploaded",
        ),
        (vec![pdf.as_str(); 6], "more than five"),
    ] {
        let (status, body) = call(&deps, with(&keys)).await;
        assert_eq!(status, 422, "{why}: {body}");
        assert!(
            body["error"]["details"]["fields"]["attachments"].is_string(),
            "{body}"
        );
    }

    let (status, body) = call(&deps, with(&[pdf.as_str()])).await;
    assert_eq!(status, 200, "{body}");
    let su = f.test.superuser().await;
    let stored: Value = su
        .query_one(
            "SELECT attachments FROM messages WHERE id = $1",
            &[&body["userMessageId"]
                .as_str()
                .unwrap()
                .parse::<Uuid>()
                .unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        stored,
        json!([{"key": pdf, "name": "invoice.pdf", "contentType": "application/pdf", "byteSize": 19}])
    );
}
