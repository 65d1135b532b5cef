//! The scheduler: runs every minute (an EventBridge schedule) and does the periodic chores —
//! starts due re-syncs of web sources, expires unconfirmed uploads, and relays whatever is
//! left in the outbox (jobs of requests whose own relay failed, e.g. an SQS outage or a crash
//! right after commit).

use chatpad::auth::Caller;
use chatpad::db::{self, Database};
use chatpad::outbox::Relay;
use serde::Serialize;

/// Outbox rows relayed per run at most (the rest waits for the next minute).
const MAX_RELAYED: usize = 1_000;

/// What one run did.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub syncs_started: i32,
    pub uploads_expired: i32,
    pub jobs_relayed: usize,
}

/// Runs the chores once.
pub async fn run(db: &Database, relay: &Relay) -> anyhow::Result<Report> {
    let mut client = db.client().await?;
    let tx = db::begin_as(&mut client, &Caller::Service).await?;
    let syncs_started: i32 = tx.query_one("SELECT start_due_syncs()", &[]).await?.get(0);
    let uploads_expired: i32 = tx.query_one("SELECT expire_uploads()", &[]).await?.get(0);
    tx.commit().await?;
    drop(client);
    let jobs_relayed = relay.run(db, MAX_RELAYED).await?;
    let report = Report {
        syncs_started,
        uploads_expired,
        jobs_relayed,
    };
    tracing::info!(?report, "scheduled chores done");
    Ok(report)
}
