//! SQS worker: extracts, chunks and embeds knowledge sources (see `chatpad::knowledge::ingest`).
//! Each message is one source (or files to delete); failures are reported per message.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use chatpad::knowledge::extract;
use chatpad::knowledge::extract::sandbox::Sandbox;
use chatpad::knowledge::files::FileStore;
use chatpad::knowledge::ingest::Ingestor;
use chatpad::net::{GuardConfig, GuardedClient};
use chatpad::outbox::Relay;
use chatpad::sqs::run_batch;

/// Receives after which a failing job gives up (the queue's `maxReceiveCount`).
const MAX_ATTEMPTS: u32 = 5;
/// Seconds one message may embed before continuing in a new one (`INGEST_SLICE_SECONDS`):
/// well inside the function's 300 s timeout, leaving time to write and relay.
const DEFAULT_SLICE_SECONDS: u64 = 240;

/// Builds the worker's dependencies from the environment: database, S3, the embeddings
/// provider (the local model unless `EMBEDDINGS_BASE_URL` is set) and the SSRF guard.
pub async fn ingestor_from_env() -> anyhow::Result<Ingestor> {
    let deps = chatpad::Deps::from_env()?;
    let sdk = chatpad::aws::sdk_config().await;
    let slice = match std::env::var("INGEST_SLICE_SECONDS") {
        Ok(v) => v
            .parse()
            .map_err(|_| anyhow::anyhow!("INGEST_SLICE_SECONDS must be a number of seconds"))?,
        Err(_) => DEFAULT_SLICE_SECONDS,
    };
    Ok(Ingestor {
        relay: Relay::from_env(&sdk)?,
        slice: Duration::from_secs(slice),
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
