-- The two rankings of a hybrid search side by side, fused apart (issue 5: widget-chat's
-- overhead at 100k chunks).
--
-- V19 let widget-chat rank the question's words on a second connection while the question is
-- embedded, but `search_knowledge_fused` still ranked by meaning only once the words were
-- ranked: after the embedding, one core did the rest of the word ranking, then the vector
-- ranking, then the fusion, while the other waited. Now the vector ranking runs on the
-- question's connection as soon as the embedding is there, beside the end of the word
-- ranking, and `fuse_knowledge_rankings` fuses the two id lists.
-- `search_knowledge_hybrid` keeps its signature and results; `search_knowledge_fused` goes
-- (widget-chat was its only caller besides the hybrid search).

CREATE FUNCTION public.fuse_knowledge_rankings(
  p_agent_id uuid,
  p_query_embedding vector,
  -- `search_knowledge_sources`'s chunk ids, best first.
  p_vector_ranking uuid[],
  -- `search_knowledge_text`'s chunk ids, best first.
  p_text_ranking uuid[],
  p_match_count int DEFAULT 5,
  p_rrf_k int DEFAULT 60,
  p_depth int DEFAULT 40
) RETURNS TABLE (id uuid, source_id uuid, source text, title text, content text, type text,
                 location jsonb, similarity float, score float)
LANGUAGE sql STABLE
ROWS 5
SET search_path = public, pg_temp
SET jit = off
AS $$
  -- Reciprocal rank fusion: each list adds 1 / (k + rank) for the chunks it found.
  WITH ranked AS (
    SELECT v.id, 1.0 / (p_rrf_k + v.rank) AS part
    FROM unnest(p_vector_ranking[1:greatest(p_depth, p_match_count)]) WITH ORDINALITY AS v(id, rank)
    UNION ALL
    SELECT t.id, 1.0 / (p_rrf_k + t.rank)
    FROM unnest(p_text_ranking[1:greatest(p_depth, p_match_count)]) WITH ORDINALITY AS t(id, rank)
  ), fused AS (
    SELECT r.id, sum(r.part) AS score FROM ranked r GROUP BY r.id
  )
  SELECT c.id, c.source_id, s.source, s.title, c.content, s.type, c.location,
         (1 - (c.embedding <=> p_query_embedding))::float AS similarity,
         f.score::float
  FROM fused f
  -- The ids come from the caller: only the agent's chunks in its current model count (and
  -- row-level security still decides what the caller may read).
  JOIN public.knowledge_chunks c ON c.id = f.id AND c.agent_id = p_agent_id
  JOIN public.agents a ON a.id = p_agent_id AND a.embedding_model = c.embedding_model
  JOIN public.knowledge_sources s ON s.id = c.source_id
  ORDER BY f.score DESC, c.embedding <=> p_query_embedding
  LIMIT p_match_count
$$;

CREATE OR REPLACE FUNCTION public.search_knowledge_hybrid(
  p_agent_id uuid,
  p_query_embedding vector,
  p_query_text text,
  p_match_threshold float DEFAULT 0.3,
  p_match_count int DEFAULT 5,
  p_rrf_k int DEFAULT 60,
  p_depth int DEFAULT 40
) RETURNS TABLE (id uuid, source_id uuid, source text, title text, content text, type text,
                 location jsonb, similarity float, score float)
LANGUAGE sql STABLE
ROWS 5
SET search_path = public, pg_temp
SET jit = off
AS $$
  SELECT f.* FROM public.fuse_knowledge_rankings(
    p_agent_id, p_query_embedding,
    ARRAY(SELECT v.id
          FROM public.search_knowledge_sources(p_agent_id, p_query_embedding, p_match_threshold,
                                               greatest(p_depth, p_match_count)) v
          ORDER BY v.similarity DESC, v.id),
    ARRAY(SELECT t.id
          FROM public.search_knowledge_text(p_agent_id, p_query_text,
                                            greatest(p_depth, p_match_count)) t
          ORDER BY t.rank_score DESC, t.id),
    p_match_count, p_rrf_k, p_depth) f
$$;

DROP FUNCTION public.search_knowledge_fused(uuid, vector, uuid[], float, int, int, int);
