//! SQS worker: extracts, chunks and embeds knowledge sources.
//!
//! Not built yet: every message is reported as failed, so SQS keeps it (and dead-letters it
//! after the redrive policy's attempts) until the knowledge pipeline lands. Nothing is lost.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use chatpad::sqs::{Outcome, run_batch};

/// Processes one SQS batch.
pub async fn handle(event: SqsEvent) -> SqsBatchResponse {
    run_batch(event, |_message| async {
        Outcome::Retry(anyhow::anyhow!(
            "ingest-worker is not built yet: the knowledge pipeline"
        ))
    })
    .await
}
