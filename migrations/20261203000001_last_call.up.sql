-- The time of the last call in each rollup row, kept by the analytics writers with the rest of
-- the row's traffic, so that an agent's `last_active` follows its API calls (read from its
-- latest daily row) without the writers touching the identity tables.

ALTER TABLE agent_activity_metrics ADD COLUMN last_call_at timestamptz;
ALTER TABLE agent_daily_metrics ADD COLUMN last_call_at timestamptz;
ALTER TABLE endpoint_hourly_metrics ADD COLUMN last_call_at timestamptz;
ALTER TABLE endpoint_daily_metrics ADD COLUMN last_call_at timestamptz;
ALTER TABLE organization_daily_metrics ADD COLUMN last_call_at timestamptz;

-- Rows written before this migration take their value from the raw calls still kept (one scan
-- of `api_calls`); rows older than the raw calls' retention keep NULL.
UPDATE agent_activity_metrics m SET last_call_at = c.last
FROM (SELECT organization_id, agent_id, date_trunc('hour', called_at, 'UTC') AS hour, max(called_at) AS last
      FROM api_calls WHERE agent_id IS NOT NULL GROUP BY 1, 2, 3) c
WHERE m.organization_id = c.organization_id AND m.agent_id = c.agent_id AND m.hour_timestamp = c.hour;

UPDATE agent_daily_metrics m SET last_call_at = c.last
FROM (SELECT organization_id, agent_id, (called_at AT TIME ZONE 'UTC')::date AS date, max(called_at) AS last
      FROM api_calls WHERE agent_id IS NOT NULL GROUP BY 1, 2, 3) c
WHERE m.organization_id = c.organization_id AND m.agent_id = c.agent_id AND m.date = c.date;

UPDATE endpoint_hourly_metrics m SET last_call_at = c.last
FROM (SELECT organization_id, method, endpoint, date_trunc('hour', called_at, 'UTC') AS hour, max(called_at) AS last
      FROM api_calls GROUP BY 1, 2, 3, 4) c
WHERE m.organization_id = c.organization_id AND m.method = c.method AND m.endpoint = c.endpoint
  AND m.hour_timestamp = c.hour;

UPDATE endpoint_daily_metrics m SET last_call_at = c.last
FROM (SELECT organization_id, method, endpoint, (called_at AT TIME ZONE 'UTC')::date AS date, max(called_at) AS last
      FROM api_calls GROUP BY 1, 2, 3, 4) c
WHERE m.organization_id = c.organization_id AND m.method = c.method AND m.endpoint = c.endpoint
  AND m.date = c.date;

UPDATE organization_daily_metrics m SET last_call_at = c.last
FROM (SELECT organization_id, (called_at AT TIME ZONE 'UTC')::date AS date, max(called_at) AS last
      FROM api_calls GROUP BY 1, 2) c
WHERE m.organization_id = c.organization_id AND m.date = c.date;
