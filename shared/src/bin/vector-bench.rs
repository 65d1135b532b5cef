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
//! Data (`--data docs`, the default): vectors with the structure of real documentation
//! chunks. The anchors are the real all-MiniLM-L6-v2 embeddings of the aws-docs-qa pages'
//! chunks at the default chunk settings (about 4.5k; `--cache FILE` as for the retrieval
//! benchmark). A generated chunk lies between an anchor and one of its 10 nearest anchors
//! (uniform mix), plus Gaussian noise (σ = `--noise`, 0.015 per dimension), normalised: new
//! passages on the same subjects, as a larger knowledge base holds. The benchmark prints how
//! close that is to the real chunks (nearest-neighbour and random-pair cosine at the corpus's
//! own size). The big agent draws from all anchors, each small agent from a slice of 150
//! consecutive anchors (a few pages of one guide). Queries are the embeddings of the evalset's
//! real questions.
//!
//! `--data clusters` is the earlier generator, kept for comparison: 512 anchors as topic
//! centres, 8 per agent, each chunk (and query) a centre plus noise σ = 0.05 per dimension.
//! That noise (norm ≈ 1 against the unit centre) makes every chunk of a topic an isotropic
//! random point at about the same distance from a query: no neighbourhood structure for HNSW
//! to follow, unlike real text embeddings.
//!
//! Rows go in by binary `COPY`; then the big agent gets its own HNSW index as the ingest
//! worker builds it (`sync_agent_vector_index`: m = 16, ef_construction = 200), timed.
//! `--sweep` also measures the ANN query of the big agent at several `hnsw.ef_search` values
//! and candidate counts.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use chatpad::auth::Caller;
use chatpad::embeddings::LocalMiniLm;
use chatpad::knowledge::search::{RetrievalMode, VectorIndexChange, search, sync_vector_index};
use chatpad::testing::TestDb;
use pgvector::Vector;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use uuid::Uuid;

#[path = "bench_common/embed_cache.rs"]
mod embed_cache;
#[path = "bench_common/evalset.rs"]
mod evalset;

const MODEL: &str = "local/all-MiniLM-L6-v2";
const DIMS: usize = 384;
/// `chatpad.exact_search_max_chunks`'s default: larger agents take the ANN path.
const EXACT_SEARCH_MAX_CHUNKS: usize = 20_000;
/// `--data docs`: nearest anchors a generated chunk may lie towards; anchors per small agent.
const NEIGHBOURS: usize = 10;
const SLICE: usize = 150;
/// `--data clusters`: topics per agent and noise.
const TOPICS_PER_AGENT: usize = 8;
const CLUSTER_NOISE: f32 = 0.05;

#[derive(Clone, Copy, PartialEq)]
enum Data {
    Docs,
    Clusters,
}

struct Args {
    agents: usize,
    per_agent: usize,
    big: usize,
    queries: usize,
    evalset: PathBuf,
    cache: Option<PathBuf>,
    data: Data,
    noise: f32,
    sweep: bool,
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
        cache: None,
        data: Data::Docs,
        noise: 0.015,
        sweep: false,
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
            "--cache" => a.cache = Some(PathBuf::from(value()?)),
            "--data" => {
                a.data = match value()?.as_str() {
                    "docs" => Data::Docs,
                    "clusters" => Data::Clusters,
                    other => anyhow::bail!("--data is docs or clusters, not {other}"),
                }
            }
            "--noise" => a.noise = value()?.parse()?,
            "--sweep" => a.sweep = true,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    Ok(a)
}

