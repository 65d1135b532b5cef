//! widget-chat's own cost, measured in-process (the local Lambda emulator's overhead is not
//! counted): the handler called directly, as the Lambda runtime would, against the local
//! stack (Postgres, DynamoDB rate limits on moto) with the in-process embedder.
//!
//! 1. Server overhead: everything but the model — parse, the rate limits, store the
//!    question, embed it, retrieve, answer extractively, store the answer — for an agent with
//!    `--chunks` chunks (100k by default), in hybrid and in vector retrieval mode.
//!    Then the stages alone, with the same questions, to show where that time goes: the
//!    DynamoDB rate limits (on moto, a Python server: slower than DynamoDB; per IP and per
//!    visitor a write each, per agent one write per lease of 20), embedding the
//!    question, and the search as the visitor, per retrieval mode, and hybrid's two steps as
//!    widget-chat runs them (the words ranked while the question is embedded).
//! 2. Time to the first streamed byte beyond the model's own first token: a loopback server
//!    speaking OpenAI's streaming format sends its first token the moment it gets the request,
//!    so the time from calling the handler to the first `delta` event is all ours.
//!
//! The knowledge: the aws-docs-qa pages' real chunks (text and all-MiniLM-L6-v2 embeddings),
//! repeated with Gaussian noise (σ 0.015 per dimension, renormalised) to `--chunks`; the
//! questions are the evalset's own.
//!
//! ```text
//! infra/with-services.sh cargo run --release -p widget-chat --example chat-bench -- \
//!     [--chunks 100000] [--requests 200] [--evalset DIR] [--cache FILE]
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chatpad::auth::Caller;
use chatpad::chat::attachments::AttachmentStore;
use chatpad::chat::{Chat, ChatLimits};
use chatpad::embeddings::{Embedder, LocalMiniLm};
use chatpad::knowledge::search::{
    RetrievalMode, fuse, rank_by_meaning, rank_by_words, search, sync_term_stats, sync_vector_index,
};
use chatpad::llm::openai::OpenAiChat;
use chatpad::llm::{Endpoint, Providers};
use chatpad::ratelimit::NestedLimit;
use chatpad::testing::http::{Part, Reply, Server};
use chatpad::testing::{TestDb, aws_config, env_var, rate_limiter};
use http_body_util::BodyExt;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt};
use pgvector::Vector;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use uuid::Uuid;
use widget_chat::{RateLimits, WidgetChatDeps};

#[path = "../../../shared/src/bin/bench_common/embed_cache.rs"]
mod embed_cache;
#[path = "../../../shared/src/bin/bench_common/evalset.rs"]
mod evalset;

const MODEL: &str = "local/all-MiniLM-L6-v2";

struct Args {
    chunks: usize,
    requests: usize,
    evalset: PathBuf,
    cache: Option<PathBuf>,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        chunks: 100_000,
        requests: 200,
        evalset: PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/evalsets/aws-docs-qa"
        )),
        cache: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--chunks" => args.chunks = value.parse()?,
            "--requests" => args.requests = value.parse()?,
            "--evalset" => args.evalset = value.into(),
            "--cache" => args.cache = Some(value.into()),
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

/// The handlers' errors as the bench's (`ApiError` is not a `std::error::Error`).
fn failed(err: impl std::fmt::Debug) -> anyhow::Error {
    anyhow::anyhow!("{err:?}")
}

