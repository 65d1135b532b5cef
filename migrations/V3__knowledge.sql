-- ChatPad schema, part 3: knowledge sources, their chunks and vector search.
--
-- Embedding dimensions: `knowledge_chunks.embedding` is an untyped `vector`, and every chunk
-- records the model that embedded it. Each model registered in `embedding_models` gets its own
-- partial HNSW index over `embedding::vector(<dims>)` restricted to that model's rows, created by
-- a trigger when the model is registered. So a deployment adds a 1536-dim model with one INSERT,
-- no migration, and searches only ever compare vectors of one model.

CREATE TABLE public.embedding_models (
  id         text PRIMARY KEY CHECK (id ~ '^[a-z0-9._-]+/[A-Za-z0-9._:-]+$'),
  dimensions int NOT NULL CHECK (dimensions BETWEEN 1 AND 2000),
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.knowledge_sources (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  agent_id       uuid NOT NULL REFERENCES public.agents (id) ON DELETE CASCADE,
  user_id        uuid NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
  type           text NOT NULL CHECK (type IN ('pdf', 'docx', 'csv', 'txt', 'markdown', 'html', 'url', 'sitemap', 'text', 'qa')),
  title          text NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
  -- URL for web sources, original file name for uploads.
  source         text CHECK (length(source) <= 4096),
  s3_key         text CHECK (length(s3_key) <= 1024),
  byte_size      bigint NOT NULL DEFAULT 0 CHECK (byte_size >= 0),
  content_hash   text,
  settings       jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object'),
  status         text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'processing', 'ready', 'error')),
  error          text CHECK (length(error) <= 4000),
  items_total    int NOT NULL DEFAULT 0 CHECK (items_total >= 0),
  items_done     int NOT NULL DEFAULT 0 CHECK (items_done >= 0),
  chunk_count    int NOT NULL DEFAULT 0 CHECK (chunk_count >= 0),
  last_synced_at timestamptz,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX knowledge_sources_agent_idx ON public.knowledge_sources (agent_id, created_at DESC);
CREATE INDEX knowledge_sources_account_idx ON public.knowledge_sources (user_id);
CREATE TRIGGER knowledge_sources_owner BEFORE INSERT OR UPDATE OF agent_id, user_id ON public.knowledge_sources
  FOR EACH ROW EXECUTE FUNCTION public.inherit_agent_owner();
CREATE TRIGGER knowledge_sources_touch BEFORE UPDATE ON public.knowledge_sources
  FOR EACH ROW EXECUTE FUNCTION public.touch_updated_at();

CREATE TABLE public.knowledge_chunks (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  source_id       uuid NOT NULL REFERENCES public.knowledge_sources (id) ON DELETE CASCADE,
  agent_id        uuid NOT NULL REFERENCES public.agents (id) ON DELETE CASCADE,
  user_id         uuid NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
  position        int NOT NULL CHECK (position >= 0),
  content         text NOT NULL CHECK (length(content) <= 20000),
  -- Where the chunk came from, for citations: {"page": 3} / {"url": "..."} / {"row": 17}.
  location        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(location) = 'object'),
  token_count     int NOT NULL DEFAULT 0 CHECK (token_count >= 0),
  embedding_model text NOT NULL REFERENCES public.embedding_models (id),
  embedding       vector NOT NULL,
  content_search  tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
  created_at      timestamptz NOT NULL DEFAULT now(),
  -- Re-processing a source replaces chunks by position: at-least-once workers stay idempotent.
  CONSTRAINT knowledge_chunks_position_key UNIQUE (source_id, position)
);
-- Small agents: the planner filters by agent through this btree and sorts exactly.
-- Only agent_id: an index the ANN path (filtering on agent_id::text) could use for the model
-- column would lure the planner away from the HNSW index.
CREATE INDEX knowledge_chunks_agent_idx ON public.knowledge_chunks (agent_id);
CREATE INDEX knowledge_chunks_search_idx ON public.knowledge_chunks USING gin (content_search);

CREATE FUNCTION public.inherit_source_owner() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  SELECT s.user_id, s.agent_id INTO NEW.user_id, NEW.agent_id
  FROM public.knowledge_sources s WHERE s.id = NEW.source_id;
  IF NEW.user_id IS NULL THEN
    RAISE EXCEPTION 'knowledge source % does not exist', NEW.source_id
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER knowledge_chunks_owner BEFORE INSERT OR UPDATE OF source_id, agent_id, user_id ON public.knowledge_chunks
  FOR EACH ROW EXECUTE FUNCTION public.inherit_source_owner();

