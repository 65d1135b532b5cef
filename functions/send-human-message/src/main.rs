//! send-human-message: POST: a team member's message into a conversation they (or a teammate)
//! took over from the bot; stored as a `human` message and pushed live to the visitor and the
//! team's inbox.

use std::sync::Arc;

use lambda_http::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    chatpad::telemetry::init();
    let deps = Arc::new(send_human_message::SendDeps::from_env().await?);
    lambda_http::run(service_fn(move |req| {
        let deps = Arc::clone(&deps);
        async move { Ok::<_, Error>(send_human_message::handle(&deps, req).await) }
    }))
    .await
}
