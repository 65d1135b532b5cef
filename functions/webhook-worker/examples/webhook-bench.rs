//! `make bench`: webhook delivery on the local stack.
//!
//! 1. **Throughput** of one worker instance: N deliveries (leads inserted in one transaction,
//!    so the triggers wrote N delivery and outbox rows) handed to the worker's handler in
//!    batches of 10, one batch at a time as Lambda gives one instance, to a loopback receiver.
//!    SQS is left out (Lambda's poller does that part); the handler's database work (lease and
//!    outcome per attempt), signing and the HTTP POST are in.
//! 2. **Latency** from the event to the first delivery attempt, through every real part: the
//!    lead's transaction commits, the relay sends the outbox row to SQS (moto) as the
//!    committing function does, a poller receives it (long polling, as Lambda's) and runs the
//!    handler, and the receiver notes when the POST arrives.
//!
//! Usage: `webhook-bench [deliveries] [events]` (defaults 2000 and 200).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use chatpad::auth::Caller;
use chatpad::crypto::SecretBox;
use chatpad::net::{GuardConfig, parse_allow_list};
use chatpad::outbox::Relay;
use chatpad::testing::http::{Server, respond};
use chatpad::testing::{TestDb, aws_config, own_queues};
use chatpad::webhooks::endpoints::{self, NewWebhook};
use chatpad::webhooks::events::EventType;
use uuid::Uuid;
use webhook_worker::{Worker, handle};

fn event(bodies: impl IntoIterator<Item = String>) -> SqsEvent {
    let mut event = SqsEvent::default();
    for body in bodies {
        let mut record = SqsMessage::default();
        record.message_id = Some(Uuid::new_v4().to_string());
        record.body = Some(body);
        event.records.push(record);
    }
    event
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let deliveries: usize = args.next().map_or(Ok(2000), |a| a.parse())?;
    let events: usize = args.next().map_or(Ok(200), |a| a.parse())?;

    let test = TestDb::new().await;
    let owner = test.user(Some("pro")).await;
    let agent = test.agent(owner).await;
    let secrets = SecretBox::from_base64_key("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")?;
    let guard = GuardConfig {
        allow: parse_allow_list("127.0.0.1/32")?,
        ..GuardConfig::default()
    };
    let arrivals: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen = Arc::clone(&arrivals);
    let receiver = Server::start(move |request, _| {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
        if let Some(email) = body["data"]["email"].as_str() {
            seen.lock()
                .unwrap()
                .entry(email.to_owned())
                .or_insert_with(Instant::now);
        }
        respond(204, "text/plain", "")
    })
    .await;
    {
        let mut client = test.db.client().await?;
        let tx = chatpad::db::begin_as(&mut client, &Caller::User { user_id: owner }).await?;
        let new = NewWebhook {
            url: receiver.url("/hook").to_string(),
            events: vec![EventType::LeadCreated],
            description: None,
            enabled: None,
        };
        endpoints::create(&tx, &secrets, &guard, owner, &new).await?;
        tx.commit().await?;
    }
    let sqs = chatpad::aws::sqs_client(&aws_config().await);
    let [ingest, webhooks] = own_queues(&sqs, "bench").await;
    let worker = Arc::new(Worker::new(
        chatpad::db::Database::connect_lazy(&test.app_url.clone().into(), 10)?,
        guard,
        secrets,
        Relay::new(sqs.clone(), ingest, webhooks.clone()),
    )?);

    // 1. Throughput.
    let su = test.superuser().await;
    su.execute(
        "INSERT INTO leads (agent_id, email) SELECT $1, 'lead' || i || '@example.com' FROM generate_series(1, $2::int) i",
        &[&agent, &(deliveries as i32)],
    )
    .await?;
    let jobs: Vec<String> = su
        .query("DELETE FROM outbox RETURNING payload::text", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let started = Instant::now();
    for batch in jobs.chunks(10) {
        let response = handle(Arc::clone(&worker), event(batch.iter().cloned())).await;
        anyhow::ensure!(response.batch_item_failures.is_empty(), "a batch failed");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let delivered: i64 = su
        .query_one(
            "SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'",
            &[],
        )
        .await?
        .get(0);
    anyhow::ensure!(
        delivered as usize == jobs.len(),
        "only {delivered} of {} delivered",
        jobs.len()
    );
    println!(
        "webhook throughput, one worker instance (batches of 10): {} deliveries in {elapsed:.2} s = {:.0} deliveries/s (target >= 200)",
        jobs.len(),
        jobs.len() as f64 / elapsed
    );

    // 2. Latency: a poller like Lambda's (long polling) in the background.
    let poller = {
        let (worker, sqs, queue) = (Arc::clone(&worker), sqs.clone(), webhooks.clone());
        tokio::spawn(async move {
            loop {
                let Ok(out) = sqs
                    .receive_message()
                    .queue_url(&queue)
                    .max_number_of_messages(10)
                    .wait_time_seconds(1)
                    .send()
                    .await
                else {
                    continue;
                };
                let messages = out.messages.unwrap_or_default();
                if messages.is_empty() {
                    continue;
                }
                handle(
                    Arc::clone(&worker),
                    event(messages.iter().filter_map(|m| m.body.clone())),
                )
                .await;
                for m in &messages {
                    if let Some(handle) = m.receipt_handle() {
                        let _ = sqs
                            .delete_message()
                            .queue_url(&queue)
                            .receipt_handle(handle)
                            .send()
                            .await;
                    }
                }
            }
        })
    };
    let mut created = HashMap::new();
    let mut client = test.db.client().await?;
    for i in 0..events {
        let email = format!("latency{i}@example.com");
        let t0 = Instant::now();
        let tx = chatpad::db::begin_as(&mut client, &Caller::User { user_id: owner }).await?;
        tx.execute(
            "INSERT INTO leads (agent_id, email) VALUES ($1, $2)",
            &[&agent, &email],
        )
        .await?;
        tx.commit().await?;
        worker.relay.run(&test.db, 20).await?;
        created.insert(email, t0);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while arrivals.lock().unwrap().len() < deliveries + events && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    poller.abort();
    let arrived = arrivals.lock().unwrap().clone();
    let mut latencies: Vec<f64> = created
        .iter()
        .filter_map(|(email, t0)| {
            arrived
                .get(email)
                .map(|t1| (*t1 - *t0).as_secs_f64() * 1000.0)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    anyhow::ensure!(
        latencies.len() == events,
        "only {} of {events} events arrived",
        latencies.len()
    );
    println!(
        "webhook latency, event commit -> first attempt at the receiver ({events} events): p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms (target p95 <= 2000)",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95),
        latencies[latencies.len() - 1]
    );
    Ok(())
}
