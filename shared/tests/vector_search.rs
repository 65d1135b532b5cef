//! `search_knowledge_sources`: exact nearest chunks for small agents, the model's HNSW index
//! (shown by EXPLAIN) for the agent-filtered approximate path, and dimension checks.

use chatpad::auth::Caller;
use chatpad::testing::TestDb;
use pgvector::Vector;
use uuid::Uuid;

const DIMS: usize = 384;

/// A deterministic unit vector pointing mostly along axis `axis`.
fn vector(axis: usize, jitter: f32) -> Vec<f32> {
    let mut v: Vec<f32> = (0..DIMS)
        .map(|i| ((i as f32 * 0.37 + jitter).sin()) * 0.01)
        .collect();
    v[axis % DIMS] += 1.0;
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / norm).collect()
}

/// An owner on the pro plan (no agent-count limit) with one agent per entry of
/// `chunks_per_agent`, each with one source holding that many chunks.
async fn seed(test: &TestDb, chunks_per_agent: &[usize]) -> (Uuid, Vec<Uuid>) {
    let su = test.superuser().await;
    let owner = test.user(Some("pro")).await;
    let mut agents = Vec::new();
    for (n, &count) in chunks_per_agent.iter().enumerate() {
        let agent = test.agent(owner).await;
        let source: Uuid = su
            .query_one(
                "INSERT INTO knowledge_sources (agent_id, type, title, status, chunk_count) VALUES ($1, 'text', $2, 'ready', $3) RETURNING id",
                &[&agent, &format!("doc {n}"), &(count as i32)],
            )
            .await
            .unwrap()
            .get(0);
        let statement = su
            .prepare(
                "INSERT INTO knowledge_chunks (source_id, position, content, embedding_model, embedding)
                 VALUES ($1, $2, $3, 'local/all-MiniLM-L6-v2', $4)",
            )
            .await
            .unwrap();
        for i in 0..count {
            let embedding = Vector::from(vector(i, n as f32));
            su.execute(
                &statement,
                &[
                    &source,
                    &(i as i32),
                    &format!("agent {n} chunk {i}"),
                    &embedding,
                ],
            )
            .await
            .unwrap();
        }
        agents.push(agent);
    }
    (owner, agents)
}

#[tokio::test]
async fn search_returns_the_nearest_chunks_of_the_agent_only() {
    let test = TestDb::new().await;
    let (owner, agents) = seed(&test, &[50, 50]).await;
    let mut client = test.db.client().await.unwrap();
    let tx = chatpad::db::begin_as(&mut client, &Caller::User { user_id: owner })
        .await
        .unwrap();
    let query = Vector::from(vector(7, 0.0));
    let rows = tx
        .query(
            "SELECT content, similarity FROM search_knowledge_sources($1, $2, 0.5, 3)",
            &[&agents[0], &query],
        )
        .await
        .unwrap();
    assert!(!rows.is_empty());
    assert_eq!(rows[0].get::<_, String>(0), "agent 0 chunk 7");
    assert!(
        rows.iter()
            .all(|r| r.get::<_, String>(0).starts_with("agent 0 "))
    );
    assert!(
        rows.iter().all(|r| r.get::<_, f64>(1) > 0.5),
        "threshold respected"
    );

    // Another tenant's user finds nothing, not even through the search function.
    let stranger = test.user(None).await;
    tx.rollback().await.unwrap();
    let tx = chatpad::db::begin_as(&mut client, &Caller::User { user_id: stranger })
        .await
        .unwrap();
    let rows = tx
        .query(
            "SELECT * FROM search_knowledge_sources($1, $2, 0.0, 3)",
            &[&agents[0], &query],
        )
        .await
        .unwrap();
    assert!(rows.is_empty());
}

#[tokio::test]
async fn a_query_of_the_wrong_dimension_is_refused_clearly() {
    let test = TestDb::new().await;
    let (owner, agents) = seed(&test, &[3]).await;
    let mut client = test.db.client().await.unwrap();
    let tx = chatpad::db::begin_as(&mut client, &Caller::User { user_id: owner })
        .await
        .unwrap();
    let err = tx
        .query(
            "SELECT * FROM search_knowledge_sources($1, $2)",
            &[&agents[0], &Vector::from(vec![1.0f32; 8])],
        )
        .await
        .unwrap_err();
    let message = err
        .as_db_error()
        .map(|e| e.message().to_owned())
        .unwrap_or_default();
    assert!(
        message.contains("query embedding has 8 dimensions"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_new_embedding_model_gets_its_own_hnsw_index_without_a_migration() {
    let test = TestDb::new().await;
    let su = test.superuser().await;
    su.execute(
        "INSERT INTO embedding_models (id, dimensions) VALUES ('test/tiny-8', 8)",
        &[],
    )
    .await
    .unwrap();
    let indexes: i64 = su
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'knowledge_chunks' AND indexdef LIKE '%hnsw%vector(8)%test/tiny-8%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(indexes, 1);
}

#[tokio::test]
async fn the_approximate_path_uses_the_models_hnsw_index_for_an_agent_filtered_query() {
    let test = TestDb::new().await;
    let su = test.superuser().await;
    let (_, agents) = seed(&test, &[400, 400, 400, 400, 400]).await;
    su.batch_execute("ANALYZE knowledge_chunks").await.unwrap();
    let query = Vector::from(vector(3, 0.0));
    // The statement and settings the function uses for large agents (see V3__knowledge.sql).
    su.batch_execute("SET hnsw.iterative_scan = relaxed_order; SET enable_seqscan = off")
        .await
        .unwrap();
    let plan: Vec<String> = su
        .query(
            "EXPLAIN SELECT k.id FROM knowledge_chunks k
             WHERE k.embedding_model = 'local/all-MiniLM-L6-v2' AND k.agent_id::text = $2::text
             ORDER BY k.embedding::vector(384) <=> $1::vector(384) LIMIT 20",
            &[&query, &agents[2].to_string()],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let plan = plan.join("\n");
    assert!(
        plan.contains("knowledge_chunks_hnsw_"),
        "HNSW index not used:\n{plan}"
    );
}

#[tokio::test]
async fn the_approximate_path_returns_the_same_nearest_chunk_as_exact_search() {
    let test = TestDb::new().await;
    let (owner, agents) = seed(&test, &[300, 300, 300]).await;
    let mut client = test.db.client().await.unwrap();
    let tx = chatpad::db::begin_as(&mut client, &Caller::User { user_id: owner })
        .await
        .unwrap();
    let query = Vector::from(vector(42, 1.0));
    let search = async |tx: &chatpad::db::Transaction<'_>| -> Vec<String> {
        tx.query(
            "SELECT content FROM search_knowledge_sources($1, $2, 0.0, 5)",
            &[&agents[1], &query],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    let exact = search(&tx).await;
    tx.execute(
        "SELECT set_config('chatpad.exact_search_max_chunks', '10', true)",
        &[],
    )
    .await
    .unwrap();
    let approximate = search(&tx).await;
    assert_eq!(exact[0], "agent 1 chunk 42");
    assert_eq!(approximate[0], exact[0]);
    assert_eq!(approximate.len(), 5);
    assert!(
        approximate.iter().all(|c| c.starts_with("agent 1 ")),
        "{approximate:?}"
    );
}
