-- A deleted source's chunks leave the agent's search structures behind: its word statistics
-- (V17) still count them, and its own HNSW index (V15) can outlive the size that called for
-- it. The ingest worker syncs both after every source it processes; a deletion now queues the
-- same sync (`syncSearch`, one job per agent and statement, through the outbox so that it runs
-- after the deletion commits: an index build must not hold the deleting transaction). Not for
-- an agent deleted with its sources: its statistics and index go with it already.

CREATE FUNCTION public.enqueue_search_sync() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  PERFORM public.outbox_enqueue('ingest', jsonb_build_object(
    'op', 'syncSearch', 'agentId', d.agent_id, 'userId', d.user_id))
  FROM (SELECT DISTINCT g.agent_id, g.user_id FROM gone g) d
  WHERE EXISTS (SELECT 1 FROM public.agents a WHERE a.id = d.agent_id);
  RETURN NULL;
END $$;

CREATE TRIGGER knowledge_sources_sync_search AFTER DELETE ON public.knowledge_sources
  REFERENCING OLD TABLE AS gone
  FOR EACH STATEMENT EXECUTE FUNCTION public.enqueue_search_sync();
