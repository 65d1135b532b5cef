//! POST: a visitor's message in, the agent's grounded answer out (SSE or JSON).
//!
//! Not built yet: answers 501 with the JSON error shape until RAG chat with streaming lands.

use chatpad::http;
use lambda_http::{Body, Request, Response};

/// Handles one request.
pub async fn handle(req: Request) -> Response<Body> {
    let request_id = http::request_id(&req);
    http::respond(
        &request_id,
        Err(http::not_implemented(
            "widget-chat",
            "RAG chat with streaming",
        )),
    )
}
