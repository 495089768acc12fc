#!/usr/bin/env bash
# Bounded load on GET /api/v1/status (a database round trip per request) with oha.
#   load-tests/oha/status.sh [base-url] [seconds] [connections]
# Loopback only by default; the run stops by itself after the given duration.
set -euo pipefail
base=${1:-http://127.0.0.1:8080}
seconds=${2:-10}
connections=${3:-32}

if ! command -v oha >/dev/null 2>&1; then
  echo "oha is not installed: cargo install oha" >&2
  exit 1
fi
curl -fsS "$base/health" >/dev/null || { echo "no aim answering at $base" >&2; exit 1; }
exec oha --no-tui -z "${seconds}s" -c "$connections" "$base/api/v1/status"
