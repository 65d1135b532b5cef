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

