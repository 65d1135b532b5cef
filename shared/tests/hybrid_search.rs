//! `knowledge::search`: hybrid retrieval (BM25 full text + vectors, reciprocal rank fusion)
//! against real Postgres, under row-level security.

use chatpad::auth::Caller;
use chatpad::knowledge::search::{
    Hit, RetrievalMode, TermStatsChange, VectorIndexChange, fuse, rank_by_meaning, rank_by_words,
    search, sync_term_stats, sync_vector_index,
};
use chatpad::testing::TestDb;
use pgvector::Vector;
use uuid::Uuid;

const DIMS: usize = 384;

/// A deterministic unit vector pointing mostly along axis `axis`.
fn vector(axis: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..DIMS).map(|i| (i as f32 * 0.37).sin() * 0.01).collect();
    v[axis % DIMS] += 1.0;
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / norm).collect()
}

/// Chunks of one agent: (content, embedding axis). Returns the owner, the agent and the source.
async fn seed(test: &TestDb, chunks: &[(&str, usize)]) -> (Uuid, Uuid, Uuid) {
    let owner = test.user(None).await;
    let (agent, source) = seed_agent(test, owner, chunks).await;
    (owner, agent, source)
}

/// A new agent of `owner` with these chunks. Returns the agent and its source.
async fn seed_agent(test: &TestDb, owner: Uuid, chunks: &[(&str, usize)]) -> (Uuid, Uuid) {
    let su = test.superuser().await;
    let agent = test.agent(owner).await;
    let source: Uuid = su
        .query_one(
            "INSERT INTO knowledge_sources (agent_id, type, title, source, status, chunk_count)
             VALUES ($1, 'url', 'Help center', 'https://example.com/help', 'ready', $2) RETURNING id",
            &[&agent, &(chunks.len() as i32)],
        )
        .await
        .unwrap()
        .get(0);
    for (position, (content, axis)) in chunks.iter().enumerate() {
        su.execute(
            "INSERT INTO knowledge_chunks (source_id, position, content, location, embedding_model, embedding)
             VALUES ($1, $2, $3, '{\"url\": \"https://example.com/help\", \"section\": \"FAQ\"}',
                     'local/all-MiniLM-L6-v2', $4)",
            &[&source, &(position as i32), content, &Vector::from(vector(*axis))],
        )
        .await
        .unwrap();
    }
    (agent, source)
}

/// A transaction as `owner` in which an agent of more than 2 chunks is large: searched
/// through its own HNSW index and the bounded full-text ranking.
async fn as_owner_where_agents_are_large(
    client: &mut chatpad::db::Client,
    owner: Uuid,
) -> chatpad::db::Transaction<'_> {
    let tx = chatpad::db::begin_as(client, &Caller::User { user_id: owner })
        .await
        .unwrap();
    tx.execute(
        "SELECT set_config('chatpad.exact_search_max_chunks', '2', true)",
        &[],
    )
    .await
    .unwrap();
    tx
}

/// Chunks about billing (axes 0..), one about an error code that the vectors do not place near
/// any question (axis 300).
const CHUNKS: &[(&str, usize)] = &[
    ("Invoices are emailed on the first day of each month.", 0),
    ("Refunds are paid back to the card within five days.", 1),
    (
        "You can change the billing email in the account settings.",
        2,
    ),
    (
        "Plans can be upgraded at any time; the difference is prorated.",
        3,
    ),
    (
        "Payment failures are retried three times before the plan is paused.",
        4,
    ),
    (
        "Error QX-4471 means the webhook signature did not verify.",
        300,
    ),
];

/// A question: its embedding's axis, its text, and the search parameters.
struct Ask<'a>(usize, &'a str, RetrievalMode, f64, u32);

