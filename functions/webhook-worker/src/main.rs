//! webhook-worker: SQS worker: delivers signed webhook events (Standard Webhooks) to customers'
//! endpoints, retrying on a schedule through the outbox and SQS delays.

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    chatpad::telemetry::init();
    let worker = Arc::new(webhook_worker::Worker::from_env().await?);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| {
            let worker = Arc::clone(&worker);
            async move { Ok::<_, Error>(webhook_worker::handle(worker, event.payload).await) }
        },
    ))
    .await
}
