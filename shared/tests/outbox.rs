//! The transactional outbox: jobs are written with the change that causes them (or not at all),
//! only the service role can lease them, and the relay hands them to SQS (moto) at least once.

use chatpad::auth::Caller;
use chatpad::outbox::Relay;
use chatpad::testing::{TestDb, aws_config};
use serde_json::Value;
use uuid::Uuid;

/// A user on the pro plan and an agent of theirs.
async fn owner_with_agent(test: &TestDb) -> (Uuid, Uuid) {
    let user = test.user(Some("pro")).await;
    (user, test.agent(user).await)
}

async fn outbox(test: &TestDb) -> Vec<Value> {
    test.superuser()
        .await
        .query("SELECT payload FROM outbox ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn db_message(err: &tokio_postgres::Error) -> &str {
    err.as_db_error().map_or("", |e| e.message())
}

const ADD_TEXT: &str = "INSERT INTO knowledge_sources (agent_id, type, title, settings)
     VALUES ($1, 'text', 't', '{\"text\": \"hello\"}') RETURNING id";

#[tokio::test]
async fn a_source_is_queued_in_the_same_transaction_or_not_at_all() {
    let test = TestDb::new().await;
    let (user, agent) = owner_with_agent(&test).await;
    let caller = Caller::User { user_id: user };
    let mut client = test.db.client().await.unwrap();

    // Rolled back: neither the source nor its job exists.
    let tx = chatpad::db::begin_as(&mut client, &caller).await.unwrap();
    tx.query_one(ADD_TEXT, &[&agent]).await.unwrap();
    tx.rollback().await.unwrap();
    assert!(outbox(&test).await.is_empty());

    // Committed: exactly one job naming the source and its account.
    let tx = chatpad::db::begin_as(&mut client, &caller).await.unwrap();
    let source: Uuid = tx.query_one(ADD_TEXT, &[&agent]).await.unwrap().get(0);
    tx.commit().await.unwrap();
    let jobs = outbox(&test).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["op"], "ingest");
    assert_eq!(jobs[0]["sourceId"], source.to_string());
    assert_eq!(jobs[0]["userId"], user.to_string());

    // Only a transition into `pending` queues again; deleting a file source queues its object.
    let tx = chatpad::db::begin_as(&mut client, &caller).await.unwrap();
    tx.execute(
        "UPDATE knowledge_sources SET title = 'renamed' WHERE id = $1",
        &[&source],
    )
    .await
    .unwrap();
    tx.execute(
        "UPDATE knowledge_sources SET status = 'ready' WHERE id = $1",
        &[&source],
    )
    .await
    .unwrap();
    tx.execute(
        "UPDATE knowledge_sources SET status = 'pending' WHERE id = $1",
        &[&source],
    )
    .await
    .unwrap();
    tx.execute(
        "UPDATE knowledge_sources SET s3_key = 'sources/x/y/z.pdf' WHERE id = $1",
        &[&source],
    )
    .await
    .unwrap();
    tx.execute("DELETE FROM knowledge_sources WHERE id = $1", &[&source])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let jobs = outbox(&test).await;
    assert_eq!(jobs.len(), 4, "{jobs:?}");
    assert_eq!(jobs[1]["op"], "ingest");
    assert_eq!(jobs[2]["op"], "deleteObjects");
    assert_eq!(jobs[2]["keys"][0], "sources/x/y/z.pdf");
    // And the agent's search structures are synced without the source.
    assert_eq!(jobs[3]["op"], "syncSearch");
    assert_eq!(jobs[3]["userId"], user.to_string());
}

#[tokio::test]
async fn an_agent_deleted_with_its_sources_queues_no_search_sync() {
    let test = TestDb::new().await;
    let (user, agent) = owner_with_agent(&test).await;
    let mut client = test.db.client().await.unwrap();
    let tx = chatpad::db::begin_as(&mut client, &Caller::User { user_id: user })
        .await
        .unwrap();
    tx.query_one(ADD_TEXT, &[&agent]).await.unwrap();
    tx.execute("DELETE FROM agents WHERE id = $1", &[&agent])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let ops: Vec<Value> = outbox(&test)
        .await
        .iter()
        .map(|j| j["op"].clone())
        .collect();
    assert_eq!(ops, ["ingest"], "the source's own ingest job only");
}

#[tokio::test]
async fn only_the_service_role_leases_jobs_and_tenants_cannot_read_them() {
    let test = TestDb::new().await;
    let (user, agent) = owner_with_agent(&test).await;
    let mut client = test.db.client().await.unwrap();
    let tx = chatpad::db::begin_as(&mut client, &Caller::User { user_id: user })
        .await
        .unwrap();
    tx.query_one(ADD_TEXT, &[&agent]).await.unwrap();
    // The application role has no privilege on the table at all.
    let err = tx.query("SELECT * FROM outbox", &[]).await.unwrap_err();
    assert!(db_message(&err).contains("permission denied"), "{err:?}");
    tx.rollback().await.unwrap();

    for caller in [Caller::User { user_id: user }, Caller::Anonymous] {
        let tx = chatpad::db::begin_as(&mut client, &caller).await.unwrap();
        let err = tx
            .query("SELECT * FROM outbox_claim(10)", &[])
            .await
            .unwrap_err();
        assert!(db_message(&err).contains("service role"), "{err:?}");
        tx.rollback().await.unwrap();
    }
}

#[tokio::test]
async fn the_relay_sends_each_job_to_its_queue_and_resends_after_a_lost_lease() {
    let test = TestDb::new().await;
    let (user, agent) = owner_with_agent(&test).await;
    let sdk = aws_config().await;
    let sqs = chatpad::aws::sqs_client(&sdk);
    // Queues of this test alone, so the stack's worker does not take the messages.
    let queue = |name: String| {
        let sqs = sqs.clone();
        async move {
            sqs.create_queue()
                .queue_name(name)
                .send()
                .await
                .unwrap()
                .queue_url()
                .unwrap()
                .to_owned()
        }
    };
    let suffix = Uuid::new_v4().simple().to_string();
    let ingest = queue(format!("test-ingest-{suffix}")).await;
    let webhooks = queue(format!("test-webhooks-{suffix}")).await;
    let relay = Relay::new(sqs.clone(), ingest.clone(), webhooks.clone());

    let mut client = test.db.client().await.unwrap();
    let tx = chatpad::db::begin_as(&mut client, &Caller::User { user_id: user })
        .await
        .unwrap();
    let mut sources = Vec::new();
    for _ in 0..12 {
        let id: Uuid = tx.query_one(ADD_TEXT, &[&agent]).await.unwrap().get(0);
        sources.push(id.to_string());
    }
    tx.commit().await.unwrap();
    drop(client);

    // A relay that leased a row and died: the row comes back after its lease.
    let su = test.superuser().await;
    su.execute(
        "UPDATE outbox SET available_at = now() + interval '1 hour' WHERE id = (SELECT min(id) FROM outbox)",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(relay.run(&test.db, 100).await.unwrap(), 11);
    su.execute("UPDATE outbox SET available_at = now()", &[])
        .await
        .unwrap();
    assert_eq!(relay.run(&test.db, 100).await.unwrap(), 1);
    assert!(outbox(&test).await.is_empty(), "sent rows are deleted");
    assert_eq!(relay.run(&test.db, 100).await.unwrap(), 0);

    let mut received = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(&ingest)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        if out.messages().is_empty() {
            break;
        }
        for m in out.messages() {
            let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            received.push(body["sourceId"].as_str().unwrap().to_owned());
        }
    }
    received.sort();
    sources.sort();
    assert_eq!(received, sources);
}
