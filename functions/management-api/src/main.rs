//! management-api: the authenticated REST API behind the admin app and customers' scripts —
//! agents, help articles, knowledge, team, API keys, plans and usage, security logs,
//! leads, webhook endpoints and their delivery log — with its OpenAPI
//! document at `/v1/openapi.json`. Callers present a JWT or an API key with the right scope;
//! every query runs inside the caller's row-level-security context.

use std::sync::Arc;

use lambda_http::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    chatpad::telemetry::init();
    let deps = Arc::new(management_api::ManagementDeps::from_env().await?);
    lambda_http::run(service_fn(move |req| {
        let deps = Arc::clone(&deps);
        async move { Ok::<_, Error>(management_api::handle(&deps, req).await) }
    }))
    .await
}
