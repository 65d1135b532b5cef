//! A visitor's conversation end to end over HTTP, against the running functions: knowledge
//! added through the management API and ingested by the real worker, the widget's config from
//! get-widget-config, questions to widget-chat as JSON and as a Server-Sent Events stream
//! (extractive answers: no model provider is configured locally), and the unanswered question
//! listed as a knowledge gap for the owner.

mod common;

use std::time::Duration;

use chatpad::llm::sse;
use chatpad::testing::env_var;
use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn function_url(function: &str) -> String {
    let port = env_var("CARGO_LAMBDA_PORT").unwrap_or_else(|| "9000".into());
    format!("http://localhost:{port}/lambda-url/{function}/")
}

async fn ready_source(owner: &User, agent: &str, title: &str, text: &str) -> String {
    let (status, source) = owner
        .post(
            &format!("/v1/agents/{agent}/knowledge"),
            json!({ "type": "text", "title": title, "text": text }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{source}");
    let id = source["id"].as_str().unwrap().to_owned();
    // A liveness bound, not a speed check: the first job also starts the worker.
    for _ in 0..600 {
        let (_, source) = owner.get(&format!("/v1/knowledge/{id}")).await;
        match source["status"].as_str() {
            Some("ready") => return id,
            Some("error") => panic!("ingestion failed: {source}"),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    panic!("source {id} was not processed within 5 minutes (see .local/pump.log)");
}

async fn chat(body: Value) -> (StatusCode, Value) {
    let response = send(
        reqwest::Client::new()
            .post(function_url("widget-chat"))
            .json(&body),
    )
    .await;
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_visitor_chats_with_an_agent_that_knows_its_documents() {
    let owner = User::new("chat-owner");
    let (status, agent) = owner
        .post(
            "/v1/agents",
            json!({ "name": "Support", "greeting": "Hi, ask me about returns." }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{agent}");
    let agent = agent["id"].as_str().unwrap().to_owned();
    let returns = ready_source(
        &owner,
        &agent,
        "Returns policy",
        "# Returns\n\nItems can be returned within 30 days of delivery for a full refund. \
         Refunds reach your card within 5 business days.\n\n# Gift cards\n\nGift cards \
         cannot be exchanged for cash.",
    )
    .await;

    // The widget's configuration, then the same again from cache (304).
    let config = send(reqwest::Client::new().get(format!(
        "{}?agentId={agent}",
        function_url("get-widget-config")
    )))
    .await;
    assert_eq!(config.status(), StatusCode::OK);
    let etag = config.headers()["etag"].to_str().unwrap().to_owned();
    let config: Value = config.json().await.unwrap();
    assert_eq!(config["greeting"], "Hi, ask me about returns.");
    let cached = send(
        reqwest::Client::new()
            .get(format!(
                "{}?agentId={agent}",
                function_url("get-widget-config")
            ))
            .header("if-none-match", &etag),
    )
    .await;
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);

    // A question as JSON: an extractive answer citing the document.
    let (status, answer) = chat(json!({
        "agentId": agent, "visitorId": "visitor-e2e",
        "message": "How many days do I have to return an item?",
    }))
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["answeredBy"], "extractive");
    assert!(
        answer["text"].as_str().unwrap().contains("within 30 days"),
        "{answer}"
    );
    assert_eq!(answer["citations"][0]["sourceId"], returns.as_str());
    assert_eq!(answer["citations"][0]["title"], "Returns policy");

    // The next question in the same conversation, streamed.
    let response = send(
        reqwest::Client::new()
            .post(function_url("widget-chat"))
            .header("accept", "text/event-stream")
            .json(&json!({
                "agentId": agent, "visitorId": "visitor-e2e",
                "conversationId": answer["conversationId"],
                "message": "When does the refund reach my card?",
            })),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut response = response;
    let mut decoder = sse::Decoder::default();
    let mut events = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        events.extend(decoder.feed(&chunk).unwrap());
    }
    let names: Vec<&str> = events.iter().filter_map(|e| e.name.as_deref()).collect();
    assert_eq!(names.first(), Some(&"start"), "{names:?}");
    assert!(names.contains(&"delta"), "{names:?}");
    assert_eq!(names.last(), Some(&"done"), "{names:?}");
    let done: Value = serde_json::from_str(&events.last().unwrap().data).unwrap();
    assert_eq!(done["conversationId"], answer["conversationId"]);
    assert_eq!(done["conversationCreated"], false);
    assert!(
        done["text"].as_str().unwrap().contains("5 business days"),
        "{done}"
    );
    assert_eq!(done["citations"][0]["sourceId"], returns.as_str());

    // A question the documents do not answer: the fallback, and a gap for the owner.
    let question = "Do you sell replacement parts for the X200 drone?";
    let (status, fallback) = chat(json!({
        "agentId": agent, "visitorId": "visitor-e2e", "message": question,
    }))
    .await;
    assert_eq!(status, StatusCode::OK, "{fallback}");
    assert_eq!(fallback["answeredBy"], "fallback");
    assert_eq!(fallback["offerHuman"], true);
    let (status, gaps) = owner
        .get(&format!("/v1/agents/{agent}/knowledge-gaps"))
        .await;
    assert_eq!(status, StatusCode::OK, "{gaps}");
    assert_eq!(gaps["data"][0]["question"], question);
    let gap = gaps["data"][0]["id"].as_str().unwrap().to_owned();
    let (status, resolved) = owner
        .patch(
            &format!("/v1/knowledge-gaps/{gap}"),
            json!({ "resolved": true }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    assert!(resolved["resolvedAt"].is_string());
    let (_, open) = owner
        .get(&format!("/v1/agents/{agent}/knowledge-gaps"))
        .await;
    assert!(open["data"].as_array().unwrap().is_empty(), "{open}");

    // Another account cannot read this agent's gaps.
    let stranger = User::new("chat-stranger");
    let (status, _) = stranger
        .get(&format!("/v1/agents/{agent}/knowledge-gaps"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
