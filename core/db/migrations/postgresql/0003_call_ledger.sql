-- PostgreSQL twin of ../0003_call_ledger.sql. DuckDB had to rebuild generations to drop
-- the CHECK on kind; PostgreSQL drops it in place. The new columns end up last on both.

ALTER TABLE generations DROP CONSTRAINT generations_kind_check;
ALTER TABLE generations ADD COLUMN reserved_cost DOUBLE PRECISION;  -- upper bound of the call's cost
ALTER TABLE generations ADD COLUMN conversation_id UUID;            -- the chat conversation of this turn

ALTER TABLE video_jobs ADD COLUMN reserved_cost DOUBLE PRECISION;
-- Consecutive polls the upstream answered 404 (it no longer knows the job).
ALTER TABLE video_jobs ADD COLUMN missed_polls INTEGER DEFAULT 0;
