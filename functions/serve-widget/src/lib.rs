//! GET: the widget's loader script (the `<script src=".../serve-widget" data-agent-id>`
//! target), its versioned app bundle, and the hosted chat page.
//!
//! Routes (function URLs have no path parameters: routed here):
//! - `/` — the loader, with the widget endpoints' URLs injected. Cached for minutes: it is the
//!   one unversioned URL, and a deploy must reach pages soon.
//! - `/v/<version>/app.js` — the panel, fetched by the loader on first open or hover. The
//!   version is a hash of the widget's sources, so it is cached for a year (`immutable`); an
//!   older version redirects to the current one.
//! - `/chat/<agentId>` — a full-page chat (QR codes, e-mail signatures, social links) with the
//!   agent's name and greeting in its meta tags.
//!
//! Every asset is gzipped once at cold start and served compressed when the client accepts
//! it, with a strong `ETag` (304 on `If-None-Match`), `nosniff` and CORS open to every page:
//! the scripts are public and carry no credentials.

use std::sync::Arc;

use chatpad::agents::widget;
use chatpad::{ApiError, Deps, http};
use lambda_http::http::header::{self, HeaderValue};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The bundle's version (a hash of the widget's sources, from build.rs).
pub const VERSION: &str = env!("WIDGET_VERSION");
const LOADER_JS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/widget/dist/loader.js"
));
const APP_JS: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/widget/dist/app.js"));
/// Replaced in the loader by the endpoints' URLs (a JSON object).
const PLACEHOLDER: &str = "\"__CHATPAD_URLS__\"";

const JS: &str = "text/javascript; charset=utf-8";
const LOADER_CACHE: &str = "public, max-age=300, stale-while-revalidate=3600";
const APP_CACHE: &str = "public, max-age=31536000, immutable";
const PAGE_CACHE: &str = "public, max-age=60";

/// The widget endpoints' URLs, as the loader hands them to the widget.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WidgetUrls {
    /// get-widget-config (`GET_WIDGET_CONFIG_URL`).
    pub config: String,
    /// widget-chat (`WIDGET_CHAT_URL`).
    pub chat: String,
    /// create-widget-lead (`CREATE_WIDGET_LEAD_URL`).
    pub lead: String,
    /// create-widget-upload (`CREATE_WIDGET_UPLOAD_URL`).
    pub upload: String,
    /// The realtime function (`REALTIME_URL`); empty = no live events, the chat works without.
    pub realtime: String,
}

impl WidgetUrls {
    /// Reads the URLs from the environment; all but `REALTIME_URL` are required.
    pub fn from_env() -> anyhow::Result<Self> {
        use chatpad::config::required_var;
        Ok(WidgetUrls {
            config: required_var("GET_WIDGET_CONFIG_URL")?,
            chat: required_var("WIDGET_CHAT_URL")?,
            lead: required_var("CREATE_WIDGET_LEAD_URL")?,
            upload: required_var("CREATE_WIDGET_UPLOAD_URL")?,
            realtime: std::env::var("REALTIME_URL").unwrap_or_default(),
        })
    }
}

/// One static asset, ready to send.
#[derive(Debug)]
struct Asset {
    body: Vec<u8>,
    gzip: Vec<u8>,
    etag: String,
}

impl Asset {
    fn new(body: Vec<u8>) -> Self {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&body).expect("gzip into memory");
        let gzip = encoder.finish().expect("gzip into memory");
        let digest = Sha256::digest(&body);
        let etag = format!("\"{}\"", hex(&digest[..12]));
        Asset { body, gzip, etag }
    }
}

/// What the function holds for its life: the assets (built at cold start) and the database
/// (the hosted page's agent name and greeting).
pub struct ServeDeps {
    pub deps: Deps,
    loader: Asset,
    app: Asset,
}

impl ServeDeps {
    /// The loader with `urls` injected, and the app bundle.
    pub fn new(deps: Deps, urls: &WidgetUrls) -> anyhow::Result<Self> {
        let mut injected = serde_json::to_value(urls)?;
        injected["app"] = format!("v/{VERSION}/app.js").into();
        // The bundle references the URLs once; anything else means build.mjs changed shape.
        anyhow::ensure!(
            LOADER_JS.matches(PLACEHOLDER).count() == 1,
            "the loader bundle must contain {PLACEHOLDER} exactly once"
        );
        let loader = LOADER_JS.replace(PLACEHOLDER, &injected.to_string());
        Ok(ServeDeps {
            deps,
            loader: Asset::new(loader.into_bytes()),
            app: Asset::new(APP_JS.as_bytes().to_vec()),
        })
    }

    /// Reads the configuration and the URLs from the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::new(Deps::from_env()?, &WidgetUrls::from_env()?)
    }
}

/// Handles one request; never fails (errors become JSON or HTML error responses).
pub async fn handle(deps: Arc<ServeDeps>, req: Request) -> Response<Body> {
    let request_id = http::request_id(&req);
    let method = req.method().clone();
    let mut response = match method {
        Method::OPTIONS => Response::builder()
            .status(StatusCode::NO_CONTENT)
            .header(header::ACCESS_CONTROL_ALLOW_METHODS, "GET, HEAD, OPTIONS")
            .header(header::ACCESS_CONTROL_MAX_AGE, "86400")
            .body(Body::Empty)
            .expect("static headers"),
        Method::GET | Method::HEAD => route(&deps, &req).await,
        _ => {
            let mut r = http::error_response(&request_id, &ApiError::MethodNotAllowed);
            r.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, OPTIONS"),
            );
            r
        }
    };
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert(http::REQUEST_ID_HEADER, value);
    }
    if method == Method::HEAD {
        *response.body_mut() = Body::Empty;
    }
    response
}

