//! Human takeover and the realtime function, in-process against real Postgres (row-level
//! security on, as the application role) and moto's DynamoDB: the takeover lifecycle and its
//! events, catch-up without loss or duplicates, tenancy (another account's member gets
//! nothing), roles, the visitor's token, "talk to a person", and WebSocket `$connect`.
//! The live path through the WebSocket gateway is covered by infra/realtime_e2e.py.

use std::collections::HashMap;
use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequestContext;
use chatpad::auth::Caller;
use chatpad::auth::jwt::{JwtVerifier, issue_dev_token};
use chatpad::db;
use chatpad::realtime::connections::Connections;
use chatpad::realtime::{Publisher, VisitorTokens};
use chatpad::takeover::{self, EndAction};
use chatpad::testing::{TestDb, aws_config, env_var, rate_limiter};
use http_body_util::BodyExt;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt};
use realtime::{Limits, RealtimeDeps};
use secrecy::SecretString;
use serde_json::{Value, json};
use uuid::Uuid;

const JWT_SECRET: &str = "test-jwt-secret-of-sufficient-length-0123456789";

struct World {
    test: TestDb,
    deps: RealtimeDeps,
    owner: Uuid,
    agent: Uuid,
    conversation: Uuid,
    visitor: String,
}

async fn deps(test: &TestDb) -> RealtimeDeps {
    let sdk = aws_config().await;
    let config = test.config();
    let table = env_var("REALTIME_TABLE").expect("REALTIME_TABLE");
    let callback = env_var("REALTIME_CALLBACK_URL").expect("REALTIME_CALLBACK_URL");
    RealtimeDeps {
        db: test.db.clone(),
        jwt: JwtVerifier::new(&config.jwt).unwrap(),
        tokens: VisitorTokens::new(&SecretString::from(
            "realtime-test-secret-0123456789abcdef".to_owned(),
        ))
        .unwrap(),
        publisher: Publisher::new(
            &sdk,
            &callback,
            Connections::new(chatpad::aws::dynamodb_client(&sdk), table),
        ),
        limiter: rate_limiter().await,
        limits: Limits::default(),
        websocket_url: "ws://localhost:9001".into(),
        public_url: Some("http://localhost:9000/lambda-url/realtime".into()),
    }
}

/// A user with a known identity-provider subject, so a JWT signs in as them.
async fn person(test: &TestDb, name: &str) -> (Uuid, String) {
    let subject = format!("sub-{name}-{}", Uuid::new_v4().simple());
    let id = test
        .superuser()
        .await
        .query_one(
            "INSERT INTO users (auth_subject, email, display_name) VALUES ($1, $2, $3) RETURNING id",
            &[&subject, &format!("{subject}@example.com"), &name],
        )
        .await
        .unwrap()
        .get(0);
    let config = test.config();
    let token = issue_dev_token(
        &SecretString::from(JWT_SECRET.to_owned()),
        &config.jwt,
        &subject,
        None,
        Duration::from_secs(600),
    );
    (id, token)
}

async fn join(test: &TestDb, owner: Uuid, member: Uuid, role: &str) {
    test.superuser()
        .await
        .execute(
            "INSERT INTO team_members (owner_id, member_id, role, status) VALUES ($1, $2, $3, 'active')",
            &[&owner, &member, &role],
        )
        .await
        .unwrap();
}

/// An account with an agent, and a visitor who has said hello.
async fn world() -> World {
    let test = TestDb::new().await;
    let deps = deps(&test).await;
    // A plan with a team (the basic plan allows one member).
    let owner = test.user(Some("pro")).await;
    let agent = test.agent(owner).await;
    let visitor = format!("v-{}", Uuid::new_v4().simple());
    let conversation = visitor_says(&test, agent, &visitor, None, "Hello, is anyone there?").await;
    World {
        test,
        deps,
        owner,
        agent,
        conversation,
        visitor,
    }
}

