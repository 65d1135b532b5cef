//! Request parsing and JSON responses for `lambda_http` handlers. Handlers return
//! `ApiResult<Response<Body>>`; [`respond`] turns errors into the one JSON error shape, with the
//! request id in the body, in a header and in the log line.

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{ApiError, ApiResult};

/// Header carrying the request id on every response.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The request id Lambda assigned, or a fresh one when called outside Lambda (tests).
pub fn request_id(req: &Request) -> String {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        _ => None,
    }
    .or_else(|| {
        req.headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    })
    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// The caller's IP as the function URL saw it (the socket peer, not a forgeable header).
pub fn client_ip(req: &Request) -> Option<std::net::IpAddr> {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => {
            ctx.http.source_ip.as_deref().and_then(|ip| ip.parse().ok())
        }
        _ => None,
    }
}

/// The `User-Agent` header, if any.
pub fn user_agent(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Parses a JSON body of at most `limit` bytes into `T`.
pub fn parse_json<T: DeserializeOwned>(req: &Request, limit: usize) -> ApiResult<T> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > limit {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    if let Some(ct) = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        && !ct
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("application/json")
    {
        return Err(ApiError::BadRequest {
            code: "unsupported_media_type",
            message: format!("expected Content-Type application/json, got {ct}"),
        });
    }
    // Postgres text cannot hold NUL; refuse it here with a clear message rather than deep in SQL.
    if bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000")) {
        return Err(ApiError::BadRequest {
            code: "invalid_text",
            message: "text values must not contain NUL characters (\\u0000)".into(),
        });
    }
    serde_json::from_slice(bytes).map_err(|err| ApiError::BadRequest {
        code: "invalid_json",
        message: format!("the request body is not valid JSON for this endpoint: {err}"),
    })
}

/// Fails with 405 unless the request uses `method`.
pub fn require_method(req: &Request, method: lambda_http::http::Method) -> ApiResult<()> {
    if req.method() == method {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed)
    }
}

/// A JSON response with `status`.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> ApiResult<Response<Body>> {
    let body = serde_json::to_vec(value).map_err(|err| ApiError::Internal(err.into()))?;
    Ok(Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("static headers are valid"))
}

/// Runs a handler's result through the error mapping and stamps the request id.
pub fn respond(request_id: &str, result: ApiResult<Response<Body>>) -> Response<Body> {
    let mut response = result.unwrap_or_else(|err| error_response(request_id, &err));
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// The JSON error response for `err`; internal causes are logged here with their chain.
pub fn error_response(request_id: &str, err: &ApiError) -> Response<Body> {
    match err {
        ApiError::Internal(cause) => {
            tracing::error!(request_id, error = format!("{cause:#}"), "request failed")
        }
        other => tracing::info!(request_id, code = other.code(), "request refused"),
    }
    let body = serde_json::json!({ "error": err.body(), "requestId": request_id });
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(err.status()).expect("valid status"))
        .header(header::CONTENT_TYPE, "application/json");
    if let ApiError::RateLimited { retry_after_secs } = err {
        builder = builder.header(header::RETRY_AFTER, retry_after_secs.to_string());
    }
    if let ApiError::MethodNotAllowed = err {
        builder = builder.header(header::ALLOW, "POST, OPTIONS");
    }
    builder
        .body(Body::from(body.to_string()))
        .expect("static headers are valid")
}

/// The answer of an endpoint whose capability a later issue builds.
pub fn not_implemented(endpoint: &str, capability: &str) -> ApiError {
    ApiError::NotImplemented(format!(
        "{endpoint} is not available yet: {capability} is still being built"
    ))
}

/// The `Origin` header of a browser request.
pub fn origin(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

/// Lets the page at `origin` read the response (CORS). Only for origins the agent allows: a
/// refused page gets no CORS headers, so its browser hides the answer from it.
pub fn allow_origin(headers: &mut lambda_http::http::HeaderMap, origin: &str) {
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("etag, retry-after, x-request-id"),
        );
    }
}

/// The response of a public widget endpoint: errors mapped as [`respond`] does, and the page
/// at `origin` allowed to read it (CORS) unless the agent refused that page.
pub fn widget_respond(
    request_id: &str,
    origin: Option<&str>,
    result: ApiResult<Response<Body>>,
) -> Response<Body> {
    let readable =
        !matches!(&result, Err(err) if err.code() == crate::agents::widget::ORIGIN_NOT_ALLOWED);
    let mut response = respond(request_id, result);
    if let Some(origin) = origin.filter(|_| readable) {
        allow_origin(response.headers_mut(), origin);
    }
    response
}

/// The answer to a CORS preflight. A preflight carries no body, so it cannot name the agent:
/// it is granted to any page, and the request itself is then checked against the agent's
/// allowed domains.
pub fn preflight(origin: Option<&str>) -> Response<Body> {
    let mut response = Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header(header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS")
        .header(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "authorization, content-type, accept, if-none-match, x-request-id",
        )
        .header(header::ACCESS_CONTROL_MAX_AGE, "600")
        .body(Body::Empty)
        .expect("static headers are valid");
    if let Some(origin) = origin {
        allow_origin(response.headers_mut(), origin);
    }
    response
}
