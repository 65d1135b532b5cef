//! ingest-worker: SQS worker: extracts, chunks and embeds knowledge sources.

use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    chatpad::telemetry::init();
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| async move {
            Ok::<_, Error>(ingest_worker::handle(event.payload).await)
        },
    ))
    .await
}
