//! serve-widget: GET: the widget's loader script, its versioned app bundle and the hosted chat
//! page (`/chat/<agentId>`), compressed, cached and CORS-open.

use std::sync::Arc;

use lambda_http::{Error, service_fn};
use serve_widget::ServeDeps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    chatpad::telemetry::init();
    let deps = Arc::new(ServeDeps::from_env()?);
    lambda_http::run(service_fn(move |req| {
        let deps = Arc::clone(&deps);
        async move { Ok::<_, Error>(serve_widget::handle(deps, req).await) }
    }))
    .await
}