async fn run(test: &TestDb, caller: Uuid, agent: Uuid, ask: Ask<'_>) -> Vec<Hit> {
    let Ask(query_axis, text, mode, threshold, count) = ask;
    let mut client = test.db.client().await.unwrap();
    let tx = chatpad::db::begin_as(&mut client, &Caller::User { user_id: caller })
        .await
        .unwrap();
    let hits = search(
        &tx,
        agent,
        &vector(query_axis),
        text,
        mode,
        threshold,
        count,
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    hits
}

#[tokio::test]
async fn hybrid_search_finds_a_keyword_match_the_vectors_miss() {
    let test = TestDb::new().await;
    let (owner, agent, source) = seed(&test, CHUNKS).await;
    let question = "What does error QX-4471 mean?";

    // The question's embedding points at the invoices chunk (axis 0), far from the error code.
    let vector_hits = run(
        &test,
        owner,
        agent,
        Ask(0, question, RetrievalMode::Vector, 0.5, 5),
    )
    .await;
    assert!(!vector_hits.is_empty());
    assert!(
        vector_hits.iter().all(|h| !h.content.contains("QX-4471")),
        "{vector_hits:#?}"
    );

    let hybrid = run(
        &test,
        owner,
        agent,
        Ask(0, question, RetrievalMode::Hybrid, 0.5, 5),
    )
    .await;
    let found = hybrid
        .iter()
        .find(|h| h.content.contains("QX-4471"))
        .expect("the keyword match is among the hybrid hits");
    assert_eq!(found.source_id, source);
    assert_eq!(found.title, "Help center");
    assert_eq!(found.source_type, "url");
    assert_eq!(found.source.as_deref(), Some("https://example.com/help"));
    assert_eq!(found.location.section.as_deref(), Some("FAQ"));
    assert!(found.similarity < 0.5, "kept despite its low similarity");
    // Matched by both rankings, the invoices chunk still comes first; scores descend.
    assert!(hybrid[0].content.starts_with("Invoices"));
    assert!(hybrid.windows(2).all(|w| w[0].score >= w[1].score));
}

#[tokio::test]
async fn full_text_ranking_prefers_the_rare_word() {
    let test = TestDb::new().await;
    // "plan" is in many chunks, "prorated" in one: BM25's IDF puts that one first.
    let (owner, agent, _) = seed(&test, PLAN_CHUNKS).await;
    let hits = run(
        &test,
        owner,
        agent,
        Ask(
            200,
            "Is my plan upgrade prorated?",
            RetrievalMode::Hybrid,
            0.9,
            4,
        ),
    )
    .await;
    assert_eq!(
        hits[0].content, "Upgrades are prorated to the day.",
        "{hits:#?}"
    );
}

/// The full-text ranking as BM25 defines it, worked out here over every chunk of `agent`
/// that holds a question word: k1 1.2, b 0.75, a chunk's length its number of distinct words,
/// normalised by the agent's mean; the `count` best, ties by id.
async fn expected_bm25(
    tx: &impl chatpad::db::GenericClient,
    agent: Uuid,
    question: &str,
    count: usize,
) -> Vec<(Uuid, f64)> {
    use std::collections::{HashMap, HashSet};
    let words: HashSet<String> = tx
        .query(
            "SELECT lexeme FROM unnest(to_tsvector('english', $1))",
            &[&question],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    // Each chunk's length and how often it holds each of its words.
    let mut chunks: HashMap<Uuid, (f64, HashMap<String, f64>)> = HashMap::new();
    for row in tx
        .query(
            "SELECT c.id, length(c.content_search), u.lexeme, cardinality(u.positions)
             FROM knowledge_chunks c CROSS JOIN LATERAL unnest(c.content_search) u
             WHERE c.agent_id = $1",
            &[&agent],
        )
        .await
        .unwrap()
    {
        let chunk = chunks
            .entry(row.get(0))
            .or_insert_with(|| (f64::from(row.get::<_, i32>(1)), HashMap::new()));
        chunk.1.insert(row.get(2), f64::from(row.get::<_, i32>(3)));
    }
    let total = chunks.len() as f64;
    let avgdl = chunks.values().map(|(dl, _)| dl).sum::<f64>() / total;
    let idf = |word: &String| {
        let df = chunks
            .values()
            .filter(|(_, tf)| tf.contains_key(word))
            .count() as f64;
        (1.0 + (total - df + 0.5) / (df + 0.5)).ln()
    };
    let idfs: HashMap<&String, f64> = words.iter().map(|w| (w, idf(w))).collect();
    let mut scored: Vec<(Uuid, f64)> = chunks
        .iter()
        .filter(|(_, (_, tf))| words.iter().any(|w| tf.contains_key(w)))
        .map(|(id, (dl, tf))| {
            let score = idfs
                .iter()
                .filter_map(|(w, idf)| tf.get(*w).map(|tf| (idf, tf)))
                .map(|(idf, tf)| idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * dl / avgdl.max(1.0))))
                .sum();
            (*id, score)
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(count);
    scored
}

#[tokio::test]
async fn the_exact_full_text_ranking_is_bm25_over_every_chunk_though_it_scores_fewer() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    let test = TestDb::new().await;
    // 400 chunks of 10 to 40 words from a skewed vocabulary of 300: the first words are in
    // most chunks, the last in a few. The ranking scores the rare words' chunks first and
    // leaves out those holding only common words once they cannot reach the top.
    let mut rng = StdRng::seed_from_u64(7);
    let texts: Vec<String> = (0..400)
        .map(|_| {
            let words = rng.random_range(10..=40);
            (0..words)
                .map(|_| format!("w{}x", (rng.random::<f64>().powi(3) * 300.0) as usize))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let chunks: Vec<(&str, usize)> = texts.iter().map(|t| (t.as_str(), 0)).collect();
    let (owner, agent, _) = seed(&test, &chunks).await;
    let questions = [
        "w0x w1x w2x w3x",
        "w0x w1x w60x w250x",
        "w2x w120x w121x w180x w299x",
        "w5x w5x w40x",
        "w298x",
        "w0x w1x w2x w3x w4x w5x w6x w7x w8x w9x w150x",
    ];
    let mut client = test.db.client().await.unwrap();
    // First counting the words per question (never synced), then from the word statistics.
    for synced in [false, true] {
        let tx = chatpad::db::begin_as(&mut client, &Caller::User { user_id: owner })
            .await
            .unwrap();
        if synced {
            assert_eq!(
                sync_term_stats(&tx, agent).await.unwrap(),
                TermStatsChange::Refreshed
            );
        }
        for question in questions {
            let ranked: Vec<(Uuid, f64)> = tx
                .query(
                    "SELECT id, rank_score FROM search_knowledge_text($1, $2, 10)
                     ORDER BY rank_score DESC, id",
                    &[&agent, &question],
                )
                .await
                .unwrap()
                .iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect();
            let expected = expected_bm25(&tx, agent, question, 10).await;
            assert_eq!(ranked.len(), expected.len(), "{question}");
            for (got, want) in ranked.iter().zip(&expected) {
                assert_eq!(
                    got.0, want.0,
                    "{question} (synced: {synced}): {ranked:?} vs {expected:?}"
                );
                assert!(
                    (got.1 - want.1).abs() < 1e-9,
                    "{question}: {got:?} vs {want:?}"
                );
            }
        }
        tx.commit().await.unwrap();
    }
}

/// The hybrid ranking worked out independently of `fuse`, from the two SQL rankings: the ids
/// (with Postgres's similarity) by reciprocal rank (k = 60, 40 deep), equal scores by
/// Postgres's own cosine distance.
async fn expected_hybrid(
    tx: &impl chatpad::db::GenericClient,
    agent: Uuid,
    embedding: &[f32],
    text: &str,
    threshold: f64,
    count: usize,
) -> Vec<(Uuid, f64)> {
    let embedding = Vector::from(embedding.to_vec());
    let by_meaning = tx
        .query(
            "SELECT id FROM search_knowledge_sources($1, $2, $3, 40) ORDER BY similarity DESC, id",
            &[&agent, &embedding, &threshold],
        )
        .await
        .unwrap();
    let by_words = tx
        .query(
            "SELECT id FROM search_knowledge_text($1, $2, 40) ORDER BY rank_score DESC, id",
            &[&agent, &text],
        )
        .await
        .unwrap();
    let mut scores: std::collections::HashMap<Uuid, f64> = Default::default();
    for ranking in [by_meaning, by_words] {
        for (rank, row) in ranking.iter().enumerate() {
            *scores.entry(row.get(0)).or_default() += 1.0 / (60.0 + rank as f64 + 1.0);
        }
    }
    let mut expected = Vec::new();
    for (id, score) in scores {
        let similarity: f64 = tx
            .query_one(
                "SELECT 1 - (embedding <=> $2) FROM knowledge_chunks WHERE id = $1",
                &[&id, &embedding],
            )
            .await
            .unwrap()
            .get(0);
        expected.push((id, score, similarity));
    }
    expected.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.2.total_cmp(&a.2)));
    expected.truncate(count);
    expected.into_iter().map(|(id, _, sim)| (id, sim)).collect()
}

#[tokio::test]
async fn hybrid_hits_are_the_reciprocal_rank_fusion_of_the_two_rankings() {
    let test = TestDb::new().await;
    let (owner, agent, _) = seed(&test, CHUNKS).await;
    let asks = [
        Ask(
            0,
            "What does error QX-4471 mean?",
            RetrievalMode::Hybrid,
            0.5,
            5,
        ),
        Ask(
            4,
            "payment failures and refunds",
            RetrievalMode::Hybrid,
            0.3,
            2,
        ),
        Ask(2, "billing email", RetrievalMode::Hybrid, 0.0, 6),
        Ask(1, "the of and", RetrievalMode::Hybrid, 0.3, 3),
    ];
    let mut client = test.db.client().await.unwrap();
    for large in [false, true] {
        let tx = if large {
            let tx = as_owner_where_agents_are_large(&mut client, owner).await;
            sync_vector_index(&tx, agent).await.unwrap();
            tx
        } else {
            chatpad::db::begin_as(&mut client, &Caller::User { user_id: owner })
                .await
                .unwrap()
        };
        for Ask(axis, text, mode, threshold, count) in &asks {
            let hits = search(&tx, agent, &vector(*axis), text, *mode, *threshold, *count)
                .await
                .unwrap();
            let expected = expected_hybrid(
                &tx,
                agent,
                &vector(*axis),
                text,
                *threshold,
                *count as usize,
            )
            .await;
            let got: Vec<Uuid> = hits.iter().map(|hit| hit.chunk_id).collect();
            let want: Vec<Uuid> = expected.iter().map(|(id, _)| *id).collect();
            assert_eq!(got, want, "large {large}, {text:?}: {hits:#?}");
            for (hit, (_, similarity)) in hits.iter().zip(&expected) {
                assert!(
                    (hit.similarity - similarity).abs() < 1e-6,
                    "{text:?}: {} vs Postgres {similarity}",
                    hit.similarity
                );
            }
            assert!(!hits.is_empty() || text.starts_with("the of"), "{text:?}");
            // widget-chat's way: the halves apart, then fused.
            let by_words = rank_by_words(&tx, agent, text, *count).await.unwrap();
            let by_meaning = rank_by_meaning(&tx, agent, &vector(*axis), *threshold, *count)
                .await
                .unwrap();
            assert_eq!(
                fuse(&vector(*axis), by_meaning, by_words, *count),
                hits,
                "large {large}, {text:?}"
            );
        }
        tx.rollback().await.unwrap();
    }
}

#[tokio::test]
async fn the_word_ranking_brings_no_other_agents_chunks() {
    let test = TestDb::new().await;
    // Two agents of one owner with the same words: row-level security alone would let the
    // other's chunks through.
    let owner = test.user(Some("advanced")).await;
    let (agent, source) = seed_agent(&test, owner, PLAN_CHUNKS).await;
    seed_agent(&test, owner, PLAN_CHUNKS).await;
    let mut client = test.db.client().await.unwrap();
    let tx = chatpad::db::begin_as(&mut client, &Caller::User { user_id: owner })
        .await
        .unwrap();
    let by_words = rank_by_words(&tx, agent, "plan upgrade prorated", 40)
        .await
        .unwrap();
    // Fused alone, the word ranking's chunks come back as hits.
    let hits = fuse(&vector(0), Vec::new(), by_words, 40);
    assert_eq!(hits.len(), PLAN_CHUNKS.len(), "{hits:#?}");
    assert!(hits.iter().all(|hit| hit.source_id == source), "{hits:#?}");
}

#[tokio::test]
async fn another_account_finds_nothing_in_either_mode() {
    let test = TestDb::new().await;
    let (_, agent, _) = seed(&test, CHUNKS).await;
    let stranger = test.user(None).await;
    for mode in [RetrievalMode::Vector, RetrievalMode::Hybrid] {
        let hits = run(
            &test,
            stranger,
            agent,
            Ask(0, "error QX-4471 invoices", mode, 0.0, 5),
        )
        .await;
        assert!(hits.is_empty(), "{mode:?}: {hits:#?}");
    }
}

#[tokio::test]
async fn threshold_and_count_are_honoured() {
    let test = TestDb::new().await;
    let (owner, agent, _) = seed(&test, CHUNKS).await;

    for mode in [RetrievalMode::Vector, RetrievalMode::Hybrid] {
        let hits = run(
            &test,
            owner,
            agent,
            Ask(1, "refunds card days", mode, 0.0, 3),
        )
        .await;
        assert_eq!(hits.len(), 3, "{mode:?}");
        assert!(
            hits[0].content.starts_with("Refunds"),
            "{mode:?}: {hits:#?}"
        );
    }
    // A threshold only the nearest chunk passes; the text matches nothing.
    let vector = run(
        &test,
        owner,
        agent,
        Ask(1, "zzz", RetrievalMode::Vector, 0.9, 5),
    )
    .await;
    let hybrid = run(
        &test,
        owner,
        agent,
        Ask(1, "zzz", RetrievalMode::Hybrid, 0.9, 5),
    )
    .await;
    for hits in [&vector, &hybrid] {
        assert_eq!(hits.len(), 1, "{hits:#?}");
        assert!(hits[0].content.starts_with("Refunds"));
        assert!(hits[0].similarity > 0.9);
    }
}

#[tokio::test]
async fn chunks_stay_searchable_while_their_source_is_resynced_or_failed() {
    let test = TestDb::new().await;
    let su = test.superuser().await;
    let (owner, agent, source) = seed(&test, CHUNKS).await;
    for status in ["pending", "processing", "error"] {
        su.execute(
            "UPDATE knowledge_sources SET status = $2 WHERE id = $1",
            &[&source, &status],
        )
        .await
        .unwrap();
        let hits = run(
            &test,
            owner,
            agent,
            Ask(1, "refunds", RetrievalMode::Hybrid, 0.5, 5),
        )
        .await;
        assert!(
            hits.first()
                .is_some_and(|h| h.content.starts_with("Refunds")),
            "{status}: {hits:#?}"
        );
    }
}

#[tokio::test]
async fn a_large_agent_takes_the_approximate_path_in_hybrid_mode_too() {
    let test = TestDb::new().await;
    let (owner, agent, _) = seed(&test, CHUNKS).await;
    let mut client = test.db.client().await.unwrap();
    let tx = as_owner_where_agents_are_large(&mut client, owner).await;
    assert_eq!(
        sync_vector_index(&tx, agent).await.unwrap(),
        VectorIndexChange::Built
    );
    let hits = search(
        &tx,
        agent,
        &vector(4),
        "payment failures and refunds",
        RetrievalMode::Hybrid,
        0.3,
        2,
    )
    .await
    .unwrap();
    // Found by both rankings, then by its words only.
    assert_eq!(hits.len(), 2, "{hits:#?}");
    assert!(hits[0].content.starts_with("Payment failures"), "{hits:#?}");
    assert!(hits[1].content.starts_with("Refunds"), "{hits:#?}");
}

/// Chunks where "plan" is common and "prorated" rare.
const PLAN_CHUNKS: &[(&str, usize)] = &[
    ("The plan includes a plan overview for every plan.", 10),
    ("Each plan has limits; see your plan.", 11),
    ("Upgrades are prorated to the day.", 12),
    ("Your plan renews monthly.", 13),
];

#[tokio::test]
async fn on_a_large_agent_the_bounded_full_text_ranking_still_prefers_the_rare_word() {
    let test = TestDb::new().await;
    // As `full_text_ranking_prefers_the_rare_word`, but past the exact-search size, where
    // document frequencies are capped and candidates come from the rarest words first.
    let (owner, agent, _) = seed(&test, PLAN_CHUNKS).await;
    let mut client = test.db.client().await.unwrap();
    let tx = as_owner_where_agents_are_large(&mut client, owner).await;
    let ranked: Vec<String> = tx
        .query(
            "SELECT c.content FROM search_knowledge_text($1, 'Is my plan upgrade prorated?', 4) t
             JOIN knowledge_chunks c ON c.id = t.id ORDER BY t.rank_score DESC",
            &[&agent],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        ranked[0], "Upgrades are prorated to the day.",
        "{ranked:#?}"
    );
    assert_eq!(
        ranked.len(),
        4,
        "every chunk with a question word is a candidate here"
    );
    tx.rollback().await.unwrap();

    // The function reads as its owner (for the full-text index) but checks the caller first:
    // another account learns not even chunk ids or scores.
    let stranger = test.user(None).await;
    let tx = chatpad::db::begin_as(&mut client, &Caller::User { user_id: stranger })
        .await
        .unwrap();
    let leaked = tx
        .query(
            "SELECT id FROM search_knowledge_text($1, 'plan upgrade prorated', 4)",
            &[&agent],
        )
        .await
        .unwrap();
    assert!(leaked.is_empty());
}

#[tokio::test]
async fn a_large_agent_ranks_full_text_from_its_word_statistics_and_counts_words_they_lack() {
    let test = TestDb::new().await;
    let (owner, agent, source) = seed(&test, PLAN_CHUNKS).await;
    let mut client = test.db.client().await.unwrap();
    let tx = as_owner_where_agents_are_large(&mut client, owner).await;
    assert_eq!(
        sync_term_stats(&tx, agent).await.unwrap(),
        TermStatsChange::Refreshed
    );
    // A sync that did not change the agent's size does not count its words again.
    assert_eq!(
        sync_term_stats(&tx, agent).await.unwrap(),
        TermStatsChange::Fresh
    );
    tx.commit().await.unwrap();
    // The statistics are the definer functions' own: the application role cannot read them.
    let tx = chatpad::db::begin_as(&mut client, &Caller::User { user_id: owner })
        .await
        .unwrap();
    let denied = tx
        .query("SELECT 1 FROM agent_term_stats", &[])
        .await
        .unwrap_err();
    assert_eq!(
        denied.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
    tx.rollback().await.unwrap();
    let su = test.superuser().await;
    let df = |word: &'static str| {
        let su = &su;
        async move {
            su.query_opt(
                "SELECT df FROM agent_term_stats WHERE agent_id = $1 AND lexeme = $2",
                &[&agent, &word],
            )
            .await
            .unwrap()
            .map(|row| row.get::<_, i64>(0))
        }
    };
    // Chunks holding the word, not occurrences.
    assert_eq!(df("plan").await, Some(3));
    assert_eq!(df("prorat").await, Some(1));

    // A chunk written after the refresh: its word is unknown to the statistics, counted.
    su.execute(
        "INSERT INTO knowledge_chunks (source_id, position, content, location, embedding_model, embedding)
         VALUES ($1, 4, 'Chargebacks are disputed within ten days.', '{}', 'local/all-MiniLM-L6-v2', $2)",
        &[&source, &Vector::from(vector(14))],
    )
    .await
    .unwrap();
    su.execute(
        "UPDATE knowledge_sources SET chunk_count = 5 WHERE id = $1",
        &[&source],
    )
    .await
    .unwrap();
    let tx = as_owner_where_agents_are_large(&mut client, owner).await;
    let first = |question: &'static str| {
        let tx = &tx;
        async move {
            tx.query(
                "SELECT c.content FROM search_knowledge_text($1, $2, 5) t
                 JOIN knowledge_chunks c ON c.id = t.id ORDER BY t.rank_score DESC",
                &[&agent, &question],
            )
            .await
            .unwrap()
            .first()
            .map(|row| row.get::<_, String>(0))
        }
    };
    assert_eq!(
        first("Is my plan upgrade prorated?").await.as_deref(),
        Some("Upgrades are prorated to the day.")
    );
    assert_eq!(
        first("How are chargebacks handled on my plan?")
            .await
            .as_deref(),
        Some("Chargebacks are disputed within ten days.")
    );
    // 4 -> 5 chunks moved the size by more than a tenth: the next sync counts again.
    assert_eq!(
        sync_term_stats(&tx, agent).await.unwrap(),
        TermStatsChange::Refreshed
    );
    tx.commit().await.unwrap();
    assert_eq!(df("chargeback").await, Some(1));

    // Under the exact-search size the statistics are kept too, and counted again after any
    // change: none yet,
    let sync_exact = || async {
        let mut client = test.db.client().await.unwrap();
        let tx = chatpad::db::begin_as(&mut client, &Caller::User { user_id: owner })
            .await
            .unwrap();
        let change = sync_term_stats(&tx, agent).await.unwrap();
        tx.commit().await.unwrap();
        change
    };
    assert_eq!(sync_exact().await, TermStatsChange::Fresh);
    // then a source synced again with as many chunks as before, one of them rewritten.
    su.execute(
        "UPDATE knowledge_chunks SET content = 'Chargebacks are disputed within a fortnight.'
         WHERE source_id = $1 AND position = 4",
        &[&source],
    )
    .await
    .unwrap();
    su.execute(
        "UPDATE knowledge_sources SET last_synced_at = now() WHERE id = $1",
        &[&source],
    )
    .await
    .unwrap();
    assert_eq!(sync_exact().await, TermStatsChange::Refreshed);
    assert_eq!(df("fortnight").await, Some(1));
    assert_eq!(df("ten").await, None);
    assert_eq!(df("plan").await, Some(3));

    // Another account cannot refresh (or learn anything of) the agent's statistics.
    let stranger = test.user(None).await;
    let tx = chatpad::db::begin_as(&mut client, &Caller::User { user_id: stranger })
        .await
        .unwrap();
    assert_eq!(
        sync_term_stats(&tx, agent).await.unwrap(),
        TermStatsChange::NotFound
    );
}
