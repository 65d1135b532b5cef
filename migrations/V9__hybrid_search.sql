-- Hybrid retrieval: full-text (BM25 over `content_search`) and vector search, fused by
-- reciprocal rank; and which chunks are searchable while their source is being re-synced.

-- pgvector's settings (hnsw.*) exist once its library is loaded in this session; a migration
-- run on its own (an upgrade) has not loaded it yet, and setting an unknown hnsw.* would be
-- refused. Any use of the type loads it.
SELECT '[1]'::vector;

-- Which chunks are searchable: every chunk of the agent, whatever its source's status.
--
-- V3 searched only sources in status 'ready', which hid an agent's whole knowledge of a source
-- while it was being re-synced ('pending' / 'processing') or after a failed re-sync ('error').
-- But a chunk row exists only once it was extracted, embedded and written, and a sync replaces
-- chunks by (source_id, position) and then deletes positions past the new end: every chunk
-- present is text the source held at its last (possibly ongoing) sync. A failed sync leaves
-- the chunks of the sync before it, which are still the best knowledge there is; the owner
-- sees the error and can delete the source, which deletes its chunks. So nothing is filtered
-- by status: tenancy (row-level security) and the agent are the only filters.
CREATE OR REPLACE FUNCTION public.search_knowledge_sources(
  p_agent_id uuid,
  p_query_embedding vector,
  p_match_threshold float DEFAULT 0.7,
  p_match_count int DEFAULT 5
) RETURNS TABLE (id uuid, source_id uuid, source text, title text, content text, type text,
                 location jsonb, similarity float)
LANGUAGE plpgsql STABLE
-- As in V3: with sequential scans off, the exact path takes the agent btree and the ANN path
-- the model's HNSW index.
SET search_path = public, pg_temp
SET enable_seqscan = off
SET hnsw.iterative_scan = relaxed_order
-- New here: ef_search 400 (V3: 100). With real question embeddings against chunk-like vectors
-- (chatpad-vector-bench, 100k-chunk agent), recall@5 against exact search was 0.86 at 100,
-- 0.89 at 200 and 0.94 at 400, at p50 1.5 / 2.6 / 5.6 ms for the index scan; the number of
-- candidates taken (20 to 100) changed nothing. Questions lie farther from every chunk than
-- chunks from each other, which HNSW serves worse than chunk-like queries.
SET hnsw.ef_search = 400
-- New here: no JIT. With sequential scans off the plans look expensive enough for Postgres to
-- compile them to machine code, which costs tens of milliseconds per call and saves nothing
-- on the few thousand rows a search touches.
SET jit = off
AS $$
DECLARE
  v_model text;
  v_dims int;
  v_chunks bigint;
  -- Above this many chunks the agent takes the ANN path. A setting, so tests and benchmarks can
  -- exercise either path on any data size.
  v_exact_max bigint := coalesce(nullif(current_setting('chatpad.exact_search_max_chunks', true), '')::bigint, 20000);
