-- Undoes 20261203000001: the rollups forget when their last call was; agents' `last_active`
-- moves on verifications only again.

ALTER TABLE organization_daily_metrics DROP COLUMN last_call_at;
ALTER TABLE endpoint_daily_metrics DROP COLUMN last_call_at;
ALTER TABLE endpoint_hourly_metrics DROP COLUMN last_call_at;
ALTER TABLE agent_daily_metrics DROP COLUMN last_call_at;
ALTER TABLE agent_activity_metrics DROP COLUMN last_call_at;