fn gaussian(rng: &mut StdRng) -> f32 {
    let u1: f32 = rng.random::<f32>().max(f32::MIN_POSITIVE);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

fn summary(label: &str, mut millis: Vec<f64>) {
    millis.sort_by(f64::total_cmp);
    println!(
        "{label}: n={} p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        millis.len(),
        percentile(&millis, 0.5),
        percentile(&millis, 0.95),
        percentile(&millis, 0.99),
        millis.last().copied().unwrap_or_default()
    );
}

/// Visitor `visitor`'s question, from an address of its own (as a function URL reports it):
/// the per-IP rate-limit item then holds one visitor, as for most real visitors.
fn ask(agent: Uuid, visitor: usize, question: &str) -> Request {
    let mut context = ApiGatewayV2httpRequestContext::default();
    let [_, b, c, d] = (visitor as u32).to_be_bytes();
    context.http.source_ip = Some(format!("10.{b}.{c}.{d}"));
    lambda_http::http::Request::builder()
        .method("POST")
        .uri("/")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({ "agentId": agent, "visitorId": format!("bench-{visitor}"), "message": question })
                .to_string(),
        ))
        .expect("request")
        .with_request_context(RequestContext::ApiGatewayV2(context))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let (chunk_texts, questions) = evalset::texts(&args.evalset)?;
    let model = LocalMiniLm::load(
        env_var("EMBEDDING_MODEL_DIR")
            .context("EMBEDDING_MODEL_DIR (run under infra/with-services.sh)")?,
    )?;
    let anchor_refs: Vec<&str> = chunk_texts.iter().map(String::as_str).collect();
    let anchors = embed_cache::embed(&model, &anchor_refs, args.cache.as_deref())?;

    let test = TestDb::new().await;
    let su = test.superuser().await;
    let owner = test.user(Some("pro")).await;
    let agent = test.agent(owner).await;
    let source: Uuid = su
        .query_one(
            "INSERT INTO knowledge_sources (agent_id, type, title, source, status, chunk_count)
             VALUES ($1, 'url', 'AWS docs', 'https://docs.aws.amazon.com/', 'ready', $2) RETURNING id",
            &[&agent, &(args.chunks as i32)],
        )
        .await?
        .get(0);
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(11);
    for batch_start in (0..args.chunks).step_by(2_000) {
        let end = (batch_start + 2_000).min(args.chunks);
        let positions: Vec<i32> = (batch_start as i32..end as i32).collect();
        let contents: Vec<&str> = (batch_start..end)
            .map(|i| chunk_texts[i % chunk_texts.len()].as_str())
            .collect();
        let vectors: Vec<Vector> = (batch_start..end)
            .map(|i| {
                let mut v: Vec<f32> = anchors[i % anchors.len()]
                    .iter()
                    .map(|x| x + 0.015 * gaussian(&mut rng))
                    .collect();
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter_mut().for_each(|x| *x /= norm);
                Vector::from(v)
            })
            .collect();
        su.execute(
            "INSERT INTO knowledge_chunks (source_id, position, content, location, embedding_model, embedding)
             SELECT $1, p, c, '{}', $2, e FROM unnest($3::int[], $4::text[], $5::vector[]) AS t(p, c, e)",
            &[&source, &MODEL, &positions, &contents, &vectors],
        )
        .await?;
    }
    su.batch_execute("ANALYZE knowledge_chunks").await?;
    println!(
        "agent with {} chunks loaded in {:.0} s ({} distinct texts)",
        args.chunks,
        started.elapsed().as_secs_f64(),
        chunk_texts.len()
    );
    // Its own HNSW index, as the ingest worker builds it after a source (only used above the
    // exact-search size, 20,000 chunks).
    let started = Instant::now();
    let mut client = test.db.client().await?;
    let tx = chatpad::db::begin_as(&mut client, &Caller::User { user_id: owner }).await?;
    let change = sync_vector_index(&tx, agent).await?;
    tx.commit().await?;
    println!(
        "agent vector index: {change:?} in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    // And its word statistics, which the full-text ranking reads at this size.
    let started = Instant::now();
    let tx = chatpad::db::begin_as(&mut client, &Caller::User { user_id: owner }).await?;
    let change = sync_term_stats(&tx, agent).await?;
    tx.commit().await?;
    println!(
        "agent word statistics: {change:?} in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let limits = RateLimits {
        per_ip_and_visitor: NestedLimit::per_minute("bench-ip", 1_000_000, 1_000_000),
        per_agent: RateLimits::per_agent("bench-agent", 1_000_000),
    };
    let deps = |providers: Providers| async {
        Arc::new(WidgetChatDeps {
            relay: None,
            publisher: None,
            api_key_pepper: "bench-pepper".to_owned().into(),
            chat: Chat {
                db: test.db.clone(),
                embedder: Embedder::Local(model.clone()),
                providers,
                limits: ChatLimits::default(),
            },
            limiter: rate_limiter().await,
            limits,
            attachments: AttachmentStore::new(
                chatpad::aws::s3_client(&aws_config().await),
                env_var("UPLOADS_BUCKET").unwrap_or_default(),
            ),
        })
    };

    // 1. Server overhead with the extractive responder, per retrieval mode.
    let extractive = deps(Providers::default()).await;
    for mode in ["hybrid", "vector"] {
        su.execute(
            "UPDATE agents SET retrieval_mode = $2 WHERE id = $1",
            &[&agent, &mode],
        )
        .await?;
        // Warm-up: connections, caches, the model's first run.
        for (i, q) in questions.iter().take(10).enumerate() {
            let _ = widget_chat::handle(Arc::clone(&extractive), ask(agent, i, q)).await;
        }
        let mut millis = Vec::new();
        for i in 0..args.requests {
            let question = &questions[i % questions.len()];
            let t0 = Instant::now();
            let response =
                widget_chat::handle(Arc::clone(&extractive), ask(agent, 1000 + i, question)).await;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            millis.push(t0.elapsed().as_secs_f64() * 1e3);
            anyhow::ensure!(status == 200, "status {status}: {:?}", body.to_bytes());
        }
        summary(
            &format!(
                "widget-chat server overhead, {mode} retrieval, {} chunks, extractive",
                args.chunks
            ),
            millis,
        );
    }

    // The stages alone.
    let mut millis = Vec::new();
    let agent_key = agent.to_string();
    for i in 0..args.requests {
        let t0 = Instant::now();
        let visitor = format!("{agent}:stage-{i}");
        futures::try_join!(
            extractive
                .limiter
                .check_nested(&limits.per_ip_and_visitor, "203.0.113.9", &visitor),
            extractive.limiter.check(&limits.per_agent, &agent_key),
        )
        .map_err(failed)?;
        millis.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    summary("  stage: the rate limits (moto; per agent leased)", millis);
    let mut millis = Vec::new();
    let mut embeddings = Vec::new();
    for i in 0..args.requests {
        let question = questions[i % questions.len()].clone();
        let t0 = Instant::now();
        embeddings.push(
            model
                .embed(std::slice::from_ref(&question))
                .await?
                .remove(0),
        );
        millis.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    summary("  stage: embed the question", millis);
    let caller = Caller::Widget {
        agent_id: agent,
        visitor_id: "bench-stages".into(),
    };
    for mode in [RetrievalMode::Hybrid, RetrievalMode::Vector] {
        let mut millis = Vec::new();
        for (i, embedding) in embeddings.iter().enumerate() {
            let mut client = test.db.client().await.map_err(failed)?;
            let t0 = Instant::now();
            let tx = chatpad::db::begin_as(&mut client, &caller)
                .await
                .map_err(failed)?;
            let question = &questions[i % questions.len()];
            search(&tx, agent, embedding, question, mode, 0.3, 5)
                .await
                .map_err(failed)?;
            tx.commit().await?;
            millis.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        summary(&format!("  stage: {mode:?} search as the visitor"), millis);
    }
    // widget-chat's hybrid search in its steps: the words ranked beside the embedding, the
    // vector ranking once the embedding is there, the fusion (in-process) once both are (one
    // after the other here, each alone).
    let (mut words_millis, mut meaning_millis, mut fusion_millis) =
        (Vec::new(), Vec::new(), Vec::new());
    for (i, embedding) in embeddings.iter().enumerate() {
        let mut client = test.db.client().await.map_err(failed)?;
        let tx = chatpad::db::begin_as(&mut client, &caller)
            .await
            .map_err(failed)?;
        let question = &questions[i % questions.len()];
        let t0 = Instant::now();
        let by_words = rank_by_words(&tx, agent, question, 5)
            .await
            .map_err(failed)?;
        let t1 = Instant::now();
        let by_meaning = rank_by_meaning(&tx, agent, embedding, 0.3, 5)
            .await
            .map_err(failed)?;
        let t2 = Instant::now();
        fuse(embedding, by_meaning, by_words, 5);
        fusion_millis.push(t2.elapsed().as_secs_f64() * 1e3);
        meaning_millis.push((t2 - t1).as_secs_f64() * 1e3);
        words_millis.push((t1 - t0).as_secs_f64() * 1e3);
        tx.commit().await?;
    }
    summary("  stage: hybrid, the words ranked", words_millis);
    summary("  stage: hybrid, the vector ranking", meaning_millis);
    summary("  stage: hybrid, the fusion of the two", fusion_millis);

    // 2. First streamed byte: the fake model answers its first token at once.
    let server = Server::start(|_, _| Reply::Stream {
        status: 200,
        headers: vec![("Content-Type", "text/event-stream".into())],
        parts: vec![
            Part::Bytes(
                b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Sure [1].\"}}]}\n\n"
                    .to_vec(),
            ),
            Part::Bytes(b"data: [DONE]\n\n".to_vec()),
        ],
    })
    .await;
    let streaming = deps(Providers {
        openai: Some(
            OpenAiChat::new(
                Endpoint {
                    url: server.url("/v1/chat/completions").to_string(),
                    api_key: None,
                    idle_timeout: Duration::from_secs(10),
                    total_timeout: Duration::from_secs(30),
                },
                false,
            )
            .map_err(anyhow::Error::msg)?,
        ),
        anthropic: None,
    })
    .await;
    su.execute(
        "UPDATE agents SET retrieval_mode = 'hybrid' WHERE id = $1",
        &[&agent],
    )
    .await?;
    let mut millis = Vec::new();
    for i in 0..args.requests.min(100) {
        let question = &questions[i % questions.len()];
        let mut req = ask(agent, 5000 + i, question);
        req.headers_mut()
            .insert("accept", "text/event-stream".parse()?);
        let t0 = Instant::now();
        let response = widget_chat::handle(Arc::clone(&streaming), req).await;
        let mut body = response.into_body();
        let mut seen = String::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.map_err(|e| anyhow::anyhow!("{e}"))?.into_data() {
                seen.push_str(&String::from_utf8_lossy(&data));
                if seen.contains("event: delta") {
                    break;
                }
            }
        }
        millis.push(t0.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(seen.contains("event: delta"), "no delta: {seen}");
        // Let the answer finish and be stored before the next request.
        while body.frame().await.is_some() {}
    }
    summary(
        "request to first streamed answer byte (model's first token at 0 ms)",
        millis,
    );
    Ok(())
}