BEGIN
  SELECT a.embedding_model, m.dimensions INTO v_model, v_dims
  FROM public.agents a JOIN public.embedding_models m ON m.id = a.embedding_model
  WHERE a.id = p_agent_id;
  IF v_model IS NULL THEN
    RETURN;  -- unknown agent, or not visible to the caller
  END IF;
  IF vector_dims(p_query_embedding) <> v_dims THEN
    RAISE EXCEPTION 'query embedding has % dimensions, model % produces %',
      vector_dims(p_query_embedding), v_model, v_dims USING ERRCODE = 'invalid_parameter_value';
  END IF;

  SELECT coalesce(sum(s.chunk_count), 0) INTO v_chunks
  FROM public.knowledge_sources s WHERE s.agent_id = p_agent_id;

  IF v_chunks > v_exact_max THEN
    RETURN QUERY EXECUTE format($q$
      SELECT c.id, c.source_id, s.source, s.title, c.content, s.type, c.location,
             (1 - d.distance)::float AS similarity
      FROM (
        SELECT k.id, k.embedding::vector(%1$s) <=> $1::vector(%1$s) AS distance
        FROM public.knowledge_chunks k
        WHERE k.embedding_model = %2$L AND k.agent_id::text = $2::text
        ORDER BY k.embedding::vector(%1$s) <=> $1::vector(%1$s)
        LIMIT $3 * 4
      ) d
      JOIN public.knowledge_chunks c ON c.id = d.id
      JOIN public.knowledge_sources s ON s.id = c.source_id
      WHERE 1 - d.distance > $4
      ORDER BY d.distance
      LIMIT $3 $q$, v_dims, v_model)
    USING p_query_embedding, p_agent_id, p_match_count, p_match_threshold;
  ELSE
    RETURN QUERY EXECUTE format($q$
      SELECT c.id, c.source_id, s.source, s.title, c.content, s.type, c.location,
             (1 - (c.embedding <=> $1))::float AS similarity
      FROM public.knowledge_chunks c
      JOIN public.knowledge_sources s ON s.id = c.source_id
      WHERE c.agent_id = $2 AND c.embedding_model = %1$L
        AND 1 - (c.embedding <=> $1) > $4
      ORDER BY c.embedding <=> $1
      LIMIT $3 $q$, v_model)
    USING p_query_embedding, p_agent_id, p_match_count, p_match_threshold;
  END IF;
END $$;

-- Chunks of one agent ranked by Okapi BM25 against a free-text question (k1 = 1.2, b = 0.75).
--
-- Why not ts_rank: it has no inverse document frequency, so in a question like "Does AMI
-- support tags?" the word every page of the agent contains counts as much as the rare one that
-- finds the answer. Here each query lexeme (English stemming, stop words dropped, as in
-- `content_search`) gets its document frequency among the agent's chunks from the GIN index;
-- candidates are the chunks holding any lexeme; a chunk scores, for each query lexeme it holds,
-- IDF × tf·(k1 + 1) / (tf + k1·(1 − b + b·dl/avgdl)), with tf the lexeme's occurrences in the
-- chunk (its positions in the tsvector) and dl the chunk's distinct lexemes against the
-- candidates' average. Term frequency matters even in chunks of a couple of hundred tokens:
-- the chunk about a thing names it several times (on aws-docs-qa, presence-only scoring gave
-- hit@1 0.79 / MRR@10 0.835, term frequency 0.84 / 0.889; see the README).
-- Exact, not approximate: for an agent with very many chunks, a question made only of words
-- most chunks contain costs a scan of those chunks' index entries (see the README's figures).
CREATE FUNCTION public.search_knowledge_text(
  p_agent_id uuid,
  p_query_text text,
  p_match_count int DEFAULT 5
) RETURNS TABLE (id uuid, rank_score float)
LANGUAGE plpgsql STABLE
SET search_path = public, pg_temp
-- The agent btree and the GIN index, never a scan of every tenant's chunks; no JIT (above).
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
  v_model text;
  v_total bigint;
  v_terms text[];
  v_queries tsquery[];
  v_dfs bigint[] := '{}';
  v_any tsquery;
  v_df bigint;
  i int;
