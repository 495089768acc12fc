-- Trust that the service computes: the inputs it needs that were not kept yet (what an action's
-- own rules decided), an admin override with a reason and an expiry, each organization's trust
-- policy, the factors behind every score written, alerts, and webhooks with their outbox.

-- Every factor's value and weight behind a score the service wrote; NULL for rows written
-- before this migration and for scores typed by a user without an override.
ALTER TABLE trust_score_history ADD COLUMN metadata jsonb;

-- What the organization's action rules said, whatever the agent's status and score then
-- decided: the only outcome the verification factor counts, so a low score cannot feed on the
-- refusals it causes. NULL for events recorded before this migration.
ALTER TABLE verification_events
    ADD COLUMN rule_outcome text CHECK (rule_outcome IN ('allowed', 'denied'));

-- The same outcomes per agent and hour, kept with `verifications_count` in the verification's
-- transaction, so scoring reads rollups and never scans events.
ALTER TABLE agent_activity_metrics
    ADD COLUMN rules_allowed_count bigint NOT NULL DEFAULT 0,
    ADD COLUMN rules_denied_count bigint NOT NULL DEFAULT 0;

-- An admin's override holds the score at its value until it expires (NULL: until removed).
-- `trust_factors` are the factors behind the score last written by the service, so the next
-- change can name the factor that moved it most without reading the history.
ALTER TABLE agents
    ADD COLUMN trust_factors jsonb,
    ADD COLUMN trust_override_score double precision
        CHECK (trust_override_score >= 0.0 AND trust_override_score <= 1.0),
    ADD COLUMN trust_override_reason text,
    ADD COLUMN trust_override_expires_at timestamptz,
    ADD COLUMN trust_override_by uuid,
    ADD CONSTRAINT agents_trust_override_whole
        CHECK ((trust_override_score IS NULL) = (trust_override_reason IS NULL));

-- One policy per organization; none stored means the defaults (aim_trust::TrustPolicy).
CREATE TABLE trust_policies (
    organization_id  uuid PRIMARY KEY REFERENCES organizations (id),
    policy           jsonb NOT NULL,
    updated_by       uuid,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE alerts (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    agent_id         uuid NOT NULL REFERENCES agents (id),
    rule             text NOT NULL CHECK (rule IN ('score_below', 'score_drop',
                         'error_rate_spike', 'volume_anomaly', 'suspended')),
    status           text NOT NULL DEFAULT 'open'
                     CHECK (status IN ('open', 'acknowledged', 'resolved')),
    message          text NOT NULL,
    details          jsonb NOT NULL DEFAULT '{}'::jsonb,
    opened_at        timestamptz NOT NULL,
    acknowledged_at  timestamptz,
    acknowledged_by  uuid,
    resolved_at      timestamptz,
    resolved_by      uuid
);
-- One alert per agent and rule until it is resolved, however often the condition is seen.
CREATE UNIQUE INDEX alerts_one_unresolved_idx ON alerts (organization_id, agent_id, rule)
    WHERE status <> 'resolved';
CREATE INDEX alerts_organization_idx ON alerts (organization_id, opened_at);

CREATE TABLE webhooks (
    id                          uuid PRIMARY KEY,
    organization_id             uuid NOT NULL REFERENCES organizations (id),
    url                         text NOT NULL CHECK (length(url) BETWEEN 1 AND 2000),
    description                 text NOT NULL DEFAULT '',
    events                      text[] NOT NULL,
    -- AES-256-GCM under AIM_WEBHOOK_ENCRYPTION_KEY: a 12-byte nonce, then ciphertext and tag.
    -- Encrypted, not hashed: signing needs the secret back.
    secret_encrypted            bytea NOT NULL,
    -- After a rotation the old secret also signs until this time, so receivers can switch.
    previous_secret_encrypted   bytea,
    previous_secret_expires_at  timestamptz,
    enabled                     boolean NOT NULL DEFAULT true,
    disabled_reason             text,
    consecutive_failures        integer NOT NULL DEFAULT 0,
    created_by                  uuid,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_organization_idx ON webhooks (organization_id, created_at);

-- The outbox: written in the transaction of the alert or transition it announces, so a crash
-- loses none; replicas claim due rows with FOR UPDATE SKIP LOCKED.
CREATE TABLE webhook_deliveries (
    id                uuid PRIMARY KEY,
    organization_id   uuid NOT NULL,
    webhook_id        uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_type        text NOT NULL,
    payload           jsonb NOT NULL,
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts          integer NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz NOT NULL,
    last_attempt_at   timestamptz,
    last_status_code  integer,
    last_error        text,
    delivered_at      timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_webhook_idx
    ON webhook_deliveries (organization_id, webhook_id, created_at);
