-- Undoes 20261128000002: every recorded API call (all partitions of `api_calls`), the batch
-- ledger and the hourly and organization rollups are deleted. Identity data is untouched.

DROP TABLE endpoint_hourly_metrics;
DROP TABLE organization_daily_metrics;
DROP TABLE agent_activity_metrics;
DROP TABLE ingest_batches;
DROP TABLE api_calls; -- with its partitions
