-- ChatPad schema, part 11: webhook events, their delivery log, and what lead capture needs.
--
-- Emission. Triggers on conversations, messages, leads and takeovers call
-- `emit_webhook_event`, in the same transaction as the change: whichever function or script
-- inserts the row, the event exists exactly when the change commits. An event gets one id
-- (`event_id`, sent as the `webhook-id` header) for life: retries and replays reuse it, so a
-- receiver detects duplicates by it. For each enabled endpoint of the account subscribed to
-- the type (and only when the account's plan has the webhooks feature) the event becomes one
-- `webhook_deliveries` row plus one outbox row `{"op": "deliver", "deliveryId", "attempt": 1}`.
--
-- Delivery. The webhook worker leases a delivery for one attempt (`webhook_delivery_start`),
-- POSTs it, and records the outcome (`webhook_delivery_finish`). A failed attempt that may be
-- retried writes the next attempt's outbox row with `available_at` = when it is due, in the
-- same transaction as the outcome. The relay (`outbox_claim_upcoming`) sends rows due within
-- the next 15 minutes with SQS `DelaySeconds` = the time left, so short waits (5 s, 5 min) are
-- exact and long ones (hours) wait in the outbox, not in SQS (which delays at most 900 s).

-- ---------------------------------------------------------------------------------------------
-- The outbox learns about future rows: a lease of its own instead of reusing available_at.
-- ---------------------------------------------------------------------------------------------
ALTER TABLE public.outbox ADD COLUMN leased_until timestamptz;

-- Leases rows due within `p_horizon_seconds` and not leased by another relay; `delay_seconds`
-- is how long SQS should hold each message (0 when due already). Service role only.
CREATE FUNCTION public.outbox_claim_upcoming(p_limit int, p_horizon_seconds int DEFAULT 900,
                                             p_lease_seconds int DEFAULT 60)
RETURNS TABLE (id bigint, queue text, payload jsonb, attempts int, delay_seconds int)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  PERFORM public.require_service();
  RETURN QUERY
  WITH due AS (
    SELECT d.id, d.available_at FROM public.outbox d
    WHERE d.available_at <= now() + make_interval(secs => p_horizon_seconds)
      AND (d.leased_until IS NULL OR d.leased_until <= now())
    ORDER BY d.available_at, d.id LIMIT p_limit FOR UPDATE SKIP LOCKED
  )
  UPDATE public.outbox o
  SET leased_until = now() + make_interval(secs => p_lease_seconds), attempts = o.attempts + 1
  FROM due WHERE o.id = due.id
  RETURNING o.id, o.queue, o.payload, o.attempts,
            greatest(0, ceil(extract(epoch FROM due.available_at - now())))::int;
END $$;

-- The first relay's claim honours the new lease too (a relay of the previous release may still
-- run during a deployment).
CREATE OR REPLACE FUNCTION public.outbox_claim(p_limit int, p_lease_seconds int DEFAULT 60)
RETURNS TABLE (id bigint, queue text, payload jsonb, attempts int)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  PERFORM public.require_service();
  RETURN QUERY
  UPDATE public.outbox o
  SET available_at = now() + make_interval(secs => p_lease_seconds), attempts = o.attempts + 1
  WHERE o.id IN (SELECT d.id FROM public.outbox d
                 WHERE d.available_at <= now() AND (d.leased_until IS NULL OR d.leased_until <= now())
                 ORDER BY d.id LIMIT p_limit FOR UPDATE SKIP LOCKED)
  RETURNING o.id, o.queue, o.payload, o.attempts;
END $$;

-- ---------------------------------------------------------------------------------------------
-- The delivery log.
-- ---------------------------------------------------------------------------------------------
ALTER TABLE public.webhook_deliveries
  -- Set while a worker is attempting the delivery; a worker that died leaves it to expire.
  ADD COLUMN in_flight_until timestamptz,
  ADD COLUMN last_attempt_at timestamptz;
CREATE INDEX webhook_deliveries_account_idx ON public.webhook_deliveries (user_id, created_at DESC);

