//! The webhook worker's domain: one SQS message is one attempt of one delivery
//! (`{"op": "deliver", "deliveryId", "attempt"}`, written to the outbox by the emitting trigger
//! or by the previous attempt's outcome).
//!
//! An attempt: lease the delivery for this attempt (a redelivered message whose attempt was
//! already made finds nothing to do) → sign and POST the event (Standard Webhooks headers,
//! redirects not followed, SSRF guard, timeout) → record the outcome, and for a retry the next
//! attempt's outbox row, in one transaction. A worker that dies mid-attempt leaves the lease
//! to expire; SQS then redelivers the message and the attempt is made again with the same
//! `webhook-id`, so the receiver can tell the duplicate.

use std::time::{Duration, Instant};

use chrono::Utc;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use serde::Deserialize;
use tracing::Instrument;
use uuid::Uuid;

use super::schedule;
use super::signature::{SigningSecret, signature_header};
use crate::auth::Caller;
use crate::crypto::SecretBox;
use crate::db::{self, Database};
use crate::net::{FetchError, FetchRequest, Fetched, GuardConfig, GuardedClient};
use crate::sqs::Outcome;

/// How long one attempt may take: connecting, sending and reading the answer.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// The largest response body read from a receiver (larger ones fail the attempt).
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// How long a worker holds a delivery for one attempt: longer than an attempt, much shorter than
/// the queue's visibility timeout (180 s), so a redelivered message finds the lease expired.
pub const LEASE: Duration = Duration::from_secs(60);

/// The guard settings of deliveries: the environment's allowlist, a 15 s deadline, no redirects.
pub fn guard_config(base: GuardConfig) -> GuardConfig {
    GuardConfig {
        connect_timeout: Duration::from_secs(5),
        total_timeout: ATTEMPT_TIMEOUT,
        max_body_bytes: MAX_RESPONSE_BYTES,
        max_redirects: 0,
        user_agent: concat!("ChatPad-Webhooks/", env!("CARGO_PKG_VERSION")).to_owned(),
        ..base
    }
}

/// One queue message.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Job {
    op: String,
    delivery_id: Uuid,
    attempt: i32,
    /// A manual replay: one attempt, no retries.
    #[serde(default)]
    replay: bool,
}

/// What to send for one leased attempt.
struct Target {
    url: String,
    secrets: Vec<SigningSecret>,
    event_id: Uuid,
    payload: serde_json::Value,
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempted {
    /// Nothing to do: already made, finished, or another worker holds it.
    Skipped,
    /// Delivered (2xx).
    Succeeded,
    /// Failed; the next attempt is due after this wait.
    WillRetry(Duration),
    /// Failed for good (attempts exhausted, 410, refused URL, or a replay).
    Failed,
}

/// Delivers webhook attempts. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Deliverer {
    pub db: Database,
    pub http: GuardedClient,
    pub secrets: SecretBox,
}

impl Deliverer {
    /// Processes one queue message for the batch runner.
    pub async fn process(&self, body: &str) -> (Outcome, Attempted) {
        let job = match serde_json::from_str::<Job>(body) {
            Ok(job) if job.op == "deliver" && job.attempt >= 1 => job,
            _ => {
                return (
                    Outcome::GiveUp(format!(
                        "not a webhook delivery job: {}",
                        body.chars().take(200).collect::<String>()
                    )),
                    Attempted::Skipped,
                );
            }
        };
        let span = tracing::info_span!("webhook_attempt", delivery_id = %job.delivery_id, attempt = job.attempt);
        match self.attempt(&job).instrument(span).await {
            Ok(attempted) => (Outcome::Done, attempted),
            // The lease expires and SQS redelivers the message: the same attempt is made again.
            Err(err) => (Outcome::Retry(err), Attempted::Skipped),
        }
    }

