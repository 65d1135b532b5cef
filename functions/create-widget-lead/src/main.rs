//! create-widget-lead: POST: a lead from the widget's contact form, linked to its conversation.

use lambda_http::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    chatpad::telemetry::init();
    lambda_http::run(service_fn(|req| async {
        Ok::<_, Error>(create_widget_lead::handle(req).await)
    }))
    .await
}
