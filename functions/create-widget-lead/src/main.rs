//! create-widget-lead: POST: a lead from the widget's contact form, validated against the
//! agent's form, linked to its conversation (started when there is none), deduplicated and
//! rate-limited; emits lead.created.

use std::sync::Arc;

use lambda_http::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    chatpad::telemetry::init();
    let deps = Arc::new(create_widget_lead::LeadDeps::from_env().await?);
    lambda_http::run(service_fn(move |req| {
        let deps = Arc::clone(&deps);
        async move { Ok::<_, Error>(create_widget_lead::handle(&deps, req).await) }
    }))
    .await
}
