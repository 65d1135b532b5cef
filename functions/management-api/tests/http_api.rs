//! End to end over HTTP against the running function (`cargo lambda watch`, started by
//! `make test`): sign-in, agents, help articles, team roles, API keys and scopes, plan limits,
//! cross-tenant isolation and the security log. Each test signs in fresh users, so tests share
//! the local database without seeing each other.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Failed sign-ins with an invalid token in the security log (they belong to no account, so
/// only the owner role sees them).
async fn failed_sign_ins_logged() -> i64 {
    owner_db()
        .await
        .query_one(
            "SELECT count(*) FROM security_logs WHERE event_type = 'auth.failed' AND details->>'reason' = 'invalid_token'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn an_owner_manages_agents_articles_and_keys_and_sees_it_all_in_the_security_log() {
    let owner = User::new("owner");
    let account = owner.sign_in().await;

    // Basic plan: one agent, with a clear error naming the plan that lifts the limit.
    let (status, agent) = owner
        .post(
            "/v1/agents",
            json!({"name": "Support", "model": "openai/gpt-4o-mini", "temperature": 0.2}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{agent}");
    let agent_id = agent["id"].as_str().unwrap().to_owned();
    assert_eq!(agent["model"], "openai/gpt-4o-mini");
    let (status, refused) = owner.post("/v1/agents", json!({"name": "Second"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(code(&refused), "plan_limit_exceeded");
    assert_eq!(refused["error"]["details"]["upgrade_to"], "advanced");
    // API keys are an Advanced feature.
    let (status, refused) = owner
        .post(
            "/v1/api-keys",
            json!({"name": "ci", "scopes": ["agents:read"]}),
        )
        .await;
    assert_eq!(
        (status, code(&refused)),
        (StatusCode::FORBIDDEN, "plan_limit_exceeded")
    );

    set_plan(&account, "advanced").await;
    let (status, sub) = owner.get("/v1/subscription").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sub["plan"]["id"], "advanced");
    assert_eq!(sub["usage"]["agents"], 1);
    assert_eq!(sub["plan"]["limits"]["agents"], 5);

    // Update with validation errors per field, then a valid partial update.
    let (status, invalid) = owner
        .patch(
            &format!("/v1/agents/{agent_id}"),
            json!({"temperature": 3, "allowedDomains": ["not a domain"]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(invalid["error"]["details"]["fields"]["temperature"].is_string());
    assert!(invalid["error"]["details"]["fields"]["allowedDomains"].is_string());
    let (status, updated) = owner
        .patch(
            &format!("/v1/agents/{agent_id}"),
            json!({"greeting": "Hello!", "appearance": {"primaryColor": "#0055ff"}, "allowedDomains": ["Shop.Example.com"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["greeting"], "Hello!");
    assert_eq!(updated["allowedDomains"], json!(["shop.example.com"]));
    assert_eq!(updated["name"], "Support", "untouched fields stay");

    // Pagination: three more agents, pages of two by name.
    for name in ["Alpha", "Beta", "Gamma"] {
        assert_eq!(
            owner.post("/v1/agents", json!({"name": name})).await.0,
            StatusCode::CREATED
        );
    }
    let (_, page1) = owner.get("/v1/agents?sort=name&limit=2").await;
    let names = field(&page1, "name");
    assert_eq!(names, ["Alpha", "Beta"]);
    let cursor = page1["nextCursor"].as_str().unwrap();
    let (_, page2) = owner
        .get(&format!("/v1/agents?sort=name&limit=2&cursor={cursor}"))
        .await;
    let names = field(&page2, "name");
    assert_eq!(names, ["Gamma", "Support"]);
    assert!(page2["nextCursor"].is_null());
    let (_, filtered) = owner.get("/v1/agents?q=amm").await;
    assert_eq!(filtered["data"].as_array().unwrap().len(), 1);

    // Help articles.
    let (status, article) = owner
        .post(
            &format!("/v1/agents/{agent_id}/help-articles"),
            json!({"title": "Returns", "bodyMarkdown": "Send it back within **30 days**.", "published": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{article}");
    let (_, found) = owner
        .get(&format!("/v1/agents/{agent_id}/help-articles?q=days"))
        .await;
    assert_eq!(found["data"][0]["title"], "Returns");

    // An API key: the secret once, scopes honoured, revocation final.
    let (status, created) = owner
        .post(
            "/v1/api-keys",
            json!({"name": "ci", "scopes": ["agents:read"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    let key_id = created["id"].as_str().unwrap().to_owned();
    let (_, keys) = owner.get("/v1/api-keys").await;
    assert!(
        !keys.to_string().contains(&secret),
        "listing shows the secret"
    );
    assert_eq!(keys[0]["prefix"], created["prefix"]);
    let key = User::with_key(&secret);
    let (status, listed) = key.get("/v1/agents").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["data"].as_array().unwrap().len(), 4);
    let (status, refused) = key.post("/v1/agents", json!({"name": "By key"})).await;
    assert_eq!(
        (status, code(&refused)),
        (StatusCode::FORBIDDEN, "insufficient_scope")
    );
    let (status, refused) = key.get("/v1/security-logs").await;
    assert_eq!(
        (status, code(&refused)),
        (StatusCode::FORBIDDEN, "insufficient_scope")
    );
    assert_eq!(
        owner.delete(&format!("/v1/api-keys/{key_id}")).await.0,
        StatusCode::OK
    );
    let (status, refused) = key.get("/v1/agents").await;
    assert_eq!(
        (status, code(&refused)),
        (StatusCode::UNAUTHORIZED, "invalid_api_key")
    );

    // Delete, then the agent is gone.
    assert_eq!(
        owner.delete(&format!("/v1/agents/{agent_id}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        owner.get(&format!("/v1/agents/{agent_id}")).await.0,
        StatusCode::NOT_FOUND
    );

    // Everything above is in the log, with who did it.
    let (status, log) = owner.get("/v1/security-logs?limit=100").await;
    assert_eq!(status, StatusCode::OK);
    let events = field(&log, "eventType");
    for expected in [
        "agent.created",
        "agent.updated",
        "agent.deleted",
        "help_article.created",
        "api_key.created",
        "api_key.used",
        "api_key.revoked",
        "api_key.rejected",
    ] {
        assert!(
            events.contains(&expected),
            "{expected} missing from {events:?}"
        );
    }
    let (_, only_keys) = owner.get("/v1/security-logs?eventType=api_key.").await;
    assert!(
        only_keys["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["eventType"].as_str().unwrap().starts_with("api_key."))
    );
}

#[tokio::test]
async fn each_team_role_gets_exactly_its_capabilities() {
    let owner = User::new("owner");
    let account = owner.sign_in().await;
    set_plan(&account, "advanced").await;
    let (_, agent) = owner.post("/v1/agents", json!({"name": "Shared"})).await;
    let agent_id = agent["id"].as_str().unwrap().to_owned();

    let mut members = Vec::new();
    for role in ["admin", "manager", "member", "client"] {
        let user = User::new(role);
        let (status, invitation) = owner
            .post("/v1/team", json!({"email": user.email, "role": role}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{invitation}");
        assert_eq!(invitation["status"], "pending");
        user.sign_in().await;
        let (status, accepted) = user
            .post(
                &format!(
                    "/v1/invitations/{}/accept",
                    invitation["id"].as_str().unwrap()
                ),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{accepted}");
        assert_eq!(accepted["status"], "active");
        members.push((role, user.in_account(&account)));
    }
    // Nobody can mint a super_admin but a platform admin.
    let (status, _) = owner
        .post(
            "/v1/team",
            json!({"email": "x@example.com", "role": "super_admin"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    for (role, user) in &members {
        let rank = match *role {
            "admin" => 4,
            "manager" => 3,
            "member" => 2,
            _ => 1,
        };
        let (status, _) = user.get(&format!("/v1/agents/{agent_id}")).await;
        assert_eq!(status, StatusCode::OK, "{role} reads agents");
        let (status, body) = user
            .patch(
                &format!("/v1/agents/{agent_id}"),
                json!({"greeting": format!("from {role}")}),
            )
            .await;
        assert_eq!(
            status == StatusCode::OK,
            rank >= 3,
            "{role} updating an agent: {status} {body}"
        );
        if rank < 3 {
            assert_eq!(code(&body), "role_forbidden");
        }
        let (status, _) = user.get("/v1/security-logs").await;
        assert_eq!(
            status == StatusCode::OK,
            rank >= 4,
            "{role} reading security logs: {status}"
        );
        let (status, _) = user
            .post(
                "/v1/team",
                json!({"email": format!("{role}-invitee@example.com"), "role": "client"}),
            )
            .await;
        assert_eq!(
            status == StatusCode::CREATED,
            rank >= 4,
            "{role} inviting: {status}"
        );
    }

    // Role changes and removal are admin work, and logged.
    let (_, team) = owner.get("/v1/team").await;
    let client_row = team
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "client")
        .unwrap();
    let client_id = client_row["id"].as_str().unwrap();
    let (status, changed) = owner
        .patch(&format!("/v1/team/{client_id}"), json!({"role": "member"}))
        .await;
    assert_eq!(
        (status, changed["role"].as_str()),
        (StatusCode::OK, Some("member"))
    );
    assert_eq!(
        owner.delete(&format!("/v1/team/{client_id}")).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, log) = owner.get("/v1/security-logs?eventType=team.").await;
    let events = field(&log, "eventType");
    for expected in [
        "team.invited",
        "team.joined",
        "team.role_changed",
        "team.removed",
    ] {
        assert!(
            events.contains(&expected),
            "{expected} missing from {events:?}"
        );
    }
}

#[tokio::test]
async fn another_tenant_gets_404_never_the_data() {
    let alice = User::new("alice");
    let alice_account = alice.sign_in().await;
    let (_, agent) = alice
        .post(
            "/v1/agents",
            json!({"name": "Private", "systemPrompt": "secret sauce"}),
        )
        .await;
    let agent_id = agent["id"].as_str().unwrap().to_owned();
    let (_, article) = alice
        .post(
            &format!("/v1/agents/{agent_id}/help-articles"),
            json!({"title": "Internal"}),
        )
        .await;
    let article_id = article["id"].as_str().unwrap().to_owned();

    let mallory = User::new("mallory");
    mallory.sign_in().await;
    for (method, path) in [
        (Method::GET, format!("/v1/agents/{agent_id}")),
        (Method::PATCH, format!("/v1/agents/{agent_id}")),
        (Method::DELETE, format!("/v1/agents/{agent_id}")),
        (Method::GET, format!("/v1/agents/{agent_id}/help-articles")),
        (Method::GET, format!("/v1/help-articles/{article_id}")),
        (Method::DELETE, format!("/v1/help-articles/{article_id}")),
    ] {
        let body = (method == Method::PATCH).then(|| json!({"name": "pwned"}));
        let (status, response) = mallory.call(method.clone(), &path, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {response}");
        assert!(!response.to_string().contains("secret sauce"));
    }
    let (_, listed) = mallory.get("/v1/agents").await;
    assert_eq!(listed["data"], json!([]));
    // Claiming the account by header does not work either.
    let (status, _) = User::new("mallory2")
        .in_account(&alice_account)
        .get("/v1/agents")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Alice's agent is untouched.
    let (_, still) = alice.get(&format!("/v1/agents/{agent_id}")).await;
    assert_eq!(still["name"], "Private");
}

#[tokio::test]
async fn parallel_creates_at_the_plan_limit_let_one_through() {
    let owner = User::new("racer");
    owner.sign_in().await;
    let attempts = (0..5).map(|i| {
        let owner = &owner;
        async move {
            owner
                .post("/v1/agents", json!({"name": format!("race {i}")}))
                .await
                .0
        }
    });
    let statuses = futures::future::join_all(attempts).await;
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::FORBIDDEN)
    );
}

#[tokio::test]
async fn missing_or_bad_credentials_are_401_and_logged_failures_are_recorded() {
    let anonymous = reqwest::Client::new();
    let response = anonymous
        .get(format!("{}/v1/agents", base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(code(&body), "missing_credentials");
    assert!(body["requestId"].is_string());
    let before = failed_sign_ins_logged().await;
    let forged = User::with_key("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl");
    let (status, body) = forged.get("/v1/me").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );
    assert!(
        failed_sign_ins_logged().await > before,
        "the failed sign-in is in the security log"
    );
    let (status, body) = User::new("x").get("/v1/nowhere").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "route_not_found")
    );
    let (status, _) = User::new("y").call(Method::PUT, "/v1/agents", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn the_served_openapi_document_lists_exactly_the_routes_and_matches_the_committed_copy() {
    let served: Value = send(reqwest::Client::new().get(format!("{}/v1/openapi.json", base_url())))
        .await
        .json()
        .await
        .unwrap();
    assert!(served["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut documented = std::collections::BTreeSet::new();
    for (path, item) in served["paths"].as_object().unwrap() {
        for method in ["get", "post", "patch", "delete", "put"] {
            if item.get(method).is_some() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let routed: std::collections::BTreeSet<(String, String)> = management_api::ROUTES
        .iter()
        .filter(|(_, path, _)| *path != "/v1/openapi.json")
        .map(|(method, path, _)| (method.to_string(), (*path).to_owned()))
        .collect();
    assert_eq!(documented, routed);

    let committed: Value = serde_json::from_str(include_str!("../openapi.json"))
        .expect("functions/management-api/openapi.json");
    assert_eq!(
        served, committed,
        "openapi.json is stale: regenerate with `make openapi`"
    );
}
