-- Chunk vectors stored in the row instead of in TOAST.
--
-- pgvector gives `vector` EXTERNAL storage, and a chunk row (a 384-dimension vector is 1.5 KB,
-- plus its text and tsvector) passes the 2 KB toast threshold, so Postgres moved every vector
-- out of line: the exact search of an agent's chunks (agents up to 20,000 chunks, most of
-- them) fetched each vector from the toast table one by one. On aws-docs-qa (4,507 chunks,
-- `chatpad-retrieval-bench`), with the vectors in the row: exact vector search p50 52 -> 16
-- ms, hybrid 118 -> 57 ms, the same results. (HNSW searches read vectors from their index and
-- were not affected.)
--
-- MAIN keeps a value in the row unless the row cannot fit a page otherwise; the table's toast
-- target lets rows grow to a page before anything is moved out, and then the text and
-- tsvector (EXTENDED) go first. Rows written before this migration keep their vectors out of
-- line until rewritten (a re-sync of their source rewrites them).
ALTER TABLE public.knowledge_chunks ALTER COLUMN embedding SET STORAGE MAIN;
ALTER TABLE public.knowledge_chunks SET (toast_tuple_target = 8160);
