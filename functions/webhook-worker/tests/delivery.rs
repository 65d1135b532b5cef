//! Webhook delivery against real parts: Postgres (RLS, the emitting triggers, the outbox),
//! SQS (moto, a queue per test), the worker's handler, and a loopback receiver that checks
//! every signature with an independent Standard Webhooks implementation (`standardwebhooks`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use chatpad::auth::Caller;
use chatpad::crypto::SecretBox;
use chatpad::net::{GuardConfig, parse_allow_list};
use chatpad::outbox::Relay;
use chatpad::testing::http::{Reply, Seen, Server, redirect, respond};
use chatpad::testing::{TestDb, aws_config, own_queues};
use chatpad::webhooks::endpoints::{self, NewWebhook, SecretRotation};
use chatpad::webhooks::events::EventType;
use chatpad::webhooks::schedule::{MAX_ATTEMPTS, RETRY_WAITS};
use serde_json::Value;
use uuid::Uuid;
use webhook_worker::{Worker, handle};

/// One test's world: a database, a pro account with an agent, a worker, its own queues.
struct World {
    test: TestDb,
    owner: Uuid,
    agent: Uuid,
    worker: Arc<Worker>,
    sqs: aws_sdk_sqs::Client,
    queue: String,
}

impl World {
    async fn new() -> World {
        let test = TestDb::new().await;
        let owner = test.user(Some("pro")).await;
        let agent = test.agent(owner).await;
        let sqs = chatpad::aws::sqs_client(&aws_config().await);
        let [ingest, webhooks] = own_queues(&sqs, "test").await;
        let worker = Worker::new(
            test.db.clone(),
            local_guard(),
            secret_box(),
            Relay::new(sqs.clone(), ingest, webhooks.clone()),
        )
        .unwrap();
        World {
            test,
            owner,
            agent,
            worker: Arc::new(worker),
            sqs,
            queue: webhooks,
        }
    }

    /// A second worker instance with a pool of its own, as another Lambda environment has.
    fn worker_instance(&self) -> Worker {
        let db =
            chatpad::db::Database::connect_lazy(&self.test.app_url.clone().into(), 10).unwrap();
        Worker::new(db, local_guard(), secret_box(), self.worker.relay.clone()).unwrap()
    }

    /// Adds an endpoint as the account owner (through RLS); returns its id and secret.
    async fn endpoint(&self, url: &str, events: &[EventType]) -> (Uuid, String) {
        let mut client = self.test.db.client().await.unwrap();
        let tx = chatpad::db::begin_as(&mut client, &self.as_owner())
            .await
            .unwrap();
        let new = NewWebhook {
            url: url.into(),
            events: events.to_vec(),
            description: None,
            enabled: None,
        };
        let hook = endpoints::create(&tx, &secret_box(), &local_guard(), self.owner, &new)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        (hook.id, hook.secret.unwrap())
    }

    fn as_owner(&self) -> Caller {
        Caller::User {
            user_id: self.owner,
        }
    }

    /// Runs SQL as the account owner, in one transaction.
    async fn owner_sql(&self, sql: &str) {
        let mut client = self.test.db.client().await.unwrap();
        let tx = chatpad::db::begin_as(&mut client, &self.as_owner())
            .await
            .unwrap();
        tx.batch_execute(sql).await.unwrap();
        tx.commit().await.unwrap();
    }

    /// A conversation of the agent, created as its visitor would (widget role).
    async fn conversation(&self) -> Uuid {
        let visitor = Caller::Widget {
            agent_id: self.agent,
            visitor_id: "visitor-1".into(),
        };
        let mut client = self.test.db.client().await.unwrap();
        let tx = chatpad::db::begin_as(&mut client, &visitor).await.unwrap();
        let id = tx
            .query_one(
                "INSERT INTO conversations (agent_id, visitor_id) VALUES ($1, 'visitor-1') RETURNING id",
                &[&self.agent],
            )
            .await
            .unwrap()
            .get(0);
        tx.commit().await.unwrap();
        id
    }

