#!/usr/bin/env bash
# Sustained agent-key load through the API with analytics on, then the pipeline's accounting:
# how many calls were answered, recorded and dropped. Loopback by default; bounded in time.
#
#   AIM_ADMIN_EMAIL=admin@localhost AIM_ADMIN_PASSWORD=... \
#     load-tests/oha/agent-calls.sh [base-url] [metrics-url] [seconds] [connections] [rate-per-s]
#
# A rate of 0 means as fast as possible.
set -euo pipefail
base=${1:-http://127.0.0.1:8080}
metrics=${2:-http://127.0.0.1:9464/metrics}
seconds=${3:-10}
connections=${4:-32}
rate=${5:-0}

command -v oha >/dev/null 2>&1 || { echo "oha is not installed: cargo install oha" >&2; exit 1; }
: "${AIM_ADMIN_EMAIL:?set AIM_ADMIN_EMAIL}" "${AIM_ADMIN_PASSWORD:?set AIM_ADMIN_PASSWORD}"

json() { python3 -c "import sys, json; print(json.load(sys.stdin)$1)"; }
token=$(curl -fsS "$base/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"email\":\"$AIM_ADMIN_EMAIL\",\"password\":\"$AIM_ADMIN_PASSWORD\"}" | json '["token"]')
agent=$(curl -fsS "$base/api/v1/agents" -H "authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"name":"load-test"}' | json '["id"]')
key=$(curl -fsS -X POST "$base/api/v1/agents/$agent/api-keys" -H "authorization: Bearer $token" | json '["api_key"]')

sleep 1 # let the set-up calls' batch flush, so the counts below are the load's alone

counter() { curl -fsS "$metrics" | awk -v name="$1" '$1 == name { sum += $2 } END { printf "%d\n", sum }'; }
dropped() { curl -fsS "$metrics" | awk '/^aim_analytics_events_dropped_total/ { sum += $2 } END { printf "%d\n", sum }'; }
received_before=$(counter aim_analytics_events_received_total)
written_before=$(counter aim_analytics_events_written_total)
dropped_before=$(dropped)

rate_args=()
[ "$rate" != 0 ] && rate_args=(-q "$rate")
oha --no-tui -z "${seconds}s" -c "$connections" "${rate_args[@]}" \
  -H "X-API-Key: $key" "$base/api/v1/agents/$agent" | tee /tmp/aim-oha.txt

sleep 2 # let the last batch's age flush pass
received=$(( $(counter aim_analytics_events_received_total) - received_before ))
written=$(( $(counter aim_analytics_events_written_total) - written_before ))
drops=$(( $(dropped) - dropped_before ))
echo "analytics: received=$received written=$written dropped=$drops"
