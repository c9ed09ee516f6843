-- PostgreSQL twin of ../0002_generation.sql: DOUBLE is DOUBLE PRECISION here. Unlike
-- DuckDB, PostgreSQL has no zone maps, so the time-ordered usage rows get a BRIN index
-- (tiny, for the admin stats' date window) and a per-user one (the dashboard).

CREATE TABLE generations (
    id UUID PRIMARY KEY,
    user_id UUID NOT NULL,
    kind VARCHAR NOT NULL CHECK (kind IN ('text', 'chat', 'image', 'video')),
    model VARCHAR NOT NULL,
    prompt VARCHAR NOT NULL,
    params VARCHAR NOT NULL,                -- JSON: the request's options
    status VARCHAR NOT NULL,                -- completed | failed | pending | in_progress | cancelled | expired
    output_text VARCHAR,
    media VARCHAR NOT NULL,                 -- JSON list of stored files: [{"file", "type"}]
    error_code VARCHAR,
    error_message VARCHAR,
    tokens_in INTEGER,
    tokens_out INTEGER,
    cost DOUBLE PRECISION,                  -- USD as reported by OpenRouter
    created_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP
);
CREATE INDEX generations_user ON generations (user_id);
CREATE INDEX generations_created_at ON generations USING brin (created_at);

CREATE TABLE video_jobs (
    id UUID PRIMARY KEY,                    -- the same id as its generation
    user_id UUID NOT NULL,
    model VARCHAR NOT NULL,
    upstream_id VARCHAR NOT NULL,
    polling_url VARCHAR NOT NULL,           -- absolute, resolved against OPENROUTER_BASE_URL
    status VARCHAR NOT NULL,                -- OpenRouter's: pending | in_progress | completed | failed | cancelled | expired
    error VARCHAR,
    cost DOUBLE PRECISION,
    upstream_generation_id VARCHAR,
    video_file VARCHAR,                     -- relative to MEDIA_ROOT, once downloaded
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    last_polled_at TIMESTAMP,
    completed_at TIMESTAMP
);
CREATE INDEX video_jobs_polling_url ON video_jobs (polling_url);

-- One row per call to OpenRouter. No primary key: rows arrive in batches and are only
-- ever aggregated.
CREATE SEQUENCE usage_seq;
CREATE TABLE usage_records (
    id BIGINT NOT NULL DEFAULT nextval('usage_seq'),
    occurred_at TIMESTAMP NOT NULL,
    user_id UUID,
    kind VARCHAR NOT NULL,                  -- models | text | chat | image | video | video_poll | video_download
    model VARCHAR,
    tokens_in INTEGER,
    tokens_out INTEGER,
    cost DOUBLE PRECISION,                  -- USD as reported by OpenRouter (NULL when it said nothing)
    latency_ms DOUBLE PRECISION NOT NULL,
    status VARCHAR NOT NULL,                -- ok | error
    error_code VARCHAR,
    generation_id UUID
);
CREATE INDEX usage_records_occurred_at ON usage_records USING brin (occurred_at);
CREATE INDEX usage_records_user ON usage_records (user_id, occurred_at);

CREATE TABLE conversations (
    id UUID PRIMARY KEY,
    user_id UUID NOT NULL,
    title VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX conversations_user ON conversations (user_id);

CREATE SEQUENCE conversation_messages_seq;
CREATE TABLE conversation_messages (
    id BIGINT PRIMARY KEY DEFAULT nextval('conversation_messages_seq'),
    conversation_id UUID NOT NULL,
    role VARCHAR NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX conversation_messages_conversation ON conversation_messages (conversation_id);