    async fn lead(&self, email: &str) {
        self.owner_sql(&format!(
            "INSERT INTO leads (agent_id, visitor_id, email, fields) VALUES ('{}', 'visitor-1', '{email}', '{{\"email\": \"{email}\"}}')",
            self.agent
        ))
        .await;
    }

    /// Relays the outbox, then hands what the queue holds to the worker, batch by batch, until
    /// the queue is empty; waits up to `wait_s` seconds for delayed messages. Returns how many
    /// messages were handled.
    async fn pump(&self, wait_s: i32) -> usize {
        self.worker.relay.run(&self.test.db, 1000).await.unwrap();
        let (mut handled, mut wait) = (0, wait_s);
        loop {
            let messages = self.receive(wait).await;
            wait = 0;
            if messages.is_empty() {
                return handled;
            }
            handled += messages.len();
            let response = handle(Arc::clone(&self.worker), event(&messages)).await;
            let failed: BTreeSet<String> = response
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect();
            for m in messages {
                if !failed.contains(m.message_id().unwrap()) {
                    self.sqs
                        .delete_message()
                        .queue_url(&self.queue)
                        .receipt_handle(m.receipt_handle().unwrap())
                        .send()
                        .await
                        .unwrap();
                }
            }
        }
    }

    async fn receive(&self, wait_s: i32) -> Vec<aws_sdk_sqs::types::Message> {
        self.sqs
            .receive_message()
            .queue_url(&self.queue)
            .max_number_of_messages(10)
            .wait_time_seconds(wait_s)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default()
    }

    async fn deliveries(&self) -> Vec<tokio_postgres::Row> {
        self.test
            .superuser()
            .await
            .query(
                "SELECT d.*, (SELECT count(*) FROM webhook_attempts a WHERE a.delivery_id = d.id) AS logged
                 FROM webhook_deliveries d ORDER BY created_at, event_type",
                &[],
            )
            .await
            .unwrap()
    }
}

/// The guard of the local stack: loopback receivers are allowed.
fn local_guard() -> GuardConfig {
    GuardConfig {
        allow: parse_allow_list("127.0.0.1/32").unwrap(),
        ..GuardConfig::default()
    }
}

fn secret_box() -> SecretBox {
    // The same key for every test: endpoints sealed in one place open in the worker.
    SecretBox::from_base64_key("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=").unwrap()
}

fn event(messages: &[aws_sdk_sqs::types::Message]) -> SqsEvent {
    let mut event = SqsEvent::default();
    for m in messages {
        let mut record = SqsMessage::default();
        record.message_id = m.message_id().map(str::to_owned);
        record.receipt_handle = m.receipt_handle().map(str::to_owned);
        record.body = m.body().map(str::to_owned);
        event.records.push(record);
    }
    event
}

/// Checks a received request with the independent implementation; returns its JSON body.
fn verified(seen: &Seen, secret: &str) -> Value {
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.header("content-type"), Some("application/json"));
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let value = seen
            .header(name)
            .unwrap_or_else(|| panic!("{name} missing"));
        headers.insert(name, value.parse().unwrap());
    }
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(&seen.body, &headers)
        .unwrap_or_else(|e| panic!("signature does not verify: {e:?}"));
    let body: Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(body["id"], seen.header("webhook-id").unwrap());
    body
}

fn ok_receiver() -> impl Fn(&Seen, std::net::SocketAddr) -> Reply {
    |_, _| respond(200, "application/json", "{}")
}

