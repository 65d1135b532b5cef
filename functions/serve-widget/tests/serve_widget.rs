//! serve-widget called in-process: the loader with the endpoints injected, the versioned app
//! bundle, compression, caching (ETag/304), CORS, content types, the hosted chat page and its
//! meta tags (agent read from Postgres), routing and errors.

use std::io::Read;
use std::sync::Arc;

use chatpad::Deps;
use chatpad::testing::TestDb;
use http_body_util::BodyExt;
use lambda_http::http::{HeaderMap, header};
use lambda_http::{Body, Request};
use serve_widget::{ServeDeps, VERSION, WidgetUrls};

fn urls() -> WidgetUrls {
    WidgetUrls {
        config: "https://config.test/".into(),
        chat: "https://chat.test/".into(),
        lead: "https://lead.test/".into(),
        upload: "https://upload.test/".into(),
        realtime: String::new(),
    }
}

fn deps(test: &TestDb) -> Arc<ServeDeps> {
    Arc::new(ServeDeps::new(Deps::new(test.config()).unwrap(), &urls()).unwrap())
}

fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> Request {
    let mut builder = lambda_http::http::Request::builder()
        .method(method)
        .uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::Empty).unwrap()
}

async fn call(deps: &Arc<ServeDeps>, req: Request) -> (u16, HeaderMap, Vec<u8>) {
    let response = serve_widget::handle(Arc::clone(deps), req).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, bytes.to_vec())
}

fn gunzip(bytes: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut out)
        .unwrap();
    out
}

#[tokio::test]
async fn the_loader_carries_the_endpoints_and_is_compressed_cached_and_cors_open() {
    let test = TestDb::new().await;
    let deps = deps(&test);

    let (status, headers, body) = call(&deps, request("GET", "/", &[])).await;
    assert_eq!(status, 200);
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    assert_eq!(headers["cross-origin-resource-policy"], "cross-origin");
    assert!(
        headers[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("max-age=300")
    );
    assert_eq!(headers[header::VARY], "Accept-Encoding");
    assert!(headers.get(header::CONTENT_ENCODING).is_none());
    let loader = String::from_utf8(body).unwrap();
    assert!(!loader.contains("__CHATPAD_URLS__"));
    assert!(
        loader.contains(r#""chat":"https://chat.test/""#),
        "{loader}"
    );
    assert!(loader.contains(&format!(r#""app":"v/{VERSION}/app.js""#)));
    assert!(loader.len() < 16 * 1024);

    // Compressed for clients that take gzip, not for those that refuse it.
    let (_, headers, gz) = call(
        &deps,
        request("GET", "/", &[("accept-encoding", "br, gzip")]),
    )
    .await;
    assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
    assert_eq!(gunzip(&gz), loader);
    assert!(
        gz.len() <= 4096,
        "loader over budget: {} bytes gzipped",
        gz.len()
    );
    let (_, headers, _) = call(
        &deps,
        request("GET", "/", &[("accept-encoding", "gzip;q=0, identity")]),
    )
    .await;
    assert!(headers.get(header::CONTENT_ENCODING).is_none());

    // ETag: 304 for the cached copy, whatever the encoding.
    let etag = headers[header::ETAG].to_str().unwrap().to_owned();
    let (status, headers, body) = call(
        &deps,
        request(
            "GET",
            "/",
            &[("if-none-match", &etag), ("accept-encoding", "gzip")],
        ),
    )
    .await;
    assert_eq!(status, 304);
    assert!(body.is_empty());
    assert_eq!(headers[header::ETAG], etag.as_str());

    // HEAD: the headers only.
    let (status, headers, body) = call(&deps, request("HEAD", "/", &[])).await;
    assert_eq!((status, body.len()), (200, 0));
    assert_eq!(headers[header::ETAG], etag.as_str());
}

#[tokio::test]
async fn the_app_bundle_is_versioned_immutable_and_older_versions_redirect() {
    let test = TestDb::new().await;
    let deps = deps(&test);
    let path = format!("/v/{VERSION}/app.js");
    let (status, headers, body) =
        call(&deps, request("GET", &path, &[("accept-encoding", "gzip")])).await;
    assert_eq!(status, 200);
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        headers[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    let app = gunzip(&body);
    assert!(app.contains("__chatpadMount"));
    assert!(
        body.len() <= 16 * 1024,
        "app over budget: {} bytes gzipped",
        body.len()
    );

    let (status, headers, _) = call(&deps, request("GET", "/v/0123456789abcdef/app.js", &[])).await;
    assert_eq!(status, 302);
    assert_eq!(
        headers[header::LOCATION],
        format!("../{VERSION}/app.js").as_str()
    );
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
}

#[tokio::test]
async fn the_hosted_page_names_the_agent_in_its_meta_tags() {
    let test = TestDb::new().await;
    let deps = deps(&test);
    let agent = test.agent(test.user(None).await).await;
    let su = test.superuser().await;
    su.execute(
        "UPDATE agents SET name = 'Shop <Helper> & \"Co\"', greeting = 'Hi, ask us anything!',
                appearance = '{\"primaryColor\": \"#112233\"}' WHERE id = $1",
        &[&agent],
    )
    .await
    .unwrap();

    let (status, headers, body) = call(&deps, request("GET", &format!("/chat/{agent}"), &[])).await;
    assert_eq!(status, 200);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = String::from_utf8(body).unwrap();
    assert!(
        html.contains("<title>Chat with Shop &lt;Helper&gt; &amp; &quot;Co&quot;</title>"),
        "{html}"
    );
    assert!(html.contains(r#"<meta property="og:title" content="Chat with Shop &lt;Helper&gt;"#));
    assert!(html.contains(r#"<meta name="description" content="Hi, ask us anything!">"#));
    assert!(html.contains(r#"<meta name="viewport""#));
    assert!(html.contains(r##"<meta name="theme-color" content="#112233">"##));
    assert!(html.contains(&format!(
        r#"<script src="../" data-agent-id="{agent}" data-mode="page" async></script>"#
    )));
    // With a trailing slash the loader is one more level up.
    let (_, _, body) = call(&deps, request("GET", &format!("/chat/{agent}/"), &[])).await;
    assert!(String::from_utf8(body).unwrap().contains(r#"src="../../""#));

    // Unknown, disabled and malformed agents: a 404 page.
    su.execute(
        "UPDATE agents SET status = 'disabled' WHERE id = $1",
        &[&agent],
    )
    .await
    .unwrap();
    for path in [
        format!("/chat/{agent}"),
        format!("/chat/{}", uuid::Uuid::new_v4()),
        "/chat/nope".into(),
    ] {
        let (status, headers, _) = call(&deps, request("GET", &path, &[])).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_are_refused() {
    let test = TestDb::new().await;
    let deps = deps(&test);
    let (status, headers, body) = call(&deps, request("GET", "/widget.css", &[])).await;
    assert_eq!(status, 404);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert!(String::from_utf8(body).unwrap().contains("not_found"));
    let (status, headers, _) = call(&deps, request("POST", "/", &[])).await;
    assert_eq!(status, 405);
    assert_eq!(headers[header::ALLOW], "GET, HEAD, OPTIONS");
    let (status, headers, _) = call(
        &deps,
        request("OPTIONS", "/", &[("origin", "https://a.test")]),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
}
