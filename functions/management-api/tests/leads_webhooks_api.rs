//! Leads and webhooks end to end, as a customer uses them: webhook endpoints managed through the
//! management API over HTTP, a visitor's contact form posted to the running create-widget-lead,
//! the events relayed to SQS and delivered by the real webhook-worker (run by the local event
//! pump) to a receiver on loopback that checks every signature with an independent Standard
//! Webhooks implementation — then the delivery log, the leads listing and the CSV export read
//! back through the API.

mod common;

use std::time::Duration;

use chatpad::testing::env_var;
use chatpad::testing::http::{Seen, Server, respond};
use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn lead_url() -> String {
    let port = env_var("CARGO_LAMBDA_PORT").unwrap_or_else(|| "9000".into());
    format!("http://localhost:{port}/lambda-url/create-widget-lead/")
}

/// Posts a contact form as the widget does.
async fn submit(body: Value, origin: Option<&str>) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .post(lead_url())
        .json(&body)
        .timeout(Duration::from_secs(120));
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    let response = send(request).await;
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Polls an endpoint's delivery log until `count` deliveries succeeded; a liveness bound, not
/// a speed check (the first delivery also compiles and starts the worker).
async fn delivered(user: &User, webhook: &str, count: usize) -> Vec<Value> {
    for _ in 0..600 {
        let (status, page) = user
            .get(&format!(
                "/v1/webhooks/{webhook}/deliveries?status=succeeded"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let data = page["data"].as_array().unwrap().clone();
        if data.len() >= count {
            return data;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("deliveries of {webhook} did not succeed within 5 minutes (see .local/pump.log)");
}

fn verify(seen: &Seen, secret: &str) -> Value {
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, seen.header(name).unwrap().parse().unwrap());
    }
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(&seen.body, &headers)
        .expect("the signature verifies");
    serde_json::from_slice(&seen.body).unwrap()
}

#[tokio::test]
async fn webhook_endpoints_need_the_plan_feature_and_valid_urls() {
    let owner = User::new("hooks");
    let account = owner.sign_in().await;
    let hook = json!({"url": "https://hooks.example.com/in", "events": ["lead.created"]});
    let (status, refused) = owner.post("/v1/webhooks", hook.clone()).await;
    assert_eq!(
        (status, code(&refused)),
        (StatusCode::FORBIDDEN, "plan_limit_exceeded")
    );
    assert_eq!(refused["error"]["details"]["upgrade_to"], "advanced");

    set_plan(&account, "advanced").await;
    for (body, field) in [
        (
            json!({"url": "http://169.254.169.254/latest", "events": ["lead.created"]}),
            "url",
        ),
        (
            json!({"url": "ftp://example.com/", "events": ["lead.created"]}),
            "url",
        ),
        (
            json!({"url": "https://example.com/", "events": []}),
            "events",
        ),
    ] {
        let (status, err) = owner.post("/v1/webhooks", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
        assert!(
            err["error"]["details"]["fields"][field].is_string(),
            "{err}"
        );
    }
    let (status, _) = owner
        .post(
            "/v1/webhooks",
            json!({"url": "https://example.com/", "events": ["lead.deleted"]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, created) = owner.post("/v1/webhooks", hook).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let (status, got) = owner.get(&format!("/v1/webhooks/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        got.get("secret").is_none(),
        "the secret is shown only when issued"
    );

    let (status, patched) = owner
        .patch(
            &format!("/v1/webhooks/{id}"),
            json!({"enabled": false, "events": ["lead.created", "takeover.started"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["enabled"], false);
    assert_eq!(
        patched["events"],
        json!(["lead.created", "takeover.started"])
    );

    let (status, rotated) = owner
        .post(
            &format!("/v1/webhooks/{id}/rotate-secret"),
            json!({"graceHours": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_ne!(rotated["secret"].as_str().unwrap(), secret);
    assert!(rotated["previousSecretExpiresAt"].is_string());

    // Another tenant sees nothing of it.
    let stranger = User::new("stranger");
    stranger.sign_in().await;
    let (status, _) = stranger.get(&format!("/v1/webhooks/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, page) = owner.get("/v1/webhooks").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    let (status, _) = owner.delete(&format!("/v1/webhooks/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = owner.get(&format!("/v1/webhooks/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, log) = owner.get("/v1/security-logs?eventType=webhook.").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(log["data"].as_array().unwrap().len(), 4, "{log}");
}

#[tokio::test]
async fn a_contact_form_becomes_a_lead_and_a_signed_delivery_end_to_end() {
    let receiver = Server::start(|_, _| respond(200, "application/json", "{}")).await;
    let owner = User::new("leads");
    let account = owner.sign_in().await;
    set_plan(&account, "advanced").await;
    let (status, agent) = owner
        .post(
            "/v1/agents",
            json!({"name": "Sales", "leadFormFields": [
                {"name": "name", "label": "Name", "type": "text", "required": true},
                {"name": "email", "label": "Email", "type": "email", "required": true},
                {"name": "company", "label": "Company", "type": "text"}
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{agent}");
    let agent_id = agent["id"].as_str().unwrap().to_owned();
    let (status, hook) = owner
        .post(
            "/v1/webhooks",
            json!({"url": receiver.url("/chatpad").as_str(),
                   "events": ["lead.created", "conversation.created"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let (hook_id, secret) = (
        hook["id"].as_str().unwrap().to_owned(),
        hook["secret"].as_str().unwrap().to_owned(),
    );

    // Invalid forms are refused field by field; nothing is stored.
    let (status, err) = submit(
        json!({"agentId": agent_id, "visitorId": "v-bad", "fields": {"name": "Ada", "email": "nope", "fax": "1"}}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(err["error"]["details"]["fields"]["fields.email"].is_string());
    assert!(err["error"]["details"]["fields"]["fields.fax"].is_string());
    let (status, _) = submit(
        json!({"agentId": uuid::Uuid::new_v4(), "visitorId": "v", "fields": {}}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let form = json!({"agentId": agent_id, "visitorId": "v-ada",
                      "fields": {"name": "Ada", "email": "ada@example.com", "company": "=cmd()"}});
    let (status, captured) = submit(form.clone(), Some("https://anywhere.example")).await;
    assert_eq!(status, StatusCode::CREATED, "{captured}");
    assert_eq!(captured["conversationCreated"], true);
    assert_eq!(captured["duplicate"], false);
    let lead_id = captured["leadId"].as_str().unwrap().to_owned();
    let conversation_id = captured["conversationId"].as_str().unwrap().to_owned();
    // Sent twice (a double click): the same lead comes back.
    let (status, again) = submit(form, None).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(
        (again["leadId"].as_str(), again["duplicate"].as_bool()),
        (Some(lead_id.as_str()), Some(true))
    );

    // Both events reach the receiver, signed.
    let deliveries = delivered(&owner, &hook_id, 2).await;
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    let mut types = Vec::new();
    for seen in &requests {
        let body = verify(seen, &secret);
        types.push(body["type"].as_str().unwrap().to_owned());
        if body["type"] == "lead.created" {
            assert_eq!(body["data"]["leadId"], lead_id);
            assert_eq!(body["data"]["conversationId"], conversation_id);
            assert_eq!(body["data"]["fields"]["company"], "=cmd()");
        }
    }
    types.sort();
    assert_eq!(types, ["conversation.created", "lead.created"]);
    assert!(
        deliveries
            .iter()
            .all(|d| d["responseStatus"] == 200 && d["attempts"] == 1)
    );

    // The log shows each attempt; a replay sends the same event id again.
    let delivery_id = deliveries[0]["id"].as_str().unwrap();
    let (status, detail) = owner
        .get(&format!("/v1/webhook-deliveries/{delivery_id}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["attemptLog"].as_array().unwrap().len(), 1);
    let (status, replayed) = owner
        .post(
            &format!("/v1/webhook-deliveries/{delivery_id}/replay"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{replayed}");
    for _ in 0..600 {
        if receiver.requests().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let requests = receiver.requests();
    assert_eq!(requests.len(), 3, "the replay arrived");
    assert_eq!(
        requests[2].header("webhook-id").unwrap(),
        detail["eventId"].as_str().unwrap()
    );

    // The team sees, qualifies and exports the lead.
    let (status, page) = owner
        .get(&format!("/v1/leads?agentId={agent_id}&status=new"))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["data"][0]["id"], lead_id);
    assert_eq!(page["data"][0]["email"], "ada@example.com");
    assert_eq!(page["data"][0]["conversationId"], conversation_id);
    let (status, lead) = owner
        .patch(
            &format!("/v1/leads/{lead_id}"),
            json!({"status": "contacted"}),
        )
        .await;
    assert_eq!(
        (status, lead["status"].as_str()),
        (StatusCode::OK, Some("contacted"))
    );
    let (status, _) = owner
        .patch(&format!("/v1/leads/{lead_id}"), json!({"status": "won"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let response = send(
        owner
            .http
            .get(format!("{}/v1/leads/export?agentId={agent_id}", base_url()))
            .bearer_auth(&owner.token),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = response.text().await.unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "id,created_at,status,agent_id,conversation_id,visitor_id,name,email,phone,company"
    );
    let row = lines.next().unwrap();
    assert!(
        row.starts_with(&lead_id) && row.contains("ada@example.com") && row.ends_with("'=cmd()"),
        "{row}"
    );
    assert!(lines.next().is_none());

    // A site that is not one of the agent's domains cannot post its form.
    let (status, _) = owner
        .patch(
            &format!("/v1/agents/{agent_id}"),
            json!({"allowedDomains": ["shop.example.com"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let other = json!({"agentId": agent_id, "visitorId": "v-eve", "fields": {"name": "Eve", "email": "eve@example.com"}});
    let (status, err) = submit(other.clone(), Some("https://evil.example.net")).await;
    assert_eq!(
        (status, code(&err)),
        (StatusCode::FORBIDDEN, "origin_not_allowed")
    );
    let (status, _) = submit(other, Some("https://shop.example.com")).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn servers_post_leads_with_a_scoped_api_key() {
    let owner = User::new("lead-api");
    let account = owner.sign_in().await;
    set_plan(&account, "advanced").await;
    let (status, agent) = owner.post("/v1/agents", json!({ "name": "Sales" })).await;
    assert_eq!(status, StatusCode::CREATED, "{agent}");
    let agent = agent["id"].as_str().unwrap().to_owned();
    let key = |scopes: Value| {
        let owner = &owner;
        async move {
            let (status, created) = owner
                .post("/v1/api-keys", json!({ "name": "crm", "scopes": scopes }))
                .await;
            assert_eq!(status, StatusCode::CREATED, "{created}");
            created["secret"].as_str().unwrap().to_owned()
        }
    };
    let post = |secret: String| {
        let agent = agent.clone();
        async move {
            let response = send(
                reqwest::Client::new()
                    .post(lead_url())
                    .bearer_auth(secret)
                    // A server may forward any page's origin: it is not checked for keys.
                    .header("origin", "https://crm.elsewhere.test")
                    .json(&json!({
                        "agentId": agent, "visitorId": "crm-7",
                        "fields": { "email": "ada@example.com" },
                    })),
            )
            .await;
            let status = response.status();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, lead) = post(key(json!(["leads:write"])).await).await;
    assert_eq!(status, StatusCode::CREATED, "{lead}");
    let (status, refused) = post(key(json!(["leads:read"])).await).await;
    assert_eq!(
        (status, code(&refused)),
        (StatusCode::FORBIDDEN, "insufficient_scope")
    );
    let (status, refused) = post("cpk_live_nonsense".to_owned()).await;
    assert_eq!(
        (status, code(&refused)),
        (StatusCode::UNAUTHORIZED, "invalid_api_key")
    );
    let (status, leads) = owner.get(&format!("/v1/leads?agentId={agent}")).await;
    assert_eq!(status, StatusCode::OK, "{leads}");
    assert_eq!(leads["data"].as_array().unwrap().len(), 1);
}
