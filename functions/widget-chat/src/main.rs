//! widget-chat: POST: a visitor's message in, the agent's grounded answer out (SSE or JSON).
//! Runs under Lambda response streaming (the function URL's `RESPONSE_STREAM` mode).

use std::sync::Arc;
use std::time::{Duration, Instant};

use lambda_http::{Error, service_fn};
use widget_chat::WidgetChatDeps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    chatpad::telemetry::init();
    let deps = Arc::new(WidgetChatDeps::from_env().await?);
    // Loops that ended within a second of starting, in a row.
    let mut quick_endings = 0;
    loop {
        let started = Instant::now();
        let deps = Arc::clone(&deps);
        let served = lambda_http::run_with_streaming_response(service_fn(move |req| {
            let deps = Arc::clone(&deps);
            // Boxed: the handler's future type is too deep for the compiler's layout limit.
            async move { Ok::<_, Error>(Box::pin(widget_chat::handle(deps, req)).await) }
        }))
        .await;
        let err = match served {
            Ok(()) => return Ok(()),
            Err(err) => err,
        };
        // A caller who goes away mid-stream makes the Runtime API refuse the rest of the body,
        // and that error ends lambda_runtime's loop. The answer is already stored: serve the
        // next invocation from this warm process instead of exiting (a cold start loads the
        // embedding model again). A loop that keeps ending at once cannot reach the Runtime
        // API at all (the environment is going away): exit, as lambda_runtime would.
        quick_endings = if started.elapsed() < Duration::from_secs(1) {
            quick_endings + 1
        } else {
            0
        };
        if quick_endings >= 3 {
            return Err(err);
        }
        tracing::warn!(error = %err, "the streaming runtime loop ended; restarting it");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
