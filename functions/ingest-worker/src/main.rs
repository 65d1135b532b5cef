//! ingest-worker: SQS worker: extracts, chunks and embeds knowledge sources.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};

fn main() -> Result<(), Error> {
    // First of all: started as the extraction sandbox's child, this binary reads one document
    // from stdin and exits here, before any runtime thread takes address space.
    chatpad::knowledge::extract::sandbox::run_child_if_requested();
    tokio::runtime::Runtime::new()?.block_on(run())
}

async fn run() -> Result<(), Error> {
    chatpad::telemetry::init();
    let ingestor = Arc::new(ingest_worker::ingestor_from_env().await?);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| {
            let ingestor = Arc::clone(&ingestor);
            async move { Ok::<_, Error>(ingest_worker::handle(ingestor, event.payload).await) }
        },
    ))
    .await
}
