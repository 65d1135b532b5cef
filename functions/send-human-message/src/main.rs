//! send-human-message: POST: a team member's message into a conversation under human takeover.

use lambda_http::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    chatpad::telemetry::init();
    lambda_http::run(service_fn(|req| async {
        Ok::<_, Error>(send_human_message::handle(req).await)
    }))
    .await
}
