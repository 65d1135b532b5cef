//! Retrieval quality on the aws-docs-qa evaluation set (100 questions over 408 AWS
//! documentation pages; see its README): every page is chunked with
//! [`chatpad::knowledge::chunk`], embedded with the local all-MiniLM-L6-v2 and stored as a
//! knowledge source of one agent in a fresh Postgres database; each question is asked through
//! [`chatpad::knowledge::search::search`] as the agent's owner (row-level security on), in
//! vector and in hybrid mode, and BM25 alone (`search_knowledge_text`) for reference.
//! Scoring is per page: a hit at k when one of the top k chunks comes from the relevant page.
//!
//! ```text
//! infra/with-services.sh cargo run --release -p chatpad-shared \
//!     --features local-embeddings,test-support --bin chatpad-retrieval-bench -- \
//!     [--evalset DIR] [--size N] [--overlap N] [--cache FILE] [--sql FILE] [--queries FILE]
//!     [--exact-max N]
//! ```
//!
//! The evaluation set defaults to `../shared/evalsets/aws-docs-qa` next to the repository
//! (`CHATPAD_EVALSET_DIR` or `--evalset` override it). Embedding the ~4.5k chunks takes five
//! minutes on two cores; `--cache FILE` (outside the repository) keeps every vector embedded
//! so far, by text, for the next runs.
//!
//! For tuning without a rebuild: `--sql FILE` runs a script in the bench database (as the
//! superuser) once the chunks are stored, e.g. a variant of a search function; `--queries FILE`
//! adds rankings to score, one per line as `name<TAB>SQL`, where the SQL returns `source_id`s
//! best first for `$1` (agent id), `$2` (query vector) and `$3` (question).
//!
//! `--exact-max N` sets `chatpad.exact_search_max_chunks` to N for the searches: below the
//! corpus size, the same questions take the large-agent paths (the agent's HNSW index and
//! word statistics, synced as the ingest worker does, and the bounded BM25).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use chatpad::auth::Caller;
use chatpad::embeddings::LocalMiniLm;
use chatpad::knowledge::chunk::{ChunkSettings, chunk};
use chatpad::knowledge::search::{RetrievalMode, search, sync_term_stats, sync_vector_index};
use chatpad::knowledge::{Extracted, Location, Part};
use chatpad::testing::TestDb;

#[path = "bench_common/embed_cache.rs"]
mod embed_cache;
use pgvector::Vector;
use serde::Deserialize;
use uuid::Uuid;

#[derive(Deserialize)]
struct Page {
    id: String,
    title: String,
    text: String,
}

#[derive(Deserialize)]
struct Question {
    question: String,
    relevant_ids: Vec<String>,
}

struct Args {
    evalset: PathBuf,
    settings: ChunkSettings,
    cache: Option<PathBuf>,
    sql: Option<PathBuf>,
    queries: Option<PathBuf>,
    exact_max: Option<u32>,
}

fn args() -> anyhow::Result<Args> {
    let mut evalset = std::env::var("CHATPAD_EVALSET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../shared/evalsets/aws-docs-qa"
            ))
        });
    let mut settings = ChunkSettings::default();
    let mut cache = None;
    let mut sql = None;
    let mut queries = None;
    let mut exact_max = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--evalset" => evalset = PathBuf::from(value()?),
            "--size" => settings.size_tokens = value()?.parse()?,
            "--overlap" => settings.overlap_tokens = value()?.parse()?,
            "--cache" => cache = Some(PathBuf::from(value()?)),
            "--sql" => sql = Some(PathBuf::from(value()?)),
            "--queries" => queries = Some(PathBuf::from(value()?)),
            "--exact-max" => exact_max = Some(value()?.parse()?),
            other => anyhow::bail!(
                "unknown argument {other}; usage: [--evalset DIR] [--size N] [--overlap N] \
                 [--cache FILE] [--sql FILE] [--queries FILE] [--exact-max N]"
            ),
        }
    }
    Ok(Args {
        evalset,
        settings,
        cache,
        sql,
        queries,
        exact_max,
    })
}

fn read_jsonl<T: for<'de> Deserialize<'de>>(path: PathBuf) -> anyhow::Result<Vec<T>> {
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("parsing {}", path.display())))
        .collect()
}

/// What is scored: `search` in a mode, BM25 alone, or a `--queries` line.
enum Ranking<'a> {
    Search(RetrievalMode),
    Bm25,
    Sql(&'a str),
}

/// hit@1, hit@5 and MRR@10 of ranked page ids against each question's relevant pages.
#[derive(Default)]
struct Score {
    hit1: f64,
    hit5: f64,
    mrr10: f64,
    n: usize,
}

