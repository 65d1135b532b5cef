//! get-widget-config: what the widget needs to render an agent (appearance, greeting, lead
//! form, flags). GET `?agentId=` (cacheable) or POST `{"agentId"}`.

use std::sync::Arc;

use chatpad::Deps;
use lambda_http::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    chatpad::telemetry::init();
    let deps = Arc::new(Deps::from_env()?);
    lambda_http::run(service_fn(move |req| {
        let deps = Arc::clone(&deps);
        async move { Ok::<_, Error>(get_widget_config::handle(&deps, req).await) }
    }))
    .await
}
