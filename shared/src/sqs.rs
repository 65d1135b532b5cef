//! The batch runner every SQS worker uses: each message is processed on its own task, so one
//! failing or panicking message is reported alone in `batchItemFailures` (the event source
//! mapping sets `ReportBatchItemFailures`) instead of failing the whole batch.

use std::future::Future;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};

/// What became of one message.
#[derive(Debug)]
pub enum Outcome {
    /// Done: delete it.
    Done,
    /// A transient failure: leave it on the queue to be retried (and dead-lettered eventually).
    Retry(anyhow::Error),
    /// It can never succeed (malformed, refers to deleted data): record why and delete it.
    GiveUp(String),
}

/// Processes every record of `event` concurrently and reports the ones to retry.
pub async fn run_batch<F, Fut>(event: SqsEvent, process: F) -> SqsBatchResponse
where
    F: Fn(SqsMessage) -> Fut,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let tasks: Vec<_> = event
        .records
        .into_iter()
        .map(|message| {
            let id = message.message_id.clone().unwrap_or_default();
            (id, tokio::spawn(process(message)))
        })
        .collect();
    let mut response = SqsBatchResponse::default();
    for (id, task) in tasks {
        let retry = match task.await {
            Ok(Outcome::Done) => false,
            Ok(Outcome::GiveUp(reason)) => {
                tracing::warn!(message_id = %id, reason, "message dropped: it can never succeed");
                false
            }
            Ok(Outcome::Retry(err)) => {
                tracing::warn!(message_id = %id, error = format!("{err:#}"), "message will be retried");
                true
            }
            Err(join_error) => {
                tracing::error!(message_id = %id, error = %join_error, "message processing panicked");
                true
            }
        };
        if retry {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}
