-- Full-text search on large agents, faster (issue 5: widget-chat at 100k chunks).
--
-- 1. Term statistics. V10's bounded BM25 counted each question word's document frequency
--    among the agent's chunks (up to 500 heap visits per word, a fresh plan each): 8.9 of its
--    19 ms at p50 for an agent of 100k chunks. Agents past the exact-search size now keep
--    their words' document frequencies in `agent_term_stats`, counted with `ts_stat` after a
--    sync (`sync_agent_term_stats`, about a second at 100k chunks, where the ingest worker
--    already syncs the agent's vector index) once the agent's size has moved by more than a
--    tenth since the last count, and the search reads them in one lookup. Words the
--    statistics do not know (a source added since, or none at all) are still counted as
--    before. The frequencies are exact as of the count, not capped at 500.
-- 2. The full-text index without a pending list. GIN's fast update queues new entries in an
--    unsorted list (up to 4 MB) that every search reads whole until a vacuum merges it:
--    seen as 491 buffers and 3.5 ms for a one-word lookup right after a large ingest, 4
--    buffers and 0.06 ms once merged. Ingestion writes chunks slowly (each is embedded
--    first), so the entries now go straight into the index.
-- 3. Scoring reads only the question's words of each candidate (V10 unnested every word of
--    300 chunks and joined them to the question's): the same scores, 18 -> 10 ms at 100k.
--
-- On aws-docs-qa forced onto these paths (`chatpad-retrieval-bench --exact-max 1000`), the
-- exact frequencies also lift the bounded BM25 from hit@1 / hit@5 / MRR@10 0.65 / 0.73 /
-- 0.685 to 0.71 / 0.83 / 0.763, and hybrid from 0.76 / 0.90 / 0.818 to 0.82 / 0.94 / 0.870:
-- the capped counts made every common word equally rare, so candidates came from the wrong
-- words.

ALTER INDEX public.knowledge_chunks_search_idx SET (fastupdate = off);
SELECT gin_clean_pending_list('public.knowledge_chunks_search_idx'::regclass);

CREATE TABLE public.agent_term_stats (
  agent_id uuid NOT NULL REFERENCES public.agents(id) ON DELETE CASCADE,
  embedding_model text NOT NULL,
  lexeme text NOT NULL,
  -- Chunks of the agent (in that model's vectors) holding the lexeme.
  df bigint NOT NULL CHECK (df > 0),
  PRIMARY KEY (agent_id, embedding_model, lexeme)
);
-- Read and written by the definer functions below only.
ALTER TABLE public.agent_term_stats ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.agent_term_stats FORCE ROW LEVEL SECURITY;
REVOKE ALL ON public.agent_term_stats FROM chatpad_app;
CREATE POLICY schema_owner ON public.agent_term_stats TO CURRENT_USER USING (true) WITH CHECK (true);

-- The agent's chunk count when its statistics were counted: a sync that moved it by a tenth
-- or less leaves them (a 100-chunk source added to a 100k-chunk agent costs no recount).
CREATE TABLE public.agent_term_stats_counts (
  agent_id uuid PRIMARY KEY REFERENCES public.agents(id) ON DELETE CASCADE,
  embedding_model text NOT NULL,
  chunks bigint NOT NULL CHECK (chunks >= 0)
);
ALTER TABLE public.agent_term_stats_counts ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.agent_term_stats_counts FORCE ROW LEVEL SECURITY;
REVOKE ALL ON public.agent_term_stats_counts FROM chatpad_app;
CREATE POLICY schema_owner ON public.agent_term_stats_counts TO CURRENT_USER USING (true) WITH CHECK (true);

-- Refreshes `agent`'s term statistics when it is past the exact-search size, drops them
-- otherwise. Returns 'refreshed', 'fresh' (counted at a size within a tenth of today's, in
-- today's model), 'small', 'busy' (another session is refreshing them) or 'not_found'
-- (unknown agent, or not the caller's).
CREATE FUNCTION public.sync_agent_term_stats(p_agent_id uuid) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
  v_exact_max bigint := coalesce(nullif(current_setting('chatpad.exact_search_max_chunks', true), '')::bigint, 20000);
  v_model text;
  v_chunks bigint;
  v_counted bigint;
BEGIN
  SELECT a.embedding_model INTO v_model FROM public.agents a
  WHERE a.id = p_agent_id AND public.has_account_access(a.user_id);
  IF v_model IS NULL THEN
    RETURN 'not_found';
  END IF;
  IF NOT pg_try_advisory_xact_lock(hashtextextended('agent_term_stats:' || p_agent_id, 0)) THEN
    RETURN 'busy';
  END IF;
  SELECT coalesce(sum(s.chunk_count), 0) INTO v_chunks
  FROM public.knowledge_sources s WHERE s.agent_id = p_agent_id;
  SELECT c.chunks INTO v_counted FROM public.agent_term_stats_counts c
  WHERE c.agent_id = p_agent_id AND c.embedding_model = v_model;
  IF v_chunks > v_exact_max AND abs(v_chunks - v_counted) * 10 <= v_counted THEN
    RETURN 'fresh';
  END IF;
  DELETE FROM public.agent_term_stats WHERE agent_id = p_agent_id;
  DELETE FROM public.agent_term_stats_counts WHERE agent_id = p_agent_id;
  IF v_chunks <= v_exact_max THEN
    RETURN 'small';
  END IF;
  INSERT INTO public.agent_term_stats (agent_id, embedding_model, lexeme, df)
  SELECT p_agent_id, v_model, st.word, st.ndoc
  FROM ts_stat(format(
    'SELECT content_search FROM public.knowledge_chunks WHERE agent_id = %L AND embedding_model = %L',
    p_agent_id, v_model)) st;
  INSERT INTO public.agent_term_stats_counts (agent_id, embedding_model, chunks)
  VALUES (p_agent_id, v_model, v_chunks);
  RETURN 'refreshed';
END $$;
REVOKE ALL ON FUNCTION public.sync_agent_term_stats(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.sync_agent_term_stats(uuid) TO chatpad_app;

-- V10's function with the statistics read first and the narrower scoring (a CREATE OR REPLACE
-- restates it whole).
CREATE OR REPLACE FUNCTION public.search_knowledge_text(
  p_agent_id uuid,
  p_query_text text,
  p_match_count int DEFAULT 5
) RETURNS TABLE (id uuid, rank_score float)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = public, pg_temp
SET enable_seqscan = off
SET jit = off
-- A pooled connection would otherwise switch these statements to generic plans after five
-- calls, which cannot see how rare a word is: the document-frequency count of a rare word then
-- walks the agent's whole btree instead of the word's GIN entries.
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
  v_exact_max bigint := coalesce(nullif(current_setting('chatpad.exact_search_max_chunks', true), '')::bigint, 20000);
  -- NULL: no bound (LIMIT NULL is no limit).
  v_df_cap bigint;
  v_pool bigint;
  v_scored bigint;
  v_model text;
  v_total bigint;
  v_terms text[];
  v_queries tsquery[];
  v_dfs bigint[] := '{}';
  v_known bigint[];
  v_any tsquery;
  v_df bigint;
  v_covered bigint := 0;
  i int;
BEGIN
  SELECT a.embedding_model INTO v_model FROM public.agents a
  WHERE a.id = p_agent_id
    AND (public.has_account_access(a.user_id)
         OR (a.id = auth.widget_agent_id() AND a.status = 'active'));
  IF v_model IS NULL OR p_query_text IS NULL THEN
    RETURN;  -- unknown agent, or not the caller's to read
  END IF;

  SELECT array_agg(u.lexeme ORDER BY u.lexeme),
         array_agg(('''' || replace(replace(u.lexeme, '\', '\\'), '''', '\''') || '''')::tsquery
                   ORDER BY u.lexeme)
    INTO v_terms, v_queries
  FROM unnest(to_tsvector('english', left(p_query_text, 2000))) u;
  IF v_terms IS NULL THEN
    RETURN;  -- only stop words
  END IF;

  SELECT coalesce(sum(s.chunk_count), 0) INTO v_total
  FROM public.knowledge_sources s WHERE s.agent_id = p_agent_id;
  IF v_total = 0 THEN
    RETURN;
  END IF;
  IF v_total > v_exact_max THEN
    v_df_cap := 500;
    v_pool := 1000;
    v_scored := 300;
  END IF;
  -- Document frequencies from the agent's term statistics where it has them (large agents,
  -- refreshed after every sync); counted (capped) for the words they do not know.
  IF v_df_cap IS NOT NULL THEN
    -- One key lookup per word, whatever the planner knows of the table.
    SELECT array_agg((SELECT st.df FROM public.agent_term_stats st
                      WHERE st.agent_id = p_agent_id AND st.embedding_model = v_model
                        AND st.lexeme = q.term) ORDER BY q.ord) INTO v_known
    FROM unnest(v_terms) WITH ORDINALITY AS q(term, ord);
  END IF;
  FOR i IN 1 .. array_length(v_queries, 1) LOOP
    v_df := v_known[i];
    IF v_df IS NULL THEN
      SELECT count(*) INTO v_df FROM (
        SELECT 1 FROM public.knowledge_chunks c
        WHERE c.agent_id = p_agent_id AND c.embedding_model = v_model
          AND c.content_search @@ v_queries[i]
        LIMIT v_df_cap) hits;
    END IF;
    v_dfs := v_dfs || v_df;
  END LOOP;
  FOR i IN SELECT d.ord FROM unnest(v_dfs) WITH ORDINALITY AS d(df, ord)
           WHERE d.df > 0 ORDER BY d.df, d.ord LOOP
    v_any := CASE WHEN v_any IS NULL THEN v_queries[i] ELSE v_any || v_queries[i] END;
    v_covered := v_covered + v_dfs[i];
    EXIT WHEN v_covered >= v_pool;
  END LOOP;
  IF v_any IS NULL THEN
    RETURN;  -- no question word in any chunk
  END IF;

  RETURN QUERY
  WITH terms AS (
    SELECT q.term, ln(1 + (greatest(v_total, q.df) - q.df + 0.5) / (q.df + 0.5)) AS idf
    FROM unnest(v_terms, v_dfs) AS q(term, df)
    WHERE q.df > 0
  ), pool AS (
    SELECT c.id, c.content_search
    FROM public.knowledge_chunks c
    WHERE c.agent_id = p_agent_id AND c.embedding_model = v_model
      AND c.content_search @@ v_any
    LIMIT v_pool
  ), candidates AS (
    SELECT p.id, p.content_search, length(p.content_search)::float AS dl
    FROM pool p
    -- Ranked only when bounded (the CASE skips ts_rank otherwise).
    ORDER BY CASE WHEN v_scored IS NOT NULL THEN ts_rank(p.content_search, v_any) END DESC NULLS LAST
    LIMIT v_scored
  ), sized AS (
    SELECT k.*, avg(k.dl) OVER () AS avgdl FROM candidates k
  ), scored AS (
    SELECT k.id,
           sum(t.idf * cardinality(u.positions) * (1.2 + 1)
               / (cardinality(u.positions) + 1.2 * (0.25 + 0.75 * k.dl / greatest(k.avgdl, 1)))) AS bm25
    FROM sized k
    -- Only the question's words of each chunk (marked, then kept, in one pass over the
    -- tsvector) instead of all of them, some hundred rows per chunk.
    CROSS JOIN LATERAL unnest(ts_filter(setweight(k.content_search, 'A', v_terms), '{a}')) u
    JOIN terms t ON t.term = u.lexeme
    GROUP BY k.id
  )
  SELECT s.id, s.bm25 FROM scored s ORDER BY s.bm25 DESC, s.id LIMIT p_match_count;
END $$;
