-- Undoes 20261128000004: the daily per-agent and per-endpoint rollups go (they can be rebuilt
-- from the hourly rows by applying this migration again), the hourly tables get their default
-- fill factor back.

DROP TABLE endpoint_daily_metrics;
DROP TABLE agent_daily_metrics;

ALTER TABLE agent_activity_metrics RESET (fillfactor);
ALTER TABLE endpoint_hourly_metrics RESET (fillfactor);
ALTER TABLE organization_daily_metrics RESET (fillfactor);
