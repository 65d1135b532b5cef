-- ChatPad schema, part 2: agents, conversations, messages, takeovers, leads, help articles.
--
-- Child rows copy their account owner (`user_id`) and agent from their parent in a trigger, so
-- policies can test a plain column and a row can never point at one tenant's agent while being
-- labelled with another tenant's owner. The triggers are SECURITY DEFINER because they must read
-- the parent even when the caller could not; the policies' WITH CHECK then decides.

CREATE TABLE public.agents (
  id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id              uuid NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
  name                 text NOT NULL CHECK (length(name) BETWEEN 1 AND 120),
  model                text NOT NULL DEFAULT 'google/gemini-2.5-flash' REFERENCES public.ai_models (id),
  system_prompt        text NOT NULL DEFAULT '' CHECK (length(system_prompt) <= 20000),
  temperature          real NOT NULL DEFAULT 0.3 CHECK (temperature BETWEEN 0 AND 2),
  greeting             text NOT NULL DEFAULT 'Hi! How can I help you today?' CHECK (length(greeting) <= 1000),
  fallback_message     text NOT NULL DEFAULT 'I don''t have information about that yet. Would you like to talk to a person?'
                       CHECK (length(fallback_message) <= 1000),
  -- colours, position, launcher icon, avatar, font, dark mode
  appearance           jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(appearance) = 'object'),
  -- Origins allowed to embed the widget; empty = any.
  allowed_domains      text[] NOT NULL DEFAULT '{}' CHECK (cardinality(allowed_domains) <= 100),
  help_center_enabled  boolean NOT NULL DEFAULT false,
  lead_form_fields     jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(lead_form_fields) = 'array'),
  status               text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  -- Retrieval settings (knowledge pipeline).
  embedding_model      text NOT NULL DEFAULT 'local/all-MiniLM-L6-v2',
  retrieval_mode       text NOT NULL DEFAULT 'hybrid' CHECK (retrieval_mode IN ('vector', 'hybrid')),
  match_threshold      real NOT NULL DEFAULT 0.3 CHECK (match_threshold BETWEEN -1 AND 1),
  match_count          int NOT NULL DEFAULT 5 CHECK (match_count BETWEEN 1 AND 50),
  chunk_size_tokens    int NOT NULL DEFAULT 200 CHECK (chunk_size_tokens BETWEEN 32 AND 2000),
  chunk_overlap_tokens int NOT NULL DEFAULT 30 CHECK (chunk_overlap_tokens BETWEEN 0 AND 500),
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agents_user_idx ON public.agents (user_id, created_at DESC);
CREATE TRIGGER agents_touch BEFORE UPDATE ON public.agents
  FOR EACH ROW EXECUTE FUNCTION public.touch_updated_at();

-- Fills user_id from the agent named by NEW.agent_id.
CREATE FUNCTION public.inherit_agent_owner() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF NEW.agent_id IS NOT NULL THEN
    SELECT a.user_id INTO NEW.user_id FROM public.agents a WHERE a.id = NEW.agent_id;
    IF NEW.user_id IS NULL THEN
      RAISE EXCEPTION 'agent % does not exist', NEW.agent_id USING ERRCODE = 'foreign_key_violation';
    END IF;
  END IF;
  RETURN NEW;
END $$;

CREATE TABLE public.conversations (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  agent_id        uuid NOT NULL REFERENCES public.agents (id) ON DELETE CASCADE,
  user_id         uuid NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
  visitor_id      text NOT NULL CHECK (length(visitor_id) BETWEEN 1 AND 128),
  status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'human_takeover', 'closed')),
  needs_human     boolean NOT NULL DEFAULT false,
  assigned_to     uuid REFERENCES public.users (id) ON DELETE SET NULL,
  metadata        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
  summary         text,
  last_message_at timestamptz NOT NULL DEFAULT now(),
  closed_at       timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversations_agent_idx ON public.conversations (agent_id, last_message_at DESC);
CREATE INDEX conversations_account_idx ON public.conversations (user_id, last_message_at DESC);
CREATE INDEX conversations_visitor_idx ON public.conversations (agent_id, visitor_id);
-- The inbox lists conversations waiting for a person.
CREATE INDEX conversations_attention_idx ON public.conversations (user_id, last_message_at DESC)
  WHERE needs_human AND status <> 'closed';
CREATE TRIGGER conversations_owner BEFORE INSERT OR UPDATE OF agent_id, user_id ON public.conversations
  FOR EACH ROW EXECUTE FUNCTION public.inherit_agent_owner();
CREATE TRIGGER conversations_touch BEFORE UPDATE ON public.conversations
  FOR EACH ROW EXECUTE FUNCTION public.touch_updated_at();

-- Fills user_id and agent_id from the conversation named by NEW.conversation_id.
CREATE FUNCTION public.inherit_conversation_owner() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF NEW.conversation_id IS NOT NULL THEN
    SELECT c.user_id, c.agent_id INTO NEW.user_id, NEW.agent_id
    FROM public.conversations c WHERE c.id = NEW.conversation_id;
    IF NEW.user_id IS NULL THEN
      RAISE EXCEPTION 'conversation % does not exist', NEW.conversation_id
        USING ERRCODE = 'foreign_key_violation';
    END IF;
  END IF;
  RETURN NEW;
END $$;

