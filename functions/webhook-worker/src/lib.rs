//! SQS worker: delivers signed webhook events to customers' endpoints (see
//! `chatpad::webhooks::delivery`). Each message is one attempt of one delivery; every message
//! is judged on its own and failures are reported per message (partial batch failures).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use chatpad::crypto::SecretBox;
use chatpad::net::{GuardConfig, GuardedClient};
use chatpad::outbox::Relay;
use chatpad::sqs::run_batch;
use chatpad::webhooks::delivery::{self, Attempted, Deliverer};

/// Outbox rows the worker relays after a batch at most (its retries, due within 15 minutes).
const RELAY_AFTER_BATCH: usize = 100;
/// Database connections: one per message of a batch (the event source mapping's BatchSize).
const POOL_SIZE: usize = 10;

/// What the worker holds for its life.
pub struct Worker {
    pub deliverer: Deliverer,
    /// Sends the retries a batch scheduled right away (with SQS delays) instead of leaving
    /// them to the scheduler's sweep.
    pub relay: Relay,
}

impl Worker {
    /// A worker delivering through a guarded client with `guard`'s allowlist.
    pub fn new(
        db: chatpad::db::Database,
        guard: GuardConfig,
        secrets: SecretBox,
        relay: Relay,
    ) -> anyhow::Result<Self> {
        Ok(Worker {
            deliverer: Deliverer {
                db,
                http: GuardedClient::new(delivery::guard_config(guard))?,
                secrets,
            },
            relay,
        })
    }

    /// Builds the worker from the environment: `DATABASE_URL`, `ENCRYPTION_KEY`, the queue URLs
    /// (`INGEST_QUEUE_URL`, `WEBHOOK_QUEUE_URL`) and `SSRF_ALLOW_CIDRS` (local stacks only).
    pub async fn from_env() -> anyhow::Result<Self> {
        let database_url =
            secrecy::SecretString::from(chatpad::config::required_var("DATABASE_URL")?);
        let secrets =
            SecretBox::from_base64_key(&chatpad::config::required_var("ENCRYPTION_KEY")?)?;
        let sdk = chatpad::aws::sdk_config().await;
        Worker::new(
            chatpad::db::Database::connect_lazy(&database_url, POOL_SIZE)?,
            GuardConfig::from_env()?,
            secrets,
            Relay::from_env(&sdk)?,
        )
    }
}

/// Processes one SQS batch.
pub async fn handle(worker: Arc<Worker>, event: SqsEvent) -> SqsBatchResponse {
    let retries = Arc::new(AtomicUsize::new(0));
    let response = run_batch(event, |message| {
        let (worker, retries) = (Arc::clone(&worker), Arc::clone(&retries));
        async move {
            let body = message.body.as_deref().unwrap_or_default();
            let (outcome, attempted) = worker.deliverer.process(body).await;
            if matches!(attempted, Attempted::WillRetry(_)) {
                retries.fetch_add(1, Ordering::Relaxed);
            }
            outcome
        }
    })
    .await;
    if retries.load(Ordering::Relaxed) > 0
        && let Err(err) = worker
            .relay
            .run(&worker.deliverer.db, RELAY_AFTER_BATCH)
            .await
    {
        // The scheduler's sweep sends them within a minute.
        tracing::warn!(
            error = format!("{err:#}"),
            "relaying scheduled retries failed"
        );
    }
    response
}
