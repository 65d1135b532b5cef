//! create-widget-upload: POST: a short-lived presigned S3 PUT URL for a widget visitor's
//! attachment (image, PDF, voice message), type and size bound by the signature.

use std::sync::Arc;

use create_widget_upload::UploadDeps;
use lambda_http::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    chatpad::telemetry::init();
    let deps = Arc::new(UploadDeps::from_env().await?);
    lambda_http::run(service_fn(move |req| {
        let deps = Arc::clone(&deps);
        async move { Ok::<_, Error>(create_widget_upload::handle(&deps, req).await) }
    }))
    .await
}
