//! Retrieval: the chunks of an agent that best answer a question.
//!
//! Two modes, both in Postgres and both under the caller's row-level security (see
//! `migrations/V9__hybrid_search.sql`):
//! - [`RetrievalMode::Vector`]: cosine similarity of the question's embedding
//!   (`search_knowledge_sources`: exact for small agents; above
//!   `chatpad.exact_search_max_chunks`, the agent's own HNSW index, which
//!   [`sync_vector_index`] builds, see `migrations/V15__agent_vector_indexes.sql`);
//! - [`RetrievalMode::Hybrid`]: that ranking fused by reciprocal rank ([`fuse`], here) with
//!   BM25 over the chunks' full text (`search_knowledge_text`), which finds exact names, error
//!   codes and numbers the embedding blurs. The default. Its halves run apart too:
//!   [`rank_by_words`] needs no embedding, so widget-chat runs it on a second connection
//!   while the question is embedded, and [`rank_by_meaning`] beside its end (see
//!   `migrations/V22__hybrid_fusion_in_rust.sql`).
//!   BM25 reads the agent's word statistics, which [`sync_term_stats`] refreshes, and prunes
//!   the chunks that cannot reach the top (see
//!   `migrations/V23__exact_full_text_ranking_pruned.sql`).

use pgvector::Vector;
use tracing::instrument;
use uuid::Uuid;

use super::Location;
use crate::ApiResult;
use crate::db::GenericClient;

/// How chunks are ranked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RetrievalMode {
    /// Embedding similarity only.
    Vector,
    /// Embedding similarity and BM25 full text, fused by reciprocal rank.
    #[default]
    Hybrid,
}

/// One retrieved chunk with what a citation needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The chunk (`knowledge_chunks.id`).
    pub chunk_id: Uuid,
    /// The knowledge source the chunk belongs to.
    pub source_id: Uuid,
    /// The source's URL or file name, when it has one.
    pub source: Option<String>,
    /// The source's title.
    pub title: String,
    /// The source's type (`pdf`, `url`, `text`, ...).
    pub source_type: String,
    /// The chunk's text.
    pub content: String,
    /// Where in the source the chunk is.
    pub location: Location,
    /// Cosine similarity of the chunk's embedding to the question's.
    pub similarity: f64,
    /// The ranking score: the similarity in vector mode, the fused reciprocal-rank score in
    /// hybrid mode. Higher is better; only comparable within one result list.
    pub score: f64,
}

/// The `count` chunks of `agent_id` that best match the question, best first.
///
/// `query_embedding` must come from the agent's embedding model (Postgres refuses another
/// length). `threshold` is the minimum cosine similarity of a vector match; in hybrid mode a
/// chunk the full-text ranking finds is kept whatever its similarity. Agents the caller cannot
/// see give no hits.
#[instrument(skip(client, query_embedding, query_text), fields(%agent_id, ?mode, count))]
pub async fn search(
    client: &impl GenericClient,
    agent_id: Uuid,
    query_embedding: &[f32],
    query_text: &str,
    mode: RetrievalMode,
    threshold: f64,
    count: u32,
) -> ApiResult<Vec<Hit>> {
    match mode {
        RetrievalMode::Vector => {
            by_meaning(
                client,
                agent_id,
                query_embedding,
                threshold,
                sql_count(count),
            )
            .await
        }
        RetrievalMode::Hybrid => {
            // Two statements on one connection, sent together.
            let (by_meaning, by_words) = futures::future::try_join(
                rank_by_meaning(client, agent_id, query_embedding, threshold, count),
                rank_by_words(client, agent_id, query_text, count),
            )
            .await?;
            Ok(fuse(query_embedding, by_meaning, by_words, count))
        }
    }
}

/// How deep each ranking of a hybrid search goes before fusion.
const FUSION_DEPTH: i32 = 40;
/// Reciprocal rank fusion's k: a chunk at rank r of a ranking scores 1 / (k + r).
const RRF_K: f64 = 60.0;

