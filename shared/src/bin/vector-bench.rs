//! Agent-filtered top-5 vector search at scale: `--agents` agents with `--per-agent` chunks
//! each (1,000 × 1,000 = 1M by default) plus one agent with `--big` chunks (100k), in a fresh
//! Postgres database; p50 / p99 latency of `search_knowledge_sources` as the agent's owner
//! (row-level security on) and recall@5 against exact search, for a small agent (exact path)
//! and for the big one (HNSW path, above `chatpad.exact_search_max_chunks` = 20,000).
//!
//! ```text
//! infra/with-services.sh cargo run --release -p chatpad-shared \
//!     --features local-embeddings,test-support --bin chatpad-vector-bench -- \
//!     [--agents 1000] [--per-agent 1000] [--big 100000] [--queries 200] [--evalset DIR]
//! ```
//!
//! Data: 512 real all-MiniLM-L6-v2 embeddings of chunks of the aws-docs-qa pages serve as
//! topic centres; each agent draws 8 topics, and each of its chunks is a topic centre plus
//! Gaussian noise (σ = 0.05 per dimension, cosine ≈ 0.7 to the centre, about what related
//! passages score), normalised. Queries are drawn the same way. Rows go in by binary `COPY`
//! with the HNSW index dropped, which is then built once (m = 16, ef_construction = 64, as
//! the migration creates it) and timed.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use chatpad::auth::Caller;
use chatpad::embeddings::LocalMiniLm;
use chatpad::knowledge::chunk::{ChunkSettings, chunk};
use chatpad::knowledge::search::{RetrievalMode, search};
use chatpad::knowledge::{Extracted, Part};
use chatpad::testing::TestDb;
use pgvector::Vector;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use uuid::Uuid;

const MODEL: &str = "local/all-MiniLM-L6-v2";
const DIMS: usize = 384;
const TOPICS_PER_AGENT: usize = 8;
const NOISE: f32 = 0.05;

struct Args {
    agents: usize,
    per_agent: usize,
    big: usize,
    queries: usize,
    evalset: PathBuf,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        agents: 1000,
        per_agent: 1000,
        big: 100_000,
        queries: 200,
        evalset: std::env::var("CHATPAD_EVALSET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                PathBuf::from(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../../shared/evalsets/aws-docs-qa"
                ))
            }),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--agents" => a.agents = value()?.parse()?,
            "--per-agent" => a.per_agent = value()?.parse()?,
            "--big" => a.big = value()?.parse()?,
            "--queries" => a.queries = value()?.parse()?,
            "--evalset" => a.evalset = PathBuf::from(value()?),
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    Ok(a)
}

/// Real MiniLM embeddings of varied documentation chunks.
fn topic_centres(evalset: &std::path::Path, count: usize) -> anyhow::Result<Vec<Vec<f32>>> {
    let corpus = std::fs::read_to_string(evalset.join("corpus.jsonl"))
        .with_context(|| format!("reading {}/corpus.jsonl", evalset.display()))?;
    let mut texts = Vec::new();
    for line in corpus.lines().filter(|l| !l.trim().is_empty()) {
        let page: serde_json::Value = serde_json::from_str(line)?;
        let doc = Extracted {
            title: page["title"].as_str().map(str::to_owned),
            parts: vec![Part {
                markdown: page["text"].as_str().unwrap_or_default().to_owned(),
                location: Default::default(),
            }],
        };
        texts.extend(
            chunk(&doc, &ChunkSettings::default())
                .into_iter()
                .map(|c| c.content),
        );
    }
    // Evenly spaced over the corpus: many guides and topics.
    let step = (texts.len() / count).max(1);
    let picked: Vec<&String> = texts.iter().step_by(step).take(count).collect();
    let dir = chatpad::testing::env_var("EMBEDDING_MODEL_DIR")
        .context("set EMBEDDING_MODEL_DIR (the local stack's .local/env has it)")?;
    Ok(LocalMiniLm::load(dir)?.embed_blocking(&picked)?)
}

