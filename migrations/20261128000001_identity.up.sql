-- Identity: organizations, their users, agents, agent API keys, verification events,
-- trust-score history and the audit trail. Every row belongs to one organization.

CREATE TABLE organizations (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    email            text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
    name             text NOT NULL,
    -- argon2id PHC string.
    password_hash    text NOT NULL,
    role             text NOT NULL CHECK (role IN ('admin', 'manager', 'member', 'viewer')),
    is_active        boolean NOT NULL DEFAULT true,
    last_login_at    timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- Login is by email alone, so an address names one user across all organizations.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_organization_idx ON users (organization_id);

CREATE TABLE agents (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description      text NOT NULL DEFAULT '',
    agent_type       text NOT NULL DEFAULT 'ai_agent',
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'verified', 'suspended', 'revoked')),
    trust_score      double precision NOT NULL DEFAULT 0.5
                     CHECK (trust_score >= 0.0 AND trust_score <= 1.0),
    metadata         jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_by       uuid,
    last_active      timestamptz,
    -- Deleting an agent keeps its history and analytics; it only disappears from the API.
    deleted_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agents_organization_idx ON agents (organization_id, created_at) WHERE deleted_at IS NULL;

CREATE TABLE api_keys (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    agent_id         uuid NOT NULL REFERENCES agents (id),
    name             text NOT NULL DEFAULT '',
    -- SHA-256 of the whole key; the key itself is shown once and never stored.
    key_hash         bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    -- What lists show, e.g. "aim_3f9a…".
    prefix           text NOT NULL,
    created_by       uuid,
    expires_at       timestamptz,
    last_used_at     timestamptz,
    revoked_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_agent_idx ON api_keys (organization_id, agent_id);

CREATE TABLE verification_events (
    id               uuid NOT NULL,
    organization_id  uuid NOT NULL,
    agent_id         uuid NOT NULL,
    action           text NOT NULL,
    resource         text,
    context          jsonb,
    status           text NOT NULL CHECK (status IN ('success', 'failed', 'pending', 'timeout')),
    reason           text,
    duration_ms      double precision NOT NULL DEFAULT 0 CHECK (duration_ms >= 0),
    started_at       timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id)
);
CREATE INDEX verification_events_time_idx ON verification_events (organization_id, started_at);
CREATE INDEX verification_events_agent_idx ON verification_events (organization_id, agent_id, started_at);

-- Written in the same transaction as every trust-score change, the initial score included.
CREATE TABLE trust_score_history (
    id               uuid NOT NULL,
    organization_id  uuid NOT NULL,
    agent_id         uuid NOT NULL,
    trust_score      double precision NOT NULL CHECK (trust_score >= 0.0 AND trust_score <= 1.0),
    previous_score   double precision CHECK (previous_score >= 0.0 AND previous_score <= 1.0),
    change_reason    text NOT NULL DEFAULT '',
    changed_by       uuid,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id)
);
CREATE INDEX trust_score_history_agent_idx ON trust_score_history (organization_id, agent_id, recorded_at);
CREATE INDEX trust_score_history_time_idx ON trust_score_history (organization_id, recorded_at);

-- Who did what to which object. A failed login for an unknown address has no organization.
CREATE TABLE audit_events (
    id               uuid PRIMARY KEY,
    organization_id  uuid,
    actor_type       text NOT NULL CHECK (actor_type IN ('user', 'agent', 'system', 'anonymous')),
    actor_id         uuid,
    action           text NOT NULL,
    target_type      text,
    target_id        uuid,
    details          jsonb NOT NULL DEFAULT '{}'::jsonb,
    ip_address       inet,
    request_id       text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_events_organization_idx ON audit_events (organization_id, created_at);
