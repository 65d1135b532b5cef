//! widget-chat: POST: a visitor's message in, the agent's grounded answer out (SSE or JSON).

use lambda_http::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    chatpad::telemetry::init();
    lambda_http::run(service_fn(|req| async {
        Ok::<_, Error>(widget_chat::handle(req).await)
    }))
    .await
}