-- A vector must have its model's dimensions: the partial index's cast would fail otherwise.
CREATE FUNCTION public.check_chunk_dimensions() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  expected int;
BEGIN
  SELECT dimensions INTO expected FROM public.embedding_models WHERE id = NEW.embedding_model;
  IF vector_dims(NEW.embedding) <> expected THEN
    RAISE EXCEPTION 'embedding has % dimensions, model % produces %',
      vector_dims(NEW.embedding), NEW.embedding_model, expected USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER knowledge_chunks_dimensions BEFORE INSERT OR UPDATE OF embedding, embedding_model ON public.knowledge_chunks
  FOR EACH ROW EXECUTE FUNCTION public.check_chunk_dimensions();

-- The name of a model's partial HNSW index (identifiers are capped at 63 bytes).
CREATE FUNCTION public.embedding_index_name(p_model text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT 'knowledge_chunks_hnsw_' || substr(md5(p_model), 1, 16)
$$;

CREATE FUNCTION public.create_embedding_index() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  EXECUTE format(
    'CREATE INDEX IF NOT EXISTS %I ON public.knowledge_chunks
       USING hnsw ((embedding::vector(%s)) vector_cosine_ops) WITH (m = 16, ef_construction = 64)
       WHERE embedding_model = %L',
    public.embedding_index_name(NEW.id), NEW.dimensions, NEW.id);
  RETURN NEW;
END $$;
CREATE TRIGGER embedding_models_index AFTER INSERT ON public.embedding_models
  FOR EACH ROW EXECUTE FUNCTION public.create_embedding_index();

-- The local default (all-MiniLM-L6-v2, run in-process) and OpenAI's common models.
INSERT INTO public.embedding_models (id, dimensions) VALUES
  ('local/all-MiniLM-L6-v2', 384),
  ('openai/text-embedding-3-small', 1536);

ALTER TABLE public.agents
  ADD CONSTRAINT agents_embedding_model_fkey FOREIGN KEY (embedding_model) REFERENCES public.embedding_models (id);

-- Nearest chunks of one agent, as in the architecture document, for the agent's own embedding
-- model. Runs with the caller's rights, so row-level security still applies.
--
-- Plan choice, on purpose: an agent with few chunks is fastest filtered through the btree and
-- sorted exactly (recall 1.0); a large agent needs the model's HNSW index with pgvector's
-- iterative scan, which the planner would not pick by itself because the agent filter looks
-- cheap. The model name is inlined as a literal so the partial index's predicate matches.
CREATE FUNCTION public.search_knowledge_sources(
  p_agent_id uuid,
  p_query_embedding vector,
  p_match_threshold float DEFAULT 0.7,
  p_match_count int DEFAULT 5
) RETURNS TABLE (id uuid, source_id uuid, source text, title text, content text, type text,
                 location jsonb, similarity float)
LANGUAGE plpgsql STABLE
-- Function-level settings last for this call only. With sequential scans off, the exact path
-- takes the agent btree and the ANN path (whose agent filter the btree cannot serve) the HNSW
-- index; the planner would otherwise sort small-looking row sets itself.
SET search_path = public, pg_temp
SET enable_seqscan = off
SET hnsw.iterative_scan = relaxed_order
SET hnsw.ef_search = 100
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
    -- ANN path: the iterative scan keeps walking the graph until enough rows pass the agent
    -- filter; the outer query restores exact order among the candidates.
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
      JOIN public.knowledge_sources s ON s.id = c.source_id AND s.status = 'ready'
      WHERE 1 - d.distance > $4
      ORDER BY d.distance
      LIMIT $3 $q$, v_dims, v_model)
    USING p_query_embedding, p_agent_id, p_match_count, p_match_threshold;
  ELSE
    RETURN QUERY EXECUTE format($q$
      SELECT c.id, c.source_id, s.source, s.title, c.content, s.type, c.location,
             (1 - (c.embedding <=> $1))::float AS similarity
      FROM public.knowledge_chunks c
      JOIN public.knowledge_sources s ON s.id = c.source_id AND s.status = 'ready'
      WHERE c.agent_id = $2 AND c.embedding_model = %1$L
        AND 1 - (c.embedding <=> $1) > $4
      ORDER BY c.embedding <=> $1
      LIMIT $3 $q$, v_model)
    USING p_query_embedding, p_agent_id, p_match_count, p_match_threshold;
  END IF;
END $$;
