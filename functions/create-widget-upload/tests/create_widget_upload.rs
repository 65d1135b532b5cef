//! create-widget-upload called in-process against Postgres and the uploads bucket on moto:
//! the URL it presigns really stores the file under the visitor's prefix; types, sizes,
//! visitor ids, unknown agents and foreign pages are refused.

use chatpad::Deps;
use chatpad::chat::attachments::{AttachmentStore, MAX_BYTES, visitor_prefix};
use chatpad::testing::{TestDb, aws_config, env_var, rate_limiter};
use create_widget_upload::UploadDeps;
use http_body_util::BodyExt;
use lambda_http::http::header;
use lambda_http::{Body, Request};
use serde_json::{Value, json};
use uuid::Uuid;

async fn deps(test: &TestDb) -> UploadDeps {
    let sdk = aws_config().await;
    UploadDeps {
        deps: Deps::new(test.config()).unwrap(),
        limiter: rate_limiter().await,
        store: AttachmentStore::new(
            chatpad::aws::s3_client(&sdk),
            env_var("UPLOADS_BUCKET").expect("UPLOADS_BUCKET"),
        ),
    }
}

fn post(body: Value, origin: Option<&str>) -> Request {
    let mut builder = lambda_http::http::Request::builder()
        .method("POST")
        .uri("/")
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(origin) = origin {
        builder = builder.header(header::ORIGIN, origin);
    }
    builder.body(Body::from(body.to_string())).unwrap()
}

async fn call(deps: &UploadDeps, req: Request) -> (u16, lambda_http::http::HeaderMap, Value) {
    let response = create_widget_upload::handle(deps, req).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn request(agent: Uuid, content_type: &str, size: i64) -> Value {
    json!({"agentId": agent, "visitorId": "v_upload", "fileName": "My invoice (1).pdf",
           "contentType": content_type, "byteSize": size})
}

#[tokio::test]
async fn the_presigned_url_stores_the_file_under_the_visitors_prefix() {
    let test = TestDb::new().await;
    let agent = test.agent(test.user(None).await).await;
    let deps = deps(&test).await;
    let pdf = b"%PDF-1.7 a small pdf".to_vec();

    let (status, headers, ticket) = call(
        &deps,
        post(
            request(agent, "application/pdf", pdf.len() as i64),
            Some("https://shop.test"),
        ),
    )
    .await;
    assert_eq!(status, 201, "{ticket}");
    assert_eq!(headers["access-control-allow-origin"], "https://shop.test");
    let key = ticket["key"].as_str().unwrap();
    assert!(key.starts_with(&visitor_prefix(agent, "v_upload")), "{key}");
    assert!(key.ends_with("/My_invoice__1_.pdf"), "{key}");
    assert_eq!(ticket["method"], "PUT");
    assert_eq!(ticket["headers"]["content-type"], "application/pdf");
    assert_eq!(ticket["headers"]["content-length"], pdf.len().to_string());

    // The browser's PUT, with exactly the headers given.
    let client = reqwest::Client::new();
    let mut put = client
        .put(ticket["url"].as_str().unwrap())
        .body(pdf.clone());
    for (name, value) in ticket["headers"].as_object().unwrap() {
        if name != "content-length" {
            put = put.header(name, value.as_str().unwrap());
        }
    }
    let response = put.send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());

    let sdk = aws_config().await;
    let head = chatpad::aws::s3_client(&sdk)
        .head_object()
        .bucket(env_var("UPLOADS_BUCKET").unwrap())
        .key(key)
        .send()
        .await
        .expect("the object is in S3");
    assert_eq!(head.content_length(), Some(pdf.len() as i64));
    assert_eq!(head.content_type(), Some("application/pdf"));
    // And a message may now carry it.
    let checked = deps
        .store
        .verify(agent, "v_upload", &[key.to_owned()])
        .await
        .unwrap();
    assert_eq!(checked[0].byte_size, pdf.len() as i64);
}

#[tokio::test]
async fn types_sizes_visitors_agents_and_pages_are_checked() {
    let test = TestDb::new().await;
    let agent = test.agent(test.user(None).await).await;
    let deps = deps(&test).await;

    for (body, field) in [
        (request(agent, "text/html", 10), "contentType"),
        (
            request(agent, "application/x-msdownload", 10),
            "contentType",
        ),
        (request(agent, "image/png", MAX_BYTES + 1), "byteSize"),
        (request(agent, "image/png", 0), "byteSize"),
        (
            json!({"agentId": agent, "visitorId": "", "fileName": "a.png", "contentType": "image/png", "byteSize": 5}),
            "visitorId",
        ),
        (
            json!({"agentId": agent, "visitorId": "v", "fileName": " ", "contentType": "image/png", "byteSize": 5}),
            "fileName",
        ),
    ] {
        let (status, _, answer) = call(&deps, post(body, None)).await;
        assert_eq!(status, 422, "{answer}");
        assert!(
            answer["error"]["details"]["fields"][field].is_string(),
            "{answer}"
        );
    }
    // Voice messages as browsers record them.
    for voice in ["audio/webm", "audio/ogg", "audio/mp4"] {
        let (status, _, answer) = call(&deps, post(request(agent, voice, 2048), None)).await;
        assert_eq!(status, 201, "{voice}: {answer}");
    }

    let (status, _, answer) =
        call(&deps, post(request(Uuid::new_v4(), "image/png", 5), None)).await;
    assert_eq!(status, 404, "{answer}");

    let su = test.superuser().await;
    su.execute(
        "UPDATE agents SET allowed_domains = '{shop.test}' WHERE id = $1",
        &[&agent],
    )
    .await
    .unwrap();
    let (status, headers, answer) = call(
        &deps,
        post(request(agent, "image/png", 5), Some("https://evil.test")),
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    assert!(headers.get("access-control-allow-origin").is_none());
    let (status, _, answer) = call(
        &deps,
        post(request(agent, "image/png", 5), Some("https://shop.test")),
    )
    .await;
    assert_eq!(status, 201, "{answer}");

    let get = lambda_http::http::Request::builder()
        .method("GET")
        .uri("/")
        .body(Body::Empty)
        .unwrap();
    let (status, _, _) = call(&deps, get).await;
    assert_eq!(status, 405);
}