fn gaussian(rng: &mut StdRng) -> f32 {
    // Box–Muller.
    let u1: f32 = rng.random::<f32>().max(f32::MIN_POSITIVE);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let norm = dot(&v, &v).sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// Generated chunk vectors around real ones (see the module documentation).
struct Generator {
    anchors: Vec<Vec<f32>>,
    /// Each anchor's nearest other anchors (`--data docs`).
    neighbours: Vec<Vec<usize>>,
    data: Data,
    noise: f32,
}

impl Generator {
    fn new(anchors: Vec<Vec<f32>>, data: Data, noise: f32) -> Self {
        let neighbours = match data {
            Data::Clusters => Vec::new(),
            Data::Docs => anchors
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let mut by: Vec<(f32, usize)> = anchors
                        .iter()
                        .enumerate()
                        .filter(|&(j, _)| j != i)
                        .map(|(j, b)| (dot(a, b), j))
                        .collect();
                    by.select_nth_unstable_by(NEIGHBOURS, |x, y| y.0.total_cmp(&x.0));
                    by[..NEIGHBOURS].iter().map(|&(_, j)| j).collect()
                })
                .collect(),
        };
        Generator {
            anchors,
            neighbours,
            data,
            noise,
        }
    }

    /// An agent's anchors: a slice of consecutive ones (docs) or random topics (clusters).
    fn pool(&self, big: bool, rng: &mut StdRng) -> Vec<usize> {
        let n = self.anchors.len();
        match self.data {
            Data::Docs if big => (0..n).collect(),
            Data::Docs => {
                let start = rng.random_range(0..n);
                (start..start + SLICE.min(n)).map(|i| i % n).collect()
            }
            Data::Clusters => (0..TOPICS_PER_AGENT)
                .map(|_| rng.random_range(0..n))
                .collect(),
        }
    }

    fn chunk(&self, anchor: usize, rng: &mut StdRng) -> Vec<f32> {
        let a = &self.anchors[anchor];
        let v: Vec<f32> = match self.data {
            Data::Clusters => a
                .iter()
                .map(|x| x + CLUSTER_NOISE * gaussian(rng))
                .collect(),
            Data::Docs => {
                let b = &self.anchors
                    [self.neighbours[anchor][rng.random_range(0..self.neighbours[anchor].len())]];
                let mix: f32 = rng.random();
                a.iter()
                    .zip(b)
                    .map(|(x, y)| mix * x + (1.0 - mix) * y + self.noise * gaussian(rng))
                    .collect()
            }
        };
        normalised(v)
    }
}

