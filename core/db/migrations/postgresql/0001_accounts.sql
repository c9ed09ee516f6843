-- PostgreSQL twin of ../0001_accounts.sql: the same tables and columns. No foreign keys
-- either: the repository keeps integrity the same way on both engines.

CREATE TABLE users (
    id UUID PRIMARY KEY,
    email VARCHAR NOT NULL,
    email_key VARCHAR NOT NULL UNIQUE,      -- lower(email): uniqueness is case-insensitive
    password_hash VARCHAR NOT NULL,
    role VARCHAR NOT NULL CHECK (role IN ('user', 'admin')),
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMP NOT NULL,          -- all timestamps are UTC, without time zone
    updated_at TIMESTAMP NOT NULL,
    last_login_at TIMESTAMP
);

CREATE TABLE refresh_tokens (
    jti VARCHAR PRIMARY KEY,
    user_id UUID NOT NULL,
    family VARCHAR NOT NULL,                -- every rotation of one login shares a family
    issued_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP,
    replaced_by VARCHAR
);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);

CREATE TABLE api_keys (
    id UUID PRIMARY KEY,
    user_id UUID NOT NULL,
    name VARCHAR NOT NULL,
    prefix VARCHAR NOT NULL,                -- shown to people: "agw_3f9a2c1d"
    key_hash VARCHAR NOT NULL UNIQUE,       -- sha256 of the whole key; the key itself is never stored
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP
);
CREATE INDEX api_keys_user ON api_keys (user_id);

CREATE SEQUENCE audit_log_seq;
CREATE TABLE audit_log (
    id BIGINT PRIMARY KEY DEFAULT nextval('audit_log_seq'),
    occurred_at TIMESTAMP NOT NULL,
    actor_id UUID,                          -- NULL for the command line (createadmin)
    actor_email VARCHAR,
    action VARCHAR NOT NULL,                -- e.g. user.role_changed, user.deleted, tokens.purged
    target_type VARCHAR,
    target_id VARCHAR,
    target_label VARCHAR,
    detail VARCHAR,                         -- JSON text
    ip VARCHAR
);
CREATE INDEX audit_log_occurred_at ON audit_log (occurred_at);
