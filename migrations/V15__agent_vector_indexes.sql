-- A large agent gets an HNSW index of its own; the per-model index over every agent's chunks
-- (V3) goes.
--
-- Why: measured with chatpad-vector-bench on 1.1M chunks (1,000 agents of 1,000 plus one of
-- 100,000, real question embeddings), the big agent's top 5 through the shared index had
-- recall@5 0.80 against exact search at p50 15 ms: filtered by agent, HNSW walks a graph where
-- nine neighbours in ten belong to other tenants. An index holding only the agent's own
-- chunks is a graph of its own neighbourhoods. Small agents never used the shared index
-- (they are searched exactly, see V3), so they lose nothing, and their chunk inserts stop
-- paying for HNSW maintenance.
--
-- The index is partial (`WHERE agent_id = '<id>' AND embedding_model = '<model>'`) and named
-- after both, so a model change leaves the old one to drop. `sync_agent_vector_index` builds or
-- drops it to match the agent's size; the ingest worker calls it after each source it
-- finishes. Until the index is valid, a large agent is searched exactly (slower, never wrong).

DROP TRIGGER embedding_models_index ON public.embedding_models;
DROP FUNCTION public.create_embedding_index();
DO $$
DECLARE
  v_model text;
BEGIN
  FOR v_model IN SELECT id FROM public.embedding_models LOOP
    EXECUTE format('DROP INDEX IF EXISTS public.%I', public.embedding_index_name(v_model));
  END LOOP;
END $$;
DROP FUNCTION public.embedding_index_name(text);