/// The first half of a hybrid search, which needs no embedding: the agent's chunks ranked by
/// BM25 over the question's words (`search_knowledge_text`), best first, as deep as a fusion
/// for `count` hits reads, each with its embedding (its similarity to the question is worked
/// out by [`fuse`], once the question's embedding exists). So widget-chat runs it on its own
/// connection while the question is embedded, and [`rank_by_meaning`] beside its end.
#[instrument(skip(client, query_text), fields(%agent_id))]
pub async fn rank_by_words(
    client: &impl GenericClient,
    agent_id: Uuid,
    query_text: &str,
    count: u32,
) -> ApiResult<WordRanking> {
    let depth = sql_count(count).max(FUSION_DEPTH);
    let statement = client
        .prepare_cached(
            "SELECT c.id, c.source_id, s.source, s.title, s.type, c.content, c.location,
                    c.embedding
             FROM search_knowledge_text($1, $2, $3) t
             JOIN knowledge_chunks c ON c.id = t.id
             JOIN knowledge_sources s ON s.id = c.source_id
             ORDER BY t.rank_score DESC, t.id",
        )
        .await?;
    let rows = client
        .query(&statement, &[&agent_id, &query_text, &depth])
        .await
        .map_err(|err| searching(agent_id, err))?;
    Ok(WordRanking(
        rows.iter()
            .map(|row| {
                let embedding: Vector = row.get("embedding");
                (hit(row, 0.0), embedding.to_vec())
            })
            .collect(),
    ))
}

/// [`rank_by_words`]'s chunks, best first, each with its embedding.
#[derive(Debug, Clone, Default)]
pub struct WordRanking(Vec<(Hit, Vec<f32>)>);

/// The other half of a hybrid search: the agent's chunks at least `threshold` similar to the
/// question (`search_knowledge_sources`), best first, as deep as [`rank_by_words`].
#[instrument(skip(client, query_embedding), fields(%agent_id))]
pub async fn rank_by_meaning(
    client: &impl GenericClient,
    agent_id: Uuid,
    query_embedding: &[f32],
    threshold: f64,
    count: u32,
) -> ApiResult<Vec<Hit>> {
    let depth = sql_count(count).max(FUSION_DEPTH);
    by_meaning(client, agent_id, query_embedding, threshold, depth).await
}

async fn by_meaning(
    client: &impl GenericClient,
    agent_id: Uuid,
    query_embedding: &[f32],
    threshold: f64,
    limit: i32,
) -> ApiResult<Vec<Hit>> {
    let embedding = Vector::from(query_embedding.to_vec());
    let statement = client
        .prepare_cached(
            "SELECT id, source_id, source, title, type, content, location, similarity
             FROM search_knowledge_sources($1, $2, $3, $4)",
        )
        .await?;
    let rows = client
        .query(&statement, &[&agent_id, &embedding, &threshold, &limit])
        .await
        .map_err(|err| searching(agent_id, err))?;
    Ok(rows
        .iter()
        .map(|row| hit(row, row.get("similarity")))
        .collect())
}

/// The hybrid search's hits from its two rankings: each chunk scores the sum of
/// 1 / (60 + its rank) over the rankings that found it (reciprocal rank fusion, each ranking
/// [`FUSION_DEPTH`] deep), ties going to the more similar; the `count` best. A chunk only the
/// words found gets its similarity to the question here.
pub fn fuse(
    query_embedding: &[f32],
    mut by_meaning: Vec<Hit>,
    by_words: WordRanking,
    count: u32,
) -> Vec<Hit> {
    let depth = usize::try_from(sql_count(count).max(FUSION_DEPTH)).unwrap_or(usize::MAX);
    // Best first, equal similarities by id (the order the ranks are counted in).
    by_meaning.sort_by(|a, b| {
        b.similarity
            .total_cmp(&a.similarity)
            .then(a.chunk_id.cmp(&b.chunk_id))
    });
    let mut fused: Vec<Hit> = Vec::with_capacity(2 * depth);
    let mut add = |hit: Hit, rank: usize| {
        let part = 1.0 / (RRF_K + rank as f64);
        match fused.iter_mut().find(|f| f.chunk_id == hit.chunk_id) {
            Some(found) => found.score += part,
            None => fused.push(Hit { score: part, ..hit }),
        }
    };
    for (rank, hit) in by_meaning.into_iter().take(depth).enumerate() {
        add(hit, rank + 1);
    }
    for (rank, (hit, embedding)) in by_words.0.into_iter().take(depth).enumerate() {
        let similarity = cosine_similarity(query_embedding, &embedding);
        add(Hit { similarity, ..hit }, rank + 1);
    }
    fused.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.similarity.total_cmp(&a.similarity))
            .then(a.chunk_id.cmp(&b.chunk_id))
    });
    fused.truncate(usize::try_from(sql_count(count)).unwrap_or(usize::MAX));
    fused
}

