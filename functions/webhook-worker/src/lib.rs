//! SQS worker: delivers signed webhook events to customers' endpoints.
//!
//! Not built yet: every message is reported as failed, so SQS keeps it (and dead-letters it
//! after the redrive policy's attempts) until webhook delivery lands. Nothing is lost.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use chatpad::sqs::{Outcome, run_batch};

/// Processes one SQS batch.
pub async fn handle(event: SqsEvent) -> SqsBatchResponse {
    run_batch(event, |_message| async {
        Outcome::Retry(anyhow::anyhow!(
            "webhook-worker is not built yet: webhook delivery"
        ))
    })
    .await
}
