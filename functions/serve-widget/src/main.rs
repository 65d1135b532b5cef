//! serve-widget: GET: the widget script and the hosted chat page.

use lambda_http::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    chatpad::telemetry::init();
    lambda_http::run(service_fn(|req| async {
        Ok::<_, Error>(serve_widget::handle(req).await)
    }))
    .await
}
