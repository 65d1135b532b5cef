-- ChatPad schema, part 1: request identity, accounts, teams, plans.
--
-- Tenancy model (see README "Security"): every tenant row carries `user_id`, the id of the
-- account owner. A caller may touch a row when it owns the account or is an active team member
-- with a high enough role. Postgres enforces this with row-level security; handlers only set the
-- caller's claims at the start of each transaction.
--
-- Migrations run as the owner role (chatpad_owner). Functions connect as chatpad_app, which owns
-- nothing and cannot bypass RLS. FORCE ROW LEVEL SECURITY makes even the owner obey the policies
-- outside SECURITY DEFINER helpers.

CREATE EXTENSION IF NOT EXISTS vector;

-- ---------------------------------------------------------------------------------------------
-- Request identity. The handler runs, inside the request's transaction,
--   SELECT set_config('request.jwt.claims', '{"sub": "...", "role": "..."}', true)
-- so the claims vanish at commit/rollback and never leak to the next user of a pooled connection.
-- Roles: 'authenticated' (a signed-in user or an API key acting for its owner),
--        'widget' (an anonymous visitor of one agent: agent_id + visitor_id),
--        absent (anonymous: sees nothing but public catalogues).
-- ---------------------------------------------------------------------------------------------
CREATE SCHEMA auth;
GRANT USAGE ON SCHEMA auth TO chatpad_app;

-- After a local setting ends the GUC reads as '' (not NULL), hence the nullif.
CREATE FUNCTION auth.claims() RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb
$$;

CREATE FUNCTION auth.role() RETURNS text
LANGUAGE sql STABLE AS $$ SELECT auth.claims() ->> 'role' $$;

-- Only authenticated callers have a user id; a widget visitor never does.
CREATE FUNCTION auth.uid() RETURNS uuid
LANGUAGE sql STABLE AS $$
  SELECT CASE WHEN auth.role() = 'authenticated' THEN (auth.claims() ->> 'sub')::uuid END
$$;

CREATE FUNCTION auth.widget_agent_id() RETURNS uuid
LANGUAGE sql STABLE AS $$
  SELECT CASE WHEN auth.role() = 'widget' THEN (auth.claims() ->> 'agent_id')::uuid END
$$;

CREATE FUNCTION auth.visitor_id() RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT CASE WHEN auth.role() = 'widget' THEN auth.claims() ->> 'visitor_id' END
$$;

-- ---------------------------------------------------------------------------------------------
-- Shared helpers
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION public.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END $$;

-- ---------------------------------------------------------------------------------------------
-- Users (profiles). `auth_subject` is the identity provider's subject (Cognito/Auth0/Supabase);
-- `id` is ours. Rows are created by `ensure_user` on first sign-in, never by callers directly.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE public.users (
  id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  auth_subject      text NOT NULL UNIQUE CHECK (length(auth_subject) BETWEEN 1 AND 255),
  email             text CHECK (email IS NULL OR length(email) <= 320),
  display_name      text CHECK (display_name IS NULL OR length(display_name) <= 200),
  avatar_url        text CHECK (avatar_url IS NULL OR length(avatar_url) <= 2048),
  -- Platform operators (manage plans). Only settable by the owner role, see column grants.
  is_platform_admin boolean NOT NULL DEFAULT false,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON public.users (lower(email)) WHERE email IS NOT NULL;
CREATE TRIGGER users_touch BEFORE UPDATE ON public.users
  FOR EACH ROW EXECUTE FUNCTION public.touch_updated_at();

-- ---------------------------------------------------------------------------------------------
-- Team members. A pending invitation has an email and no member yet.
-- Roles by rank: client (1) < member (2) < manager (3) < admin (4) < super_admin (5); the
-- account owner ranks 6.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE public.team_members (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  owner_id      uuid NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
  member_id     uuid REFERENCES public.users (id) ON DELETE CASCADE,
  invited_email text CHECK (invited_email IS NULL OR length(invited_email) <= 320),
  role          text NOT NULL DEFAULT 'member'
                CHECK (role IN ('super_admin', 'admin', 'manager', 'member', 'client')),
  status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'active')),
  invited_by    uuid REFERENCES public.users (id) ON DELETE SET NULL,
  accepted_at   timestamptz,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT team_members_pair_key UNIQUE (owner_id, member_id),
  CONSTRAINT team_members_not_self CHECK (member_id IS DISTINCT FROM owner_id),
  CONSTRAINT team_members_identified CHECK (member_id IS NOT NULL OR invited_email IS NOT NULL),
  CONSTRAINT team_members_active_has_member CHECK (status = 'pending' OR member_id IS NOT NULL)
);
CREATE UNIQUE INDEX team_members_invite_key
  ON public.team_members (owner_id, lower(invited_email)) WHERE invited_email IS NOT NULL;