#[tokio::test]
async fn a_lead_is_delivered_signed_and_logged() {
    let world = World::new().await;
    let receiver = Server::start(ok_receiver()).await;
    let (_, secret) = world
        .endpoint(receiver.url("/hook").as_str(), &[EventType::LeadCreated])
        .await;

    world.lead("ada@example.com").await;
    assert_eq!(world.pump(0).await, 1);

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let body = verified(&requests[0], &secret);
    assert_eq!(body["type"], "lead.created");
    assert_eq!(body["data"]["email"], "ada@example.com");
    assert_eq!(body["data"]["agentId"], world.agent.to_string());
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    // A secret that is not the endpoint's does not verify.
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, requests[0].header(name).unwrap().parse().unwrap());
    }
    assert!(
        standardwebhooks::Webhook::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap()
            .verify(&requests[0].body, &headers)
            .is_err()
    );

    let rows = world.deliveries().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, &str>("status"), "succeeded");
    assert_eq!(rows[0].get::<_, Option<i32>>("response_status"), Some(200));
    assert_eq!(rows[0].get::<_, i32>("attempts"), 1);
    assert_eq!(rows[0].get::<_, i64>("logged"), 1);
    assert_eq!(
        rows[0].get::<_, Uuid>("event_id").to_string(),
        requests[0].header("webhook-id").unwrap()
    );
}

#[tokio::test]
async fn each_of_the_six_events_fires_from_the_action_that_causes_it() {
    let world = World::new().await;
    let receiver = Server::start(ok_receiver()).await;
    let (_, secret) = world
        .endpoint(receiver.url("/all").as_str(), &EventType::ALL)
        .await;
    let (_, lead_secret) = world
        .endpoint(receiver.url("/leads").as_str(), &[EventType::LeadCreated])
        .await;

    let conversation = world.conversation().await;
    world
        .owner_sql(&format!(
            "INSERT INTO messages (conversation_id, role, content) VALUES ('{conversation}', 'user', 'Where is my order?');
             INSERT INTO messages (conversation_id, role, content) VALUES ('{conversation}', 'assistant', 'Let me check.');
             INSERT INTO leads (agent_id, conversation_id, visitor_id, email) VALUES ('{agent}', '{conversation}', 'visitor-1', 'bo@example.com');
             INSERT INTO takeovers (conversation_id, taken_by) VALUES ('{conversation}', '{owner}');",
            agent = world.agent,
            owner = world.owner
        ))
        .await;
    world
        .owner_sql(&format!(
            "UPDATE takeovers SET ended_at = now(), end_action = 'closed', summary = 'Refund sent' WHERE conversation_id = '{conversation}';
             UPDATE conversations SET status = 'closed', closed_at = now(), summary = 'Order refunded' WHERE id = '{conversation}';
             UPDATE conversations SET summary = 'edited' WHERE id = '{conversation}';"
        ))
        .await;
    // A change rolled back emits nothing.
    let mut client = world.test.db.client().await.unwrap();
    let tx = chatpad::db::begin_as(&mut client, &world.as_owner())
        .await
        .unwrap();
    tx.execute(
        "INSERT INTO leads (agent_id, email) VALUES ($1, 'gone@example.com')",
        &[&world.agent],
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    drop(client);

    world.pump(0).await;
    let mut by_type = BTreeMap::new();
    let mut lead_endpoint = Vec::new();
    for seen in receiver.requests() {
        if seen.path == "/leads" {
            lead_endpoint.push(verified(&seen, &lead_secret)["type"].clone());
            continue;
        }
        let body = verified(&seen, &secret);
        by_type.insert(
            body["type"].as_str().unwrap().to_owned(),
            body["data"].clone(),
        );
    }
    assert_eq!(
        by_type.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "conversation.closed",
            "conversation.created",
            "lead.created",
            "message.received",
            "takeover.ended",
            "takeover.started"
        ]
    );
    assert_eq!(
        receiver.requests().len(),
        7,
        "one delivery per event and endpoint"
    );
    assert_eq!(lead_endpoint, ["lead.created"]);
    let c = conversation.to_string();
    assert_eq!(by_type["conversation.created"]["conversationId"], c);
    assert_eq!(by_type["conversation.created"]["visitorId"], "visitor-1");
    assert_eq!(by_type["message.received"]["content"], "Where is my order?");
    assert_eq!(by_type["message.received"]["visitorId"], "visitor-1");
    assert_eq!(by_type["lead.created"]["conversationId"], c);
    assert_eq!(
        by_type["takeover.started"]["takenBy"],
        world.owner.to_string()
    );
    assert_eq!(by_type["takeover.ended"]["endAction"], "closed");
    assert_eq!(by_type["takeover.ended"]["summary"], "Refund sent");
    assert_eq!(by_type["conversation.closed"]["summary"], "Order refunded");
}