/// Median and 10th / 90th percentile of each vector's best cosine to another one, and the
/// median cosine of random pairs.
fn similarity_profile(vectors: &[Vec<f32>], rng: &mut StdRng) -> String {
    let sample: Vec<usize> = (0..300)
        .map(|_| rng.random_range(0..vectors.len()))
        .collect();
    let mut best: Vec<f64> = sample
        .iter()
        .map(|&i| {
            vectors
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, v)| dot(&vectors[i], v))
                .fold(f32::MIN, f32::max) as f64
        })
        .collect();
    let mut random: Vec<f64> = sample
        .iter()
        .map(|&i| dot(&vectors[i], &vectors[rng.random_range(0..vectors.len())]) as f64)
        .collect();
    best.sort_by(f64::total_cmp);
    random.sort_by(f64::total_cmp);
    format!(
        "nearest-neighbour cosine p10 {:.2} / median {:.2} / p90 {:.2}, random pairs median {:.2}",
        percentile(&best, 0.1),
        percentile(&best, 0.5),
        percentile(&best, 0.9),
        percentile(&random, 0.5)
    )
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let mut rng = StdRng::seed_from_u64(7);
    let (chunk_texts, question_texts) = evalset::texts(&args.evalset)?;
    let dir = chatpad::testing::env_var("EMBEDDING_MODEL_DIR")
        .context("set EMBEDDING_MODEL_DIR (the local stack's .local/env has it)")?;
    let model = LocalMiniLm::load(dir)?;
    let anchor_texts: Vec<&str> = match args.data {
        Data::Docs => chunk_texts.iter().map(String::as_str).collect(),
        // Evenly spaced over the corpus: many guides and topics.
        Data::Clusters => chunk_texts
            .iter()
            .step_by((chunk_texts.len() / 512).max(1))
            .take(512)
            .map(String::as_str)
            .collect(),
    };
    let anchors = embed_cache::embed(&model, &anchor_texts, args.cache.as_deref())?;
    let question_refs: Vec<&str> = question_texts.iter().map(String::as_str).collect();
    let questions = embed_cache::embed(&model, &question_refs, args.cache.as_deref())?;
    let generator = Generator::new(anchors, args.data, args.noise);
    println!(
        "{} anchors; real chunks: {}",
        generator.anchors.len(),
        similarity_profile(&generator.anchors, &mut rng)
    );
    let everything: Vec<usize> = (0..generator.anchors.len()).collect();
    let same_size: Vec<Vec<f32>> = (0..generator.anchors.len())
        .map(|_| generator.chunk(everything[rng.random_range(0..everything.len())], &mut rng))
        .collect();
    println!(
        "generated, as many: {}",
        similarity_profile(&same_size, &mut rng)
    );

    let test = TestDb::new().await;
    let su = test.superuser().await;
    // A throwaway database: lift the plan's cap of 100 knowledge sources (one per agent here).
    su.batch_execute("UPDATE plans SET max_knowledge_sources = NULL WHERE id = 'pro'")
        .await?;
    let owner = test.user(Some("pro")).await;

    // Agents: the big one first, then the small ones; each with one source and its anchors.
    let sizes: Vec<usize> = std::iter::once(args.big)
        .filter(|&n| n > 0)
        .chain(std::iter::repeat_n(args.per_agent, args.agents))
        .collect();
    let mut agents = Vec::new(); // (agent, source, size, anchor pool)
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
        let pool = generator.pool(i == 0 && args.big > 0, &mut rng);
        agents.push((agent, source, size, pool));
    }

    // Bulk load: no per-row triggers while copying (owner and agent ids are given directly;
    // every vector has 384 dimensions by construction).
    su.batch_execute("ALTER TABLE knowledge_chunks DISABLE TRIGGER USER")
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
    for (n, (agent, source, size, pool)) in agents.iter().enumerate() {
        for position in 0..*size {
            let anchor = match args.data {
                Data::Clusters => pool[position % pool.len()],
                Data::Docs => pool[rng.random_range(0..pool.len())],
            };
            let embedding = Vector::from(generator.chunk(anchor, &mut rng));
            let content = format!("agent {n} chunk {position} anchor {anchor}");
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

    su.batch_execute("ANALYZE knowledge_chunks").await?;

    // Agents above the exact-search size get their own index, as after an ingestion.
    let mut client = test.db.client().await?;
    let caller = Caller::User { user_id: owner };
    for (agent, _, size, _) in agents.iter().filter(|a| a.2 > EXACT_SEARCH_MAX_CHUNKS) {
        let started = Instant::now();
        let tx = chatpad::db::begin_as(&mut client, &caller).await?;
        let change = sync_vector_index(&tx, *agent).await?;
        tx.commit().await?;
        anyhow::ensure!(
            change == VectorIndexChange::Built,
            "no index built: {change:?}"
        );
        println!(
            "HNSW index of the {size}-chunk agent (m = 16, ef_construction = 200) built in {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }

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
        let mut exact_answers = Vec::new();
        for q in 0..args.queries {
            let (agent, _, size, pool) = &agents[members[q % members.len()]];
            let query = match args.data {
                Data::Docs => questions[q % questions.len()].clone(),
                Data::Clusters => generator.chunk(pool[rng.random_range(0..pool.len())], &mut rng),
            };
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
            exact_answers.push((*agent, query, exact));
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
        if args.sweep && members == [0] && args.big > 0 {
            sweep(&su, &exact_answers).await?;
        }
    }
    Ok(())
}

/// The ANN query of `search_knowledge_sources` at several `hnsw.ef_search` values and
/// candidate counts (as the superuser: no row-level security), against the exact answers.
async fn sweep(
    su: &tokio_postgres::Client,
    answers: &[(Uuid, Vec<f32>, Vec<chatpad::knowledge::search::Hit>)],
) -> anyhow::Result<()> {
    for ef_search in [100, 200, 400, 600, 800] {
        for candidates in [20i64, 40, 100] {
            let mut latencies = Vec::new();
            let mut recall = 0.0;
            for (agent, query, exact) in answers {
                su.batch_execute(&format!(
                    "BEGIN; SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off;
                     SET LOCAL jit = off; SET LOCAL hnsw.ef_search = {ef_search}"
                ))
                .await?;
                // The function's ANN statement: agent and model as literals, matching the
                // predicate of the agent's own index.
                let statement = format!(
                    "SELECT d.id FROM (
                       SELECT k.id, k.embedding::vector({DIMS}) <=> $1::vector({DIMS}) AS distance
                       FROM knowledge_chunks k
                       WHERE k.agent_id = '{agent}'::uuid AND k.embedding_model = '{MODEL}'
                       ORDER BY k.embedding::vector({DIMS}) <=> $1::vector({DIMS})
                       LIMIT $2
                     ) d ORDER BY d.distance LIMIT 5"
                );
                let started = Instant::now();
                let rows = su
                    .query(&statement, &[&Vector::from(query.clone()), &candidates])
                    .await?;
                latencies.push(started.elapsed().as_secs_f64() * 1e3);
                su.batch_execute("ROLLBACK").await?;
                let found = rows
                    .iter()
                    .filter(|r| exact.iter().any(|e| e.chunk_id == r.get::<_, Uuid>(0)))
                    .count();
                recall += found as f64 / exact.len().max(1) as f64;
            }
            latencies.sort_by(f64::total_cmp);
            println!(
                "  sweep: ef_search {ef_search:>3}, {candidates:>3} candidates: p50 {:.1} ms, p99 {:.1} ms, recall@5 {:.3}",
                percentile(&latencies, 0.5),
                percentile(&latencies, 0.99),
                recall / answers.len() as f64
            );
        }
    }
    Ok(())
}
