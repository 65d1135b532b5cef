-- ChatPad schema, part 5: usage metrics, security logs, scheduled reports.
--
-- Usage and security logs are written only through SECURITY DEFINER functions that check the
-- caller's right to write for that account, so no caller can forge or erase them directly.

CREATE TABLE public.usage_metrics (
  user_id       uuid NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
  day           date NOT NULL DEFAULT current_date,
  conversations int NOT NULL DEFAULT 0 CHECK (conversations >= 0),
  messages      int NOT NULL DEFAULT 0 CHECK (messages >= 0),
  api_calls     int NOT NULL DEFAULT 0 CHECK (api_calls >= 0),
  tokens        bigint NOT NULL DEFAULT 0 CHECK (tokens >= 0),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, day)
);

CREATE TABLE public.security_logs (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- The account the event belongs to; NULL when none could be identified (e.g. an unknown key).
  user_id       uuid REFERENCES public.users (id) ON DELETE CASCADE,
  actor_id      uuid REFERENCES public.users (id) ON DELETE SET NULL,
  event_type    text NOT NULL CHECK (event_type ~ '^[a-z_]+(\.[a-z_]+)+$'),
  resource_type text,
  resource_id   text,
  ip            inet,
  user_agent    text CHECK (length(user_agent) <= 512),
  details       jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(details) = 'object'),
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX security_logs_account_idx ON public.security_logs (user_id, created_at DESC);
CREATE INDEX security_logs_type_idx ON public.security_logs (user_id, event_type, created_at DESC);

CREATE TABLE public.scheduled_reports (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id     uuid NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
  agent_id    uuid REFERENCES public.agents (id) ON DELETE CASCADE,
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  frequency   text NOT NULL CHECK (frequency IN ('daily', 'weekly', 'monthly')),
  metrics     text[] NOT NULL DEFAULT ARRAY['conversations', 'messages', 'leads']
              CHECK (metrics <@ ARRAY['conversations', 'messages', 'leads', 'response_time',
                                      'satisfaction', 'tokens', 'knowledge_gaps']::text[]),
  recipients  text[] NOT NULL CHECK (cardinality(recipients) BETWEEN 1 AND 50),
  include_pdf boolean NOT NULL DEFAULT false,
  enabled     boolean NOT NULL DEFAULT true,
  next_run_at timestamptz NOT NULL DEFAULT now(),
  last_run_at timestamptz,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX scheduled_reports_due_idx ON public.scheduled_reports (next_run_at) WHERE enabled;
CREATE TRIGGER scheduled_reports_touch BEFORE UPDATE ON public.scheduled_reports
  FOR EACH ROW EXECUTE FUNCTION public.touch_updated_at();
CREATE TRIGGER scheduled_reports_same_account BEFORE INSERT OR UPDATE ON public.scheduled_reports
  FOR EACH ROW EXECUTE FUNCTION public.check_same_account();

-- May the current caller write usage or logs for this account? An authenticated member of
-- it, or a widget visitor of one of its agents.
CREATE FUNCTION public.may_record_for(p_owner uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT public.has_account_access(p_owner)
      OR EXISTS (SELECT 1 FROM public.agents WHERE id = auth.widget_agent_id() AND user_id = p_owner)
$$;

CREATE FUNCTION public.record_usage(p_owner uuid, p_conversations int DEFAULT 0,
  p_messages int DEFAULT 0, p_api_calls int DEFAULT 0, p_tokens bigint DEFAULT 0) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF NOT public.may_record_for(p_owner) THEN
    RAISE EXCEPTION 'not allowed to record usage for this account' USING ERRCODE = 'insufficient_privilege';
  END IF;
  INSERT INTO public.usage_metrics AS u (user_id, conversations, messages, api_calls, tokens)
  VALUES (p_owner, p_conversations, p_messages, p_api_calls, p_tokens)
  ON CONFLICT (user_id, day) DO UPDATE SET
    conversations = u.conversations + EXCLUDED.conversations,
    messages = u.messages + EXCLUDED.messages,
    api_calls = u.api_calls + EXCLUDED.api_calls,
    tokens = u.tokens + EXCLUDED.tokens,
    updated_at = now();
END $$;

-- Appends a security log entry. An anonymous caller may only log events without an account
-- (failed authentications); anyone else only for accounts they may record for.
CREATE FUNCTION public.log_security_event(p_owner uuid, p_event_type text,
  p_resource_type text DEFAULT NULL, p_resource_id text DEFAULT NULL, p_ip inet DEFAULT NULL,
  p_user_agent text DEFAULT NULL, p_details jsonb DEFAULT '{}') RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF p_owner IS NOT NULL AND NOT public.may_record_for(p_owner) THEN
    RAISE EXCEPTION 'not allowed to log for this account' USING ERRCODE = 'insufficient_privilege';
  END IF;
  INSERT INTO public.security_logs (user_id, actor_id, event_type, resource_type, resource_id,
                                    ip, user_agent, details)
  VALUES (p_owner, auth.uid(), p_event_type, p_resource_type, p_resource_id, p_ip,
          left(p_user_agent, 512), coalesce(p_details, '{}'));
END $$;

-- API key authentication happens before any caller is known, so the lookup by prefix is a
-- narrow SECURITY DEFINER door: it returns one key's hash and metadata, never a listing.
CREATE FUNCTION public.find_api_key(p_prefix text)
RETURNS TABLE (id uuid, user_id uuid, key_hash bytea, scopes text[], expires_at timestamptz,
               revoked_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT k.id, k.user_id, k.key_hash, k.scopes, k.expires_at, k.revoked_at
  FROM public.api_keys k WHERE k.prefix = p_prefix
$$;

-- Records one use of a verified key: last-used time, a security log entry, one API call.
-- The caller must already act as the key's owner (claims set after verification).
CREATE FUNCTION public.record_api_key_use(p_key_id uuid, p_ip inet, p_user_agent text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_owner uuid;
BEGIN
  UPDATE public.api_keys SET last_used_at = now()
  WHERE id = p_key_id AND user_id = auth.uid()
  RETURNING user_id INTO v_owner;
  IF v_owner IS NULL THEN
    RAISE EXCEPTION 'api key % is not the caller''s', p_key_id USING ERRCODE = 'insufficient_privilege';
  END IF;
  PERFORM public.log_security_event(v_owner, 'api_key.used', 'api_key', p_key_id::text, p_ip, p_user_agent);
  PERFORM public.record_usage(v_owner, p_api_calls => 1);
END $$;
