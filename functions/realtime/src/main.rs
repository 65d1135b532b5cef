//! realtime: the live channel between visitors, the team's inbox and ChatPad. One binary for
//! the API Gateway WebSocket API (`$connect` with a visitor token or a team member's JWT,
//! `$disconnect`, `$default` client messages: typing, presence, subscribe, ping) and its
//! function URL (`POST /token`, `GET /events` — the catch-up and polling fallback,
//! `POST /request-human`, `POST /typing`).

use std::sync::Arc;

use lambda_http::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    chatpad::telemetry::init();
    let deps = Arc::new(realtime::RealtimeDeps::from_env().await?);
    lambda_http::run(service_fn(move |req| {
        let deps = Arc::clone(&deps);
        async move { Ok::<_, Error>(realtime::handle(&deps, req).await) }
    }))
    .await
}