fn gaussian(rng: &mut StdRng) -> f32 {
    // Box–Muller.
    let u1: f32 = rng.random::<f32>().max(f32::MIN_POSITIVE);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

fn near(centre: &[f32], rng: &mut StdRng) -> Vec<f32> {
    let mut v: Vec<f32> = centre.iter().map(|x| x + NOISE * gaussian(rng)).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let centres = topic_centres(&args.evalset, 512)?;
    println!("{} topic centres embedded", centres.len());
    let mut rng = StdRng::seed_from_u64(7);

    let test = TestDb::new().await;
    let su = test.superuser().await;
    // A throwaway database: lift the plan's cap of 100 knowledge sources (one per agent here).
    su.batch_execute("UPDATE plans SET max_knowledge_sources = NULL WHERE id = 'pro'")
        .await?;
    let owner = test.user(Some("pro")).await;

    // Agents: the big one first, then the small ones; each with one source and its topics.
    let sizes: Vec<usize> = std::iter::once(args.big)
        .filter(|&n| n > 0)
        .chain(std::iter::repeat_n(args.per_agent, args.agents))
        .collect();
    let mut agents = Vec::new(); // (agent, source, size, topics)
    for (i, &size) in sizes.iter().enumerate() {
        let agent: Uuid = su
            .query_one(
                "INSERT INTO agents (user_id, name) VALUES ($1, $2) RETURNING id",
                &[&owner, &format!("agent {i}")],
            )
            .await?
            .get(0);
        let source: Uuid = su
            .query_one(
                "INSERT INTO knowledge_sources (agent_id, type, title, status, chunk_count)
                 VALUES ($1, 'text', 'generated', 'ready', $2) RETURNING id",
                &[&agent, &(size as i32)],
            )
            .await?
            .get(0);
        let topics: Vec<usize> = (0..TOPICS_PER_AGENT)
            .map(|_| rng.random_range(0..centres.len()))
            .collect();
        agents.push((agent, source, size, topics));
    }

    // Bulk load: no HNSW index and no per-row triggers while copying (owner and agent ids are
    // given directly; every vector has 384 dimensions by construction).
    let index: String = su
        .query_one("SELECT embedding_index_name($1)", &[&MODEL])
        .await?
        .get(0);
    su.batch_execute(&format!(
        "DROP INDEX IF EXISTS {index}; ALTER TABLE knowledge_chunks DISABLE TRIGGER USER"
    ))
    .await?;
    let vector_type = su
        .prepare("SELECT $1::vector")
        .await?
        .params()
        .first()
        .cloned()
        .context("the vector type")?;
    let total: usize = sizes.iter().sum();
    let started = Instant::now();
    let sink = su
        .copy_in(
            "COPY knowledge_chunks (source_id, agent_id, user_id, position, content, embedding_model, embedding) FROM STDIN BINARY",
        )
        .await?;
    let writer = BinaryCopyInWriter::new(
        sink,
        &[
            Type::UUID,
            Type::UUID,
            Type::UUID,
            Type::INT4,
            Type::TEXT,
            Type::TEXT,
            vector_type,
        ],
    );
    futures::pin_mut!(writer);
    for (n, (agent, source, size, topics)) in agents.iter().enumerate() {
        for position in 0..*size {
            let topic = topics[position % topics.len()];
            let embedding = Vector::from(near(&centres[topic], &mut rng));
            let content = format!("agent {n} chunk {position} topic {topic}");
            writer
                .as_mut()
                .write(&[
                    source,
                    agent,
                    &owner,
                    &(position as i32),
                    &content,
                    &MODEL,
                    &embedding,
                ])
                .await?;
        }
    }
    writer.finish().await?;
    su.batch_execute("ALTER TABLE knowledge_chunks ENABLE TRIGGER USER")
        .await?;
    println!(
        "loaded {total} chunks ({} agents) by binary COPY in {:.0} s",
        sizes.len(),
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    su.batch_execute(&format!(
        "SET maintenance_work_mem = '4GB'; SET max_parallel_maintenance_workers = 1;
         CREATE INDEX {index} ON knowledge_chunks
           USING hnsw ((embedding::vector({DIMS})) vector_cosine_ops)
           WITH (m = 16, ef_construction = 64) WHERE embedding_model = '{MODEL}';
         ANALYZE knowledge_chunks"
    ))
    .await?;
    println!(
        "HNSW index built in {:.0} s",
        started.elapsed().as_secs_f64()
    );

    let mut client = test.db.client().await?;
    let caller = Caller::User { user_id: owner };
    let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
    if args.big > 0 {
        groups.push(("big agent (ANN path)", vec![0]));
    }
    if args.agents > 0 {
        let first = usize::from(args.big > 0);
        groups.push(("small agents (exact)", (first..agents.len()).collect()));
    }
    for (name, members) in groups {
        let mut latencies = Vec::new();
        let mut recall = 0.0;
        for q in 0..args.queries {
            let (agent, _, size, topics) = &agents[members[q % members.len()]];
            let query = near(
                &centres[topics[rng.random_range(0..topics.len())]],
                &mut rng,
            );
            let tx = chatpad::db::begin_as(&mut client, &caller).await?;
            let started = Instant::now();
            let hits = search(&tx, *agent, &query, "", RetrievalMode::Vector, -1.0, 5).await?;
            latencies.push(started.elapsed().as_secs_f64() * 1e3);
            // The exact answer: the same function with the ANN path switched off.
            tx.execute(
                "SELECT set_config('chatpad.exact_search_max_chunks', $1, true)",
                &[&(size + 1).to_string()],
            )
            .await?;
            let exact = search(&tx, *agent, &query, "", RetrievalMode::Vector, -1.0, 5).await?;
            tx.rollback().await?;
            let found = hits
                .iter()
                .filter(|h| exact.iter().any(|e| e.chunk_id == h.chunk_id))
                .count();
            recall += found as f64 / exact.len().max(1) as f64;
        }
        latencies.sort_by(f64::total_cmp);
        println!(
            "{name:<22} {} chunks/agent: top-5 p50 {:.1} ms, p99 {:.1} ms, recall@5 {:.3} ({} queries)",
            agents[members[0]].2,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            recall / args.queries as f64,
            args.queries
        );
    }
    Ok(())
}
