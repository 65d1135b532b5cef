//! validate-api-key: the public endpoint that tells an integration whether its API key is valid,
//! which account it acts for and which scopes it holds. Each use is recorded in the security log
//! and usage metrics; rejected keys are logged with the reason.

use std::sync::Arc;

use lambda_http::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    chatpad::telemetry::init();
    let deps = Arc::new(validate_api_key::ValidateDeps::from_env().await?);
    lambda_http::run(service_fn(move |req| {
        let deps = Arc::clone(&deps);
        async move { Ok::<_, Error>(validate_api_key::handle(&deps, req).await) }
    }))
    .await
}
