-- Distributes AIM's analytics tables over a Citus cluster, in one step, on a database the
-- service has already migrated (`aim migrate`, or a first start with AIM_AUTO_MIGRATE=true).
--
--   psql "postgres://…@coordinator/aim" -v ON_ERROR_STOP=1 -f deploy/citus/distribute.sql
--
-- Run it on the coordinator as a superuser, with the workers added (citus_add_node) and the
-- service stopped: create_distributed_table copies each table's existing rows to the shards.
-- The rules the service's statements keep so that they run on the result are in
-- docs/scaling.md ("Citus").
--
-- The six analytics tables are distributed by organization_id and co-located, so one
-- organization's rows of every table live in one shard group: the writers' batch (COPY into
-- api_calls plus the rollup upserts) and every API read (all filter by organization_id) are
-- routed to it. Every primary key already leads with organization_id.
--
-- The identity tables (organizations, users, agents, api_keys, sessions, refresh tokens,
-- verification_events, trust_score_history, audit_events, trust_policies, alerts, webhooks,
-- webhook_deliveries) and the ingest ledger stay local on the coordinator: they are small,
-- written with foreign keys between them, and no statement joins them with an analytics table,
-- so making them reference tables would only make every login, key check and verification a
-- write replicated to every node.

\set ON_ERROR_STOP on

CREATE EXTENSION IF NOT EXISTS citus;

SELECT create_distributed_table('api_calls', 'organization_id');
SELECT create_distributed_table('agent_activity_metrics', 'organization_id', colocate_with => 'api_calls');
SELECT create_distributed_table('agent_daily_metrics', 'organization_id', colocate_with => 'api_calls');
SELECT create_distributed_table('endpoint_hourly_metrics', 'organization_id', colocate_with => 'api_calls');
SELECT create_distributed_table('endpoint_daily_metrics', 'organization_id', colocate_with => 'api_calls');
SELECT create_distributed_table('organization_daily_metrics', 'organization_id', colocate_with => 'api_calls');

-- What is where, for the operator's eyes.
SELECT table_name, citus_table_type, distribution_column, colocation_id, shard_count
FROM citus_tables ORDER BY table_name;
