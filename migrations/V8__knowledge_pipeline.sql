-- ChatPad schema, part 8: the knowledge pipeline's bookkeeping.
--
-- - `knowledge_uploads`: upload URLs handed out and not yet confirmed.
-- - `knowledge_pages`: what the last sync saw of each page of a web source (ETag, hash), so a
--   re-sync skips unchanged pages.
-- - `outbox`: work to hand to SQS, written in the same transaction as the change that causes
--   it (a source becoming `pending`, a deleted file), then relayed. Nothing is lost if the
--   process dies between the commit and the send; the relay retries until SQS has it.
-- - Re-sync schedules of web sources.

CREATE TABLE public.knowledge_uploads (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  agent_id    uuid NOT NULL REFERENCES public.agents (id) ON DELETE CASCADE,
  user_id     uuid NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
  file_name   text NOT NULL CHECK (length(file_name) BETWEEN 1 AND 255),
  file_type   text NOT NULL CHECK (file_type IN ('pdf', 'docx', 'csv', 'txt', 'markdown', 'html')),
  -- The size the client declared; the presigned PUT is signed for exactly this length.
  byte_size   bigint NOT NULL CHECK (byte_size > 0),
  s3_key      text NOT NULL UNIQUE CHECK (length(s3_key) <= 1024),
  expires_at  timestamptz NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX knowledge_uploads_agent_idx ON public.knowledge_uploads (agent_id);
CREATE INDEX knowledge_uploads_expiry_idx ON public.knowledge_uploads (expires_at);
CREATE TRIGGER knowledge_uploads_owner BEFORE INSERT OR UPDATE OF agent_id, user_id ON public.knowledge_uploads
  FOR EACH ROW EXECUTE FUNCTION public.inherit_agent_owner();

CREATE TABLE public.knowledge_pages (
  source_id     uuid NOT NULL REFERENCES public.knowledge_sources (id) ON DELETE CASCADE,
  agent_id      uuid NOT NULL REFERENCES public.agents (id) ON DELETE CASCADE,
  user_id       uuid NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
  url           text NOT NULL CHECK (length(url) <= 4096),
  etag          text CHECK (length(etag) <= 512),
  last_modified text CHECK (length(last_modified) <= 128),
  content_hash  text NOT NULL,
  chunk_count   int NOT NULL DEFAULT 0 CHECK (chunk_count >= 0),
  -- The page's same-site links, so a site crawl can follow a page that answered 304.
  links         jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(links) = 'array'),
  fetched_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (source_id, url)
);
CREATE TRIGGER knowledge_pages_owner BEFORE INSERT OR UPDATE OF source_id, agent_id, user_id ON public.knowledge_pages
  FOR EACH ROW EXECUTE FUNCTION public.inherit_source_owner();

-- Web sources can be refreshed on a schedule; NULL = on demand only.
ALTER TABLE public.knowledge_sources
  ADD COLUMN sync_every_hours int CHECK (sync_every_hours BETWEEN 1 AND 8760),
  ADD COLUMN next_sync_at timestamptz,
  ADD CONSTRAINT knowledge_sources_schedule_only_web
    CHECK (sync_every_hours IS NULL OR type IN ('url', 'sitemap'));
CREATE INDEX knowledge_sources_next_sync_idx ON public.knowledge_sources (next_sync_at)
  WHERE next_sync_at IS NOT NULL;

