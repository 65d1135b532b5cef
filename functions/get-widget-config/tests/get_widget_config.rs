//! get-widget-config called in-process against real Postgres: what the widget gets, caching
//! with ETag, plan-gated branding, allowed origins, unknown and disabled agents.

use chatpad::Deps;
use chatpad::testing::TestDb;
use http_body_util::BodyExt;
use lambda_http::http::header;
use lambda_http::{Body, Request, RequestExt};
use serde_json::{Value, json};
use uuid::Uuid;

async fn call(deps: &Deps, req: Request) -> (u16, lambda_http::http::HeaderMap, Value) {
    let response = get_widget_config::handle(deps, req).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn get(agent: Uuid) -> Request {
    lambda_http::http::Request::builder()
        .method("GET")
        .uri(format!("/?agentId={agent}"))
        .body(Body::Empty)
        .unwrap()
        .with_query_string_parameters(
            [("agentId".to_owned(), agent.to_string())]
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        )
}

fn post(body: Value) -> Request {
    lambda_http::http::Request::builder()
        .method("POST")
        .uri("/")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test]
async fn config_is_public_cacheable_and_plan_aware() {
    let test = TestDb::new().await;
    let deps = Deps::new(test.config()).unwrap();
    let su = test.superuser().await;
    let basic = test.user(None).await;
    let pro = test.user(Some("pro")).await;
    let mut agents = Vec::new();
    for (owner, appearance) in [
        (basic, json!({"primaryColor": "#112233"})),
        (
            pro,
            json!({"primaryColor": "#112233", "hideBranding": true}),
        ),
    ] {
        let agent = test.agent(owner).await;
        su.execute(
            "UPDATE agents SET appearance = $2, greeting = 'Ahoy!', help_center_enabled = true,
                    lead_form_fields = '[{\"name\":\"email\",\"label\":\"Email\",\"type\":\"email\",\"required\":true}]',
                    system_prompt = 'secret instructions'
             WHERE id = $1",
            &[&agent, &appearance],
        )
        .await
        .unwrap();
        agents.push(agent);
    }

    let (status, headers, body) = call(&deps, get(agents[0])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["greeting"], "Ahoy!");
    assert_eq!(body["appearance"]["primaryColor"], "#112233");
    assert_eq!(body["leadFormFields"][0]["name"], "email");
    assert_eq!(body["features"]["leadForm"], true);
    assert_eq!(body["features"]["poweredBy"], true);
    // No published article yet: no help center to show.
    assert_eq!(body["helpCenter"], false);
    assert!(!body.to_string().contains("secret instructions"));
    assert!(
        headers[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("max-age=60")
    );
    let etag = headers[header::ETAG].to_str().unwrap().to_owned();

    // Same content: 304 for the cached copy; a change in the agent changes the tag.
    let mut again = get(agents[0]);
    again
        .headers_mut()
        .insert(header::IF_NONE_MATCH, etag.parse().unwrap());
    let (status, _, _) = call(&deps, again).await;
    assert_eq!(status, 304);
    su.execute(
        "INSERT INTO help_articles (agent_id, title, body_markdown, published) VALUES ($1, 'FAQ', 'x', true)",
        &[&agents[0]],
    )
    .await
    .unwrap();
    let (_, headers, body) = call(&deps, get(agents[0])).await;
    assert_eq!(body["helpCenter"], true);
    assert_ne!(headers[header::ETAG].to_str().unwrap(), etag);

    // The pro plan allows hiding the branding; after a downgrade it shows again.
    let (_, _, body) = call(&deps, post(json!({ "agentId": agents[1] }))).await;
    assert_eq!(body["features"]["poweredBy"], false);
    su.execute("DELETE FROM subscriptions WHERE user_id = $1", &[&pro])
        .await
        .unwrap();
    let (_, _, body) = call(&deps, post(json!({ "agentId": agents[1] }))).await;
    assert_eq!(body["features"]["poweredBy"], true);
}

#[tokio::test]
async fn unknown_disabled_and_refused_origins() {
    let test = TestDb::new().await;
    let deps = Deps::new(test.config()).unwrap();
    let owner = test.user(None).await;
    let agent = test.agent(owner).await;
    let su = test.superuser().await;
    su.execute(
        "UPDATE agents SET allowed_domains = '{shop.test,*.shop.test}' WHERE id = $1",
        &[&agent],
    )
    .await
    .unwrap();

    let from = |origin: &str| {
        let mut req = get(agent);
        req.headers_mut()
            .insert(header::ORIGIN, origin.parse().unwrap());
        req
    };
    let (status, headers, _) = call(&deps, from("https://www.shop.test")).await;
    assert_eq!(status, 200);
    assert_eq!(
        headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://www.shop.test"
    );
    let (status, headers, body) = call(&deps, from("https://evil.test")).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "origin_not_allowed");
    assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));

    let (status, _, body) = call(&deps, get(Uuid::new_v4())).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("agent_not_found"))
    );
    su.execute(
        "UPDATE agents SET status = 'disabled' WHERE id = $1",
        &[&agent],
    )
    .await
    .unwrap();
    let (status, _, body) = call(&deps, get(agent)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("agent_not_found"))
    );

    let (status, _, body) = call(&deps, post(json!({ "agentId": "x" }))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_json"))
    );
    let bare = lambda_http::http::Request::builder()
        .method("GET")
        .uri("/")
        .body(Body::Empty)
        .unwrap();
    let (status, _, _) = call(&deps, bare).await;
    assert_eq!(status, 422);
    let delete = lambda_http::http::Request::builder()
        .method("DELETE")
        .uri("/")
        .body(Body::Empty)
        .unwrap();
    assert_eq!(call(&deps, delete).await.0, 405);
}

