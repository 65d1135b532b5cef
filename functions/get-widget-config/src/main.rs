//! get-widget-config: POST: what the widget needs to render an agent (appearance, greeting, lead form, flags).

use lambda_http::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    chatpad::telemetry::init();
    lambda_http::run(service_fn(|req| async {
        Ok::<_, Error>(get_widget_config::handle(req).await)
    }))
    .await
}
