//! POST: a lead from the widget's contact form, linked to its conversation.
//!
//! Not built yet: answers 501 with the JSON error shape until lead capture lands.

use chatpad::http;
use lambda_http::{Body, Request, Response};

/// Handles one request.
pub async fn handle(req: Request) -> Response<Body> {
    let request_id = http::request_id(&req);
    http::respond(
        &request_id,
        Err(http::not_implemented("create-widget-lead", "lead capture")),
    )
}
