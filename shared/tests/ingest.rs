//! The ingestion job against real parts: a fresh Postgres database, S3 on moto, the local
//! all-MiniLM-L6-v2 model and the extraction sandbox. Jobs are taken from the outbox the way
//! the relay would send them and run through `Ingestor::run`, as the worker does.

use std::time::Duration;

use chatpad::auth::Caller;
use chatpad::embeddings::Embedder;
use chatpad::knowledge::extract;
use chatpad::knowledge::extract::samples;
use chatpad::knowledge::extract::sandbox::Sandbox;
use chatpad::knowledge::files::FileStore;
use chatpad::knowledge::ingest::Ingestor;
use chatpad::knowledge::search::{self, RetrievalMode};
use chatpad::net::{GuardConfig, GuardedClient};
use chatpad::outbox::Relay;
use chatpad::sqs::Outcome;
use chatpad::testing::{TestDb, aws_config, env_var};
use serde_json::Value;
use uuid::Uuid;

/// One embedder for the whole test binary: loading the model takes a moment.
async fn embedder() -> Embedder {
    chatpad::testing::local_embedder().await
}

/// The ingest worker as deployed, with a queue of this test's own: the relay sends jobs there
/// and [`run_jobs`] delivers them, as the event source mapping would.
struct Worker {
    ingestor: Ingestor,
    sqs: aws_sdk_sqs::Client,
    queue: String,
}

impl std::ops::Deref for Worker {
    type Target = Ingestor;
    fn deref(&self) -> &Ingestor {
        &self.ingestor
    }
}

async fn ingestor(test: &TestDb) -> Worker {
    sliced_ingestor(test, Duration::from_secs(240)).await
}

/// A worker whose messages embed for at most `slice` (zero: one batch a message).
async fn sliced_ingestor(test: &TestDb, slice: Duration) -> Worker {
    let sdk = aws_config().await;
    let bucket = env_var("KNOWLEDGE_BUCKET").expect("KNOWLEDGE_BUCKET");
    let sqs = chatpad::aws::sqs_client(&sdk);
    let queue = sqs
        .create_queue()
        .queue_name(format!("test-ingest-{}", Uuid::new_v4().simple()))
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let ingestor = Ingestor {
        db: test.db.clone(),
        files: FileStore::new(chatpad::aws::s3_client(&sdk), bucket, 50 * 1024 * 1024),
        embedder: embedder().await,
        web: GuardedClient::new(GuardConfig::default()).unwrap(),
        // The child is the crate's own reader binary (the worker uses itself).
        sandbox: Sandbox {
            program: env!("CARGO_BIN_EXE_chatpad-extract").into(),
            args: vec![],
            limits: extract::Limits::default(),
        },
        relay: Relay::new(sqs.clone(), queue.clone(), queue.clone()),
        slice,
        max_attempts: 5,
    };
    Worker {
        ingestor,
        sqs,
        queue,
    }
}

/// A user on the pro plan and an agent of theirs.
async fn owner_with_agent(test: &TestDb) -> (Uuid, Uuid) {
    let user = test.user(Some("pro")).await;
    (user, test.agent(user).await)
}

/// Adds a source as the account owner, as the API does; returns its id.
async fn add_source(
    test: &TestDb,
    user: Uuid,
    agent: Uuid,
    kind: &str,
    title: &str,
    settings: Value,
    s3_key: Option<&str>,
) -> Uuid {
    let mut client = test.db.client().await.unwrap();
    let tx = chatpad::db::begin_as(&mut client, &Caller::User { user_id: user })
        .await
        .unwrap();
    let id = tx
        .query_one(
            "INSERT INTO knowledge_sources (agent_id, type, title, settings, s3_key, source)
             VALUES ($1, $2, $3, $4, $5, $3) RETURNING id",
            &[&agent, &kind, &title, &settings, &s3_key],
        )
        .await
        .unwrap()
        .get(0);
    tx.commit().await.unwrap();
    id
}