#[tokio::test]
async fn accounts_without_the_plan_feature_or_an_enabled_endpoint_emit_nothing() {
    let world = World::new().await;
    let receiver = Server::start(ok_receiver()).await;
    let (hook, _) = world
        .endpoint(receiver.url("/hook").as_str(), &EventType::ALL)
        .await;
    world
        .owner_sql(&format!(
            "UPDATE webhooks SET enabled = false WHERE id = '{hook}'"
        ))
        .await;
    world.lead("a@example.com").await;
    world
        .owner_sql(&format!(
            "UPDATE webhooks SET enabled = true WHERE id = '{hook}'"
        ))
        .await;
    // Downgraded to basic: the endpoint stays, events stop.
    world
        .test
        .superuser()
        .await
        .execute(
            "UPDATE subscriptions SET plan_id = 'basic' WHERE user_id = $1",
            &[&world.owner],
        )
        .await
        .unwrap();
    world.lead("b@example.com").await;
    world.conversation().await;
    assert_eq!(world.pump(0).await, 0);
    assert!(world.deliveries().await.is_empty());
    assert!(receiver.requests().is_empty());
}

#[tokio::test]
async fn a_failing_receiver_gets_retries_on_the_schedule_until_it_gives_up() {
    let world = World::new().await;
    let receiver = Server::start(|_, _| respond(500, "text/plain", "database down")).await;
    let (hook, secret) = world
        .endpoint(receiver.url("/hook").as_str(), &[EventType::LeadCreated])
        .await;
    world.lead("c@example.com").await;

    // Attempt 1 fails; attempt 2 comes back through the outbox and SQS after its delay.
    world.pump(0).await;
    let row = &world.deliveries().await[0];
    assert_eq!(row.get::<_, &str>("status"), "retrying");
    assert_eq!(row.get::<_, Option<i32>>("response_status"), Some(500));
    assert!(row.get::<_, &str>("error").contains("database down"));
    world.pump(20).await;
    assert_eq!(
        receiver.requests().len(),
        2,
        "the 5 s retry arrived through SQS"
    );

    // Each later attempt is due after the schedule's wait (±10 % jitter). Waiting minutes to
    // hours is not for a test: each attempt's message is handed over as the outbox holds it.
    let su = world.test.superuser().await;
    let delivery: Uuid = row.get("id");
    for attempt in 2..=MAX_ATTEMPTS {
        let (status, wait): (String, Option<f64>) = {
            let r = su
                .query_one(
                    "SELECT status, attempts, extract(epoch FROM next_attempt_at - last_attempt_at)::float8
                     FROM webhook_deliveries WHERE id = $1",
                    &[&delivery],
                )
                .await
                .unwrap();
            assert_eq!(r.get::<_, i32>(1), attempt);
            (r.get(0), r.get(2))
        };
        if attempt == MAX_ATTEMPTS {
            assert_eq!(status, "failed");
            assert_eq!(wait, None);
            break;
        }
        assert_eq!(status, "retrying");
        let base = RETRY_WAITS[attempt as usize - 1].as_secs_f64();
        let wait = wait.unwrap();
        assert!(
            wait >= base * 0.9 - 1.0 && wait <= base * 1.1 + 1.0,
            "attempt {attempt}: waits {wait} s, schedule says {base} s"
        );
        let job =
            serde_json::json!({"op": "deliver", "deliveryId": delivery, "attempt": attempt + 1});
        let message = aws_sdk_sqs::types::Message::builder()
            .message_id(Uuid::new_v4().to_string())
            .body(job.to_string())
            .build();
        let response = handle(Arc::clone(&world.worker), event(&[message])).await;
        assert!(response.batch_item_failures.is_empty());
    }
    let requests = receiver.requests();
    assert_eq!(requests.len(), MAX_ATTEMPTS as usize);
    let ids: BTreeSet<String> = requests
        .iter()
        .map(|s| verified(s, &secret)["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "every attempt carries the same webhook-id");
    let logged: i64 = su
        .query_one(
            "SELECT count(*) FROM webhook_attempts WHERE delivery_id = $1",
            &[&delivery],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(logged, MAX_ATTEMPTS as i64);
    // No attempt after the last, and the endpoint is failing but still enabled.
    let beyond: i64 = su
        .query_one(
            "SELECT count(*) FROM outbox WHERE (payload->>'attempt')::int > $1",
            &[&MAX_ATTEMPTS],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(beyond, 0);
    let enabled: bool = su
        .query_one(
            "SELECT enabled FROM webhooks WHERE id = $1 AND failing_since IS NOT NULL",
            &[&hook],
        )
        .await
        .unwrap()
        .get(0);
    assert!(enabled);
}

#[tokio::test]
async fn a_410_disables_the_endpoint_and_tells_the_owner() {
    let world = World::new().await;
    let receiver = Server::start(|_, _| respond(410, "text/plain", "gone")).await;
    let (hook, _) = world
        .endpoint(receiver.url("/hook").as_str(), &[EventType::LeadCreated])
        .await;
    world.lead("d@example.com").await;
    world.lead("e@example.com").await;
    world.pump(0).await;
    let su = world.test.superuser().await;
    let row = su
        .query_one(
            "SELECT enabled, disabled_reason FROM webhooks WHERE id = $1",
            &[&hook],
        )
        .await
        .unwrap();
    assert!(!row.get::<_, bool>(0));
    assert!(row.get::<_, &str>(1).contains("410"));
    let statuses: Vec<String> = world
        .deliveries()
        .await
        .iter()
        .map(|r| r.get("status"))
        .collect();
    assert_eq!(statuses, ["failed", "failed"]);
    let logged: i64 = su
        .query_one(
            "SELECT count(*) FROM security_logs WHERE user_id = $1 AND event_type = 'webhook.disabled'",
            &[&world.owner],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(logged, 1, "the owner is told once");
    assert!(receiver.requests().len() <= 2);
}

#[tokio::test]
async fn an_endpoint_failing_for_five_days_is_disabled() {
    let world = World::new().await;
    let receiver = Server::start(|_, _| respond(503, "text/plain", "maintenance")).await;
    let (hook, _) = world
        .endpoint(receiver.url("/hook").as_str(), &[EventType::LeadCreated])
        .await;
    let su = world.test.superuser().await;
    // Four days of failures: still enabled after one more.
    su.execute(
        "UPDATE webhooks SET failing_since = now() - interval '4 days'",
        &[],
    )
    .await
    .unwrap();
    world.lead("f@example.com").await;
    world.pump(0).await;
    let enabled: bool = su
        .query_one("SELECT enabled FROM webhooks WHERE id = $1", &[&hook])
        .await
        .unwrap()
        .get(0);
    assert!(enabled);
    su.execute(
        "UPDATE webhooks SET failing_since = now() - interval '5 days 1 hour'",
        &[],
    )
    .await
    .unwrap();
    world.lead("g@example.com").await;
    world.pump(0).await;
    let row = su
        .query_one(
            "SELECT enabled, disabled_reason FROM webhooks WHERE id = $1",
            &[&hook],
        )
        .await
        .unwrap();
    assert!(!row.get::<_, bool>(0));
    assert!(row.get::<_, &str>(1).contains("5 days"));
    let logged: i64 = su
        .query_one(
            "SELECT count(*) FROM security_logs WHERE event_type = 'webhook.disabled' AND details->>'reason' LIKE '%5 days%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(logged, 1);
}

#[tokio::test]
async fn a_worker_killed_mid_batch_loses_nothing_and_duplicates_share_the_webhook_id() {
    let world = World::new().await;
    // The first three requests never get an answer: the worker is killed while they hang.
    let hung = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hung);
    let receiver = Server::start(move |_, _| {
        if counter.fetch_add(1, Ordering::SeqCst) < 3 {
            Reply::Hang
        } else {
            respond(204, "text/plain", "")
        }
    })
    .await;
    let (_, secret) = world
        .endpoint(receiver.url("/hook").as_str(), &[EventType::LeadCreated])
        .await;
    for i in 0..6 {
        world.lead(&format!("k{i}@example.com")).await;
    }
    world.worker.relay.run(&world.test.db, 100).await.unwrap();
    let messages = world.receive(1).await;
    assert_eq!(messages.len(), 6);

    // Another worker instance (its own runtime and pool) runs the batch until the receiver has
    // seen all six requests and three deliveries are recorded, then the process dies: its
    // runtime stops with every task in it.
    let instance = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let doomed = Arc::new(world.worker_instance());
    instance.spawn(handle(doomed, event(&messages)));
    let su = world.test.superuser().await;
    loop {
        let done: i64 = su
            .query_one(
                "SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if done == 3 && receiver.requests().len() == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    instance.shutdown_background();

    // Nothing was acknowledged: the visibility timeout passes and SQS redelivers all six; the
    // dead worker's leases have run out by then.
    su.execute("UPDATE webhook_deliveries SET in_flight_until = now() - interval '1 second' WHERE in_flight_until IS NOT NULL", &[])
        .await
        .unwrap();
    for m in &messages {
        world
            .sqs
            .change_message_visibility()
            .queue_url(&world.queue)
            .receipt_handle(m.receipt_handle().unwrap())
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }
    assert_eq!(world.pump(1).await, 6);

    let rows = world.deliveries().await;
    assert!(
        rows.iter()
            .all(|r| r.get::<_, &str>("status") == "succeeded")
    );
    let requests = receiver.requests();
    assert_eq!(
        requests.len(),
        9,
        "the three unanswered requests were sent again"
    );
    let mut seen: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for r in &requests {
        verified(r, &secret);
        seen.entry(r.header("webhook-id").unwrap().to_owned())
            .or_default()
            .push(r.body.clone());
    }
    assert_eq!(seen.len(), 6, "every event arrived");
    let duplicated: Vec<_> = seen.values().filter(|bodies| bodies.len() > 1).collect();
    assert_eq!(duplicated.len(), 3);
    assert!(duplicated.iter().all(|b| b.len() == 2 && b[0] == b[1]));
}

#[tokio::test]
async fn a_redelivered_message_does_not_deliver_twice() {
    let world = World::new().await;
    let receiver = Server::start(ok_receiver()).await;
    world
        .endpoint(receiver.url("/hook").as_str(), &[EventType::LeadCreated])
        .await;
    world.lead("h@example.com").await;
    world.worker.relay.run(&world.test.db, 100).await.unwrap();
    let messages = world.receive(1).await;
    handle(Arc::clone(&world.worker), event(&messages)).await;
    let again = handle(Arc::clone(&world.worker), event(&messages)).await;
    assert!(again.batch_item_failures.is_empty());
    assert_eq!(receiver.requests().len(), 1);
    // Not a delivery job at all: acknowledged, not retried forever.
    let junk = aws_sdk_sqs::types::Message::builder()
        .message_id("junk")
        .body("{\"op\": \"other\"}")
        .build();
    assert!(
        handle(Arc::clone(&world.worker), event(&[junk]))
            .await
            .batch_item_failures
            .is_empty()
    );
}

#[tokio::test]
async fn redirects_are_answers_not_followed() {
    let world = World::new().await;
    let receiver = Server::start(|seen, _| match seen.path.as_str() {
        "/hook" => redirect(302, "/elsewhere"),
        _ => respond(200, "text/plain", ""),
    })
    .await;
    world
        .endpoint(receiver.url("/hook").as_str(), &[EventType::LeadCreated])
        .await;
    world.lead("i@example.com").await;
    world.pump(0).await;
    assert_eq!(receiver.paths(), ["/hook"]);
    let row = &world.deliveries().await[0];
    assert_eq!(row.get::<_, &str>("status"), "retrying");
    assert_eq!(row.get::<_, Option<i32>>("response_status"), Some(302));
}

#[tokio::test]
async fn during_a_rotation_both_secrets_sign_until_the_grace_period_ends() {
    let world = World::new().await;
    let receiver = Server::start(ok_receiver()).await;
    let (hook, old) = world
        .endpoint(receiver.url("/hook").as_str(), &[EventType::LeadCreated])
        .await;
    let mut client = world.test.db.client().await.unwrap();
    let tx = chatpad::db::begin_as(&mut client, &world.as_owner())
        .await
        .unwrap();
    let rotated = endpoints::rotate_secret(&tx, &secret_box(), hook, &SecretRotation::default())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    drop(client);
    let new = rotated.secret.unwrap();
    assert_ne!(new, old);
    assert!(rotated.previous_secret_expires_at.is_some());

    world.lead("j@example.com").await;
    world.pump(0).await;
    let first = &receiver.requests()[0];
    assert_eq!(
        first
            .header("webhook-signature")
            .unwrap()
            .split(' ')
            .count(),
        2
    );
    verified(first, &old);
    verified(first, &new);

    // The grace period is over: only the new secret signs.
    world
        .test
        .superuser()
        .await
        .execute(
            "UPDATE webhooks SET previous_secret_expires_at = now() - interval '1 second'",
            &[],
        )
        .await
        .unwrap();
    world.lead("k@example.com").await;
    world.pump(0).await;
    let second = &receiver.requests()[1];
    assert_eq!(
        second
            .header("webhook-signature")
            .unwrap()
            .split(' ')
            .count(),
        1
    );
    verified(second, &new);
}

#[tokio::test]
async fn a_replay_sends_the_same_event_again_once() {
    let world = World::new().await;
    let answers = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&answers);
    let receiver = Server::start(move |_, _| {
        // Down at first (the delivery fails for good once attempts run out), then back.
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            respond(500, "text/plain", "")
        } else {
            respond(200, "text/plain", "")
        }
    })
    .await;
    world
        .endpoint(receiver.url("/hook").as_str(), &[EventType::LeadCreated])
        .await;
    world.lead("l@example.com").await;
    world.pump(0).await;
    let su = world.test.superuser().await;
    su.execute(
        "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL",
        &[],
    )
    .await
    .unwrap();
    su.execute("DELETE FROM outbox", &[]).await.unwrap();
    world.worker.relay.run(&world.test.db, 10).await.unwrap();
    // Drain the scheduled retry that was already handed to SQS (5 s delay) by purging the queue.
    world
        .sqs
        .purge_queue()
        .queue_url(&world.queue)
        .send()
        .await
        .unwrap();

    let delivery: Uuid = world.deliveries().await[0].get("id");
    let mut client = world.test.db.client().await.unwrap();
    let tx = chatpad::db::begin_as(&mut client, &world.as_owner())
        .await
        .unwrap();
    let replayed = chatpad::webhooks::deliveries::replay(&tx, delivery)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    drop(client);
    assert_eq!(replayed.delivery.status, "pending");
    world.pump(0).await;

    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].header("webhook-id"),
        requests[1].header("webhook-id")
    );
    let row = &world.deliveries().await[0];
    assert_eq!(row.get::<_, &str>("status"), "succeeded");
    assert_eq!(row.get::<_, i32>("attempts"), 2);
    assert_eq!(row.get::<_, i64>("logged"), 2);
}