/// Cosine similarity, as pgvector's `1 - (a <=> b)`; 0 when either vector is zero.
fn cosine_similarity(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut norm_a, mut norm_b) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        norm_a += x * x;
        norm_b += y * y;
    }
    let norms = (norm_a * norm_b).sqrt();
    if norms == 0.0 { 0.0 } else { dot / norms }
}

/// Hits asked for, as the SQL functions take them: 1 to 100.
fn sql_count(count: u32) -> i32 {
    i32::try_from(count.clamp(1, 100)).unwrap_or(100)
}

fn searching(agent_id: Uuid, err: tokio_postgres::Error) -> anyhow::Error {
    anyhow::Error::new(err).context(format!("searching the knowledge of agent {agent_id}"))
}

/// A hit from a row of chunk and source columns; `score` starts as `similarity`.
fn hit(row: &tokio_postgres::Row, similarity: f64) -> Hit {
    let location: serde_json::Value = row.get("location");
    Hit {
        chunk_id: row.get("id"),
        source_id: row.get("source_id"),
        source: row.get("source"),
        title: row.get("title"),
        source_type: row.get("type"),
        content: row.get("content"),
        location: serde_json::from_value(location).unwrap_or_default(),
        similarity,
        score: similarity,
    }
}

/// What [`sync_vector_index`] did to an agent's own HNSW index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorIndexChange {
    /// Built now: the agent has grown past the exact-search size.
    Built,
    /// Dropped: the agent shrank well below that size, or its model changed.
    Dropped,
    /// Already in place.
    Ready,
    /// None needed: the agent is searched exactly.
    Small,
    /// Another session is building it.
    Busy,
    /// Unknown agent, or not the caller's.
    NotFound,
}

/// Builds or drops `agent`'s own HNSW index to match its size (`sync_agent_vector_index`).
/// Writes to the chunks table wait while an index builds (seconds at 20k chunks), so callers
/// run it after their own transaction has committed, as the ingest worker does after a source.
#[instrument(skip(client))]
pub async fn sync_vector_index(
    client: &impl GenericClient,
    agent: Uuid,
) -> ApiResult<VectorIndexChange> {
    let row = client
        .query_one("SELECT sync_agent_vector_index($1)", &[&agent])
        .await?;
    match row.get::<_, &str>(0) {
        "built" => Ok(VectorIndexChange::Built),
        "dropped" => Ok(VectorIndexChange::Dropped),
        "ready" => Ok(VectorIndexChange::Ready),
        "small" => Ok(VectorIndexChange::Small),
        "busy" => Ok(VectorIndexChange::Busy),
        "not_found" => Ok(VectorIndexChange::NotFound),
        other => Err(anyhow::anyhow!("sync_agent_vector_index returned {other:?}").into()),
    }
}

/// What [`sync_term_stats`] did to an agent's word statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TermStatsChange {
    /// Counted again from the agent's chunks.
    Refreshed,
    /// Kept: nothing changed since the count (past the exact-search size: the agent's size is
    /// within a tenth of the count's; words they miss are counted per question).
    Fresh,
    /// Another session is refreshing them.
    Busy,
    /// Unknown agent, or not the caller's.
    NotFound,
}