/// Relays the outbox and delivers every message to the worker until both are empty; returns
/// the jobs run, in order.
async fn run_jobs(test: &TestDb, worker: &Worker) -> Vec<Value> {
    let mut jobs = Vec::new();
    loop {
        worker.relay.run(&test.db, 100).await.unwrap();
        let received = worker
            .sqs
            .receive_message()
            .queue_url(&worker.queue)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        if received.messages().is_empty() {
            return jobs;
        }
        for message in received.messages() {
            let body = message.body().unwrap();
            let outcome = worker.run(body, 1).await;
            assert!(matches!(outcome, Outcome::Done), "{body}: {outcome:?}");
            worker
                .sqs
                .delete_message()
                .queue_url(&worker.queue)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
            jobs.push(serde_json::from_str(body).unwrap());
        }
    }
}

async fn source_row(test: &TestDb, id: Uuid) -> (String, Option<String>, i32) {
    let row = test
        .superuser()
        .await
        .query_one(
            "SELECT status, error, chunk_count FROM knowledge_sources WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

const DOCUMENTS: &[(&str, &str)] = &[
    (
        "Shipping",
        "# Shipping\n\nWe ship to every country in the European Union. Parcels to Germany, France and \
         Spain arrive in three to five business days. Express delivery costs 12 euros.",
    ),
    (
        "Passwords",
        "# Account security\n\nTo reset your password, open Settings, choose Security and press \
         'Send reset link'. The link in the email is valid for 30 minutes.",
    ),
    (
        "Refunds",
        "# Refunds\n\nUnused items can be returned within 30 days. The refund goes back to the \
         original payment method within ten days of our receiving the parcel.",
    ),
    (
        "API limits",
        "# API rate limits\n\nThe REST API allows 600 requests per minute per key. Bulk exports \
         are limited to one running export per account.",
    ),
];

#[tokio::test]
async fn the_document_that_answers_a_question_is_in_the_top_three() {
    let test = TestDb::new().await;
    ingest_documents_and_ask(&test).await;
}

#[tokio::test]
async fn an_agent_grown_past_the_exact_search_size_is_searched_through_its_own_index_and_word_statistics()
 {
    let test = TestDb::new().await;
    let agent = ingest_documents_into_a_large_agent(&test).await;
    let index: String = test
        .superuser()
        .await
        .query_one(
            "SELECT indexdef FROM pg_indexes WHERE indexname LIKE 'knowledge_chunks_hnsw_%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        index.contains("hnsw") && index.contains(&agent.to_string()),
        "{index}"
    );
    // The worker also counted the agent's words for its full-text ranking: "refund" is in
    // exactly the one document about refunds.
    let refund: i64 = test
        .superuser()
        .await
        .query_one(
            "SELECT df FROM agent_term_stats WHERE agent_id = $1 AND lexeme = 'refund'",
            &[&agent],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(refund, 1);
}

#[tokio::test]
async fn deleting_sources_brings_the_agents_word_statistics_and_index_back_in_line() {
    let test = TestDb::new().await;
    let agent = ingest_documents_into_a_large_agent(&test).await;
    let worker = ingestor(&test).await;
    let su = test.superuser().await;
    let refund_df = || async {
        su.query_opt(
            "SELECT df FROM agent_term_stats WHERE agent_id = $1 AND lexeme = 'refund'",
            &[&agent],
        )
        .await
        .unwrap()
        .map(|row| row.get::<_, i64>(0))
    };
    let indexes = || async {
        su.query_one(
            "SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'knowledge_chunks_hnsw_%'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0)
    };
    assert_eq!((refund_df().await, indexes().await), (Some(1), 1));

    // The one document about refunds goes: its words are no longer counted.
    su.execute(
        "DELETE FROM knowledge_sources WHERE agent_id = $1 AND title = 'Refunds'",
        &[&agent],
    )
    .await
    .unwrap();
    let jobs = run_jobs(&test, &worker).await;
    assert_eq!(
        jobs,
        [
            serde_json::json!({"op": "syncSearch", "agentId": agent, "userId": owner_of(&test, agent).await})
        ]
    );
    assert_eq!((refund_df().await, indexes().await), (None, 1));

    // All of them go, in one statement: one sync, and the agent's own index is dropped.
    su.execute(
        "DELETE FROM knowledge_sources WHERE agent_id = $1",
        &[&agent],
    )
    .await
    .unwrap();
    assert_eq!(run_jobs(&test, &worker).await.len(), 1);
    assert_eq!(indexes().await, 0);
    let stats: i64 = su
        .query_one(
            "SELECT count(*) FROM agent_term_stats WHERE agent_id = $1",
            &[&agent],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stats, 0);
}

/// [`ingest_documents_and_ask`] with an exact-search size of 2 chunks for every session of the
/// database, the worker's included: the four documents make at least 4, so the agent gets its
/// own index and word statistics.
async fn ingest_documents_into_a_large_agent(test: &TestDb) -> Uuid {
    test.superuser()
        .await
        .batch_execute(&format!(
            "ALTER DATABASE {} SET chatpad.exact_search_max_chunks = '2'",
            test.name
        ))
        .await
        .unwrap();
    ingest_documents_and_ask(test).await
}

async fn owner_of(test: &TestDb, agent: Uuid) -> Uuid {
    test.superuser()
        .await
        .query_one("SELECT user_id FROM agents WHERE id = $1", &[&agent])
        .await
        .unwrap()
        .get(0)
}

/// Ingests [`DOCUMENTS`] into a new agent, checks that each question finds its document in
/// the top three in both retrieval modes, and returns the agent.
async fn ingest_documents_and_ask(test: &TestDb) -> Uuid {
    let ingestor = ingestor(test).await;
    let (user, agent) = owner_with_agent(test).await;
    let mut ids = Vec::new();
    for (title, text) in DOCUMENTS {
        ids.push(
            add_source(
                test,
                user,
                agent,
                "text",
                title,
                serde_json::json!({ "text": text }),
                None,
            )
            .await,
        );
    }
    run_jobs(test, &ingestor).await;
    for id in &ids {
        let (status, error, chunks) = source_row(test, *id).await;
        assert_eq!(status, "ready", "{error:?}");
        assert!(chunks >= 1);
    }

    let questions = [
        ("how long does delivery to Germany take?", 0),
        ("I forgot my login, how do I get a new one?", 1),
        ("can I get my money back?", 2),
        ("how many calls can my integration make?", 3),
    ];
    let mut client = test.db.client().await.unwrap();
    let tx = chatpad::db::begin_as(&mut client, &Caller::User { user_id: user })
        .await
        .unwrap();
    for (question, expected) in questions {
        let vector = ingestor
            .embedder
            .embed(&[question.to_owned()])
            .await
            .unwrap()
            .remove(0);
        for mode in [RetrievalMode::Vector, RetrievalMode::Hybrid] {
            let hits = search::search(&tx, agent, &vector, question, mode, 0.0, 3)
                .await
                .unwrap();
            assert!(
                hits.iter().any(|h| h.source_id == ids[expected]),
                "{question} ({mode:?}): {:?}",
                hits.iter().map(|h| &h.title).collect::<Vec<_>>()
            );
        }
    }
    agent
}

#[tokio::test]
async fn a_job_run_twice_leaves_one_copy_of_each_chunk() {
    let test = TestDb::new().await;
    let ingestor = ingestor(&test).await;
    let (user, agent) = owner_with_agent(&test).await;
    let text: String = (0..30)
        .map(|i| format!("## Section {i}\n\nParagraph number {i} of the handbook explains topic {i} in detail.\n\n"))
        .collect();
    let id = add_source(
        &test,
        user,
        agent,
        "text",
        "Handbook",
        serde_json::json!({ "text": text }),
        None,
    )
    .await;
    let jobs = run_jobs(&test, &ingestor).await;
    assert_eq!(jobs.len(), 1);
    let (_, _, first_count) = source_row(&test, id).await;
    assert!(first_count > 1);

    // A redelivery after success is a no-op; a redelivery of a job whose worker died before
    // finishing (the source still `processing`) redoes it and replaces the chunks.
    assert!(matches!(
        ingestor.run(&jobs[0].to_string(), 2).await,
        Outcome::Done
    ));
    test.superuser()
        .await
        .execute(
            "UPDATE knowledge_sources SET status = 'processing' WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert!(matches!(
        ingestor.run(&jobs[0].to_string(), 3).await,
        Outcome::Done
    ));
    let su = test.superuser().await;
    let row = su
        .query_one(
            "SELECT count(*), count(DISTINCT content), count(DISTINCT position) FROM knowledge_chunks WHERE source_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let (total, distinct, positions): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(total, first_count as i64);
    assert_eq!(distinct, total);
    assert_eq!(positions, total);
    assert_eq!(source_row(&test, id).await.0, "ready");
}

#[tokio::test]
async fn a_broken_file_ends_in_error_with_a_reason_and_a_malformed_message_is_dropped() {
    let test = TestDb::new().await;
    let ingestor = ingestor(&test).await;
    let (user, agent) = owner_with_agent(&test).await;
    let key = format!("sources/{user}/{agent}/{}/broken.pdf", Uuid::new_v4());
    ingestor
        .files
        .put(
            &key,
            b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntruncated".to_vec(),
        )
        .await
        .unwrap();
    let id = add_source(
        &test,
        user,
        agent,
        "pdf",
        "broken.pdf",
        serde_json::json!({}),
        Some(&key),
    )
    .await;
    run_jobs(&test, &ingestor).await;
    let (status, error, chunks) = source_row(&test, id).await;
    assert_eq!(status, "error");
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.to_lowercase().contains("pdf")),
        "{error:?}"
    );
    assert_eq!(chunks, 0);

    assert!(matches!(
        ingestor.run("{\"op\": \"explode\"}", 1).await,
        Outcome::GiveUp(_)
    ));
    assert!(matches!(
        ingestor.run("not json", 1).await,
        Outcome::GiveUp(_)
    ));
}

#[tokio::test]
async fn a_pdf_and_a_docx_become_chunks_cited_by_page_and_heading() {
    let test = TestDb::new().await;
    let ingestor = ingestor(&test).await;
    let (user, agent) = owner_with_agent(&test).await;
    let upload = |name: &str, bytes: Vec<u8>| {
        let key = format!("sources/{user}/{agent}/{}/{name}", Uuid::new_v4());
        let files = ingestor.files.clone();
        async move {
            files.put(&key, bytes).await.unwrap();
            key
        }
    };
    let pdf = samples::pdf(
        "Employee handbook",
        &[
            "Working hours are from nine to five on weekdays.",
            "Holidays: every employee has 28 days of paid leave per year.",
            "Expenses are reimbursed within two weeks of submission.",
        ],
    );
    let pdf_key = upload("handbook.pdf", pdf).await;
    let docx = samples::docx(
        "Product guide",
        r#"<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>Installation</w:t></w:r></w:p>
           <w:p><w:r><w:t>Download the installer and run it as an administrator. The wizard asks for
             the installation folder, the language of the interface and whether to start the
             service at boot. Accept the licence, choose the components you need (the desktop
             client, the command-line tools, the browser extension) and press Install. When the
             progress bar completes, sign in with the account your administrator created for you;
             single sign-on users choose their identity provider instead. The first start imports
             your settings from an earlier version if one is found, which can take a few minutes on
             large profiles, so keep the window open until the welcome screen appears.</w:t></w:r></w:p>
           <w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>Pricing</w:t></w:r></w:p>
           <w:tbl>
             <w:tr><w:tc><w:p><w:r><w:t>Plan</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>Price</w:t></w:r></w:p></w:tc></w:tr>
             <w:tr><w:tc><w:p><w:r><w:t>Team</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>49 euros</w:t></w:r></w:p></w:tc></w:tr>
           </w:tbl>"#,
    );
    let docx_key = upload("guide.docx", docx).await;
    let pdf_id = add_source(
        &test,
        user,
        agent,
        "pdf",
        "handbook.pdf",
        serde_json::json!({}),
        Some(&pdf_key),
    )
    .await;
    let docx_id = add_source(
        &test,
        user,
        agent,
        "docx",
        "guide.docx",
        serde_json::json!({}),
        Some(&docx_key),
    )
    .await;
    run_jobs(&test, &ingestor).await;

    let su = test.superuser().await;
    let chunks = |source: Uuid| {
        let su = &su;
        async move {
            su.query(
                "SELECT content, location FROM knowledge_chunks WHERE source_id = $1 ORDER BY position",
                &[&source],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, Value>(1)))
            .collect::<Vec<_>>()
        }
    };
    let (status, error, _) = source_row(&test, pdf_id).await;
    assert_eq!(status, "ready", "{error:?}");
    let pdf_chunks = chunks(pdf_id).await;
    let holidays = pdf_chunks
        .iter()
        .find(|(content, _)| content.contains("28 days"))
        .expect("the holiday page is a chunk");
    assert_eq!(holidays.1["page"], 2, "{pdf_chunks:?}");
    assert!(
        pdf_chunks
            .iter()
            .any(|(c, l)| c.contains("two weeks") && l["page"] == 3)
    );

    let (status, error, _) = source_row(&test, docx_id).await;
    assert_eq!(status, "ready", "{error:?}");
    let docx_chunks = chunks(docx_id).await;
    let pricing = docx_chunks
        .iter()
        .find(|(content, _)| content.contains("49 euros"))
        .expect("the pricing table is a chunk");
    assert!(
        pricing.0.contains("| Plan | Price |"),
        "the table keeps its header: {pricing:?}"
    );
    assert!(
        pricing.1["section"]
            .as_str()
            .is_some_and(|s| s.contains("Pricing")),
        "{pricing:?}"
    );

    // Deleting the PDF source queues its object's deletion (the job removes it from S3) and a
    // sync of the agent's search structures.
    let mut client = test.db.client().await.unwrap();
    let tx = chatpad::db::begin_as(&mut client, &Caller::User { user_id: user })
        .await
        .unwrap();
    tx.execute("DELETE FROM knowledge_sources WHERE id = $1", &[&pdf_id])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(ingestor.files.size(&pdf_key).await.unwrap().is_some());
    let mut ops: Vec<String> = run_jobs(&test, &ingestor)
        .await
        .iter()
        .map(|job| job["op"].as_str().unwrap().to_owned())
        .collect();
    ops.sort();
    assert_eq!(ops, ["deleteObjects", "syncSearch"]);
    assert_eq!(ingestor.files.size(&pdf_key).await.unwrap(), None);
}

#[tokio::test]
async fn a_long_document_is_embedded_over_several_messages_with_the_same_result() {
    let test = TestDb::new().await;
    // A zero budget: every message embeds one batch, then queues the rest.
    let sliced = sliced_ingestor(&test, Duration::ZERO).await;
    let (user, agent) = owner_with_agent(&test).await;
    let text: String = (0..80)
        .map(|i| {
            let sentences: String = (0..5)
                .map(|j| format!("Step {j} of procedure {i} is explained here in one careful sentence of its own. "))
                .collect();
            format!("## Topic {i}\n\n{sentences}\n\n")
        })
        .collect();
    let expected = chatpad::knowledge::chunk::chunk(
        &chatpad::knowledge::Extracted {
            title: None,
            parts: vec![chatpad::knowledge::Part {
                markdown: text.clone(),
                location: Default::default(),
            }],
        },
        &chatpad::knowledge::chunk::ChunkSettings::default(),
    );
    assert!(
        expected.len() > 32,
        "more than one embedding batch: {}",
        expected.len()
    );
    let id = add_source(
        &test,
        user,
        agent,
        "text",
        "Handbook",
        serde_json::json!({ "text": text }),
        None,
    )
    .await;
    let jobs = run_jobs(&test, &sliced).await;
    assert_eq!(jobs.len(), expected.len().div_ceil(32), "{jobs:?}");
    assert_eq!(jobs[1]["resumeAt"], 32);
    let (status, error, count) = source_row(&test, id).await;
    assert_eq!(status, "ready", "{error:?}");
    assert_eq!(count as usize, expected.len());
    let stored: Vec<String> = test
        .superuser()
        .await
        .query(
            "SELECT content FROM knowledge_chunks WHERE source_id = $1 ORDER BY position",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let wanted: Vec<String> = expected.into_iter().map(|c| c.content).collect();
    assert_eq!(stored, wanted);
}
