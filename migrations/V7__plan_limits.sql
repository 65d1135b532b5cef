-- ChatPad schema, part 7: plan limits, enforced by the database wherever rows are created.
--
-- Limits live in `plans` (data, not code). BEFORE INSERT triggers check them, so every path that
-- creates an agent, a knowledge source, a team member, a webhook, an API key or a conversation
-- is covered, whichever function or script does it. Each check first takes a transaction-level
-- advisory lock on the account: two parallel creates at the limit serialise, and the second
-- counts the first (each statement in a volatile PL/pgSQL function takes a fresh snapshot).
--
-- A refusal raises SQLSTATE 'CP001' with a JSON DETAIL:
--   {"limit": "...", "current": n, "allowed": n, "plan": "basic", "upgrade_to": "advanced"}
-- which the API turns into a 403 `plan_limit_exceeded` naming all of it.

CREATE FUNCTION public.lock_account_limits(p_owner uuid) RETURNS void
LANGUAGE sql VOLATILE AS $$
  SELECT pg_advisory_xact_lock(hashtextextended('chatpad.plan_limits:' || p_owner::text, 0))
$$;

-- The cheapest plan that allows `p_wanted` of a numeric limit, or that has a feature.
CREATE FUNCTION public.plan_lifting(p_limit text, p_wanted bigint) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_plan text;
BEGIN
  EXECUTE format(
    'SELECT id FROM public.plans WHERE %s ORDER BY sort_order LIMIT 1',
    CASE WHEN p_limit IN ('custom_branding', 'webhooks', 'api_access', 'custom_domains', 'white_label')
         THEN format('%I', p_limit)
         ELSE format('(%I IS NULL OR %I >= %s)', p_limit, p_limit, p_wanted) END)
  INTO v_plan;
  RETURN v_plan;
END $$;

CREATE FUNCTION public.raise_plan_limit(p_owner uuid, p_limit text, p_current bigint,
                                        p_allowed bigint, p_wanted bigint)
RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_plan text := (public.account_plan(p_owner)).id;
BEGIN
  RAISE EXCEPTION 'plan limit reached: %', p_limit USING
    ERRCODE = 'CP001',
    DETAIL = json_build_object('limit', p_limit, 'current', p_current, 'allowed', p_allowed,
                               'plan', v_plan, 'upgrade_to', public.plan_lifting(p_limit, p_wanted))::text;
END $$;

-- Counts the account's rows (all of them, not only those the caller sees) against a limit.
CREATE FUNCTION public.check_count_limit() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_owner uuid;
  v_limit text := TG_ARGV[0];
  v_allowed bigint;
  v_current bigint;
BEGIN
  -- TG_ARGV[1] names the owner column (user_id, or owner_id for team_members).
  v_owner := (to_jsonb(NEW) ->> TG_ARGV[1])::uuid;
  PERFORM public.lock_account_limits(v_owner);
  EXECUTE format('SELECT ($1).%I', v_limit) INTO v_allowed USING public.account_plan(v_owner);
  IF v_allowed IS NULL THEN
    RETURN NEW;  -- unlimited
  END IF;
  IF TG_TABLE_NAME = 'conversations' THEN
    SELECT count(*) INTO v_current FROM public.conversations
    WHERE user_id = v_owner AND created_at >= date_trunc('month', now());
  ELSE
    EXECUTE format('SELECT count(*) FROM public.%I WHERE %I = $1', TG_TABLE_NAME, TG_ARGV[1])
      INTO v_current USING v_owner;
  END IF;
  IF v_current >= v_allowed THEN
    PERFORM public.raise_plan_limit(v_owner, v_limit, v_current, v_allowed, v_current + 1);
  END IF;
  RETURN NEW;
END $$;

CREATE TRIGGER agents_plan_limit BEFORE INSERT ON public.agents
  FOR EACH ROW EXECUTE FUNCTION public.check_count_limit('max_agents', 'user_id');
CREATE TRIGGER knowledge_sources_plan_limit BEFORE INSERT ON public.knowledge_sources
  FOR EACH ROW EXECUTE FUNCTION public.check_count_limit('max_knowledge_sources', 'user_id');
CREATE TRIGGER team_members_plan_limit BEFORE INSERT ON public.team_members
  FOR EACH ROW EXECUTE FUNCTION public.check_count_limit('max_team_members', 'owner_id');