async fn route(deps: &ServeDeps, req: &Request) -> Response<Body> {
    let path = req.uri().path();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [] => asset(req, &deps.loader, LOADER_CACHE),
        ["v", version, "app.js"] if *version == VERSION => asset(req, &deps.app, APP_CACHE),
        // A page holding an older loader: the current app (relative to /v/<old>/app.js).
        ["v", _, "app.js"] => Response::builder()
            .status(StatusCode::FOUND)
            .header(header::LOCATION, format!("../{VERSION}/app.js"))
            .header(header::CACHE_CONTROL, "no-cache")
            .body(Body::Empty)
            .expect("static headers"),
        ["chat", agent] => match agent.parse::<Uuid>() {
            Ok(agent) => hosted_page(deps, req, agent, path.ends_with('/')).await,
            Err(_) => page_not_found(),
        },
        _ => http::error_response(
            &http::request_id(req),
            &ApiError::NotFound {
                code: "not_found",
                message: "serve-widget serves /, /v/<version>/app.js and /chat/<agentId>".into(),
            },
        ),
    }
}

/// Whether the client takes gzip (`Accept-Encoding`, honouring `gzip;q=0`).
fn accepts_gzip(req: &Request) -> bool {
    let Some(value) = req
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    value.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or_default();
        let q_zero = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !q_zero
    })
}

fn not_modified(req: &Request, etag: &str) -> bool {
    req.headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',').any(|t| {
                let t = t.trim();
                t == "*" || t.trim_start_matches("W/") == etag
            })
        })
}

fn asset(req: &Request, asset: &Asset, cache: &str) -> Response<Body> {
    send(req, &asset.body, &asset.gzip, &asset.etag, JS, cache)
}

/// A response with `body` (or its gzip), ETag and caching, or a 304.
fn send(
    req: &Request,
    body: &[u8],
    gzip: &[u8],
    etag: &str,
    content_type: &str,
    cache: &str,
) -> Response<Body> {
    let builder = Response::builder()
        .header(header::ETAG, etag)
        .header(header::CACHE_CONTROL, cache)
        .header(header::VARY, "Accept-Encoding")
        .header("cross-origin-resource-policy", "cross-origin");
    if not_modified(req, etag) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::Empty)
            .expect("valid headers");
    }
    let builder = builder
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type);
    if accepts_gzip(req) {
        builder
            .header(header::CONTENT_ENCODING, "gzip")
            .body(Body::Binary(gzip.to_vec()))
    } else {
        builder.body(Body::Binary(body.to_vec()))
    }
    .expect("valid headers")
}

/// The hosted chat page of an active agent: the loader in page mode, meta tags for link
/// previews, a strict CSP (scripts from this function only, no inline code or styles).
async fn hosted_page(
    deps: &ServeDeps,
    req: &Request,
    agent: Uuid,
    trailing_slash: bool,
) -> Response<Body> {
    let config = match deps.deps.db.client().await {
        Ok(client) => widget::load(&client, agent).await,
        Err(err) => Err(err),
    };
    let config = match config {
        Ok(Some(config)) => config,
        Ok(None) => return page_not_found(),
        Err(err) => return http::error_response(&http::request_id(req), &err),
    };
    let name = escape(&config.name);
    let greeting = escape(&config.greeting);
    let colour = config
        .appearance
        .primary_color
        .as_deref()
        .map(escape)
        .unwrap_or_else(|| "#2563eb".into());
    // Relative to /chat/<id> (or /chat/<id>/): the function's root serves the loader.
    let src = if trailing_slash { "../../" } else { "../" };
    let html = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">
<title>Chat with {name}</title>
<meta name="description" content="{greeting}">
<meta property="og:type" content="website">
<meta property="og:title" content="Chat with {name}">
<meta property="og:description" content="{greeting}">
<meta name="twitter:card" content="summary">
<meta name="theme-color" content="{colour}">
<meta name="referrer" content="strict-origin-when-cross-origin">
</head>
<body>
<noscript>Chat with {name} needs JavaScript.</noscript>
<script src="{src}" data-agent-id="{agent}" data-mode="page" async></script>
</body>
</html>
"#
    );
    let body = html.into_bytes();
    let mut response = send(
        req,
        &body,
        &Asset::new(body.clone()).gzip,
        &format!("\"{}\"", hex(&Sha256::digest(&body)[..12])),
        "text/html; charset=utf-8",
        PAGE_CACHE,
    );
    let headers = response.headers_mut();
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; connect-src * ws: wss:; \
             img-src https: data: blob:; \
             media-src blob:; style-src 'self'; base-uri 'none'; form-action 'none'",
        ),
    );
    headers.insert(
        "referrer-policy",
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    response
}

fn page_not_found() -> Response<Body> {
    Response::builder()
        .status(StatusCode::NOT_FOUND)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from(
            "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Chat not found</title>\
             <p>This chat is not available.</p></html>\n",
        ))
        .expect("static headers")
}

/// `text` safe inside HTML text and double-quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