CREATE TABLE public.outbox (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  queue        text NOT NULL CHECK (queue IN ('ingest', 'webhooks')),
  payload      jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
  -- A claimed row is leased until then; an unsent row comes back after the lease.
  available_at timestamptz NOT NULL DEFAULT now(),
  attempts     int NOT NULL DEFAULT 0,
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_available_idx ON public.outbox (available_at, id);

-- Internal: only the triggers below and the service's relay functions touch the outbox.
CREATE FUNCTION public.outbox_enqueue(p_queue text, p_payload jsonb) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  INSERT INTO public.outbox (queue, payload) VALUES (p_queue, p_payload)
$$;
REVOKE EXECUTE ON FUNCTION public.outbox_enqueue(text, jsonb) FROM PUBLIC;

-- A source entering `pending` (created, re-sync asked, agent's model or chunk sizes changed)
-- is queued for ingestion in the same transaction.
CREATE FUNCTION public.enqueue_source_ingest() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF NEW.status = 'pending' AND (TG_OP = 'INSERT' OR OLD.status <> 'pending') THEN
    PERFORM public.outbox_enqueue('ingest', jsonb_build_object(
      'op', 'ingest', 'sourceId', NEW.id, 'userId', NEW.user_id));
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER knowledge_sources_enqueue AFTER INSERT OR UPDATE OF status ON public.knowledge_sources
  FOR EACH ROW EXECUTE FUNCTION public.enqueue_source_ingest();

-- A deleted file source (directly, or with its agent or account) leaves its S3 object to the
-- worker; chunks and pages go with the row (ON DELETE CASCADE).
CREATE FUNCTION public.enqueue_object_delete() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF OLD.s3_key IS NOT NULL THEN
    PERFORM public.outbox_enqueue('ingest', jsonb_build_object(
      'op', 'deleteObjects', 'keys', jsonb_build_array(OLD.s3_key)));
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER knowledge_sources_delete_object AFTER DELETE ON public.knowledge_sources
  FOR EACH ROW EXECUTE FUNCTION public.enqueue_object_delete();

-- Changing how an agent's knowledge is embedded or chunked re-processes its sources in the
-- background. Old chunks stay until each source's new ones replace them.
CREATE FUNCTION public.reprocess_agent_sources() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF NEW.embedding_model IS DISTINCT FROM OLD.embedding_model
     OR NEW.chunk_size_tokens IS DISTINCT FROM OLD.chunk_size_tokens
     OR NEW.chunk_overlap_tokens IS DISTINCT FROM OLD.chunk_overlap_tokens THEN
    UPDATE public.knowledge_sources SET status = 'pending', error = NULL
    WHERE agent_id = NEW.id AND status <> 'pending';
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER agents_reprocess_sources AFTER UPDATE OF embedding_model, chunk_size_tokens, chunk_overlap_tokens
  ON public.agents FOR EACH ROW EXECUTE FUNCTION public.reprocess_agent_sources();

-- A long document is embedded over several messages: the worker (acting as the source's
-- owner) queues the next slice in the same transaction as the chunks it wrote.
CREATE FUNCTION public.continue_ingest(p_source_id uuid, p_resume_at int) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_owner uuid;
BEGIN
  SELECT s.user_id INTO v_owner FROM public.knowledge_sources s
  WHERE s.id = p_source_id AND s.status = 'processing'
    AND s.user_id = ANY ((SELECT public.accessible_accounts('manager'))::uuid[]);
  IF v_owner IS NULL THEN
    RAISE EXCEPTION 'source % is not being processed by this caller', p_source_id
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  PERFORM public.outbox_enqueue('ingest', jsonb_build_object(
    'op', 'ingest', 'sourceId', p_source_id, 'userId', v_owner, 'resumeAt', p_resume_at));
END $$;

-- The relay (service role only): lease due rows, send them, then delete them.
CREATE FUNCTION public.require_service() RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF (SELECT auth.role()) IS DISTINCT FROM 'service' THEN
    RAISE EXCEPTION 'only the service role may do this' USING ERRCODE = 'insufficient_privilege';
  END IF;
END $$;

CREATE FUNCTION public.outbox_claim(p_limit int, p_lease_seconds int DEFAULT 60)
RETURNS TABLE (id bigint, queue text, payload jsonb, attempts int)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  PERFORM public.require_service();
  RETURN QUERY
  UPDATE public.outbox o
  SET available_at = now() + make_interval(secs => p_lease_seconds), attempts = o.attempts + 1
  WHERE o.id IN (SELECT d.id FROM public.outbox d WHERE d.available_at <= now()
                 ORDER BY d.id LIMIT p_limit FOR UPDATE SKIP LOCKED)
  RETURNING o.id, o.queue, o.payload, o.attempts;
END $$;

CREATE FUNCTION public.outbox_sent(p_ids bigint[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  PERFORM public.require_service();
  DELETE FROM public.outbox WHERE id = ANY (p_ids);
END $$;

-- Web sources whose schedule is due go back to `pending` (and so into the outbox).
CREATE FUNCTION public.start_due_syncs(p_limit int DEFAULT 100) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_count int;
BEGIN
  PERFORM public.require_service();
  UPDATE public.knowledge_sources s
  SET status = 'pending', next_sync_at = now() + make_interval(hours => s.sync_every_hours)
  WHERE s.id IN (SELECT d.id FROM public.knowledge_sources d
                 WHERE d.next_sync_at <= now() AND d.status IN ('ready', 'error')
                 ORDER BY d.next_sync_at LIMIT p_limit FOR UPDATE SKIP LOCKED);
  GET DIAGNOSTICS v_count = ROW_COUNT;
  RETURN v_count;
END $$;

-- Upload URLs never confirmed: their rows go, and their objects (if the client uploaded one)
-- through the outbox. (A confirmed upload's row is deleted by the confirmation instead; its
-- object then belongs to the new source.)
CREATE FUNCTION public.expire_uploads() RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_keys jsonb;
BEGIN
  PERFORM public.require_service();
  WITH gone AS (
    DELETE FROM public.knowledge_uploads WHERE expires_at < now() - interval '1 hour'
    RETURNING s3_key
  )
  SELECT jsonb_agg(s3_key) INTO v_keys FROM gone;
  IF v_keys IS NOT NULL THEN
    PERFORM public.outbox_enqueue('ingest', jsonb_build_object('op', 'deleteObjects', 'keys', v_keys));
  END IF;
  RETURN coalesce(jsonb_array_length(v_keys), 0);
END $$;

-- Row-level security, as for the other knowledge tables.
ALTER TABLE public.knowledge_uploads ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.knowledge_uploads FORCE ROW LEVEL SECURITY;
CREATE POLICY account_read ON public.knowledge_uploads FOR SELECT TO chatpad_app
  USING (user_id = ANY ((SELECT public.accessible_accounts('manager'))::uuid[]));
CREATE POLICY account_insert ON public.knowledge_uploads FOR INSERT TO chatpad_app
  WITH CHECK (user_id = ANY ((SELECT public.accessible_accounts('manager'))::uuid[]));
CREATE POLICY account_delete ON public.knowledge_uploads FOR DELETE TO chatpad_app
  USING (user_id = ANY ((SELECT public.accessible_accounts('manager'))::uuid[]));

ALTER TABLE public.knowledge_pages ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.knowledge_pages FORCE ROW LEVEL SECURITY;
CREATE POLICY account_read ON public.knowledge_pages FOR SELECT TO chatpad_app
  USING (user_id = ANY ((SELECT public.accessible_accounts('client'))::uuid[]));
CREATE POLICY account_write ON public.knowledge_pages FOR ALL TO chatpad_app
  USING (user_id = ANY ((SELECT public.accessible_accounts('manager'))::uuid[]))
  WITH CHECK (user_id = ANY ((SELECT public.accessible_accounts('manager'))::uuid[]));

-- The outbox: no policy for the application role at all; the definer functions above only.
ALTER TABLE public.outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.outbox FORCE ROW LEVEL SECURITY;

GRANT SELECT, INSERT, DELETE ON public.knowledge_uploads TO chatpad_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.knowledge_pages TO chatpad_app;
REVOKE ALL ON public.outbox FROM chatpad_app;

DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['knowledge_uploads', 'knowledge_pages', 'outbox'] LOOP
    EXECUTE format('CREATE POLICY schema_owner ON public.%I TO %I USING (true) WITH CHECK (true)', t, current_user);
  END LOOP;
END $$;
