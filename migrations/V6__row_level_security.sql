-- ChatPad schema, part 6: who may do what, enforced by Postgres.
--
-- Every table in `public` has RLS enabled AND forced (a test checks this). The application role
-- gets table privileges, and the policies below decide which rows. Role capabilities follow the
-- architecture document:
--   admin+    manage the team, API keys, webhooks, connected accounts; read security logs
--   manager+  manage agents, knowledge, leads, help articles, locations, reports
--   member+   answer conversations (messages, takeovers), read leads
--   client    read-only view of agents, conversations, knowledge, usage
-- Only platform admins (users.is_platform_admin) manage plans, models and subscriptions.
-- A widget visitor (role 'widget') sees only its own agent's public data and its own
-- conversations.

-- Standard account policies: one per command, each comparing the row's owner with the accounts
-- where the caller holds at least the given role ('none' = nobody). A helper only for this
-- migration, dropped at the end.
CREATE FUNCTION pg_temp.account_policies(p_table text, p_read text, p_insert text,
                                         p_update text, p_delete text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  cond constant text := 'user_id = ANY ((SELECT public.accessible_accounts(%L))::uuid[])';
BEGIN
  EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', p_table);
  EXECUTE format('ALTER TABLE public.%I FORCE ROW LEVEL SECURITY', p_table);
  IF p_read <> 'none' THEN
    EXECUTE format('CREATE POLICY account_read ON public.%I FOR SELECT TO chatpad_app USING (%s)',
                   p_table, format(cond, p_read));
  END IF;
  IF p_insert <> 'none' THEN
    EXECUTE format('CREATE POLICY account_insert ON public.%I FOR INSERT TO chatpad_app WITH CHECK (%s)',
                   p_table, format(cond, p_insert));
  END IF;
  IF p_update <> 'none' THEN
    -- WITH CHECK as well as USING: an update may not move a row into another account.
    EXECUTE format('CREATE POLICY account_update ON public.%I FOR UPDATE TO chatpad_app USING (%s) WITH CHECK (%s)',
                   p_table, format(cond, p_update), format(cond, p_update));
  END IF;
  IF p_delete <> 'none' THEN
    EXECUTE format('CREATE POLICY account_delete ON public.%I FOR DELETE TO chatpad_app USING (%s)',
                   p_table, format(cond, p_delete));
  END IF;
END $$;

--                             table                 read      insert    update    delete
SELECT pg_temp.account_policies('agents',            'client', 'manager', 'manager', 'manager');
SELECT pg_temp.account_policies('conversations',     'client', 'member',  'member',  'manager');
-- Messages are an immutable record: nobody edits one.
SELECT pg_temp.account_policies('messages',          'client', 'member',  'none',    'manager');
SELECT pg_temp.account_policies('takeovers',         'client', 'member',  'member',  'manager');
-- Leads hold visitors' personal data: not for clients.
SELECT pg_temp.account_policies('leads',             'member', 'manager', 'manager', 'manager');
SELECT pg_temp.account_policies('help_articles',     'client', 'manager', 'manager', 'manager');
SELECT pg_temp.account_policies('knowledge_sources', 'client', 'manager', 'manager', 'manager');
SELECT pg_temp.account_policies('knowledge_chunks',  'client', 'manager', 'manager', 'manager');
SELECT pg_temp.account_policies('api_keys',          'admin',  'admin',   'admin',   'admin');
SELECT pg_temp.account_policies('webhooks',          'admin',  'admin',   'admin',   'admin');
-- Deliveries are written by the webhook worker acting for the account owner.
SELECT pg_temp.account_policies('webhook_deliveries','admin',  'admin',   'admin',   'none');
SELECT pg_temp.account_policies('locations',         'client', 'manager', 'manager', 'manager');
SELECT pg_temp.account_policies('connected_accounts','admin',  'admin',   'admin',   'admin');
SELECT pg_temp.account_policies('scheduled_reports', 'member', 'manager', 'manager', 'manager');
-- Written only through record_usage / log_security_event.
SELECT pg_temp.account_policies('usage_metrics',     'client', 'none',    'none',    'none');
SELECT pg_temp.account_policies('security_logs',     'admin',  'none',    'none',    'none');
SELECT pg_temp.account_policies('subscriptions',     'client', 'none',    'none',    'none');

-- ---------------------------------------------------------------------------------------------
-- Users: yourself and the people you share an account with.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION public.visible_user_ids() RETURNS uuid[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT CASE WHEN auth.uid() IS NULL THEN '{}'::uuid[] ELSE
    array_cat(public.accessible_accounts('client'),
              coalesce((SELECT array_agg(tm.member_id) FROM public.team_members tm
                        WHERE tm.owner_id = ANY (public.accessible_accounts('client'))
                          AND tm.member_id IS NOT NULL), '{}'))
  END
$$;

ALTER TABLE public.users ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.users FORCE ROW LEVEL SECURITY;
CREATE POLICY users_read ON public.users FOR SELECT TO chatpad_app
  USING (id = ANY ((SELECT public.visible_user_ids())::uuid[]));
CREATE POLICY users_update_self ON public.users FOR UPDATE TO chatpad_app
  USING (id = (SELECT auth.uid())) WITH CHECK (id = (SELECT auth.uid()));

-- ---------------------------------------------------------------------------------------------
-- Team members: the account's team is visible to everyone in it, and your own memberships to
-- you; admins manage it. Granting super_admin is reserved to platform admins, or any account
-- admin could mint one.
-- ---------------------------------------------------------------------------------------------
ALTER TABLE public.team_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.team_members FORCE ROW LEVEL SECURITY;
CREATE POLICY team_read ON public.team_members FOR SELECT TO chatpad_app
  USING (owner_id = ANY ((SELECT public.accessible_accounts('client'))::uuid[])
         OR member_id = (SELECT auth.uid()));
CREATE POLICY team_insert ON public.team_members FOR INSERT TO chatpad_app
  WITH CHECK (owner_id = ANY ((SELECT public.accessible_accounts('admin'))::uuid[])
              AND (role <> 'super_admin' OR (SELECT public.is_platform_admin())));
CREATE POLICY team_update ON public.team_members FOR UPDATE TO chatpad_app
  USING (owner_id = ANY ((SELECT public.accessible_accounts('admin'))::uuid[]))
  WITH CHECK (owner_id = ANY ((SELECT public.accessible_accounts('admin'))::uuid[])
              AND (role <> 'super_admin' OR (SELECT public.is_platform_admin())));
CREATE POLICY team_delete ON public.team_members FOR DELETE TO chatpad_app
  USING (owner_id = ANY ((SELECT public.accessible_accounts('admin'))::uuid[]));

-- ---------------------------------------------------------------------------------------------
-- Catalogues: readable by everyone, managed by platform admins.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION pg_temp.catalogue_policies(p_table text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', p_table);
  EXECUTE format('ALTER TABLE public.%I FORCE ROW LEVEL SECURITY', p_table);
  EXECUTE format('CREATE POLICY catalogue_read ON public.%I FOR SELECT TO chatpad_app USING (true)', p_table);
  EXECUTE format('CREATE POLICY platform_admin_write ON public.%I FOR ALL TO chatpad_app
                    USING ((SELECT public.is_platform_admin())) WITH CHECK ((SELECT public.is_platform_admin()))',
                 p_table);
END $$;
SELECT pg_temp.catalogue_policies('plans');
SELECT pg_temp.catalogue_policies('ai_models');
SELECT pg_temp.catalogue_policies('embedding_models');

CREATE POLICY platform_admin_write ON public.subscriptions FOR ALL TO chatpad_app
  USING ((SELECT public.is_platform_admin())) WITH CHECK ((SELECT public.is_platform_admin()));

-- ---------------------------------------------------------------------------------------------
-- Widget visitors (role 'widget', one agent, one visitor id).
-- ---------------------------------------------------------------------------------------------
CREATE POLICY widget_read ON public.agents FOR SELECT TO chatpad_app
  USING (id = (SELECT auth.widget_agent_id()) AND status = 'active');

CREATE POLICY widget_own ON public.conversations FOR ALL TO chatpad_app
  USING (agent_id = (SELECT auth.widget_agent_id()) AND visitor_id = (SELECT auth.visitor_id()))
  WITH CHECK (agent_id = (SELECT auth.widget_agent_id()) AND visitor_id = (SELECT auth.visitor_id()));

-- Visitors read their conversation and add their own turns and the bot's answers, never a
-- team member's `human` message.
CREATE POLICY widget_read ON public.messages FOR SELECT TO chatpad_app
  USING (agent_id = (SELECT auth.widget_agent_id())
         AND EXISTS (SELECT 1 FROM public.conversations c WHERE c.id = conversation_id
                     AND c.visitor_id = (SELECT auth.visitor_id())));
CREATE POLICY widget_insert ON public.messages FOR INSERT TO chatpad_app
  WITH CHECK (agent_id = (SELECT auth.widget_agent_id()) AND role IN ('user', 'assistant', 'system')
              AND EXISTS (SELECT 1 FROM public.conversations c WHERE c.id = conversation_id
                          AND c.visitor_id = (SELECT auth.visitor_id())));

CREATE POLICY widget_read ON public.knowledge_sources FOR SELECT TO chatpad_app
  USING (agent_id = (SELECT auth.widget_agent_id()));
CREATE POLICY widget_read ON public.knowledge_chunks FOR SELECT TO chatpad_app
  USING (agent_id = (SELECT auth.widget_agent_id()));
CREATE POLICY widget_read ON public.help_articles FOR SELECT TO chatpad_app
  USING (agent_id = (SELECT auth.widget_agent_id()) AND published);

CREATE POLICY widget_own ON public.leads FOR SELECT TO chatpad_app
  USING (agent_id = (SELECT auth.widget_agent_id()) AND visitor_id = (SELECT auth.visitor_id()));
CREATE POLICY widget_insert ON public.leads FOR INSERT TO chatpad_app
  WITH CHECK (agent_id = (SELECT auth.widget_agent_id()) AND visitor_id = (SELECT auth.visitor_id()));

-- The widget needs its owner's plan (e.g. whether "powered by" may be hidden).
CREATE POLICY widget_read ON public.subscriptions FOR SELECT TO chatpad_app
  USING (user_id = (SELECT a.user_id FROM public.agents a WHERE a.id = (SELECT auth.widget_agent_id())));

-- ---------------------------------------------------------------------------------------------
-- Privileges of the application role. Rows are then filtered by the policies above.
-- ---------------------------------------------------------------------------------------------
GRANT USAGE ON SCHEMA public TO chatpad_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO chatpad_app;
-- Profiles: a user edits their own name and avatar, nothing else (not is_platform_admin).
REVOKE INSERT, UPDATE, DELETE ON public.users FROM chatpad_app;
GRANT UPDATE (display_name, avatar_url) ON public.users TO chatpad_app;
-- Append-only through definer functions.
REVOKE INSERT, UPDATE, DELETE ON public.security_logs, public.usage_metrics FROM chatpad_app;

-- ---------------------------------------------------------------------------------------------
-- The owner role (the one running migrations, which owns the SECURITY DEFINER helpers above)
-- is also subject to the forced policies. It gets one explicit, visible policy per table so the
-- helpers (trigger owner lookups, accessible_accounts, find_api_key, record_usage, ...) can do
-- their narrow jobs; the application role gets nothing of the kind.
-- refinery's history table is put under the same regime, invisible to the application role.
-- ---------------------------------------------------------------------------------------------
REVOKE ALL ON public.refinery_schema_history FROM chatpad_app;
DO $$
DECLARE
  t text;
BEGIN
  FOR t IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind = 'r' LOOP
    EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE public.%I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY schema_owner ON public.%I TO %I USING (true) WITH CHECK (true)', t, current_user);
  END LOOP;
END $$;
