DROP TABLE webhook_deliveries;
DROP TABLE webhooks;
DROP TABLE alerts;
DROP TABLE trust_policies;
ALTER TABLE agents
    DROP CONSTRAINT agents_trust_override_whole,
    DROP COLUMN trust_factors,
    DROP COLUMN trust_override_score,
    DROP COLUMN trust_override_reason,
    DROP COLUMN trust_override_expires_at,
    DROP COLUMN trust_override_by;
ALTER TABLE agent_activity_metrics
    DROP COLUMN rules_allowed_count,
    DROP COLUMN rules_denied_count;
ALTER TABLE verification_events DROP COLUMN rule_outcome;
ALTER TABLE trust_score_history DROP COLUMN metadata;
