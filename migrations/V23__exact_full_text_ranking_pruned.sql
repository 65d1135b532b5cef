-- The exact full-text ranking, fast for agents under the exact-search size too (widget-chat on
-- typical agents: 1k to 20k chunks).
--
-- Up to `chatpad.exact_search_max_chunks` (20,000) `search_knowledge_text` counted each
-- question word's chunks (a GIN lookup and a heap visit per chunk: 7 ms for a word in 4k
-- chunks) and then scored every chunk holding any question word (7k chunks, 47 ms): a
-- 20,000-chunk agent ranked an eight-word question in ~85 ms, against ~6 ms on the bounded
-- path of a 100k-chunk agent. Now:
--
-- 1. Word statistics for every agent, not only large ones. `sync_agent_term_stats` (run by the
--    ingest worker after each source and after deletions) counts the words of an agent at or
--    under the exact-search size again whenever its chunks changed (a source synced or its
--    chunk count moved since the count: ~0.1 s at 20k chunks); large agents keep V17's
--    rule (recounted once the size moved by a tenth). It also keeps the chunks' average
--    length, which BM25 normalises by.
-- 2. BM25's average length is the agent's, not the candidates'. That is BM25 as defined, and
--    it does not depend on which chunks are scored, which (3) needs. On the exact path an
--    agent without statistics (never synced) has it worked out per question.
-- 3. MaxScore pruning on the exact path: the words are taken rarest first and each step scores
--    (on all the question's words) only the chunks holding the step's words and none of the
--    earlier ones. A chunk never scored holds only words not yet taken, so it scores at most
--    the sum of their upper bounds (idf * (k1 + 1)); once that sum is below the lowest score
--    in the top `p_match_count`, no such chunk can enter it and the ranking stops. The result
--    is the exact BM25 top `p_match_count` (the same as scoring every chunk: tested against
--    a BM25 worked out in Rust), mostly without reading the common words' chunks.
--
-- The bounded path of large agents is unchanged (its average length still comes from its
-- candidates). A word the statistics do not know (a source written since the count) is
-- still counted per question, as before.

ALTER TABLE public.agent_term_stats_counts
  -- Mean `length(content_search)` over the counted chunks (NULL: there were none).
  ADD COLUMN avg_length double precision,
  ADD COLUMN counted_at timestamptz NOT NULL DEFAULT now();

-- Counts the words of `p_agent_id`'s chunks in `p_model` into its statistics, replacing what
-- they held, with `p_chunks` (its sources' chunk count) as the size they were counted at. The
-- mean length needs no second pass over the chunks: a chunk's length is its number of
-- distinct words, so the lengths add up to the words' chunk counts.
CREATE FUNCTION public.count_agent_term_stats(p_agent_id uuid, p_model text, p_chunks bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = public, pg_temp
AS $$
BEGIN
  DELETE FROM public.agent_term_stats WHERE agent_id = p_agent_id;
  DELETE FROM public.agent_term_stats_counts WHERE agent_id = p_agent_id;
  INSERT INTO public.agent_term_stats (agent_id, embedding_model, lexeme, df)
  SELECT p_agent_id, p_model, st.word, st.ndoc
  FROM ts_stat(format(
    'SELECT content_search FROM public.knowledge_chunks WHERE agent_id = %L AND embedding_model = %L',
    p_agent_id, p_model)) st;
  INSERT INTO public.agent_term_stats_counts (agent_id, embedding_model, chunks, avg_length, counted_at)
  SELECT p_agent_id, p_model, p_chunks,
         (SELECT sum(st.df) FROM public.agent_term_stats st WHERE st.agent_id = p_agent_id)::float8
           / nullif(count(*), 0),
         now()
  FROM public.knowledge_chunks c WHERE c.agent_id = p_agent_id AND c.embedding_model = p_model;
END $$;
-- The schema owner's only (the definer function below and this migration).
REVOKE ALL ON FUNCTION public.count_agent_term_stats(uuid, text, bigint) FROM PUBLIC;

-- Every agent's statistics counted now, as a sync would (an agent's next source may be far
-- off): ~1 s per 100k chunks.
SELECT public.count_agent_term_stats(a.id, a.embedding_model,
  (SELECT coalesce(sum(s.chunk_count), 0) FROM public.knowledge_sources s WHERE s.agent_id = a.id))
FROM public.agents a;

-- Returns 'refreshed', 'fresh' (large: counted at a size within a tenth of today's; otherwise
-- nothing changed since the count), 'busy' (another session is refreshing them) or
-- 'not_found' (unknown agent, or not the caller's).
CREATE OR REPLACE FUNCTION public.sync_agent_term_stats(p_agent_id uuid) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
  v_exact_max bigint := coalesce(nullif(current_setting('chatpad.exact_search_max_chunks', true), '')::bigint, 20000);
  v_model text;
  v_chunks bigint;
  v_counted public.agent_term_stats_counts;
  v_fresh boolean;
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
  SELECT * INTO v_counted FROM public.agent_term_stats_counts c
  WHERE c.agent_id = p_agent_id AND c.embedding_model = v_model;
  IF v_chunks > v_exact_max THEN
    v_fresh := abs(v_chunks - v_counted.chunks) * 10 <= v_counted.chunks;
  ELSE
    v_fresh := v_chunks = v_counted.chunks
      AND NOT EXISTS (SELECT 1 FROM public.knowledge_sources s
                      WHERE s.agent_id = p_agent_id AND s.last_synced_at >= v_counted.counted_at);
  END IF;
  IF v_fresh THEN
    RETURN 'fresh';
  END IF;
  PERFORM public.count_agent_term_stats(p_agent_id, v_model, v_chunks);
  RETURN 'refreshed';
END $$;

-- V19's function with the statistics read at every size and the exact path pruned.
CREATE OR REPLACE FUNCTION public.search_knowledge_text(
  p_agent_id uuid,
  p_query_text text,
  p_match_count int DEFAULT 5
) RETURNS TABLE (id uuid, rank_score float)
LANGUAGE plpgsql STABLE SECURITY DEFINER
ROWS 40
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
  -- BM25's k1 (b is 0.75 below): a word's score in a chunk tends to idf * (k1 + 1).
  k1 constant float8 := 1.2;
  -- How many chunks a pruned step's words cover at least (the rarest words go together).
  v_step_covers constant bigint := 100;
  -- NULL: no bound (LIMIT NULL is no limit).
  v_df_cap bigint;
  v_pool bigint;
  v_scored bigint;
  v_model text;
  v_total bigint;
  v_has_stats boolean;
  v_avgdl float8;
  v_terms text[];
  v_queries tsquery[];
  v_dfs bigint[] := '{}';
  v_known bigint[];
  v_any tsquery;
  v_df bigint;
  v_covered bigint := 0;
  i int;
  -- The exact path's pruning: the question's words rarest first, with their idf.
  v_words text[];
  v_word_queries tsquery[];
  v_word_dfs bigint[];
  v_idfs float8[];
  v_step tsquery;
  v_done tsquery;
  v_unscored_bound float8;
  v_ids uuid[] := '{}';
  v_scores float8[] := '{}';
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
  SELECT st.avg_length INTO v_avgdl FROM public.agent_term_stats_counts st
  WHERE st.agent_id = p_agent_id AND st.embedding_model = v_model;
  v_has_stats := FOUND;
  -- Document frequencies from the agent's term statistics where it has them; counted (capped
  -- on large agents) for the words they do not know.
  IF v_has_stats THEN
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

  IF v_df_cap IS NULL THEN
    -- Exact: MaxScore over the words that occur, rarest first.
    SELECT array_agg(q.term ORDER BY q.df, q.term), array_agg(q.query ORDER BY q.df, q.term),
           array_agg(q.df ORDER BY q.df, q.term),
           array_agg(ln(1 + (greatest(v_total, q.df) - q.df + 0.5::float8) / (q.df + 0.5::float8))
                     ORDER BY q.df, q.term)
      INTO v_words, v_word_queries, v_word_dfs, v_idfs
    FROM unnest(v_terms, v_queries, v_dfs) AS q(term, query, df)
    WHERE q.df > 0;
    IF v_words IS NULL THEN
      RETURN;  -- no question word in any chunk
    END IF;
    IF v_avgdl IS NULL THEN
      SELECT avg(length(c.content_search)) INTO v_avgdl FROM public.knowledge_chunks c
      WHERE c.agent_id = p_agent_id AND c.embedding_model = v_model;
    END IF;
    i := 1;
    -- Until the top p_match_count is full, and then while a chunk holding none of the words
    -- taken so far could still beat its lowest score.
    LOOP
      SELECT sum(idf) * (k1 + 1) INTO v_unscored_bound FROM unnest(v_idfs[i:]) AS idf;
      EXIT WHEN v_unscored_bound IS NULL
        OR (cardinality(v_ids) >= p_match_count AND v_unscored_bound < v_scores[p_match_count]);
      v_step := NULL;
      v_covered := 0;
      LOOP
        v_step := CASE WHEN v_step IS NULL THEN v_word_queries[i] ELSE v_step || v_word_queries[i] END;
        v_covered := v_covered + v_word_dfs[i];
        i := i + 1;
        EXIT WHEN i > cardinality(v_words) OR v_covered >= v_step_covers;
      END LOOP;
      SELECT coalesce(array_agg(b.id ORDER BY b.bm25 DESC, b.id), '{}'),
             coalesce(array_agg(b.bm25 ORDER BY b.bm25 DESC, b.id), '{}')
        INTO v_ids, v_scores
      FROM (
        SELECT a.id, a.bm25
        FROM (
          SELECT kept.id, kept.bm25 FROM unnest(v_ids, v_scores) AS kept(id, bm25)
          UNION ALL
          SELECT c.id,
                 sum(t.idf * cardinality(u.positions) * (k1 + 1)
                     / (cardinality(u.positions)
                        + k1 * (0.25 + 0.75 * length(c.content_search) / greatest(v_avgdl, 1))))
          FROM public.knowledge_chunks c
          -- Only the question's words of each chunk (marked, then kept, in one pass over the
          -- tsvector) instead of all of them, some hundred rows per chunk.
          CROSS JOIN LATERAL unnest(ts_filter(setweight(c.content_search, 'A', v_words), '{a}')) u
          JOIN unnest(v_words, v_idfs) AS t(term, idf) ON t.term = u.lexeme
          WHERE c.agent_id = p_agent_id AND c.embedding_model = v_model
            AND c.content_search @@ v_step
            AND (v_done IS NULL OR NOT c.content_search @@ v_done)
          GROUP BY c.id
        ) a
        ORDER BY a.bm25 DESC, a.id
        LIMIT p_match_count
      ) b;
      v_done := CASE WHEN v_done IS NULL THEN v_step ELSE v_done || v_step END;
    END LOOP;
    RETURN QUERY SELECT r.id, r.bm25 FROM unnest(v_ids, v_scores) AS r(id, bm25);
    RETURN;
  END IF;

  -- Bounded (large agents): candidates from the rarest words until they cover the pool.
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
    SELECT q.term, ln(1 + (greatest(v_total, q.df) - q.df + 0.5::float8) / (q.df + 0.5::float8)) AS idf
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
    ORDER BY ts_rank(p.content_search, v_any) DESC
    LIMIT v_scored
  ), sized AS (
    SELECT k.*, avg(k.dl) OVER () AS avgdl FROM candidates k
  ), scored AS (
    SELECT k.id,
           sum(t.idf * cardinality(u.positions) * (k1 + 1)
               / (cardinality(u.positions) + k1 * (0.25 + 0.75 * k.dl / greatest(k.avgdl, 1)))) AS bm25
    FROM sized k
    CROSS JOIN LATERAL unnest(ts_filter(setweight(k.content_search, 'A', v_terms), '{a}')) u
    JOIN terms t ON t.term = u.lexeme
    GROUP BY k.id
  )
  SELECT s.id, s.bm25 FROM scored s ORDER BY s.bm25 DESC, s.id LIMIT p_match_count;
END $$;