-- 'knowledge_chunks_hnsw_' + the agent id's 32 hex digits + '_' + 7 of the model's md5: 62
-- bytes, under the 63-byte identifier limit.
CREATE FUNCTION public.agent_vector_index_name(p_agent_id uuid, p_model text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT 'knowledge_chunks_hnsw_' || replace(p_agent_id::text, '-', '') || '_'
         || substr(md5(p_model), 1, 7)
$$;

-- Whether the agent's own index for `p_model` exists and may be used.
CREATE FUNCTION public.agent_vector_index_ready(p_agent_id uuid, p_model text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = public, pg_temp AS $$
  SELECT EXISTS (
    SELECT 1 FROM pg_catalog.pg_index i
    JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public'
      AND c.relname = public.agent_vector_index_name(p_agent_id, p_model)
      AND i.indisvalid AND i.indisready)
$$;

-- Every index of the agent's own (of any model): what a model change or a deletion leaves to
-- drop.
CREATE FUNCTION public.agent_vector_indexes(p_agent_id uuid) RETURNS SETOF text
LANGUAGE sql STABLE SET search_path = public, pg_temp AS $$
  SELECT c.relname::text FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = 'public' AND c.relkind = 'i'
    AND starts_with(c.relname, 'knowledge_chunks_hnsw_' || replace(p_agent_id::text, '-', '') || '_')
$$;

-- Builds the agent's own index once it has more chunks than
-- `chatpad.exact_search_max_chunks` (20,000), and drops its indexes that no longer serve:
-- another model's (after a model change), or all of them once the agent has shrunk below half
-- the threshold (the gap keeps an agent near the line from building and dropping in turn).
-- Returns what it did: 'built', 'dropped', 'ready' (nothing to do, index in place),
-- 'small' (nothing to do, no index needed), 'busy' (another session is at it) or
-- 'not_found' (unknown agent, or not the caller's).
--
-- SECURITY DEFINER because only the table's owner may create an index; the caller must be a
-- member of the agent's account. Not CONCURRENTLY (that cannot run inside a function), so
-- writes to knowledge_chunks wait while the index builds: seconds when an agent first crosses
-- the threshold (20k chunks), after which Postgres keeps the index up to date row by row. A
-- full build of 100k chunks took 44 s on two cores (README, Benchmarks) and is only needed
-- again after a model change. Searches are not blocked.
--
-- ef_construction 200 (pgvector's default is 64): on the 100k-chunk agent of
-- chatpad-vector-bench (real question embeddings), recall@5 against exact search at
-- ef_search 200 was 0.878 with 64, 0.948 with 128 and 0.964 with 200, for a build of 22, 30 and
-- 44 s. Near-duplicate chunks (the same text on many pages) need the denser graph.
CREATE FUNCTION public.sync_agent_vector_index(p_agent_id uuid) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
-- The build is several times faster while the graph fits in memory (100k × 384 floats with
-- their links is about 200 MB); the setting lasts for this call only.
SET maintenance_work_mem = '512MB'
AS $$
DECLARE
  v_exact_max bigint := coalesce(nullif(current_setting('chatpad.exact_search_max_chunks', true), '')::bigint, 20000);
  v_model text;
  v_dims int;
  v_chunks bigint;
  v_name text;
  v_index text;
  v_result text := 'small';
BEGIN
  SELECT a.embedding_model, m.dimensions INTO v_model, v_dims
  FROM public.agents a JOIN public.embedding_models m ON m.id = a.embedding_model
  WHERE a.id = p_agent_id AND public.has_account_access(a.user_id);
  IF v_model IS NULL THEN
    RETURN 'not_found';
  END IF;
  -- One builder per agent; a second caller leaves it to the first rather than wait.
  IF NOT pg_try_advisory_xact_lock(hashtextextended('agent_vector_index:' || p_agent_id, 0)) THEN
    RETURN 'busy';
  END IF;

  SELECT coalesce(sum(s.chunk_count), 0) INTO v_chunks
  FROM public.knowledge_sources s WHERE s.agent_id = p_agent_id;
  v_name := public.agent_vector_index_name(p_agent_id, v_model);

  FOR v_index IN SELECT public.agent_vector_indexes(p_agent_id) LOOP
    IF v_index <> v_name OR v_chunks * 2 < v_exact_max THEN
      EXECUTE format('DROP INDEX public.%I', v_index);
      v_result := 'dropped';
    END IF;
  END LOOP;

  IF v_chunks > v_exact_max THEN
    IF public.agent_vector_index_ready(p_agent_id, v_model) THEN
      RETURN 'ready';
    END IF;
    -- An invalid leftover (a build that failed) is replaced.
    EXECUTE format('DROP INDEX IF EXISTS public.%I', v_name);
    EXECUTE format(
      'CREATE INDEX %I ON public.knowledge_chunks
         USING hnsw ((embedding::vector(%s)) vector_cosine_ops) WITH (m = 16, ef_construction = 200)
         WHERE agent_id = %L::uuid AND embedding_model = %L',
      v_name, v_dims, p_agent_id, v_model);
    RETURN 'built';
  END IF;
  RETURN v_result;
END $$;
REVOKE ALL ON FUNCTION public.sync_agent_vector_index(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.sync_agent_vector_index(uuid) TO chatpad_app;

-- A deleted agent's chunks go with it (foreign keys); its index goes too.
CREATE FUNCTION public.drop_agent_vector_indexes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_index text;
BEGIN
  FOR v_index IN SELECT public.agent_vector_indexes(OLD.id) LOOP
    EXECUTE format('DROP INDEX public.%I', v_index);
  END LOOP;
  RETURN NULL;
END $$;
CREATE TRIGGER agents_drop_vector_indexes AFTER DELETE ON public.agents
  FOR EACH ROW EXECUTE FUNCTION public.drop_agent_vector_indexes();

-- V9's function with one change: the approximate path needs the agent's own index (and names
-- the agent and model as literals, so the planner can match the index's predicate); without
-- it, a large agent is searched exactly. No iterative scan is needed: every row of the index
-- is the agent's. The agent's btree also matches `agent_id = …`, and on an agent just past the
-- threshold a btree scan plus a sort of all its chunks can look as cheap as the index scan to
-- the planner (seen in a test at 400 rows): sorting is switched off for the ANN statement
-- alone (`SET enable_sort = on` below keeps that from outliving the call).
-- ef_search stays at 400: with the agent's own graph, the 100k-chunk agent's
-- recall@5 at 1.1M chunks was 0.944 at 200 (index scan p50 2.2 ms) and 0.960 at 400 (3.8 ms);
-- HNSW builds vary by about 0.02 from one build to the next.
CREATE OR REPLACE FUNCTION public.search_knowledge_sources(
  p_agent_id uuid,
  p_query_embedding vector,
  p_match_threshold float DEFAULT 0.7,
  p_match_count int DEFAULT 5
) RETURNS TABLE (id uuid, source_id uuid, source text, title text, content text, type text,
                 location jsonb, similarity float)
LANGUAGE plpgsql STABLE
ROWS 40
SET search_path = public, pg_temp
SET enable_seqscan = off
SET hnsw.ef_search = 400
SET jit = off
SET enable_sort = on
AS $$
DECLARE
  v_model text;
  v_dims int;
  v_chunks bigint;
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

  IF v_chunks > v_exact_max AND public.agent_vector_index_ready(p_agent_id, v_model) THEN
    PERFORM set_config('enable_sort', 'off', true);
    RETURN QUERY EXECUTE format($q$
      SELECT c.id, c.source_id, s.source, s.title, c.content, s.type, c.location,
             (1 - d.distance)::float AS similarity
      FROM (
        SELECT k.id, k.embedding::vector(%1$s) <=> $1::vector(%1$s) AS distance
        FROM public.knowledge_chunks k
        WHERE k.agent_id = %3$L::uuid AND k.embedding_model = %2$L
        ORDER BY k.embedding::vector(%1$s) <=> $1::vector(%1$s)
        LIMIT $3 * 4
      ) d
      JOIN public.knowledge_chunks c ON c.id = d.id
      JOIN public.knowledge_sources s ON s.id = c.source_id
      WHERE 1 - d.distance > $4
      ORDER BY d.distance
      LIMIT $3 $q$, v_dims, v_model, p_agent_id)
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
