//! `search_knowledge_sources`: exact nearest chunks for small agents, a large agent's own HNSW
//! index (built by `sync_agent_vector_index`, shown by EXPLAIN) for the approximate path, and
//! dimension checks.

use chatpad::auth::Caller;
use chatpad::knowledge::search::{VectorIndexChange, sync_vector_index};
use chatpad::testing::TestDb;
use pgvector::Vector;
use uuid::Uuid;

const DIMS: usize = 384;

/// A deterministic unit vector pointing mostly along axis `axis`, partly along the next two:
/// neighbouring axes' vectors are neighbours (as similar texts are), which an HNSW graph needs
/// to be navigable (with near-orthogonal vectors its links are arbitrary).
fn vector(axis: usize, jitter: f32) -> Vec<f32> {
    let mut v: Vec<f32> = (0..DIMS)
        .map(|i| ((i as f32 * 0.37 + jitter).sin()) * 0.01)
        .collect();
    v[axis % DIMS] += 1.0;
    v[(axis + 1) % DIMS] += 0.6;
    v[(axis + 2) % DIMS] += 0.3;
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

/// Runs `sync_agent_vector_index` for `agent` as `owner` with the exact-search size set to
/// `exact_max` chunks, and commits.
async fn sync(test: &TestDb, owner: Uuid, agent: Uuid, exact_max: usize) -> VectorIndexChange {
    let mut client = test.db.client().await.unwrap();
    let tx = chatpad::db::begin_as(&mut client, &Caller::User { user_id: owner })
        .await
        .unwrap();
    tx.execute(
        "SELECT set_config('chatpad.exact_search_max_chunks', $1, true)",
        &[&exact_max.to_string()],
    )
    .await
    .unwrap();
    let change = sync_vector_index(&tx, agent).await.unwrap();
    tx.commit().await.unwrap();
    change
}

/// The definitions of the agent-specific HNSW indexes on knowledge_chunks.
async fn agent_indexes(test: &TestDb) -> Vec<String> {
    test.superuser()
        .await
        .query(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'knowledge_chunks'
               AND indexname LIKE 'knowledge_chunks_hnsw_%' ORDER BY indexname",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn a_large_agent_gets_an_hnsw_index_of_its_own_and_loses_it_with_the_agent() {
    let test = TestDb::new().await;
    let (owner, agents) = seed(&test, &[120, 30]).await;
    assert!(agent_indexes(&test).await.is_empty(), "no shared index");

    assert_eq!(
        sync(&test, owner, agents[1], 100).await,
        VectorIndexChange::Small
    );
    assert_eq!(
        sync(&test, owner, agents[0], 100).await,
        VectorIndexChange::Built
    );
    assert_eq!(
        sync(&test, owner, agents[0], 100).await,
        VectorIndexChange::Ready
    );
    let indexes = agent_indexes(&test).await;
    assert_eq!(indexes.len(), 1, "{indexes:?}");
    assert!(
        indexes[0].contains("hnsw") && indexes[0].contains(&agents[0].to_string()),
        "{indexes:?}"
    );

    // Another account cannot make us build (or drop) anything.
    let stranger = test.user(None).await;
    assert_eq!(
        sync(&test, stranger, agents[0], 1).await,
        VectorIndexChange::NotFound
    );

    // Well below the size again (here: a larger threshold), the index goes.
    assert_eq!(
        sync(&test, owner, agents[0], 1_000).await,
        VectorIndexChange::Dropped
    );
    assert!(agent_indexes(&test).await.is_empty());

    // Deleting the agent deletes its index.
    assert_eq!(
        sync(&test, owner, agents[0], 100).await,
        VectorIndexChange::Built
    );
    test.superuser()
        .await
        .execute("DELETE FROM agents WHERE id = $1", &[&agents[0]])
        .await
        .unwrap();
    assert!(agent_indexes(&test).await.is_empty());
}

#[tokio::test]
async fn a_model_change_replaces_the_agents_index() {
    let test = TestDb::new().await;
    let (owner, agents) = seed(&test, &[120]).await;
    assert_eq!(
        sync(&test, owner, agents[0], 100).await,
        VectorIndexChange::Built
    );
    let before = agent_indexes(&test).await;
    test.superuser()
        .await
        .execute(
            "UPDATE agents SET embedding_model = 'openai/text-embedding-3-small' WHERE id = $1",
            &[&agents[0]],
        )
        .await
        .unwrap();
    assert_eq!(
        sync(&test, owner, agents[0], 100).await,
        VectorIndexChange::Built
    );
    let after = agent_indexes(&test).await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(before, after);
    assert!(after[0].contains("vector(1536)"), "{after:?}");
}

#[tokio::test]
async fn the_approximate_path_scans_the_agents_own_index() {
    let test = TestDb::new().await;
    let su = test.superuser().await;
    let (owner, agents) = seed(&test, &[400, 400, 400, 400, 400]).await;
    for &agent in &agents {
        assert_eq!(
            sync(&test, owner, agent, 100).await,
            VectorIndexChange::Built
        );
    }
    su.batch_execute("ANALYZE knowledge_chunks").await.unwrap();
    let query = Vector::from(vector(3, 0.0));
    // The statement and settings the function uses for large agents (see V15): at 400 rows the
    // agent's btree plus a sort costs about as much as the index scan, which is why the
    // function switches sorting off for this statement.
    su.batch_execute("SET enable_seqscan = off; SET enable_sort = off")
        .await
        .unwrap();
    let plan: Vec<String> = su
        .query(
            &format!(
                "EXPLAIN SELECT k.id FROM knowledge_chunks k
                 WHERE k.agent_id = '{}'::uuid AND k.embedding_model = 'local/all-MiniLM-L6-v2'
                 ORDER BY k.embedding::vector(384) <=> $1::vector(384) LIMIT 20",
                agents[2]
            ),
            &[&query],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let plan = plan.join("\n");
    let own = format!("knowledge_chunks_hnsw_{}", agents[2].simple());
    assert!(
        plan.contains(&own),
        "the agent's own index not used:\n{plan}"
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
    // Large, but no index of its own yet: searched exactly.
    assert_eq!(search(&tx).await, exact);
    assert_eq!(
        sync_vector_index(&tx, agents[1]).await.unwrap(),
        VectorIndexChange::Built
    );
    let approximate = search(&tx).await;
    // The function itself went through the agent's own index (scans counted in this
    // transaction).
    let scans: i64 = tx
        .query_one(
            "SELECT pg_stat_get_xact_numscans(to_regclass(
               agent_vector_index_name($1, 'local/all-MiniLM-L6-v2')))",
            &[&agents[1]],
        )
        .await
        .unwrap()
        .get(0);
    assert!(scans > 0, "the agent's own index was not scanned");
    assert_eq!(exact[0], "agent 1 chunk 42");
    assert_eq!(approximate[0], exact[0]);
    assert_eq!(approximate.len(), 5);
    assert!(
        approximate.iter().all(|c| c.starts_with("agent 1 ")),
        "{approximate:?}"
    );
}

#[tokio::test]
async fn a_chunk_keeps_its_vector_in_its_row() {
    // A chunk as the chunker makes them (~200 tokens of text), whose row passes Postgres's
    // 2 KB toast threshold: its vector must stay in the row, where the exact search reads it
    // without a toast lookup per chunk (V18).
    let test = TestDb::new().await;
    let (_, agents) = seed(&test, &[1]).await;
    let su = test.superuser().await;
    let text: String = (0..180)
        .map(|i| format!("term{} ", i * 7919 % 1000))
        .collect();
    su.execute(
        "UPDATE knowledge_chunks SET content = $2, embedding = $3 WHERE agent_id = $1",
        &[&agents[0], &text, &Vector::from(vector(7, 0.5))],
    )
    .await
    .unwrap();
    let row = su
        .query_one(
            "SELECT pg_column_size(c.*), (SELECT reltoastrelid::regclass::text FROM pg_class
                                          WHERE relname = 'knowledge_chunks')
             FROM knowledge_chunks c WHERE agent_id = $1",
            &[&agents[0]],
        )
        .await
        .unwrap();
    let (row_bytes, toast): (i32, String) = (row.get(0), row.get(1));
    assert!(
        row_bytes > 2_400,
        "the row is over the threshold: {row_bytes} B"
    );
    let toasted: i64 = su
        .query_one(&format!("SELECT count(*) FROM {toast}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(toasted, 0, "nothing of the chunk went to {toast}");
}