-- Access checks look up "which accounts is this user in", so index the member side.
CREATE INDEX team_members_member_idx ON public.team_members (member_id) WHERE status = 'active';
CREATE TRIGGER team_members_touch BEFORE UPDATE ON public.team_members
  FOR EACH ROW EXECUTE FUNCTION public.touch_updated_at();

CREATE FUNCTION public.role_rank(p_role text) RETURNS int
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE p_role
    WHEN 'owner' THEN 6 WHEN 'super_admin' THEN 5 WHEN 'admin' THEN 4
    WHEN 'manager' THEN 3 WHEN 'member' THEN 2 WHEN 'client' THEN 1 ELSE 0 END
$$;

-- Accounts the caller may act in with at least `p_min_role`. Policies compare with
-- `user_id = ANY ((SELECT public.accessible_accounts('...'))::uuid[])`: the sub-select runs once per
-- statement (an InitPlan), not once per row, which keeps large scans cheap.
-- SECURITY DEFINER so it can read team_members whatever that table's own policies say.
CREATE FUNCTION public.accessible_accounts(p_min_role text) RETURNS uuid[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT CASE WHEN auth.uid() IS NULL THEN '{}'::uuid[] ELSE
    array_append(
      coalesce((SELECT array_agg(tm.owner_id) FROM public.team_members tm
                WHERE tm.member_id = auth.uid() AND tm.status = 'active'
                  AND public.role_rank(tm.role) >= public.role_rank(p_min_role)), '{}'),
      auth.uid())
  END
$$;

-- As in the architecture document: owner or (active) team member.
CREATE FUNCTION public.has_account_access(account_owner_id uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT auth.uid() = account_owner_id
      OR EXISTS (SELECT 1 FROM public.team_members
                 WHERE owner_id = account_owner_id AND member_id = auth.uid()
                   AND status = 'active')
$$;

-- The caller's role in an account: 'owner', a team role, or NULL.
CREATE FUNCTION public.account_role(account_owner_id uuid) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT CASE WHEN auth.uid() = account_owner_id THEN 'owner' ELSE
    (SELECT role FROM public.team_members
     WHERE owner_id = account_owner_id AND member_id = auth.uid() AND status = 'active')
  END
$$;

CREATE FUNCTION public.is_platform_admin() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT coalesce((SELECT is_platform_admin FROM public.users WHERE id = auth.uid()), false)
$$;

-- Signs a user in: finds or creates the profile for an identity-provider subject and returns
-- its id. The only way rows enter `users`; callable before any claims exist.
CREATE FUNCTION public.ensure_user(p_subject text, p_email text) RETURNS uuid
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  INSERT INTO public.users (auth_subject, email) VALUES (p_subject, nullif(p_email, ''))
  ON CONFLICT (auth_subject) DO UPDATE
    SET email = coalesce(EXCLUDED.email, public.users.email)
  RETURNING id
$$;

-- ---------------------------------------------------------------------------------------------
-- Plans and subscriptions. Limits are data: NULL means unlimited.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE public.plans (
  id                          text PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9_-]{1,30}$'),
  name                        text NOT NULL,
  sort_order                  int NOT NULL DEFAULT 0,
  monthly_price_cents         int NOT NULL DEFAULT 0 CHECK (monthly_price_cents >= 0),
  max_agents                  int CHECK (max_agents >= 0),
  max_conversations_per_month int CHECK (max_conversations_per_month >= 0),
  max_knowledge_sources       int CHECK (max_knowledge_sources >= 0),
  max_team_members            int CHECK (max_team_members >= 0),
  max_storage_bytes           bigint CHECK (max_storage_bytes >= 0),
  custom_branding             boolean NOT NULL DEFAULT false,
  webhooks                    boolean NOT NULL DEFAULT false,
  api_access                  boolean NOT NULL DEFAULT false,
  custom_domains              boolean NOT NULL DEFAULT false,
  priority_support            boolean NOT NULL DEFAULT false,
  white_label                 boolean NOT NULL DEFAULT false,
  created_at                  timestamptz NOT NULL DEFAULT now(),
  updated_at                  timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER plans_touch BEFORE UPDATE ON public.plans
  FOR EACH ROW EXECUTE FUNCTION public.touch_updated_at();

-- The architecture document's tiers.
INSERT INTO public.plans (id, name, sort_order, max_agents, max_conversations_per_month,
  max_knowledge_sources, max_team_members, max_storage_bytes, custom_branding, webhooks,
  api_access, custom_domains, priority_support, white_label) VALUES
  ('basic',    'Basic',    1, 1,    100,   5,   1,    100 * 1024 * 1024::bigint,
   false, false, false, false, false, false),
  ('advanced', 'Advanced', 2, 5,    1000,  25,  5,    1024 * 1024 * 1024::bigint,
   true,  true,  true,  false, false, false),
  ('pro',      'Pro',      3, NULL, 10000, 100, NULL, 10 * 1024 * 1024 * 1024::bigint,
   true,  true,  true,  true,  true,  true);

CREATE TABLE public.subscriptions (
  id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id                uuid NOT NULL UNIQUE REFERENCES public.users (id) ON DELETE CASCADE,
  plan_id                text NOT NULL REFERENCES public.plans (id),
  status                 text NOT NULL DEFAULT 'active'
                         CHECK (status IN ('trialing', 'active', 'past_due', 'canceled')),
  current_period_start   timestamptz NOT NULL DEFAULT date_trunc('month', now()),
  current_period_end     timestamptz NOT NULL DEFAULT date_trunc('month', now()) + interval '1 month',
  stripe_customer_id     text,
  stripe_subscription_id text UNIQUE,
  created_at             timestamptz NOT NULL DEFAULT now(),
  updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER subscriptions_touch BEFORE UPDATE ON public.subscriptions
  FOR EACH ROW EXECUTE FUNCTION public.touch_updated_at();

-- The plan in force for an account: its subscription's, or Basic without one.
CREATE FUNCTION public.account_plan(p_owner uuid) RETURNS public.plans
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT p.* FROM public.plans p
  WHERE p.id = coalesce((SELECT s.plan_id FROM public.subscriptions s
                         WHERE s.user_id = p_owner AND s.status IN ('trialing', 'active', 'past_due')),
                        'basic')
$$;

-- ---------------------------------------------------------------------------------------------
-- Model catalogues (data, so a deployment can add models without a release).
-- ---------------------------------------------------------------------------------------------
CREATE TABLE public.ai_models (
  id           text PRIMARY KEY CHECK (id ~ '^[a-z0-9._-]+/[A-Za-z0-9._:-]+$'),
  provider     text NOT NULL,
  display_name text NOT NULL,
  use_case     text NOT NULL DEFAULT '',
  cost_tier    smallint NOT NULL DEFAULT 1 CHECK (cost_tier BETWEEN 1 AND 3),
  is_default   boolean NOT NULL DEFAULT false,
  enabled      boolean NOT NULL DEFAULT true,
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX ai_models_one_default ON public.ai_models (is_default) WHERE is_default;

INSERT INTO public.ai_models (id, provider, display_name, use_case, cost_tier, is_default) VALUES
  ('google/gemini-2.5-flash',     'google',    'Gemini 2.5 Flash',  'Fast, economical', 1, true),
  ('google/gemini-2.5-pro',       'google',    'Gemini 2.5 Pro',    'Complex reasoning', 2, false),
  ('openai/gpt-4o',               'openai',    'GPT-4o',            'High quality', 3, false),
  ('openai/gpt-4o-mini',          'openai',    'GPT-4o mini',       'Fast OpenAI option', 2, false),
  ('anthropic/claude-3.5-sonnet', 'anthropic', 'Claude 3.5 Sonnet', 'Nuanced responses', 3, false);