CREATE TABLE public.messages (
  id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  conversation_id   uuid NOT NULL REFERENCES public.conversations (id) ON DELETE CASCADE,
  agent_id          uuid NOT NULL REFERENCES public.agents (id) ON DELETE CASCADE,
  user_id           uuid NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
  role              text NOT NULL CHECK (role IN ('user', 'assistant', 'human', 'system')),
  content           text NOT NULL CHECK (length(content) <= 32000),
  attachments       jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(attachments) = 'array'),
  -- The team member who wrote a `human` message.
  sender_id         uuid REFERENCES public.users (id) ON DELETE SET NULL,
  prompt_tokens     int CHECK (prompt_tokens >= 0),
  completion_tokens int CHECK (completion_tokens >= 0),
  latency_ms        int CHECK (latency_ms >= 0),
  -- Knowledge chunks the answer was grounded on (citations).
  chunk_ids         uuid[] NOT NULL DEFAULT '{}',
  created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_conversation_idx ON public.messages (conversation_id, created_at);
CREATE INDEX messages_account_idx ON public.messages (user_id, created_at DESC);
CREATE TRIGGER messages_owner BEFORE INSERT OR UPDATE OF conversation_id, user_id, agent_id ON public.messages
  FOR EACH ROW EXECUTE FUNCTION public.inherit_conversation_owner();

CREATE TABLE public.takeovers (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  conversation_id uuid NOT NULL REFERENCES public.conversations (id) ON DELETE CASCADE,
  agent_id        uuid NOT NULL REFERENCES public.agents (id) ON DELETE CASCADE,
  user_id         uuid NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
  taken_by        uuid REFERENCES public.users (id) ON DELETE SET NULL,
  started_at      timestamptz NOT NULL DEFAULT now(),
  ended_at        timestamptz,
  end_action      text CHECK (end_action IN ('returned_to_bot', 'closed')),
  summary         text CHECK (length(summary) <= 4000),
  created_at      timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT takeovers_end_consistent CHECK ((ended_at IS NULL) = (end_action IS NULL))
);
-- At most one open takeover per conversation.
CREATE UNIQUE INDEX takeovers_open_key ON public.takeovers (conversation_id) WHERE ended_at IS NULL;
CREATE INDEX takeovers_account_idx ON public.takeovers (user_id, started_at DESC);
CREATE TRIGGER takeovers_owner BEFORE INSERT OR UPDATE OF conversation_id, user_id, agent_id ON public.takeovers
  FOR EACH ROW EXECUTE FUNCTION public.inherit_conversation_owner();

CREATE TABLE public.leads (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  agent_id        uuid NOT NULL REFERENCES public.agents (id) ON DELETE CASCADE,
  user_id         uuid NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
  conversation_id uuid REFERENCES public.conversations (id) ON DELETE SET NULL,
  visitor_id      text CHECK (length(visitor_id) <= 128),
  name            text CHECK (length(name) <= 200),
  email           text CHECK (length(email) <= 320),
  phone           text CHECK (length(phone) <= 40),
  fields          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(fields) = 'object'),
  status          text NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'contacted', 'qualified', 'converted', 'lost')),
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX leads_account_idx ON public.leads (user_id, created_at DESC);
CREATE INDEX leads_agent_idx ON public.leads (agent_id, created_at DESC);
CREATE TRIGGER leads_owner BEFORE INSERT OR UPDATE OF agent_id, user_id ON public.leads
  FOR EACH ROW EXECUTE FUNCTION public.inherit_agent_owner();
CREATE TRIGGER leads_touch BEFORE UPDATE ON public.leads
  FOR EACH ROW EXECUTE FUNCTION public.touch_updated_at();

-- A lead's conversation must be one of the lead's agent.
CREATE FUNCTION public.check_lead_conversation() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF NEW.conversation_id IS NOT NULL AND NOT EXISTS (
       SELECT 1 FROM public.conversations c
       WHERE c.id = NEW.conversation_id AND c.agent_id = NEW.agent_id) THEN
    RAISE EXCEPTION 'conversation % does not belong to agent %', NEW.conversation_id, NEW.agent_id
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER leads_conversation_check BEFORE INSERT OR UPDATE OF conversation_id, agent_id ON public.leads
  FOR EACH ROW EXECUTE FUNCTION public.check_lead_conversation();

CREATE TABLE public.help_articles (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  agent_id      uuid NOT NULL REFERENCES public.agents (id) ON DELETE CASCADE,
  user_id       uuid NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
  title         text NOT NULL CHECK (length(title) BETWEEN 1 AND 300),
  body_markdown text NOT NULL DEFAULT '' CHECK (length(body_markdown) <= 100000),
  category      text CHECK (length(category) <= 100),
  published     boolean NOT NULL DEFAULT false,
  position      int NOT NULL DEFAULT 0,
  search        tsvector GENERATED ALWAYS AS (
                  setweight(to_tsvector('simple', title), 'A') ||
                  setweight(to_tsvector('simple', body_markdown), 'B')) STORED,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX help_articles_agent_idx ON public.help_articles (agent_id, position);
CREATE INDEX help_articles_search_idx ON public.help_articles USING gin (search);
CREATE TRIGGER help_articles_owner BEFORE INSERT OR UPDATE OF agent_id, user_id ON public.help_articles
  FOR EACH ROW EXECUTE FUNCTION public.inherit_agent_owner();
CREATE TRIGGER help_articles_touch BEFORE UPDATE ON public.help_articles
  FOR EACH ROW EXECUTE FUNCTION public.touch_updated_at();
