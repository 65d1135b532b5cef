//! ingest-worker: SQS worker: extracts, chunks and embeds knowledge sources.

use lambda_runtime::{Error, LambdaEvent, service_fn};

fn main() -> Result<(), Error> {
    // First of all: started as the extraction sandbox's child, this binary reads one document
    // from stdin and exits here, before any runtime thread takes address space.
    chatpad::knowledge::extract::sandbox::run_child_if_requested();
    tokio::runtime::Runtime::new()?.block_on(run())
}

async fn run() -> Result<(), Error> {
    chatpad::telemetry::init();
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| async move {
            Ok::<_, Error>(ingest_worker::handle(event.payload).await)
        },
    ))
    .await
}
