-- ChatPad schema, part 12: human takeover and realtime conversation events.
--
-- Every change a visitor or the team must see live (a message, a takeover starting or ending,
-- the status / needs-human flag / assignment of a conversation) becomes one row of
-- `conversation_events`, written by triggers in the same transaction as the change: whichever
-- function writes the row, the event exists exactly when the change commits. The writer then
-- fans the events of its transaction out to the WebSocket connections (shared/src/realtime);
-- if that fails, nothing is lost: clients catch up with `GET /events?after=<id>`.
--
-- Ordering. `id` is the cursor clients keep. Ids come from a sequence, so two transactions
-- could commit in the opposite order of their ids, and a reader that saw the later id first
-- would skip the earlier one for good. Within one conversation this cannot happen: the
-- trigger locks the conversation row before taking an id, so a conversation's events are
-- numbered in commit order (the lock is held to commit; message inserts already take it
-- through `touch_conversation`).

CREATE TABLE public.conversation_events (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  conversation_id uuid NOT NULL REFERENCES public.conversations (id) ON DELETE CASCADE,
  agent_id        uuid NOT NULL REFERENCES public.agents (id) ON DELETE CASCADE,
  user_id         uuid NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
  type            text NOT NULL CHECK (type IN ('message.created', 'takeover.started',
                                                'takeover.ended', 'conversation.updated')),
  data            jsonb NOT NULL CHECK (jsonb_typeof(data) = 'object'),
  -- The writing transaction: lets the writer read back the events it produced and publish
  -- them after commit (`realtime::events::written_in`).
  xact            xid8 NOT NULL DEFAULT pg_current_xact_id(),
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversation_events_conversation_idx ON public.conversation_events (conversation_id, id);
CREATE INDEX conversation_events_account_idx ON public.conversation_events (user_id, id);
CREATE INDEX conversation_events_xact_idx ON public.conversation_events (xact);

-- Read like conversations (client and up in the account; a visitor its own conversation).
-- Nobody writes events directly: only the SECURITY DEFINER triggers below.
ALTER TABLE public.conversation_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.conversation_events FORCE ROW LEVEL SECURITY;
CREATE POLICY account_read ON public.conversation_events FOR SELECT TO chatpad_app
  USING (user_id = ANY ((SELECT public.accessible_accounts('client'))::uuid[]));
CREATE POLICY widget_read ON public.conversation_events FOR SELECT TO chatpad_app
  USING (agent_id = (SELECT auth.widget_agent_id())
         AND EXISTS (SELECT 1 FROM public.conversations c WHERE c.id = conversation_id
                     AND c.visitor_id = (SELECT auth.visitor_id())));
GRANT SELECT ON public.conversation_events TO chatpad_app;
CREATE POLICY schema_owner ON public.conversation_events TO CURRENT_USER USING (true) WITH CHECK (true);

-- The name a visitor sees for a team member: their display name, else the part of their email
-- before the @ (never the whole address).
CREATE FUNCTION public.public_user_name(p_user uuid) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT coalesce(nullif(btrim(u.display_name), ''), nullif(split_part(u.email, '@', 1), ''),
                  'A team member')
  FROM public.users u WHERE u.id = p_user
$$;
REVOKE ALL ON FUNCTION public.public_user_name(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.public_user_name(uuid) TO chatpad_app;

-- Internal (triggers only): one event for one conversation, numbered in commit order.
CREATE FUNCTION public.emit_conversation_event(p_conversation uuid, p_type text, p_data jsonb)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_agent uuid;
  v_owner uuid;
BEGIN
  SELECT c.agent_id, c.user_id INTO v_agent, v_owner
  FROM public.conversations c WHERE c.id = p_conversation
  FOR NO KEY UPDATE;  -- see the ordering note at the top
  IF v_agent IS NULL THEN
    RETURN;  -- the conversation is being deleted
  END IF;
  INSERT INTO public.conversation_events (conversation_id, agent_id, user_id, type, data)
  VALUES (p_conversation, v_agent, v_owner, p_type, p_data);
END $$;
REVOKE EXECUTE ON FUNCTION public.emit_conversation_event(uuid, text, jsonb) FROM PUBLIC;

-- The message as the widget and the inbox render it (the contract's `data.message`).
CREATE FUNCTION public.message_realtime_event() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  PERFORM public.emit_conversation_event(NEW.conversation_id, 'message.created',
    jsonb_build_object('message', jsonb_build_object(
      'id', NEW.id, 'role', NEW.role, 'content', NEW.content,
      'createdAt', public.webhook_time(NEW.created_at), 'attachments', NEW.attachments,
      'sender', CASE WHEN NEW.sender_id IS NULL THEN NULL
                     ELSE jsonb_build_object('name', public.public_user_name(NEW.sender_id)) END)));
  RETURN NULL;
END $$;
CREATE TRIGGER messages_realtime_created AFTER INSERT ON public.messages
  FOR EACH ROW EXECUTE FUNCTION public.message_realtime_event();

-- New conversations (the inbox lists them) and changes of what the inbox shows.
CREATE FUNCTION public.conversation_realtime_event() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  PERFORM public.emit_conversation_event(NEW.id, 'conversation.updated', jsonb_build_object(
    'status', NEW.status, 'needsHuman', NEW.needs_human, 'assignedTo', NEW.assigned_to));
  RETURN NULL;
END $$;
CREATE TRIGGER conversations_realtime_created AFTER INSERT ON public.conversations
  FOR EACH ROW EXECUTE FUNCTION public.conversation_realtime_event();
CREATE TRIGGER conversations_realtime_updated AFTER UPDATE OF status, needs_human, assigned_to
  ON public.conversations
  FOR EACH ROW WHEN (NEW.status IS DISTINCT FROM OLD.status
                     OR NEW.needs_human IS DISTINCT FROM OLD.needs_human
                     OR NEW.assigned_to IS DISTINCT FROM OLD.assigned_to)
  EXECUTE FUNCTION public.conversation_realtime_event();

CREATE FUNCTION public.takeover_realtime_events() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM public.emit_conversation_event(NEW.conversation_id, 'takeover.started',
      jsonb_build_object('by', jsonb_build_object('name', public.public_user_name(NEW.taken_by))));
  ELSE
    PERFORM public.emit_conversation_event(NEW.conversation_id, 'takeover.ended',
      jsonb_build_object('action', NEW.end_action));
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER takeovers_realtime_started AFTER INSERT ON public.takeovers
  FOR EACH ROW EXECUTE FUNCTION public.takeover_realtime_events();
CREATE TRIGGER takeovers_realtime_ended AFTER UPDATE OF ended_at ON public.takeovers
  FOR EACH ROW WHEN (OLD.ended_at IS NULL AND NEW.ended_at IS NOT NULL)
  EXECUTE FUNCTION public.takeover_realtime_events();

-- The inbox's "needs attention" list: open conversations the bot could not serve — the visitor
-- asked for a person, or an answer fell back (a knowledge gap of this conversation).
CREATE INDEX knowledge_gaps_conversation_idx ON public.knowledge_gaps (conversation_id)
  WHERE conversation_id IS NOT NULL AND resolved_at IS NULL;
