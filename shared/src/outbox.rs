//! The transactional outbox's relay: jobs written by database triggers in the same transaction
//! as the change that caused them are sent to their SQS queue here.
//!
//! A relay run leases due rows (so concurrent relays never send the same row twice at once),
//! sends them, and deletes what SQS accepted. A crash after sending but before deleting sends
//! the row again after its lease: delivery is at least once, and every consumer is idempotent.
//! Handlers relay right after committing (fast path); the scheduler sweeps every minute for
//! anything a crashed process left behind.
//!
//! Rows may be due later (a webhook retry in 5 minutes or 10 hours): a row due within the next
//! [`HORIZON_SECONDS`] is sent now with SQS `DelaySeconds` = the time left (SQS holds a message
//! at most 15 minutes), later ones wait in the outbox for a later run.

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use crate::auth::Caller;
use crate::db::{self, Database};

/// Rows leased per relay run (SQS takes at most 10 per batch call).
const BATCH: i32 = 10;
/// Rows due within this many seconds are sent now, delayed by SQS (its maximum delay).
pub const HORIZON_SECONDS: i32 = 900;

/// Sends outbox rows to their queues.
#[derive(Debug, Clone)]
pub struct Relay {
    sqs: aws_sdk_sqs::Client,
    ingest_queue_url: String,
    webhook_queue_url: String,
}

impl Relay {
    /// A relay sending `ingest` rows to `ingest_queue_url` and `webhooks` rows to
    /// `webhook_queue_url`.
    pub fn new(
        sqs: aws_sdk_sqs::Client,
        ingest_queue_url: String,
        webhook_queue_url: String,
    ) -> Self {
        Relay {
            sqs,
            ingest_queue_url,
            webhook_queue_url,
        }
    }

    /// A relay for the queues named by `INGEST_QUEUE_URL` and `WEBHOOK_QUEUE_URL`.
    pub fn from_env(sdk: &aws_config::SdkConfig) -> anyhow::Result<Self> {
        Ok(Relay::new(
            crate::aws::sqs_client(sdk),
            crate::config::required_var("INGEST_QUEUE_URL")?,
            crate::config::required_var("WEBHOOK_QUEUE_URL")?,
        ))
    }

    fn queue_url(&self, queue: &str) -> &str {
        match queue {
            "webhooks" => &self.webhook_queue_url,
            _ => &self.ingest_queue_url,
        }
    }

    /// Relays due rows until none are left (or `max_rows` were handled); returns how many
    /// were sent. Failures leave rows for the next run.
    pub async fn run(&self, db: &Database, max_rows: usize) -> anyhow::Result<usize> {
        let mut sent = 0;
        while sent < max_rows {
            let n = self.run_batch(db).await?;
            if n == 0 {
                break;
            }
            sent += n;
        }
        Ok(sent)
    }

    /// Leases, sends and deletes one batch; returns how many were sent.
    async fn run_batch(&self, db: &Database) -> anyhow::Result<usize> {
        let mut client = db.client().await?;
        let rows = {
            let tx = db::begin_as(&mut client, &Caller::Service).await?;
            let rows = tx
                .query(
                    "SELECT id, queue, payload, delay_seconds FROM outbox_claim_upcoming($1, $2)",
                    &[&BATCH, &HORIZON_SECONDS],
                )
                .await?;
            tx.commit().await?;
            rows
        };
        if rows.is_empty() {
            return Ok(0);
        }
        let mut sent_ids = Vec::new();
        for queue in ["ingest", "webhooks"] {
            let entries: Vec<_> = rows
                .iter()
                .filter(|r| r.get::<_, &str>("queue") == queue)
                .map(|r| {
                    let id: i64 = r.get("id");
                    let payload: serde_json::Value = r.get("payload");
                    let delay: i32 = r.get("delay_seconds");
                    SendMessageBatchRequestEntry::builder()
                        .id(id.to_string())
                        .message_body(payload.to_string())
                        .delay_seconds(delay.clamp(0, HORIZON_SECONDS))
                        .build()
                        .expect("id and body are set")
                })
                .collect();
            if entries.is_empty() {
                continue;
            }
            let out = self
                .sqs
                .send_message_batch()
                .queue_url(self.queue_url(queue))
                .set_entries(Some(entries))
                .send()
                .await?;
            for failed in out.failed() {
                tracing::warn!(
                    outbox_id = failed.id(),
                    code = failed.code(),
                    "outbox row not sent; retried after its lease"
                );
            }
            sent_ids.extend(
                out.successful()
                    .iter()
                    .filter_map(|s| s.id().parse::<i64>().ok()),
            );
        }
        let tx = db::begin_as(&mut client, &Caller::Service).await?;
        tx.execute("SELECT outbox_sent($1)", &[&sent_ids]).await?;
        tx.commit().await?;
        Ok(sent_ids.len())
    }
}
