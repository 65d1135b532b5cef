//! POST: a team member's message into a conversation under human takeover.
//!
//! Not built yet: answers 501 with the JSON error shape until human takeover lands.

use chatpad::http;
use lambda_http::{Body, Request, Response};

/// Handles one request.
pub async fn handle(req: Request) -> Response<Body> {
    let request_id = http::request_id(&req);
    http::respond(
        &request_id,
        Err(http::not_implemented(
            "send-human-message",
            "human takeover",
        )),
    )
}
