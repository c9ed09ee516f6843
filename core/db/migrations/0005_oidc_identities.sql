-- Single sign-on: who a provider's (issuer, sub) is here, and the break-glass admins who may
-- still log in with a password when PASSWORD_LOGIN is off. No foreign keys (see 0001): the
-- repository deletes both with the user.

CREATE TABLE oidc_identities (
    issuer VARCHAR NOT NULL,                -- OIDC_ISSUER at the time of the first login
    sub VARCHAR NOT NULL,                   -- the provider's stable subject identifier
    user_id UUID NOT NULL,
    email VARCHAR,                          -- what the provider last said, for the audit trail
    created_at TIMESTAMP NOT NULL,
    last_login_at TIMESTAMP,
    PRIMARY KEY (issuer, sub)
);
CREATE INDEX oidc_identities_user ON oidc_identities (user_id);

CREATE TABLE password_login_exemptions (
    user_id UUID PRIMARY KEY,               -- set by manage.py createadmin
    granted_at TIMESTAMP NOT NULL
);