impl Score {
    fn add(&mut self, ranked_pages: &[&str], relevant: &[String]) {
        let first = ranked_pages
            .iter()
            .take(10)
            .position(|p| relevant.iter().any(|r| r == p));
        self.n += 1;
        if let Some(rank) = first {
            self.hit1 += f64::from(rank < 1);
            self.hit5 += f64::from(rank < 5);
            self.mrr10 += 1.0 / (rank + 1) as f64;
        }
    }

    fn line(&self, name: &str, latencies: &mut [f64]) -> String {
        latencies.sort_by(f64::total_cmp);
        let n = self.n.max(1) as f64;
        format!(
            "{name:<22} hit@1 {:.2}  hit@5 {:.2}  MRR@10 {:.3}   search p50 {:.1} ms, p99 {:.1} ms",
            self.hit1 / n,
            self.hit5 / n,
            self.mrr10 / n,
            percentile(latencies, 0.5),
            percentile(latencies, 0.99),
        )
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let pages: Vec<Page> = read_jsonl(args.evalset.join("corpus.jsonl"))?;
    let questions: Vec<Question> = read_jsonl(args.evalset.join("questions.jsonl"))?;
    println!(
        "evalset {}: {} pages, {} questions; chunks of {} tokens, {} overlap",
        args.evalset.display(),
        pages.len(),
        questions.len(),
        args.settings.size_tokens,
        args.settings.overlap_tokens
    );

    // Chunking (single thread), with its throughput.
    let docs: Vec<Extracted> = pages
        .iter()
        .map(|p| Extracted {
            title: Some(p.title.clone()),
            parts: vec![Part {
                markdown: p.text.clone(),
                location: Location {
                    url: Some(format!("https://docs.aws.amazon.com/{}", p.id)),
                    ..Location::default()
                },
            }],
        })
        .collect();
    let bytes: usize = pages.iter().map(|p| p.text.len()).sum();
    let started = Instant::now();
    let chunked: Vec<_> = docs.iter().map(|d| chunk(d, &args.settings)).collect();
    let secs = started.elapsed().as_secs_f64();
    let total: usize = chunked.iter().map(Vec::len).sum();
    println!(
        "chunking: {:.2} MB in {:.0} ms on one core = {:.0} MB/s, {total} chunks",
        bytes as f64 / 1e6,
        secs * 1e3,
        bytes as f64 / secs / 1e6
    );

    let dir = chatpad::testing::env_var("EMBEDDING_MODEL_DIR")
        .context("set EMBEDDING_MODEL_DIR (the local stack's .local/env has it)")?;
    let model = LocalMiniLm::load(&dir)?;
    let texts: Vec<&str> = chunked
        .iter()
        .flatten()
        .map(|c| c.content.as_str())
        .collect();
    let estimated: usize = chunked
        .iter()
        .flatten()
        .map(|c| c.token_count as usize)
        .sum();
    let real: Vec<usize> = texts
        .iter()
        .map(|t| model.count_tokens(t))
        .collect::<Result<_, _>>()?;
    println!(
        "tokens: estimated {estimated}, tokenizer {} ({:+.1}%); chunks over the model's {} tokens: {}",
        real.iter().sum::<usize>(),
        (estimated as f64 / real.iter().sum::<usize>() as f64 - 1.0) * 100.0,
        LocalMiniLm::MAX_TOKENS,
        real.iter()
            .filter(|&&t| t > LocalMiniLm::MAX_TOKENS)
            .count()
    );

    let vectors = embed_cache::embed(&model, &texts, args.cache.as_deref())?;

    // One agent, one source per page.
    let test = TestDb::new().await;
    let su = test.superuser().await;
    // A throwaway database: lift the plan's cap of 100 knowledge sources for the 408 pages.
    su.batch_execute("UPDATE plans SET max_knowledge_sources = NULL WHERE id = 'pro'")
        .await?;
    let owner = test.user(Some("pro")).await;
    let agent: Uuid = su
        .query_one(
            "INSERT INTO agents (user_id, name) VALUES ($1, 'AWS docs') RETURNING id",
            &[&owner],
        )
        .await?
        .get(0);
    let started = Instant::now();
    su.batch_execute("BEGIN").await?;
    let insert_source = su
        .prepare(
            "INSERT INTO knowledge_sources (agent_id, type, title, source, status, chunk_count)
             VALUES ($1, 'markdown', $2, $3, 'ready', $4) RETURNING id",
        )
        .await?;
    let insert_chunk = su
        .prepare(
            "INSERT INTO knowledge_chunks
               (source_id, position, content, location, token_count, embedding_model, embedding)
             VALUES ($1, $2, $3, $4, $5, 'local/all-MiniLM-L6-v2', $6)",
        )
        .await?;
    let mut page_of_source: HashMap<Uuid, &str> = HashMap::new();
    let mut vectors = vectors.into_iter();
    for (page, chunks) in pages.iter().zip(&chunked) {
        let source: Uuid = su
            .query_one(
                &insert_source,
                &[&agent, &page.title, &page.id, &(chunks.len() as i32)],
            )
            .await?
            .get(0);
        page_of_source.insert(source, &page.id);
        for c in chunks {
            let embedding = Vector::from(vectors.next().context("one vector per chunk")?);
            su.execute(
                &insert_chunk,
                &[
                    &source,
                    &(c.position as i32),
                    &c.content,
                    &serde_json::to_value(&c.location)?,
                    &(c.token_count as i32),
                    &embedding,
                ],
            )
            .await?;
        }
    }
    su.batch_execute("COMMIT; ANALYZE knowledge_chunks").await?;
    println!(
        "stored {total} chunks in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Each question alone, as widget-chat embeds a visitor's: short inputs take the CPU's
    // short-input kernel (on AMX, bf16 products), which a batch would not.
    let question_vectors = questions
        .iter()
        .map(|q| {
            Ok(model
                .embed_blocking(std::slice::from_ref(&q.question))?
                .remove(0))
        })
        .collect::<anyhow::Result<Vec<Vec<f32>>>>()?;
    println!(
        "questions embedded one by one (short-input kernel {})",
        chatpad_minilm::short_input_kernel()
    );
    if let Some(path) = &args.sql {
        let script =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        su.batch_execute(&script)
            .await
            .with_context(|| format!("running {}", path.display()))?;
    }
    let mut extra: Vec<(String, String)> = Vec::new();
    if let Some(path) = &args.queries {
        for line in std::fs::read_to_string(path)?.lines() {
            if let Some((name, sql)) = line.split_once('\t') {
                extra.push((name.trim().to_owned(), sql.trim().to_owned()));
            }
        }
    }

    let mut client = test.db.client().await?;
    let caller = Caller::User { user_id: owner };
    // The size switch for this transaction, when `--exact-max` moves it.
    let exact_max = args.exact_max.map(|n| n.to_string());
    let set_exact_max = async |tx: &chatpad::db::Transaction<'_>| -> anyhow::Result<()> {
        if let Some(n) = &exact_max {
            tx.execute(
                "SELECT set_config('chatpad.exact_search_max_chunks', $1, true)",
                &[n],
            )
            .await?;
        }
        Ok(())
    };
    // As the ingest worker does after a source (nothing to do at the default size).
    let started = Instant::now();
    let tx = chatpad::db::begin_as(&mut client, &caller).await?;
    set_exact_max(&tx).await?;
    let index = sync_vector_index(&tx, agent).await?;
    let terms = sync_term_stats(&tx, agent).await?;
    tx.commit().await?;
    println!(
        "agent vector index {index:?}, word statistics {terms:?} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut report = Vec::new();
    let rankings = [
        (
            "vector (cosine)".to_owned(),
            Ranking::Search(RetrievalMode::Vector),
        ),
        ("BM25 (full text)".to_owned(), Ranking::Bm25),
        (
            "hybrid (default)".to_owned(),
            Ranking::Search(RetrievalMode::Hybrid),
        ),
    ]
    .into_iter()
    .chain(
        extra
            .iter()
            .map(|(name, sql)| (name.clone(), Ranking::Sql(sql))),
    );
    for (name, ranking) in rankings {
        let mut score = Score::default();
        let mut latencies = Vec::new();
        for (question, vector) in questions.iter().zip(&question_vectors) {
            let tx = chatpad::db::begin_as(&mut client, &caller).await?;
            set_exact_max(&tx).await?;
            let started = Instant::now();
            let embedding = Vector::from(vector.clone());
            let sources: Vec<Uuid> = match ranking {
                Ranking::Search(mode) => {
                    search(&tx, agent, vector, &question.question, mode, 0.0, 10)
                        .await?
                        .into_iter()
                        .map(|h| h.source_id)
                        .collect()
                }
                Ranking::Sql(sql) => tx
                    .query(sql, &[&agent, &embedding, &question.question])
                    .await
                    .with_context(|| format!("ranking {name}"))?
                    .iter()
                    .map(|r| r.get(0))
                    .collect(),
                Ranking::Bm25 => tx
                    .query(
                        "SELECT c.source_id FROM search_knowledge_text($1, $2, 10) t
                         JOIN knowledge_chunks c ON c.id = t.id ORDER BY t.rank_score DESC",
                        &[&agent, &question.question],
                    )
                    .await?
                    .iter()
                    .map(|r| r.get(0))
                    .collect(),
            };
            latencies.push(started.elapsed().as_secs_f64() * 1e3);
            tx.rollback().await?;
            let ranked: Vec<&str> = sources
                .iter()
                .filter_map(|s| page_of_source.get(s).copied())
                .collect();
            score.add(&ranked, &question.relevant_ids);
        }
        report.push(score.line(&name, &mut latencies));
    }
    println!();
    for line in report {
        println!("{line}");
    }
    Ok(())
}