-- Every attempt of every delivery: what the receiver answered and how long it took.
CREATE TABLE public.webhook_attempts (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  delivery_id     uuid NOT NULL REFERENCES public.webhook_deliveries (id) ON DELETE CASCADE,
  webhook_id      uuid NOT NULL REFERENCES public.webhooks (id) ON DELETE CASCADE,
  user_id         uuid NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
  attempt         int NOT NULL CHECK (attempt >= 1),
  -- The HTTP status, or NULL when no response came (timeout, refused, connection error).
  response_status int,
  response_ms     int NOT NULL CHECK (response_ms >= 0),
  error           text CHECK (length(error) <= 2000),
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_attempts_delivery_idx ON public.webhook_attempts (delivery_id, attempt);

-- ---------------------------------------------------------------------------------------------
-- Emission.
-- ---------------------------------------------------------------------------------------------
-- UTC, millisecond precision, as in every payload.
CREATE FUNCTION public.webhook_time(p_at timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- Internal (triggers only): one event, fanned out to the subscribed endpoints.
CREATE FUNCTION public.emit_webhook_event(p_owner uuid, p_type text, p_data jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_event_id uuid;
BEGIN
  -- Most accounts have no endpoint: this index lookup is all they pay.
  IF NOT EXISTS (SELECT 1 FROM public.webhooks w
                 WHERE w.user_id = p_owner AND w.enabled AND p_type = ANY (w.events)) THEN
    RETURN;
  END IF;
  IF NOT (public.account_plan(p_owner)).webhooks THEN
    RETURN;  -- a downgraded account keeps its endpoints but receives nothing
  END IF;
  v_event_id := gen_random_uuid();
  WITH created AS (
    INSERT INTO public.webhook_deliveries (webhook_id, user_id, event_id, event_type, payload,
                                           next_attempt_at)
    SELECT w.id, p_owner, v_event_id, p_type,
           jsonb_build_object('id', v_event_id, 'type', p_type,
                              'timestamp', public.webhook_time(now()), 'data', p_data),
           now()
    FROM public.webhooks w
    WHERE w.user_id = p_owner AND w.enabled AND p_type = ANY (w.events)
    RETURNING id
  )
  INSERT INTO public.outbox (queue, payload)
  SELECT 'webhooks', jsonb_build_object('op', 'deliver', 'deliveryId', c.id, 'attempt', 1)
  FROM created c;
END $$;
REVOKE EXECUTE ON FUNCTION public.emit_webhook_event(uuid, text, jsonb) FROM PUBLIC;

CREATE FUNCTION public.conversation_webhook_events() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM public.emit_webhook_event(NEW.user_id, 'conversation.created', jsonb_build_object(
      'conversationId', NEW.id, 'agentId', NEW.agent_id, 'visitorId', NEW.visitor_id,
      'status', NEW.status, 'metadata', NEW.metadata,
      'createdAt', public.webhook_time(NEW.created_at)));
  ELSE
    PERFORM public.emit_webhook_event(NEW.user_id, 'conversation.closed', jsonb_build_object(
      'conversationId', NEW.id, 'agentId', NEW.agent_id, 'visitorId', NEW.visitor_id,
      'summary', NEW.summary,
      'closedAt', public.webhook_time(coalesce(NEW.closed_at, now()))));
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER conversations_webhook_created AFTER INSERT ON public.conversations
  FOR EACH ROW EXECUTE FUNCTION public.conversation_webhook_events();
CREATE TRIGGER conversations_webhook_closed AFTER UPDATE OF status ON public.conversations
  FOR EACH ROW WHEN (NEW.status = 'closed' AND OLD.status <> 'closed')
  EXECUTE FUNCTION public.conversation_webhook_events();

-- A visitor's message (role `user`); the bot's answers and team members' replies are not
-- "received".
CREATE FUNCTION public.message_webhook_event() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  PERFORM public.emit_webhook_event(NEW.user_id, 'message.received', jsonb_build_object(
    'messageId', NEW.id, 'conversationId', NEW.conversation_id, 'agentId', NEW.agent_id,
    'visitorId', (SELECT c.visitor_id FROM public.conversations c WHERE c.id = NEW.conversation_id),
    'content', NEW.content, 'createdAt', public.webhook_time(NEW.created_at)));
  RETURN NULL;
END $$;
CREATE TRIGGER messages_webhook_received AFTER INSERT ON public.messages
  FOR EACH ROW WHEN (NEW.role = 'user') EXECUTE FUNCTION public.message_webhook_event();

CREATE FUNCTION public.lead_webhook_event() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  PERFORM public.emit_webhook_event(NEW.user_id, 'lead.created', jsonb_build_object(
    'leadId', NEW.id, 'agentId', NEW.agent_id, 'conversationId', NEW.conversation_id,
    'visitorId', NEW.visitor_id, 'name', NEW.name, 'email', NEW.email, 'phone', NEW.phone,
    'fields', NEW.fields, 'status', NEW.status, 'createdAt', public.webhook_time(NEW.created_at)));
  RETURN NULL;
END $$;
CREATE TRIGGER leads_webhook_created AFTER INSERT ON public.leads
  FOR EACH ROW EXECUTE FUNCTION public.lead_webhook_event();

CREATE FUNCTION public.takeover_webhook_events() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_data jsonb := jsonb_build_object(
    'takeoverId', NEW.id, 'conversationId', NEW.conversation_id, 'agentId', NEW.agent_id,
    'takenBy', NEW.taken_by, 'startedAt', public.webhook_time(NEW.started_at));
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM public.emit_webhook_event(NEW.user_id, 'takeover.started', v_data);
  ELSE
    PERFORM public.emit_webhook_event(NEW.user_id, 'takeover.ended', v_data || jsonb_build_object(
      'endedAt', public.webhook_time(NEW.ended_at), 'endAction', NEW.end_action,
      'summary', NEW.summary));
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER takeovers_webhook_started AFTER INSERT ON public.takeovers
  FOR EACH ROW EXECUTE FUNCTION public.takeover_webhook_events();
CREATE TRIGGER takeovers_webhook_ended AFTER UPDATE OF ended_at ON public.takeovers
  FOR EACH ROW WHEN (OLD.ended_at IS NULL AND NEW.ended_at IS NOT NULL)
  EXECUTE FUNCTION public.takeover_webhook_events();

-- ---------------------------------------------------------------------------------------------
-- The worker's side (service role only).
-- ---------------------------------------------------------------------------------------------
-- Leases delivery `p_delivery` for attempt `p_attempt` and returns what to send, or nothing
-- when there is nothing to do: already delivered or given up, that attempt already made (a
-- redelivered message), or another worker holds the lease. Attempt n may also be taken again
-- when the worker that started it died (its lease expired without an outcome). A delivery whose
-- endpoint was disabled meanwhile (or whose account lost the feature) fails here.
CREATE FUNCTION public.webhook_delivery_start(p_delivery uuid, p_attempt int,
                                              p_lease_seconds int DEFAULT 60)
RETURNS TABLE (webhook_id uuid, user_id uuid, url text, secret_ciphertext bytea,
               previous_secret_ciphertext bytea, event_id uuid, event_type text, payload jsonb)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v public.webhook_deliveries;
  w public.webhooks;
BEGIN
  PERFORM public.require_service();
  SELECT * INTO v FROM public.webhook_deliveries d WHERE d.id = p_delivery FOR UPDATE;
  IF NOT FOUND OR v.status NOT IN ('pending', 'retrying') THEN
    RETURN;
  END IF;
  IF NOT ((v.attempts = p_attempt - 1 AND (v.in_flight_until IS NULL OR v.in_flight_until < now()))
          OR (v.attempts = p_attempt AND v.in_flight_until < now())) THEN
    RETURN;
  END IF;
  SELECT * INTO w FROM public.webhooks x WHERE x.id = v.webhook_id;
  IF NOT w.enabled OR NOT (public.account_plan(v.user_id)).webhooks THEN
    UPDATE public.webhook_deliveries d
    SET status = 'failed', next_attempt_at = NULL, in_flight_until = NULL,
        error = CASE WHEN w.enabled THEN 'the account''s plan no longer includes webhooks'
                     ELSE 'the endpoint is disabled' END
    WHERE d.id = p_delivery;
    RETURN;
  END IF;
  UPDATE public.webhook_deliveries d
  SET attempts = p_attempt, in_flight_until = now() + make_interval(secs => p_lease_seconds),
      last_attempt_at = now()
  WHERE d.id = p_delivery;
  RETURN QUERY SELECT w.id, w.user_id, w.url, w.secret_ciphertext,
    CASE WHEN w.previous_secret_expires_at > now() THEN w.previous_secret_ciphertext END,
    v.event_id, v.event_type, v.payload;
END $$;

-- Records attempt `p_attempt`'s outcome: 'succeeded', 'retry' (the next attempt is due at
-- `p_next_at`), 'failed' (no more attempts) or 'gone' (410: failed, and the endpoint is
-- disabled). Endpoint health: a success clears `failing_since`; a failure sets it, and an
-- endpoint that has failed without a single success for 5 days is disabled. Disabling tells
-- the owner through the security log (`webhook.disabled`). Returns false when the attempt's
-- lease had already been taken over (the outcome of the other worker counts).
CREATE FUNCTION public.webhook_delivery_finish(p_delivery uuid, p_attempt int, p_outcome text,
  p_response_status int, p_response_ms int, p_error text, p_next_at timestamptz DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v public.webhook_deliveries;
  v_failing_since timestamptz;
  v_disable text;
BEGIN
  PERFORM public.require_service();
  IF p_outcome NOT IN ('succeeded', 'retry', 'failed', 'gone')
     OR (p_outcome = 'retry') <> (p_next_at IS NOT NULL) THEN
    RAISE EXCEPTION 'invalid outcome % (next attempt %)', p_outcome, p_next_at;
  END IF;
  UPDATE public.webhook_deliveries d
  SET status = CASE p_outcome WHEN 'succeeded' THEN 'succeeded' WHEN 'retry' THEN 'retrying'
                              ELSE 'failed' END,
      response_status = p_response_status, response_ms = p_response_ms,
      error = left(p_error, 2000), next_attempt_at = p_next_at, in_flight_until = NULL
  WHERE d.id = p_delivery AND d.attempts = p_attempt AND d.in_flight_until IS NOT NULL
  RETURNING * INTO v;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  INSERT INTO public.webhook_attempts (delivery_id, webhook_id, user_id, attempt,
                                       response_status, response_ms, error)
  VALUES (v.id, v.webhook_id, v.user_id, p_attempt, p_response_status, p_response_ms,
          left(p_error, 2000));
  IF p_outcome = 'retry' THEN
    INSERT INTO public.outbox (queue, payload, available_at)
    VALUES ('webhooks', jsonb_build_object('op', 'deliver', 'deliveryId', v.id,
                                           'attempt', p_attempt + 1), p_next_at);
  END IF;

  IF p_outcome = 'succeeded' THEN
    UPDATE public.webhooks w SET failing_since = NULL
    WHERE w.id = v.webhook_id AND w.failing_since IS NOT NULL;
    RETURN true;
  END IF;
  UPDATE public.webhooks w SET failing_since = coalesce(w.failing_since, now())
  WHERE w.id = v.webhook_id RETURNING w.failing_since INTO v_failing_since;
  IF p_outcome = 'gone' THEN
    v_disable := 'the endpoint answered 410 Gone';
  ELSIF v_failing_since <= now() - interval '5 days' THEN
    v_disable := 'every delivery failed for 5 days';
  END IF;
  IF v_disable IS NOT NULL THEN
    UPDATE public.webhooks w SET enabled = false, disabled_reason = v_disable
    WHERE w.id = v.webhook_id AND w.enabled;
    IF FOUND THEN
      INSERT INTO public.security_logs (user_id, event_type, resource_type, resource_id, details)
      VALUES (v.user_id, 'webhook.disabled', 'webhook', v.webhook_id::text,
              jsonb_build_object('reason', v_disable, 'deliveryId', v.id,
                                 'responseStatus', p_response_status));
    END IF;
  END IF;
  RETURN true;
END $$;

-- ---------------------------------------------------------------------------------------------
-- The management API's side (account admins).
-- ---------------------------------------------------------------------------------------------
-- Sends a finished delivery (succeeded or failed) once more, with the same event id; the
-- attempt is a single one (no retries follow). Returns 'queued', 'not_found', 'in_progress'
-- (pending or waiting for a retry) or 'endpoint_disabled'.
CREATE FUNCTION public.replay_webhook_delivery(p_delivery uuid) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v public.webhook_deliveries;
BEGIN
  SELECT * INTO v FROM public.webhook_deliveries d
  WHERE d.id = p_delivery
    AND d.user_id = ANY ((SELECT public.accessible_accounts('admin'))::uuid[])
  FOR UPDATE;
  IF NOT FOUND THEN
    RETURN 'not_found';
  END IF;
  IF v.status NOT IN ('succeeded', 'failed') OR v.in_flight_until >= now() THEN
    RETURN 'in_progress';
  END IF;
  IF NOT (SELECT w.enabled FROM public.webhooks w WHERE w.id = v.webhook_id) THEN
    RETURN 'endpoint_disabled';
  END IF;
  UPDATE public.webhook_deliveries d SET status = 'pending', next_attempt_at = now(), error = NULL
  WHERE d.id = p_delivery;
  PERFORM public.outbox_enqueue('webhooks', jsonb_build_object(
    'op', 'deliver', 'deliveryId', v.id, 'attempt', v.attempts + 1, 'replay', true));
  RETURN 'queued';
END $$;

-- ---------------------------------------------------------------------------------------------
-- Lead capture: duplicate submissions are looked up by visitor, newest first.
-- ---------------------------------------------------------------------------------------------
CREATE INDEX leads_visitor_idx ON public.leads (agent_id, visitor_id, created_at DESC);

-- ---------------------------------------------------------------------------------------------
-- Row-level security of the new table: admins read the attempts; only the definer functions
-- above write them.
-- ---------------------------------------------------------------------------------------------
ALTER TABLE public.webhook_attempts ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.webhook_attempts FORCE ROW LEVEL SECURITY;
CREATE POLICY account_read ON public.webhook_attempts FOR SELECT TO chatpad_app
  USING (user_id = ANY ((SELECT public.accessible_accounts('admin'))::uuid[]));
GRANT SELECT ON public.webhook_attempts TO chatpad_app;
DO $$
BEGIN
  EXECUTE format('CREATE POLICY schema_owner ON public.webhook_attempts TO %I USING (true) WITH CHECK (true)', current_user);
END $$;