fn articles(agent: Uuid, q: Option<&str>) -> Request {
    let mut params = vec![("agentId".to_owned(), agent.to_string())];
    if let Some(q) = q {
        params.push(("q".to_owned(), q.to_owned()));
    }
    lambda_http::http::Request::builder()
        .method("GET")
        .uri(format!("/articles?agentId={agent}"))
        .body(Body::Empty)
        .unwrap()
        .with_query_string_parameters(
            params
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        )
}

#[tokio::test]
async fn the_help_center_lists_and_searches_published_articles_only() {
    let test = TestDb::new().await;
    let deps = Deps::new(test.config()).unwrap();
    let agent = test.agent(test.user(None).await).await;
    let other = test.agent(test.user(None).await).await;
    let su = test.superuser().await;
    for (owner, title, body, published, position) in [
        (
            agent,
            "Returns",
            "Send items back within **30 days**.",
            true,
            2,
        ),
        (agent, "Shipping times", "Orders ship in two days.", true, 1),
        (
            agent,
            "Internal draft",
            "Not ready: shipping secrets.",
            false,
            0,
        ),
        (other, "Other agent's shipping", "Not yours.", true, 0),
    ] {
        su.execute(
            "INSERT INTO help_articles (agent_id, title, body_markdown, published, position)
             VALUES ($1, $2, $3, $4, $5)",
            &[&owner, &title, &body, &published, &position],
        )
        .await
        .unwrap();
    }

    // The help center is off until the owner turns it on.
    let (status, _, body) = call(&deps, articles(agent, None)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("help_center_disabled"))
    );
    su.execute(
        "UPDATE agents SET help_center_enabled = true WHERE id = $1",
        &[&agent],
    )
    .await
    .unwrap();

    let (status, headers, body) = call(&deps, articles(agent, None)).await;
    assert_eq!(status, 200, "{body}");
    let titles: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Shipping times", "Returns"]);
    assert_eq!(
        body["data"][1]["bodyMarkdown"],
        "Send items back within **30 days**."
    );
    assert!(body["data"][0].get("published").is_none());
    assert!(
        headers[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("max-age=60")
    );

    let (_, _, body) = call(&deps, articles(agent, Some("shipping"))).await;
    assert_eq!(body["data"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["data"][0]["title"], "Shipping times");

    su.execute(
        "UPDATE agents SET allowed_domains = '{shop.test}' WHERE id = $1",
        &[&agent],
    )
    .await
    .unwrap();
    let mut foreign = articles(agent, None);
    foreign
        .headers_mut()
        .insert(header::ORIGIN, "https://evil.test".parse().unwrap());
    assert_eq!(call(&deps, foreign).await.0, 403);
    let (status, _, body) = call(&deps, articles(Uuid::new_v4(), None)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("agent_not_found"))
    );
}
