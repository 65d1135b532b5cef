//! POST: what the widget needs to render an agent (appearance, greeting, lead form, flags).
//!
//! Not built yet: answers 501 with the JSON error shape until the widget configuration endpoint lands.

use chatpad::http;
use lambda_http::{Body, Request, Response};

/// Handles one request.
pub async fn handle(req: Request) -> Response<Body> {
    let request_id = http::request_id(&req);
    http::respond(
        &request_id,
        Err(http::not_implemented(
            "get-widget-config",
            "the widget configuration endpoint",
        )),
    )
}
