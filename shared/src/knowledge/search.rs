//! Retrieval: the chunks of an agent that best answer a question.
//!
//! Two modes, both in Postgres and both under the caller's row-level security (see
//! `migrations/V9__hybrid_search.sql`):
//! - [`RetrievalMode::Vector`]: cosine similarity of the question's embedding
//!   (`search_knowledge_sources`: exact for small agents; above
//!   `chatpad.exact_search_max_chunks`, the agent's own HNSW index, which
//!   [`sync_vector_index`] builds, see `migrations/V15__agent_vector_indexes.sql`);
//! - [`RetrievalMode::Hybrid`]: that ranking fused by reciprocal rank with BM25 over the
//!   chunks' full text (`search_knowledge_hybrid`), which finds exact names, error codes and
//!   numbers the embedding blurs. The default. The same search runs in steps too —
//!   [`rank_by_words`] needs no embedding, so widget-chat runs it while the question is
//!   embedded, [`rank_by_meaning`] beside its end, then [`fuse`] (see
//!   `migrations/V22__hybrid_rankings_side_by_side.sql`).
//!   Past the exact-search size, BM25 reads the agent's word statistics, which
//!   [`sync_term_stats`] refreshes (see `migrations/V17__full_text_term_stats.sql`).

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
    let embedding = Vector::from(query_embedding.to_vec());
    let count = sql_count(count);
    let rows = match mode {
        RetrievalMode::Vector => {
            let statement = client
                .prepare_cached(
                    "SELECT id, source_id, source, title, type, content, location, similarity,
                            similarity AS score
                     FROM search_knowledge_sources($1, $2, $3, $4)",
                )
                .await?;
            client
                .query(&statement, &[&agent_id, &embedding, &threshold, &count])
                .await
        }
        RetrievalMode::Hybrid => {
            let statement = client
                .prepare_cached(
                    "SELECT id, source_id, source, title, type, content, location, similarity,
                            score
                     FROM search_knowledge_hybrid($1, $2, $3, $4, $5)",
                )
                .await?;
            client
                .query(
                    &statement,
                    &[&agent_id, &embedding, &query_text, &threshold, &count],
                )
                .await
        }
    }
    .map_err(|err| searching(agent_id, err))?;
    Ok(rows.iter().map(hit).collect())
}

/// How deep each ranking of a hybrid search in steps goes before fusion (the default
/// `p_depth` of `search_knowledge_hybrid`, which [`search`] uses).
const FUSION_DEPTH: i32 = 40;

/// The first half of a hybrid search, which needs no embedding: the agent's chunks ranked by
/// BM25 over the question's words, best first, as deep as a fusion for `count` hits reads.
/// [`fuse`] finishes the search with [`rank_by_meaning`]'s ranking, so the word ranking can
/// run on its own connection while the question is embedded.
#[instrument(skip(client, query_text), fields(%agent_id))]
pub async fn rank_by_words(
    client: &impl GenericClient,
    agent_id: Uuid,
    query_text: &str,
    count: u32,
) -> ApiResult<Vec<Uuid>> {
    let depth = sql_count(count).max(FUSION_DEPTH);
    let statement = client
        .prepare_cached(
            "SELECT id FROM search_knowledge_text($1, $2, $3) ORDER BY rank_score DESC, id",
        )
        .await?;
    let rows = client
        .query(&statement, &[&agent_id, &query_text, &depth])
        .await
        .map_err(|err| searching(agent_id, err))?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// The other half of a hybrid search: the agent's chunks ranked by the question's embedding
/// (`search_knowledge_sources`, similarity above `threshold`), best first, as deep as
/// [`rank_by_words`]. It can run beside that ranking; [`fuse`] finishes the search.
#[instrument(skip(client, query_embedding), fields(%agent_id))]
pub async fn rank_by_meaning(
    client: &impl GenericClient,
    agent_id: Uuid,
    query_embedding: &[f32],
    threshold: f64,
    count: u32,
) -> ApiResult<Vec<Uuid>> {
    let embedding = Vector::from(query_embedding.to_vec());
    let depth = sql_count(count).max(FUSION_DEPTH);
    let statement = client
        .prepare_cached(
            "SELECT id FROM search_knowledge_sources($1, $2, $3, $4) ORDER BY similarity DESC, id",
        )
        .await?;
    let rows = client
        .query(&statement, &[&agent_id, &embedding, &threshold, &depth])
        .await
        .map_err(|err| searching(agent_id, err))?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// A hybrid search from its two rankings ([`rank_by_meaning`], [`rank_by_words`]), fused by
/// reciprocal rank (`fuse_knowledge_rankings`): the same hits as [`search`] in
/// [`RetrievalMode::Hybrid`]. Ids of chunks that are not the agent's count for nothing.
#[instrument(skip(client, query_embedding, vector_ranking, word_ranking), fields(%agent_id, count))]
pub async fn fuse(
    client: &impl GenericClient,
    agent_id: Uuid,
    query_embedding: &[f32],
    vector_ranking: &[Uuid],
    word_ranking: &[Uuid],
    count: u32,
) -> ApiResult<Vec<Hit>> {
    let embedding = Vector::from(query_embedding.to_vec());
    let count = sql_count(count);
    let statement = client
        .prepare_cached(
            "SELECT id, source_id, source, title, type, content, location, similarity, score
             FROM fuse_knowledge_rankings($1, $2, $3, $4, $5, p_depth => $6)",
        )
        .await?;
    let rows = client
        .query(
            &statement,
            &[
                &agent_id,
                &embedding,
                &vector_ranking,
                &word_ranking,
                &count,
                &FUSION_DEPTH,
            ],
        )
        .await
        .map_err(|err| searching(agent_id, err))?;
    Ok(rows.iter().map(hit).collect())
}

/// Hits asked for, as the SQL functions take them: 1 to 100.
fn sql_count(count: u32) -> i32 {
    i32::try_from(count.clamp(1, 100)).unwrap_or(100)
}

fn searching(agent_id: Uuid, err: tokio_postgres::Error) -> anyhow::Error {
    anyhow::Error::new(err).context(format!("searching the knowledge of agent {agent_id}"))
}

fn hit(row: &tokio_postgres::Row) -> Hit {
    let location: serde_json::Value = row.get("location");
    Hit {
        chunk_id: row.get("id"),
        source_id: row.get("source_id"),
        source: row.get("source"),
        title: row.get("title"),
        source_type: row.get("type"),
        content: row.get("content"),
        location: serde_json::from_value(location).unwrap_or_default(),
        similarity: row.get("similarity"),
        score: row.get("score"),
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
    /// Counted again from the agent's chunks: it is past the exact-search size.
    Refreshed,
    /// Kept: counted when the agent's size was within a tenth of today's (words they miss
    /// are counted per question).
    Fresh,
    /// None kept: the agent's full text is ranked exactly.
    Small,
    /// Another session is refreshing them.
    Busy,
    /// Unknown agent, or not the caller's.
    NotFound,
}

/// Refreshes `agent`'s word statistics (each word's number of chunks), which BM25 reads
/// instead of counting them per question once the agent is past the exact-search size
/// (`sync_agent_term_stats`; about a second at 100k chunks, skipped while the agent's size
/// stays within a tenth of the last count). Run after a sync, as the vector index is.
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
        "small" => Ok(TermStatsChange::Small),
        "busy" => Ok(TermStatsChange::Busy),
        "not_found" => Ok(TermStatsChange::NotFound),
        other => Err(anyhow::anyhow!("sync_agent_term_stats returned {other:?}").into()),
    }
}
