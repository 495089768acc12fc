-- Analytics: raw calls partitioned by day, the batch ledger, and the rollups the ingest
-- writers maintain in the same transaction as the raw rows. No triggers: rollups are computed
-- in Rust per batch. Every analytics table has organization_id in its primary key so that it can
-- be distributed by organization.

-- One row per recorded API call. No primary key and no foreign keys: the ingest ledger makes
-- writes exactly-once, and any unique index would have to include called_at anyway.
CREATE TABLE api_calls (
    id                   uuid NOT NULL,
    organization_id      uuid NOT NULL,
    agent_id             uuid,
    user_id              uuid,
    method               text NOT NULL,
    -- The route template, e.g. /api/v1/agents/{id}; never the raw path or query string.
    endpoint             text NOT NULL,
    status_code          integer NOT NULL,
    duration_ms          double precision NOT NULL,
    request_size_bytes   bigint NOT NULL DEFAULT 0,
    response_size_bytes  bigint NOT NULL DEFAULT 0,
    user_agent           text,
    ip_address           inet,
    error_message        text,
    request_id           text,
    called_at            timestamptz NOT NULL,
    batch_id             uuid NOT NULL
) PARTITION BY RANGE (called_at);

-- Catches rows for days whose partition does not exist yet; the maintenance task moves them.
CREATE TABLE api_calls_default PARTITION OF api_calls DEFAULT;

CREATE INDEX api_calls_organization_time_idx ON api_calls (organization_id, called_at);
CREATE INDEX api_calls_agent_time_idx ON api_calls (organization_id, agent_id, called_at)
    WHERE agent_id IS NOT NULL;

-- The ledger that makes replays exact: a batch whose id is here has been applied.
CREATE TABLE ingest_batches (
    batch_id      uuid PRIMARY KEY,
    row_count     integer NOT NULL CHECK (row_count >= 0),
    committed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ingest_batches_committed_idx ON ingest_batches (committed_at);

-- Traffic columns shared by the three rollups. latency_histogram holds counts per fixed,
-- log-spaced latency bucket; histograms add element-wise, percentiles never average.

-- Hourly per agent: calls made with an agent key.
CREATE TABLE agent_activity_metrics (
    organization_id         uuid NOT NULL,
    agent_id                uuid NOT NULL,
    hour_timestamp          timestamptz NOT NULL,
    api_calls_count         bigint NOT NULL DEFAULT 0,
    errors_count            bigint NOT NULL DEFAULT 0,
    client_errors_count     bigint NOT NULL DEFAULT 0,
    server_errors_count     bigint NOT NULL DEFAULT 0,
    data_processed_bytes    bigint NOT NULL DEFAULT 0,
    request_bytes           bigint NOT NULL DEFAULT 0,
    response_bytes          bigint NOT NULL DEFAULT 0,
    verifications_count     bigint NOT NULL DEFAULT 0,
    total_duration_ms       double precision NOT NULL DEFAULT 0,
    avg_response_time_ms    double precision NOT NULL DEFAULT 0,
    p95_response_time_ms    double precision NOT NULL DEFAULT 0,
    latency_histogram       bigint[] NOT NULL DEFAULT '{}',
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, agent_id, hour_timestamp)
);
CREATE INDEX agent_activity_metrics_hour_idx ON agent_activity_metrics (organization_id, hour_timestamp);

-- Daily per organization: traffic of all its calls (user calls included) plus snapshot columns
-- written by the maintenance task.
CREATE TABLE organization_daily_metrics (
    organization_id             uuid NOT NULL,
    date                        date NOT NULL,
    total_api_calls             bigint NOT NULL DEFAULT 0,
    total_errors                bigint NOT NULL DEFAULT 0,
    client_errors               bigint NOT NULL DEFAULT 0,
    server_errors               bigint NOT NULL DEFAULT 0,
    total_data_processed_bytes  bigint NOT NULL DEFAULT 0,
    request_bytes               bigint NOT NULL DEFAULT 0,
    response_bytes              bigint NOT NULL DEFAULT 0,
    total_duration_ms           double precision NOT NULL DEFAULT 0,
    avg_response_time_ms        double precision NOT NULL DEFAULT 0,
    p95_response_time_ms        double precision NOT NULL DEFAULT 0,
    latency_histogram           bigint[] NOT NULL DEFAULT '{}',
    total_agents                integer NOT NULL DEFAULT 0,
    verified_agents             integer NOT NULL DEFAULT 0,
    pending_agents              integer NOT NULL DEFAULT 0,
    avg_trust_score             double precision,
    total_verifications         bigint NOT NULL DEFAULT 0,
    successful_verifications    bigint NOT NULL DEFAULT 0,
    failed_verifications        bigint NOT NULL DEFAULT 0,
    snapshot_at                 timestamptz,
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, date)
);

-- Hourly per (organization, method, endpoint): per-endpoint statistics without raw rows.
CREATE TABLE endpoint_hourly_metrics (
    organization_id         uuid NOT NULL,
    method                  text NOT NULL,
    endpoint                text NOT NULL,
    hour_timestamp          timestamptz NOT NULL,
    api_calls_count         bigint NOT NULL DEFAULT 0,
    errors_count            bigint NOT NULL DEFAULT 0,
    client_errors_count     bigint NOT NULL DEFAULT 0,
    server_errors_count     bigint NOT NULL DEFAULT 0,
    data_processed_bytes    bigint NOT NULL DEFAULT 0,
    request_bytes           bigint NOT NULL DEFAULT 0,
    response_bytes          bigint NOT NULL DEFAULT 0,
    total_duration_ms       double precision NOT NULL DEFAULT 0,
    avg_response_time_ms    double precision NOT NULL DEFAULT 0,
    p95_response_time_ms    double precision NOT NULL DEFAULT 0,
    latency_histogram       bigint[] NOT NULL DEFAULT '{}',
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, method, endpoint, hour_timestamp)
);
CREATE INDEX endpoint_hourly_metrics_hour_idx ON endpoint_hourly_metrics (organization_id, hour_timestamp);
