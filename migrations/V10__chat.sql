-- Chat: the widget's public configuration, knowledge gaps, conversation bookkeeping.

-- What the widget needs to render one agent, in one round trip and without a transaction:
-- only the public fields of an active agent and its owner's plan flags. A narrow door like
-- find_api_key: it answers for one agent id, never a listing.
CREATE FUNCTION public.widget_config(p_agent_id uuid)
RETURNS TABLE (id uuid, name text, greeting text, fallback_message text, appearance jsonb,
               allowed_domains text[], lead_form_fields jsonb, help_center boolean,
               custom_branding boolean, updated_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT a.id, a.name, a.greeting, a.fallback_message, a.appearance, a.allowed_domains,
         a.lead_form_fields,
         a.help_center_enabled AND EXISTS (SELECT 1 FROM public.help_articles h
                                           WHERE h.agent_id = a.id AND h.published),
         (public.account_plan(a.user_id)).custom_branding,
         greatest(a.updated_at, (SELECT max(h.updated_at) FROM public.help_articles h
                                 WHERE h.agent_id = a.id))
  FROM public.agents a
  WHERE a.id = p_agent_id AND a.status = 'active'
$$;
REVOKE ALL ON FUNCTION public.widget_config(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.widget_config(uuid) TO chatpad_app;

-- Questions the agent could not answer from its knowledge: what to write next.
CREATE TABLE public.knowledge_gaps (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  agent_id        uuid NOT NULL REFERENCES public.agents (id) ON DELETE CASCADE,
  user_id         uuid NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
  conversation_id uuid REFERENCES public.conversations (id) ON DELETE SET NULL,
  question        text NOT NULL CHECK (length(question) BETWEEN 1 AND 8000),
  -- Cosine similarity of the closest chunk retrieved (NULL when retrieval returned nothing).
  best_similarity real,
  resolved_at     timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX knowledge_gaps_agent_idx ON public.knowledge_gaps (agent_id, created_at DESC, id DESC);
CREATE INDEX knowledge_gaps_open_idx ON public.knowledge_gaps (agent_id, created_at DESC, id DESC)
  WHERE resolved_at IS NULL;
CREATE TRIGGER knowledge_gaps_owner BEFORE INSERT OR UPDATE OF agent_id, user_id ON public.knowledge_gaps
  FOR EACH ROW EXECUTE FUNCTION public.inherit_agent_owner();

ALTER TABLE public.knowledge_gaps ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.knowledge_gaps FORCE ROW LEVEL SECURITY;
CREATE POLICY account_read ON public.knowledge_gaps FOR SELECT TO chatpad_app
  USING (user_id = ANY ((SELECT public.accessible_accounts('client'))::uuid[]));
CREATE POLICY account_write ON public.knowledge_gaps FOR UPDATE TO chatpad_app
  USING (user_id = ANY ((SELECT public.accessible_accounts('manager'))::uuid[]))
  WITH CHECK (user_id = ANY ((SELECT public.accessible_accounts('manager'))::uuid[]));
-- A visitor records the gaps of its own conversation only.
CREATE POLICY widget_insert ON public.knowledge_gaps FOR INSERT TO chatpad_app
  WITH CHECK (agent_id = (SELECT auth.widget_agent_id())
              AND EXISTS (SELECT 1 FROM public.conversations c WHERE c.id = conversation_id
                          AND c.visitor_id = (SELECT auth.visitor_id())));
GRANT SELECT, INSERT, UPDATE ON public.knowledge_gaps TO chatpad_app;
CREATE POLICY schema_owner ON public.knowledge_gaps TO CURRENT_USER USING (true) WITH CHECK (true);

-- Every new message moves its conversation up the inbox, whoever wrote it.
CREATE FUNCTION public.touch_conversation() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  UPDATE public.conversations SET last_message_at = greatest(last_message_at, NEW.created_at)
  WHERE id = NEW.conversation_id;
  RETURN NULL;
END $$;
CREATE TRIGGER messages_touch_conversation AFTER INSERT ON public.messages
  FOR EACH ROW EXECUTE FUNCTION public.touch_conversation();

-- Visitors may flag their conversation for a person and annotate it, but its status,
-- assignment and summary belong to the team (takeover cannot be ended from the widget).
CREATE FUNCTION public.guard_widget_conversation_update() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
  IF auth.role() = 'widget' AND (
       NEW.status IS DISTINCT FROM OLD.status
       OR NEW.assigned_to IS DISTINCT FROM OLD.assigned_to
       OR NEW.summary IS DISTINCT FROM OLD.summary
       OR NEW.closed_at IS DISTINCT FROM OLD.closed_at
       OR (OLD.needs_human AND NOT NEW.needs_human)) THEN
    RAISE EXCEPTION 'a widget visitor cannot change the status, assignment or summary of a conversation'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER conversations_widget_guard BEFORE UPDATE ON public.conversations
  FOR EACH ROW EXECUTE FUNCTION public.guard_widget_conversation_update();


-- BM25 with bounded work on large agents, so a question costs about the same on an agent with
-- 100k chunks as on one with 20k (V9's version scored every chunk holding any question word:
-- seconds at 100k). Agents up to `chatpad.exact_search_max_chunks` (20,000, the same switch as
-- the vector search's) keep V9's exact ranking. Above it:
--  * document frequencies are counted up to 500 matching chunks (each counted chunk is a heap
--    visit): a word in more chunks than that is common, and its IDF is taken at 500 —
--    overstated, so such words weigh a little more than they should;
--  * candidates come from the rarest words first, until they cover about 1,000 chunks (always
--    at least the rarest word); of the first 1,000 chunks holding them, the 300 best by
--    ts_rank are scored. A chunk holding none of the question's rarer words cannot win BM25
--    against one that does.
-- The corpus size is the agent's sources' chunk counts, as the vector search's plan steering
-- reads it. Same signature and result as V9's function.
--
-- SECURITY DEFINER, with the access check written out: under row-level security Postgres may
-- not evaluate a non-leakproof operator such as tsvector `@@` before the policies' own quals,
-- so it cannot use the GIN index and tests `@@` on every chunk of the agent (85 ms per
-- question at 4.5k chunks, half a second at 100k). The caller must be able to read the
-- agent's chunks — a member of its account (any role: `client` and up read knowledge) or a
-- widget visitor of this active agent — and only chunk ids and scores come back; the hybrid
-- search then reads the chunks themselves under the caller's policies.
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
  FOR i IN 1 .. array_length(v_queries, 1) LOOP
    SELECT count(*) INTO v_df FROM (
      SELECT 1 FROM public.knowledge_chunks c
      WHERE c.agent_id = p_agent_id AND c.embedding_model = v_model
        AND c.content_search @@ v_queries[i]
      LIMIT v_df_cap) hits;
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
    CROSS JOIN LATERAL unnest(k.content_search) u
    JOIN terms t ON t.term = u.lexeme
    GROUP BY k.id
  )
  SELECT s.id, s.bm25 FROM scored s ORDER BY s.bm25 DESC, s.id LIMIT p_match_count;
END $$;
