-- A hybrid search's two rankings side by side, fused by the caller (issue 5: widget-chat's
-- overhead at 100k chunks).
--
-- V19 let widget-chat rank the question's words on a second connection while the question is
-- embedded, but `search_knowledge_fused` ranked by meaning only once the words were ranked, and
-- fused with a third pass over the chunks: after the embedding, one core finished the word
-- ranking, then ranked by meaning, then fused, while the other waited. Now the word ranking
-- returns its chunks' rows (with their embeddings), the ranking by meaning runs on the
-- question's connection as soon as the embedding is there, beside the end of the word
-- ranking, and the fusion — a sum of reciprocal ranks over at most 80 rows already fetched —
-- is done in Rust (`knowledge::search::fuse`), with no further round trip. The two SQL
-- functions that fused go; `search_knowledge_text` and `search_knowledge_sources` stay the
-- two rankings.

DROP FUNCTION public.search_knowledge_hybrid(uuid, vector, text, float, int, int, int);
DROP FUNCTION public.search_knowledge_fused(uuid, vector, uuid[], float, int, int, int);