BEGIN
  SELECT a.embedding_model INTO v_model FROM public.agents a WHERE a.id = p_agent_id;
  IF v_model IS NULL OR p_query_text IS NULL THEN
    RETURN;
  END IF;

  -- The question's lexemes, each as a one-lexeme tsquery (quoted: lexemes may hold any
  -- character; backslash and quote are the tsquery syntax's escapes).
  SELECT array_agg(u.lexeme ORDER BY u.lexeme),
         array_agg(('''' || replace(replace(u.lexeme, '\', '\\'), '''', '\''') || '''')::tsquery
                   ORDER BY u.lexeme)
    INTO v_terms, v_queries
  FROM unnest(to_tsvector('english', left(p_query_text, 2000))) u;
  IF v_terms IS NULL THEN
    RETURN;  -- only stop words
  END IF;

  SELECT count(*) INTO v_total
  FROM public.knowledge_chunks c WHERE c.agent_id = p_agent_id AND c.embedding_model = v_model;
  IF v_total = 0 THEN
    RETURN;
  END IF;
  FOR i IN 1 .. array_length(v_queries, 1) LOOP
    SELECT count(*) INTO v_df
    FROM public.knowledge_chunks c
    WHERE c.agent_id = p_agent_id AND c.embedding_model = v_model
      AND c.content_search @@ v_queries[i];
    v_dfs := v_dfs || v_df;
    v_any := CASE WHEN v_any IS NULL THEN v_queries[i] ELSE v_any || v_queries[i] END;
  END LOOP;

  RETURN QUERY
  WITH terms AS (
    SELECT q.term, ln(1 + (v_total - q.df + 0.5) / (q.df + 0.5)) AS idf
    FROM unnest(v_terms, v_dfs) AS q(term, df)
    WHERE q.df > 0
  ), candidates AS (
    SELECT c.id, c.content_search, length(c.content_search)::float AS dl,
           avg(length(c.content_search)) OVER ()::float AS avgdl
    FROM public.knowledge_chunks c
    WHERE c.agent_id = p_agent_id AND c.embedding_model = v_model
      AND c.content_search @@ v_any
  ), scored AS (
    SELECT k.id,
           sum(t.idf * cardinality(u.positions) * (1.2 + 1)
               / (cardinality(u.positions) + 1.2 * (0.25 + 0.75 * k.dl / greatest(k.avgdl, 1)))) AS bm25
    FROM candidates k
    CROSS JOIN LATERAL unnest(k.content_search) u
    JOIN terms t ON t.term = u.lexeme
    GROUP BY k.id
  )
  SELECT s.id, s.bm25 FROM scored s ORDER BY s.bm25 DESC, s.id LIMIT p_match_count;
END $$;

-- Nearest chunks of one agent by meaning and by words: the vector ranking
-- (`search_knowledge_sources`, with its exact / ANN plan steering and `p_match_threshold` on
-- cosine similarity) and the BM25 ranking (`search_knowledge_text`, no threshold: a keyword
-- match is a match even when the vectors disagree) are each taken `p_depth` deep and fused by
-- reciprocal rank: score = Σ 1 / (p_rrf_k + rank). Ties in score go to the more similar chunk.
-- Runs with the caller's rights, so row-level security applies to both rankings.
CREATE FUNCTION public.search_knowledge_hybrid(
  p_agent_id uuid,
  p_query_embedding vector,
  p_query_text text,
  p_match_threshold float DEFAULT 0.3,
  p_match_count int DEFAULT 5,
  p_rrf_k int DEFAULT 60,
  p_depth int DEFAULT 40
) RETURNS TABLE (id uuid, source_id uuid, source text, title text, content text, type text,
                 location jsonb, similarity float, score float)
LANGUAGE sql STABLE
SET search_path = public, pg_temp
SET jit = off
AS $$
  WITH vector_ranked AS (
    SELECT v.id, v.similarity,
           row_number() OVER (ORDER BY v.similarity DESC, v.id) AS rank
    FROM public.search_knowledge_sources(p_agent_id, p_query_embedding, p_match_threshold,
                                         greatest(p_depth, p_match_count)) v
  ), text_ranked AS (
    SELECT t.id, row_number() OVER (ORDER BY t.rank_score DESC, t.id) AS rank
    FROM public.search_knowledge_text(p_agent_id, p_query_text, greatest(p_depth, p_match_count)) t
  ), fused AS (
    SELECT coalesce(v.id, t.id) AS id,
           coalesce(1.0 / (p_rrf_k + v.rank), 0) + coalesce(1.0 / (p_rrf_k + t.rank), 0) AS score
    FROM vector_ranked v FULL JOIN text_ranked t ON t.id = v.id
  )
  SELECT c.id, c.source_id, s.source, s.title, c.content, s.type, c.location,
         (1 - (c.embedding <=> p_query_embedding))::float AS similarity,
         f.score::float
  FROM fused f
  JOIN public.knowledge_chunks c ON c.id = f.id
  JOIN public.knowledge_sources s ON s.id = c.source_id
  ORDER BY f.score DESC, c.embedding <=> p_query_embedding
  LIMIT p_match_count
$$;
