//! SQS worker: extracts, chunks and embeds knowledge sources (see `chatpad::knowledge::ingest`).
//! Each message is one source (or files to delete); failures are reported per message.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use chatpad::knowledge::extract;
use chatpad::knowledge::extract::sandbox::Sandbox;
use chatpad::knowledge::files::FileStore;
use chatpad::knowledge::ingest::Ingestor;
use chatpad::net::{GuardConfig, GuardedClient};
use chatpad::sqs::run_batch;

/// Receives after which a failing job gives up (the queue's `maxReceiveCount`).
const MAX_ATTEMPTS: u32 = 5;

/// Builds the worker's dependencies from the environment: database, S3, the embeddings
/// provider (the local model unless `EMBEDDINGS_BASE_URL` is set) and the SSRF guard.
pub async fn ingestor_from_env() -> anyhow::Result<Ingestor> {
    let deps = chatpad::Deps::from_env()?;
    let sdk = chatpad::aws::sdk_config().await;
    Ok(Ingestor {
        db: deps.db,
        files: FileStore::from_env(&sdk)?,
        embedder: chatpad::embeddings::Embedder::from_env()?,
        web: GuardedClient::new(GuardConfig::from_env()?)?,
        sandbox: Sandbox::this_binary(extract::Limits::default())?,
        max_attempts: MAX_ATTEMPTS,
    })
}

/// Processes one SQS batch.
pub async fn handle(ingestor: Arc<Ingestor>, event: SqsEvent) -> SqsBatchResponse {
    run_batch(event, move |message| {
        let ingestor = Arc::clone(&ingestor);
        async move {
            let receives = message
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            ingestor
                .run(message.body.as_deref().unwrap_or_default(), receives)
                .await
        }
    })
    .await
}
