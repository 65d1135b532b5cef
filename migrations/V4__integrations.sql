-- ChatPad schema, part 4: API keys, webhooks, locations and connected accounts.
--
-- Secrets at rest: API keys are stored as an HMAC-SHA256 (with a server-side pepper) plus a
-- display prefix; webhook signing secrets and OAuth credentials must be usable again, so they
-- are stored encrypted (AES-256-GCM, key outside the database) and never in clear.

CREATE TABLE public.api_keys (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id      uuid NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
  name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 120),
  -- `cpk_live_` + the first 8 random characters: shown in lists, and the lookup handle.
  prefix       text NOT NULL UNIQUE CHECK (prefix ~ '^cpk_(live|test)_[0-9A-Za-z]{8}$'),
  key_hash     bytea NOT NULL CHECK (length(key_hash) = 32),
  scopes       text[] NOT NULL DEFAULT '{}'
               CHECK (scopes <@ ARRAY['chat:write', 'leads:read', 'leads:write', 'knowledge:read',
                                      'knowledge:write', 'agents:read', 'agents:write', 'admin']::text[]),
  created_by   uuid REFERENCES public.users (id) ON DELETE SET NULL,
  last_used_at timestamptz,
  expires_at   timestamptz,
  revoked_at   timestamptz,
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_account_idx ON public.api_keys (user_id, created_at DESC);

CREATE TABLE public.webhooks (
  id                         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id                    uuid NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
  url                        text NOT NULL CHECK (url ~ '^https?://' AND length(url) <= 2048),
  description                text CHECK (length(description) <= 500),
  events                     text[] NOT NULL
                             CHECK (cardinality(events) > 0 AND events <@ ARRAY[
                               'conversation.created', 'conversation.closed', 'message.received',
                               'lead.created', 'takeover.started', 'takeover.ended']::text[]),
  enabled                    boolean NOT NULL DEFAULT true,
  secret_ciphertext          bytea NOT NULL,
  -- During a rotation the previous secret still signs until it expires.
  previous_secret_ciphertext bytea,
  previous_secret_expires_at timestamptz,
  failing_since              timestamptz,
  disabled_reason            text,
  created_at                 timestamptz NOT NULL DEFAULT now(),
  updated_at                 timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_account_idx ON public.webhooks (user_id) WHERE enabled;
CREATE TRIGGER webhooks_touch BEFORE UPDATE ON public.webhooks
  FOR EACH ROW EXECUTE FUNCTION public.touch_updated_at();

CREATE FUNCTION public.inherit_webhook_owner() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  SELECT w.user_id INTO NEW.user_id FROM public.webhooks w WHERE w.id = NEW.webhook_id;
  IF NEW.user_id IS NULL THEN
    RAISE EXCEPTION 'webhook % does not exist', NEW.webhook_id USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN NEW;
END $$;

CREATE TABLE public.webhook_deliveries (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  webhook_id      uuid NOT NULL REFERENCES public.webhooks (id) ON DELETE CASCADE,
  user_id         uuid NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
  event_id        uuid NOT NULL,
  event_type      text NOT NULL,
  payload         jsonb NOT NULL,
  status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'retrying', 'succeeded', 'failed')),
  attempts        int NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  response_status int,
  response_ms     int,
  error           text CHECK (length(error) <= 2000),
  next_attempt_at timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  -- One delivery per endpoint and event: redelivered queue messages find the existing row.
  CONSTRAINT webhook_deliveries_event_key UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_webhook_idx ON public.webhook_deliveries (webhook_id, created_at DESC);
CREATE TRIGGER webhook_deliveries_owner BEFORE INSERT OR UPDATE OF webhook_id, user_id ON public.webhook_deliveries
  FOR EACH ROW EXECUTE FUNCTION public.inherit_webhook_owner();
CREATE TRIGGER webhook_deliveries_touch BEFORE UPDATE ON public.webhook_deliveries
  FOR EACH ROW EXECUTE FUNCTION public.touch_updated_at();

CREATE TABLE public.locations (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id    uuid NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
  name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  address    text CHECK (length(address) <= 1000),
  metadata   jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX locations_account_idx ON public.locations (user_id);
CREATE TRIGGER locations_touch BEFORE UPDATE ON public.locations
  FOR EACH ROW EXECUTE FUNCTION public.touch_updated_at();

CREATE TABLE public.connected_accounts (
  id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id                uuid NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
  agent_id               uuid REFERENCES public.agents (id) ON DELETE CASCADE,
  location_id            uuid REFERENCES public.locations (id) ON DELETE SET NULL,
  integration_type       text NOT NULL CHECK (integration_type ~ '^[a-z][a-z0-9_]{1,40}$'),
  account_identifier     text NOT NULL CHECK (length(account_identifier) BETWEEN 1 AND 320),
  -- AES-256-GCM sealed OAuth tokens (nonce || ciphertext); see shared/src/crypto.rs.
  credentials_ciphertext bytea,
  metadata               jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
  created_at             timestamptz NOT NULL DEFAULT now(),
  updated_at             timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT connected_accounts_identity_key UNIQUE (user_id, integration_type, account_identifier)
);
CREATE TRIGGER connected_accounts_touch BEFORE UPDATE ON public.connected_accounts
  FOR EACH ROW EXECUTE FUNCTION public.touch_updated_at();

-- Links to an agent or location must stay inside the row's own account.
CREATE FUNCTION public.check_same_account() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF NEW.agent_id IS NOT NULL AND NOT EXISTS (
       SELECT 1 FROM public.agents WHERE id = NEW.agent_id AND user_id = NEW.user_id) THEN
    RAISE EXCEPTION 'agent % is not in this account', NEW.agent_id USING ERRCODE = 'foreign_key_violation';
  END IF;
  -- Nested: NEW.location_id only exists on connected_accounts.
  IF TG_TABLE_NAME = 'connected_accounts' THEN
    IF NEW.location_id IS NOT NULL AND NOT EXISTS (
         SELECT 1 FROM public.locations WHERE id = NEW.location_id AND user_id = NEW.user_id) THEN
      RAISE EXCEPTION 'location % is not in this account', NEW.location_id USING ERRCODE = 'foreign_key_violation';
    END IF;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER connected_accounts_same_account BEFORE INSERT OR UPDATE ON public.connected_accounts
  FOR EACH ROW EXECUTE FUNCTION public.check_same_account();
