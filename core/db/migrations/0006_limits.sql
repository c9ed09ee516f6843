-- Spend and access control (decisions 40 and 41): limits per role, overrides per user.
-- A role without a row has no limits; in user_limits a NULL field inherits the role's.

CREATE TABLE role_limits (
    role VARCHAR PRIMARY KEY,               -- user | admin
    allowed_models VARCHAR,                 -- JSON list of model-id patterns; NULL: every model
    budget_usd DECIMAL(18, 6),              -- NULL: no budget
    budget_period VARCHAR NOT NULL,         -- day | week | month (UTC calendar periods)
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE user_limits (
    user_id UUID PRIMARY KEY,
    allowed_models VARCHAR,                 -- NULL: the role's
    budget_usd DECIMAL(18, 6),              -- NULL: the role's
    budget_period VARCHAR,                  -- NULL: the role's
    updated_at TIMESTAMP NOT NULL
);
