#!/usr/bin/env bash
# The OpenAPI document as a contract, tried by a property-based client generated from it
# (Schemathesis, pinned below): every check Schemathesis has, a fixed seed and example count,
# against the service started here with its rate limits off, as four callers in turn: an agent
# key in X-API-Key, the same key as a bearer token, no credentials, and an admin's token.
# Fails when Schemathesis reports any failure.
#
#   load-tests/contract/schemathesis.sh      # EXAMPLES=25 SEED=20261203 MAX_TIME_S=100 per caller
#
# Starts `aim` (the debug build `cargo test` already compiled) on its embedded PostgreSQL in a
# temporary folder, loopback only; bounded: each caller's run stops after MAX_TIME_S. Installs
# Schemathesis into target/schemathesis-venv (Python 3 with venv, from PyPI) on first use.
set -euo pipefail
cd "$(dirname "$0")/../.."
SCHEMATHESIS_VERSION=4.32.5
examples=${EXAMPLES:-25}
seed=${SEED:-20261203}
max_time=${MAX_TIME_S:-100}
for tool in curl python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool is not installed" >&2; exit 1; }
done

venv=target/schemathesis-venv
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  python3 -m venv "$venv" || {
    echo "python3 cannot create a virtual environment: install Debian's python3-venv" >&2
    exit 1
  }
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

work=$(mktemp -d)
chmod 755 "$work"
pid=
cleanup() {
  [ -n "$pid" ] && { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
json() { python3 -c "import sys, json; print(json.load(sys.stdin)$1)"; }

cargo build --locked --quiet -p aim-api
email=contract@example.test
password="contract-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
port=$(free_port)
base="http://127.0.0.1:$port"
# Rate limits off (the login limits cannot be zero: a million a minute is off for this run).
# Webhook deliveries are not sent (a poll an hour away): the endpoints the run registers have
# invented URLs, and this run calls nothing but loopback.
env AIM_DATA_DIR="$work/data" AIM_LISTEN="127.0.0.1:$port" AIM_METRICS_LISTEN="127.0.0.1:$(free_port)" \
  AIM_WEBHOOK_POLL_MS=3600000 \
  AIM_ADMIN_EMAIL="$email" AIM_ADMIN_PASSWORD="$password" AIM_AGENT_RATE_LIMIT_PER_S=0 \
  AIM_LOGIN_RATE_LIMIT_PER_IP_PER_MIN=1000000 AIM_LOGIN_RATE_LIMIT_PER_EMAIL_PER_MIN=1000000 \
  RUST_LOG=warn ./target/debug/aim serve >"$work/aim.out" 2>"$work/aim.log" &
pid=$!
for _ in $(seq 1 600); do
  curl -fsS "$base/health/ready" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/aim.log" >&2; exit 1; }
  sleep 0.2
done
curl -fsS "$base/health/ready" >/dev/null

token=$(curl -fsS "$base/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"email\":\"$email\",\"password\":\"$password\"}" | json '["token"]')
agent=$(curl -fsS "$base/api/v1/agents" -H "authorization: Bearer $token" \
  -H 'content-type: application/json' -d '{"name":"contract"}' | json '["id"]')
curl -fsS -X PATCH "$base/api/v1/agents/$agent" -H "authorization: Bearer $token" \
  -H 'content-type: application/json' -d '{"status":"verified"}' >/dev/null
key=$(curl -fsS -X POST "$base/api/v1/agents/$agent/api-keys" -H "authorization: Bearer $token" \
  -H 'content-type: application/json' -d '{}' | json '["api_key"]')

status=0
run() {
  local who=$1
  shift
  echo "== Schemathesis $SCHEMATHESIS_VERSION as $who (seed $seed, $examples examples per operation)"
  "$venv/bin/schemathesis" --no-color --config-file load-tests/contract/schemathesis.toml \
    run "$base/api/v1/openapi.json" --checks all --seed "$seed" \
    --max-examples "$examples" --max-time "$max_time" --workers 1 \
    --report junit --report-dir "target/schemathesis/$who" "$@" || status=1
}
# The agent's runs first: the admin's run may revoke or delete what it finds.
run agent-key-header -H "X-API-Key: $key"
run agent-key-bearer -H "Authorization: Bearer $key"
run anonymous
run admin -H "Authorization: Bearer $token"
exit "$status"