/// The visitor's message, stored as the chat pipeline stores it (as the widget caller).
async fn visitor_says(
    test: &TestDb,
    agent: Uuid,
    visitor: &str,
    conversation: Option<Uuid>,
    text: &str,
) -> Uuid {
    let mut client = test.db.client().await.unwrap();
    let tx = db::begin_as(
        &mut client,
        &Caller::Widget {
            agent_id: agent,
            visitor_id: visitor.into(),
        },
    )
    .await
    .unwrap();
    let conversation = match conversation {
        Some(id) => id,
        None => tx
            .query_one(
                "INSERT INTO conversations (agent_id, visitor_id) VALUES ($1, $2) RETURNING id",
                &[&agent, &visitor],
            )
            .await
            .unwrap()
            .get(0),
    };
    tx.execute(
        "INSERT INTO messages (conversation_id, role, content) VALUES ($1, 'user', $2)",
        &[&conversation, &text],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    conversation
}

/// Runs `f` in a transaction acting as `user`, committing on success.
async fn as_user<T>(
    test: &TestDb,
    user: Uuid,
    f: impl AsyncFnOnce(&db::Transaction<'_>) -> chatpad::ApiResult<T>,
) -> chatpad::ApiResult<T> {
    let mut client = test.db.client().await.unwrap();
    let tx = db::begin_as(&mut client, &Caller::User { user_id: user })
        .await
        .unwrap();
    let result = f(&tx).await;
    if result.is_ok() {
        tx.commit().await.unwrap();
    }
    result
}

async fn call(deps: &RealtimeDeps, req: Request) -> (u16, Value) {
    let response = realtime::handle(deps, req).await;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn request(
    method: &str,
    path_and_query: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Request {
    let mut builder = lambda_http::http::Request::builder()
        .method(method)
        .uri(path_and_query)
        .header("origin", "https://shop.example");
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    let query: HashMap<String, String> = path_and_query
        .split_once('?')
        .map(|(_, q)| {
            q.split('&')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    builder
        .body(body.map_or(Body::Empty, |b| Body::from(b.to_string())))
        .unwrap()
        .with_query_string_parameters(query)
}

async fn visitor_token(world: &World) -> String {
    let (status, body) = call(
        &world.deps,
        request(
            "POST",
            "/token",
            None,
            Some(json!({
                "agentId": world.agent,
                "visitorId": world.visitor,
                "conversationId": world.conversation,
            })),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["websocketUrl"], "ws://localhost:9001");
    assert_eq!(
        body["pollUrl"],
        "http://localhost:9000/lambda-url/realtime/events"
    );
    body["token"].as_str().unwrap().to_owned()
}

async fn events(deps: &RealtimeDeps, token: &str, query: &str) -> (u16, Value) {
    call(
        deps,
        request("GET", &format!("/events{query}"), Some(token), None),
    )
    .await
}

fn kinds(page: &Value) -> Vec<String> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let kind = e["type"].as_str().unwrap();
            match kind {
                "message.created" => {
                    format!("message.{}", e["data"]["message"]["role"].as_str().unwrap())
                }
                other => other.to_owned(),
            }
        })
        .collect()
}

#[tokio::test]
async fn a_takeover_is_seen_by_the_visitor_in_order_and_the_bot_resumes_after_it() {
    let world = world().await;
    let (sam, _) = person(&world.test, "Sam").await;
    join(&world.test, world.owner, sam, "member").await;
    let token = visitor_token(&world).await;

    let started = as_user(&world.test, sam, async |tx| {
        takeover::start(tx, sam, world.conversation).await
    })
    .await
    .unwrap();
    assert_eq!(started.taken_by, Some(sam));
    // A second takeover of the same conversation is refused.
    let again = as_user(&world.test, world.owner, async |tx| {
        takeover::start(tx, world.owner, world.conversation).await
    })
    .await
    .unwrap_err();
    assert_eq!(again.code(), "takeover_in_progress");

    let reply = as_user(&world.test, sam, async |tx| {
        takeover::send_human_message(tx, sam, world.conversation, "Hi, Sam here. How can I help?")
            .await
    })
    .await
    .unwrap();
    visitor_says(
        &world.test,
        world.agent,
        &world.visitor,
        Some(world.conversation),
        "My order is late",
    )
    .await;
    let ended = as_user(&world.test, sam, async |tx| {
        takeover::end(
            tx,
            sam,
            world.conversation,
            EndAction::ReturnedToBot,
            Some("handled"),
        )
        .await
    })
    .await
    .unwrap();
    assert_eq!(ended.end_action.as_deref(), Some("returned_to_bot"));

    let (status, page) = events(&world.deps, &token, "").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        kinds(&page),
        [
            "conversation.updated",
            "message.user",
            "takeover.started",
            "conversation.updated",
            "message.system",
            "message.human",
            "message.user",
            "takeover.ended",
            "message.system",
            "conversation.updated",
        ]
    );
    let all = page["events"].as_array().unwrap();
    assert_eq!(all[2]["data"]["by"]["name"], "Sam");
    assert_eq!(
        all[4]["data"]["message"]["content"],
        "Sam joined the conversation"
    );
    assert_eq!(all[5]["data"]["message"]["id"], reply.id.to_string());
    assert_eq!(all[5]["data"]["message"]["sender"]["name"], "Sam");
    assert_eq!(all[7]["data"]["action"], "returned_to_bot");
    assert_eq!(
        all[8]["data"]["message"]["content"],
        "Sam left the conversation"
    );
    assert_eq!(all[9]["data"]["status"], "active");

    // Catch-up after a drop: from any cursor, exactly the rest, once.
    let middle = all[4]["id"].as_str().unwrap();
    let (_, rest) = events(&world.deps, &token, &format!("?after={middle}")).await;
    let ids: Vec<&str> = rest["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = all[5..].iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids, expected);
    assert_eq!(rest["cursor"], page["cursor"]);
    let (_, nothing) = events(
        &world.deps,
        &token,
        &format!("?after={}", page["cursor"].as_str().unwrap()),
    )
    .await;
    assert_eq!(nothing["events"], json!([]));
    assert_eq!(nothing["cursor"], page["cursor"]);

    // Back with the bot: a human reply is refused again.
    let refused = as_user(&world.test, sam, async |tx| {
        takeover::send_human_message(tx, sam, world.conversation, "still me").await
    })
    .await
    .unwrap_err();
    assert_eq!(refused.code(), "not_in_takeover");
}

#[tokio::test]
async fn a_member_of_another_account_can_neither_take_over_nor_read_the_stream() {
    let world = world().await;
    let stranger_account = world.test.user(None).await;
    let (mallory, mallory_jwt) = person(&world.test, "Mallory").await;
    join(&world.test, stranger_account, mallory, "admin").await;

    let refused = as_user(&world.test, mallory, async |tx| {
        takeover::start(tx, mallory, world.conversation).await
    })
    .await
    .unwrap_err();
    assert_eq!(refused.code(), "conversation_not_found");
    let refused = as_user(&world.test, mallory, async |tx| {
        takeover::send_human_message(tx, mallory, world.conversation, "hi").await
    })
    .await
    .unwrap_err();
    assert_eq!(refused.code(), "conversation_not_found");

    // Her own inbox holds nothing of it; the victim's inbox is refused; the conversation 404s.
    let (status, page) = events(&world.deps, &mallory_jwt, "").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["events"], json!([]));
    let (status, body) = events(
        &world.deps,
        &mallory_jwt,
        &format!("?accountId={}", world.owner),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("account_forbidden"))
    );
    let (status, body) = events(
        &world.deps,
        &mallory_jwt,
        &format!(
            "?accountId={stranger_account}&conversationId={}",
            world.conversation
        ),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("conversation_not_found"))
    );

    // Nor can she open the victim's inbox over WebSocket.
    let (status, _) = connect(&world.deps, &mallory_jwt, Some(world.owner)).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_read_only_client_cannot_take_over_and_members_can_be_assigned() {
    let world = world().await;
    let (carol, _) = person(&world.test, "Carol").await;
    join(&world.test, world.owner, carol, "client").await;
    let (sam, _) = person(&world.test, "Sam").await;
    join(&world.test, world.owner, sam, "member").await;

    let refused = as_user(&world.test, carol, async |tx| {
        takeover::start(tx, carol, world.conversation).await
    })
    .await
    .unwrap_err();
    assert_eq!(refused.code(), "role_forbidden");

    let not_eligible = as_user(&world.test, world.owner, async |tx| {
        takeover::assign(tx, world.conversation, Some(carol)).await
    })
    .await
    .unwrap_err();
    assert_eq!(not_eligible.code(), "validation_failed");
    let assigned = as_user(&world.test, world.owner, async |tx| {
        takeover::assign(tx, world.conversation, Some(sam)).await
    })
    .await
    .unwrap();
    assert_eq!(assigned, Some(sam));

    // Closing with a summary ends the conversation for good.
    as_user(&world.test, sam, async |tx| {
        takeover::start(tx, sam, world.conversation).await
    })
    .await
    .unwrap();
    as_user(&world.test, sam, async |tx| {
        takeover::end(
            tx,
            sam,
            world.conversation,
            EndAction::Closed,
            Some("Refund issued"),
        )
        .await
    })
    .await
    .unwrap();
    let row = world
        .test
        .superuser()
        .await
        .query_one(
            "SELECT status, summary, assigned_to FROM conversations WHERE id = $1",
            &[&world.conversation],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "closed");
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("Refund issued")
    );
    assert_eq!(row.get::<_, Option<Uuid>>(2), Some(sam));
}

#[tokio::test]
async fn a_visitor_asking_for_a_person_flags_the_conversation_for_the_inbox() {
    let world = world().await;
    let token = visitor_token(&world).await;
    let (status, body) = call(
        &world.deps,
        request("POST", "/request-human", Some(&token), None),
    )
    .await;
    assert_eq!((status, &body), (200, &json!({ "needsHuman": true })));

    let page = as_user(&world.test, world.owner, async |tx| {
        takeover::list_attention(tx, world.owner, None, None).await
    })
    .await
    .unwrap();
    assert_eq!(page.data.len(), 1);
    assert!(page.data[0].needs_human);
    assert_eq!(
        page.data[0].last_message.as_deref(),
        Some("Hello, is anyone there?")
    );

    let (_, page) = events(&world.deps, &token, "").await;
    let last = page["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["type"], "conversation.updated");
    assert_eq!(last["data"]["needsHuman"], true);

    // Typing over HTTP is accepted; a visitor token cannot read another conversation.
    let (status, _) = call(
        &world.deps,
        request(
            "POST",
            "/typing",
            Some(&token),
            Some(json!({ "typing": true })),
        ),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = events(
        &world.deps,
        &token,
        &format!("?conversationId={}", Uuid::new_v4()),
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn tokens_are_only_issued_for_the_visitors_own_conversation() {
    let world = world().await;
    let (status, body) = call(
        &world.deps,
        request(
            "POST",
            "/token",
            None,
            Some(json!({
                "agentId": world.agent,
                "visitorId": "someone-else",
                "conversationId": world.conversation,
            })),
        ),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("conversation_not_found"))
    );
    let (status, body) = events(&world.deps, "garbage", "").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_token"))
    );
    let (status, _) = connect(&world.deps, "garbage", None).await;
    assert_eq!(status, 401);
    let token = visitor_token(&world).await;
    let (status, _) = connect(&world.deps, &token, None).await;
    assert_eq!(status, 200);
}

/// A WebSocket `$connect` as API Gateway sends it.
async fn connect(deps: &RealtimeDeps, token: &str, account: Option<Uuid>) -> (u16, Value) {
    let mut query = HashMap::from([("token".to_owned(), token.to_owned())]);
    if let Some(account) = account {
        query.insert("accountId".into(), account.to_string());
    }
    let ctx: ApiGatewayWebsocketProxyRequestContext = serde_json::from_value(json!({
        "routeKey": "$connect",
        "eventType": "CONNECT",
        "connectionId": format!("test-{}", Uuid::new_v4().simple()),
        "connectedAt": 0,
        "requestTimeEpoch": 0,
        "stage": "local",
        "domainName": "localhost",
        "identity": { "sourceIp": "127.0.0.1" },
    }))
    .unwrap();
    let req = lambda_http::http::Request::builder()
        .uri("/")
        .body(Body::Empty)
        .unwrap()
        .with_query_string_parameters(query)
        .with_request_context(RequestContext::WebSocket(ctx));
    call(deps, req).await
}