    async fn attempt(&self, job: &Job) -> anyhow::Result<Attempted> {
        let Some(target) = self.start(job).await? else {
            return Ok(Attempted::Skipped);
        };
        let started = Instant::now();
        let result = self.send(&target).await;
        let elapsed_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        let next_wait = if job.replay {
            None
        } else {
            schedule::next_wait(job.attempt)
        };
        let (outcome, status, error, attempted) = judge(&result, next_wait);
        let next_at = match attempted {
            Attempted::WillRetry(wait) => {
                Some(Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default())
            }
            _ => None,
        };
        let mut client = self.db.client().await?;
        let tx = db::begin_as(&mut client, &Caller::Service).await?;
        let recorded: bool = tx
            .query_one(
                "SELECT webhook_delivery_finish($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &job.delivery_id,
                    &job.attempt,
                    &outcome,
                    &status,
                    &elapsed_ms,
                    &error,
                    &next_at,
                ],
            )
            .await?
            .get(0);
        tx.commit().await?;
        tracing::info!(
            outcome,
            status,
            elapsed_ms,
            recorded,
            "webhook attempt made"
        );
        Ok(if recorded {
            attempted
        } else {
            Attempted::Skipped
        })
    }

    /// Leases the delivery for this attempt and reads what to send.
    async fn start(&self, job: &Job) -> anyhow::Result<Option<Target>> {
        let mut client = self.db.client().await?;
        let tx = db::begin_as(&mut client, &Caller::Service).await?;
        let lease = LEASE.as_secs() as i32;
        let row = tx
            .query_opt(
                "SELECT * FROM webhook_delivery_start($1, $2, $3)",
                &[&job.delivery_id, &job.attempt, &lease],
            )
            .await?;
        tx.commit().await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut secrets = vec![SigningSecret::from_bytes(
            self.secrets.open(row.get("secret_ciphertext"))?,
        )];
        if let Some(previous) = row.get::<_, Option<&[u8]>>("previous_secret_ciphertext") {
            secrets.push(SigningSecret::from_bytes(self.secrets.open(previous)?));
        }
        Ok(Some(Target {
            url: row.get("url"),
            secrets,
            event_id: row.get("event_id"),
            payload: row.get("payload"),
        }))
    }

    /// POSTs the signed event.
    async fn send(&self, target: &Target) -> Result<Fetched, FetchError> {
        let body = serde_json::to_vec(&target.payload).expect("JSON values serialise");
        let id = target.event_id.to_string();
        let timestamp = Utc::now().timestamp();
        let signature = signature_header(&target.secrets, &id, timestamp, &body);
        let header = |v: &str| HeaderValue::from_str(v).expect("ids, digits and base64 are valid");
        let request = FetchRequest::post(target.url.clone(), body)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(HeaderName::from_static("webhook-id"), header(&id))
            .header(
                HeaderName::from_static("webhook-timestamp"),
                header(&timestamp.to_string()),
            )
            .header(
                HeaderName::from_static("webhook-signature"),
                header(&signature),
            );
        self.http.fetch(request).await
    }
}

/// Judges an attempt: (outcome for the database, HTTP status, error, what it came to). Only
/// 2xx is a success; a 3xx is a failure like any other (redirects are not followed).
fn judge(
    result: &Result<Fetched, FetchError>,
    next_wait: Option<Duration>,
) -> (&'static str, Option<i32>, Option<String>, Attempted) {
    let failed = |status: Option<i32>, error: String| match next_wait {
        Some(wait) => ("retry", status, Some(error), Attempted::WillRetry(wait)),
        None => ("failed", status, Some(error), Attempted::Failed),
    };
    match result {
        Ok(response) if response.status.is_success() => (
            "succeeded",
            Some(response.status.as_u16().into()),
            None,
            Attempted::Succeeded,
        ),
        Ok(response) if response.status == http::StatusCode::GONE => (
            "gone",
            Some(410),
            Some("410 Gone: the endpoint is disabled".into()),
            Attempted::Failed,
        ),
        Ok(response) => {
            let excerpt: String = String::from_utf8_lossy(&response.body)
                .chars()
                .take(200)
                .collect();
            failed(
                Some(response.status.as_u16().into()),
                format!("HTTP {}: {excerpt}", response.status),
            )
        }
        // The guard refused the URL itself: retrying cannot help.
        Err(err) if err.is_refused() => ("failed", None, Some(err.to_string()), Attempted::Failed),
        Err(err) => failed(None, err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: u16) -> Result<Fetched, FetchError> {
        Ok(Fetched {
            final_url: "https://example.com/".parse().unwrap(),
            status: http::StatusCode::from_u16(status).unwrap(),
            headers: Default::default(),
            body: b"nope".to_vec(),
            redirects: Vec::new(),
        })
    }

    #[test]
    fn only_2xx_succeeds_410_gives_up_and_other_answers_retry_while_attempts_remain() {
        let wait = Some(Duration::from_secs(5));
        assert_eq!(judge(&answered(204), wait).3, Attempted::Succeeded);
        assert_eq!(judge(&answered(410), wait).0, "gone");
        for status in [301, 302, 400, 429, 500, 503] {
            let (outcome, code, error, attempted) = judge(&answered(status), wait);
            assert_eq!((outcome, code), ("retry", Some(status as i32)));
            assert!(error.unwrap().contains("nope"));
            assert_eq!(attempted, Attempted::WillRetry(Duration::from_secs(5)));
            assert_eq!(judge(&answered(status), None).0, "failed");
        }
        let refused = Err(FetchError::UserInfoNotAllowed);
        assert_eq!(judge(&refused, wait).0, "failed");
        let timeout = Err(FetchError::Timeout {
            limit: ATTEMPT_TIMEOUT,
        });
        assert_eq!(judge(&timeout, wait).0, "retry");
    }
}
