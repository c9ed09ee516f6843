-- The call ledger: a generation row is written as 'pending' while its upstream call runs
-- and settled in one commit before the client hears of it; what a crash leaves pending is
-- booked as 'interrupted' at start-up. Each call carries the upper bound of its cost.
-- generations is rebuilt because DuckDB cannot drop the CHECK on kind (new kinds come with
-- new features); kinds are checked by the code that writes them.

CREATE TABLE generations_rebuilt (
    id UUID PRIMARY KEY,
    user_id UUID NOT NULL,
    kind VARCHAR NOT NULL,                  -- text | chat | image | video
    model VARCHAR NOT NULL,
    prompt VARCHAR NOT NULL,
    params VARCHAR NOT NULL,                -- JSON: the request's options
    status VARCHAR NOT NULL,                -- pending | in_progress | completed | failed | cancelled | expired | interrupted
    output_text VARCHAR,
    media VARCHAR NOT NULL,                 -- JSON list of stored files: [{"file", "type"}]
    error_code VARCHAR,
    error_message VARCHAR,
    tokens_in INTEGER,
    tokens_out INTEGER,
    cost DOUBLE,                            -- USD as reported by OpenRouter
    created_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    reserved_cost DOUBLE,                   -- upper bound of the call's cost, from the catalogue's pricing
    conversation_id UUID                    -- the chat conversation this turn belongs to, if any
);
INSERT INTO generations_rebuilt
    SELECT id, user_id, kind, model, prompt, params, status, output_text, media, error_code,
           error_message, tokens_in, tokens_out, cost, created_at, finished_at, NULL, NULL
    FROM generations;
DROP TABLE generations;
ALTER TABLE generations_rebuilt RENAME TO generations;
CREATE INDEX generations_user ON generations (user_id);

ALTER TABLE video_jobs ADD COLUMN reserved_cost DOUBLE;
-- Consecutive polls the upstream answered 404 (it no longer knows the job).
ALTER TABLE video_jobs ADD COLUMN missed_polls INTEGER DEFAULT 0;