/// Refreshes `agent`'s word statistics (each word's number of chunks, and their average
/// length), which BM25 reads instead of counting them per question
/// (`sync_agent_term_stats`: ~0.1 s at 20k chunks, ~1 s at 100k; see
/// `migrations/V23__exact_full_text_ranking_pruned.sql`). Counted again whenever the agent's
/// chunks changed, or past the exact-search size once its size moved by a tenth. Run after a
/// sync, as the vector index is.
#[instrument(skip(client))]
pub async fn sync_term_stats(
    client: &impl GenericClient,
    agent: Uuid,
) -> ApiResult<TermStatsChange> {
    let row = client
        .query_one("SELECT sync_agent_term_stats($1)", &[&agent])
        .await?;
    match row.get::<_, &str>(0) {
        "refreshed" => Ok(TermStatsChange::Refreshed),
        "fresh" => Ok(TermStatsChange::Fresh),
        "busy" => Ok(TermStatsChange::Busy),
        "not_found" => Ok(TermStatsChange::NotFound),
        other => Err(anyhow::anyhow!("sync_agent_term_stats returned {other:?}").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(n: u128, similarity: f64) -> Hit {
        Hit {
            chunk_id: Uuid::from_u128(n),
            source_id: Uuid::from_u128(1000),
            source: None,
            title: format!("chunk {n}"),
            source_type: "text".into(),
            content: String::new(),
            location: Location::default(),
            similarity,
            score: similarity,
        }
    }

    /// Chunk `n`'s embedding: `cos` similar to the question's, [1, 0].
    fn words(ranked: &[(u128, f32)]) -> WordRanking {
        WordRanking(
            ranked
                .iter()
                .map(|&(n, cos)| (chunk(n, 0.0), vec![cos, (1.0 - cos * cos).sqrt()]))
                .collect(),
        )
    }

    fn ids(hits: &[Hit]) -> Vec<u128> {
        hits.iter().map(|hit| hit.chunk_id.as_u128()).collect()
    }

    const QUESTION: [f32; 2] = [1.0, 0.0];

    #[test]
    fn a_chunk_both_rankings_find_fairly_beats_one_either_finds_first() {
        // Chunk 5 is fifth in both: 2 / 65 beats 1 / 61 for chunks 1 (first by meaning) and
        // 9 (first by words). With a small k (1) it would not: 2 / 6 < 1 / 2.
        let by_meaning: Vec<Hit> = [(1, 0.9), (2, 0.8), (3, 0.7), (4, 0.6), (5, 0.5)]
            .map(|(n, s)| chunk(n, s))
            .into();
        let by_words = words(&[(9, 0.1), (6, 0.1), (7, 0.1), (8, 0.1), (5, 0.5)]);
        let hits = fuse(&QUESTION, by_meaning, by_words, 3);
        assert_eq!(ids(&hits), [5, 1, 9]);
        assert!((hits[0].score - 2.0 / 65.0).abs() < 1e-12, "{hits:#?}");
    }

    #[test]
    fn equal_scores_go_to_the_more_similar_and_word_matches_get_their_similarity() {
        // Chunk 1 first by meaning (0.4 similar), chunk 2 first by words (0.8 similar).
        let hits = fuse(&QUESTION, vec![chunk(1, 0.4)], words(&[(2, 0.8)]), 5);
        assert_eq!(ids(&hits), [2, 1]);
        assert!((hits[0].similarity - 0.8).abs() < 1e-6, "{hits:#?}");
        assert_eq!(hits[0].score, hits[1].score);
    }

    #[test]
    fn each_ranking_counts_only_as_deep_as_the_fusion_reads() {
        // 45 chunks by meaning; the 41st and later add nothing, so chunk 41, also the only
        // word match, scores as a word match alone and loses to chunk 1.
        let by_meaning: Vec<Hit> = (1..=45).map(|n| chunk(n, 1.0 - n as f64 / 100.0)).collect();
        let hits = fuse(&QUESTION, by_meaning, words(&[(41, 0.59)]), 2);
        assert_eq!(ids(&hits), [1, 41]);
        assert!((hits[1].score - 1.0 / 61.0).abs() < 1e-12, "{hits:#?}");
    }
}