CREATE TRIGGER conversations_plan_limit BEFORE INSERT ON public.conversations
  FOR EACH ROW EXECUTE FUNCTION public.check_count_limit('max_conversations_per_month', 'user_id');

-- Stored bytes of knowledge files, against the plan's storage.
CREATE FUNCTION public.check_storage_limit() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_allowed bigint;
  v_current bigint;
BEGIN
  IF NEW.byte_size = 0 OR (TG_OP = 'UPDATE' AND NEW.byte_size <= OLD.byte_size) THEN
    RETURN NEW;
  END IF;
  PERFORM public.lock_account_limits(NEW.user_id);
  v_allowed := (public.account_plan(NEW.user_id)).max_storage_bytes;
  IF v_allowed IS NULL THEN
    RETURN NEW;
  END IF;
  SELECT coalesce(sum(byte_size), 0) INTO v_current FROM public.knowledge_sources
  WHERE user_id = NEW.user_id AND id <> NEW.id;
  IF v_current + NEW.byte_size > v_allowed THEN
    PERFORM public.raise_plan_limit(NEW.user_id, 'max_storage_bytes', v_current, v_allowed, v_current + NEW.byte_size);
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER knowledge_sources_storage_limit BEFORE INSERT OR UPDATE OF byte_size ON public.knowledge_sources
  FOR EACH ROW EXECUTE FUNCTION public.check_storage_limit();

-- Features: a row that needs a feature the plan lacks is refused.
CREATE FUNCTION public.check_plan_feature() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_feature text := TG_ARGV[0];
  v_has boolean;
BEGIN
  -- Agents need custom branding only to hide the "powered by" line.
  IF TG_TABLE_NAME = 'agents'
     AND NOT coalesce((to_jsonb(NEW) #>> '{appearance,hideBranding}')::boolean, false) THEN
    RETURN NEW;
  END IF;
  EXECUTE format('SELECT ($1).%I', v_feature) INTO v_has USING public.account_plan(NEW.user_id);
  IF NOT v_has THEN
    PERFORM public.raise_plan_limit(NEW.user_id, v_feature, 0, 0, 1);
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER webhooks_plan_feature BEFORE INSERT ON public.webhooks
  FOR EACH ROW EXECUTE FUNCTION public.check_plan_feature('webhooks');
CREATE TRIGGER api_keys_plan_feature BEFORE INSERT ON public.api_keys
  FOR EACH ROW EXECUTE FUNCTION public.check_plan_feature('api_access');
CREATE TRIGGER agents_plan_branding BEFORE INSERT OR UPDATE OF appearance ON public.agents
  FOR EACH ROW EXECUTE FUNCTION public.check_plan_feature('custom_branding');

-- Current usage of an account against every limit of its plan (for the subscription endpoint).
CREATE FUNCTION public.account_usage(p_owner uuid)
RETURNS TABLE (agents bigint, conversations_this_month bigint, knowledge_sources bigint,
               team_members bigint, storage_bytes bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT
    (SELECT count(*) FROM public.agents WHERE user_id = p_owner),
    (SELECT count(*) FROM public.conversations WHERE user_id = p_owner AND created_at >= date_trunc('month', now())),
    (SELECT count(*) FROM public.knowledge_sources WHERE user_id = p_owner),
    (SELECT count(*) FROM public.team_members WHERE owner_id = p_owner),
    (SELECT coalesce(sum(byte_size), 0)::bigint FROM public.knowledge_sources WHERE user_id = p_owner)
  WHERE public.has_account_access(p_owner)
$$;

-- Invitations are accepted by the invited user, who is not yet a member and so cannot update
-- the row through the team policies: this narrow door matches the invitation to the caller's
-- verified email.
CREATE FUNCTION public.accept_invitation(p_invitation uuid) RETURNS public.team_members
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_row public.team_members;
BEGIN
  UPDATE public.team_members tm
  SET member_id = auth.uid(), status = 'active', accepted_at = now()
  WHERE tm.id = p_invitation AND tm.status = 'pending'
    AND lower(tm.invited_email) = (SELECT lower(u.email) FROM public.users u WHERE u.id = auth.uid())
  RETURNING tm.* INTO v_row;
  RETURN v_row;
END $$;

-- Invitations addressed to the caller's email are visible to them (to accept them).
CREATE POLICY team_invitee_read ON public.team_members FOR SELECT TO chatpad_app
  USING (status = 'pending' AND lower(invited_email) =
         (SELECT lower(u.email) FROM public.users u WHERE u.id = (SELECT auth.uid())));
