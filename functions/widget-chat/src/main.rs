//! widget-chat: POST: a visitor's message in, the agent's grounded answer out (SSE or JSON).
//! Runs under Lambda response streaming (the function URL's `RESPONSE_STREAM` mode).

use std::sync::Arc;

use lambda_http::{Error, service_fn};
use widget_chat::WidgetChatDeps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    chatpad::telemetry::init();
    let deps = Arc::new(WidgetChatDeps::from_env().await?);
    lambda_http::run_with_streaming_response(service_fn(move |req| {
        let deps = Arc::clone(&deps);
        // Boxed: the handler's future type is too deep for the compiler's layout limit.
        async move { Ok::<_, Error>(Box::pin(widget_chat::handle(deps, req)).await) }
    }))
    .await
}
