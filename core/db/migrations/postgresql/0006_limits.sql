-- PostgreSQL twin of ../0006_limits.sql: limits per role, overrides per user (decisions
-- 40 and 41). A role without a row has no limits; in user_limits NULL inherits the role's.

CREATE TABLE role_limits (
    role VARCHAR PRIMARY KEY,
    allowed_models VARCHAR,
    budget_usd DECIMAL(18, 6),
    budget_period VARCHAR NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE user_limits (
    user_id UUID PRIMARY KEY,
    allowed_models VARCHAR,
    budget_usd DECIMAL(18, 6),
    budget_period VARCHAR,
    updated_at TIMESTAMP NOT NULL
);

-- The spend of one user in one period is summed from here when a budget is first used.
CREATE INDEX usage_records_user_time ON usage_records (user_id, occurred_at);
