# Shared by the load-test scripts (sourced, not run): free ports, JSON fields, readiness and the
# CPU time of processes from /proc. Loopback only.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# json '["field"]' < document: prints that field.
json() { python3 -c "import sys, json; print(json.load(sys.stdin)$1)"; }

# wait_ready BASE_URL [PID]: until /health/ready answers; fails if PID (when given) exits first.
wait_ready() {
  for _ in $(seq 1 1200); do
    curl -fsS "$1/health/ready" >/dev/null 2>&1 && return 0
    if [ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null; then
      echo "the service for $1 exited before it was ready" >&2
      return 1
    fi
    sleep 0.25
  done
  echo "the service at $1 did not become ready" >&2
  return 1
}

# require TOOL…: each must be on PATH.
require() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || {
      echo "$tool is not installed (see load-tests/README.md)" >&2
      exit 1
    }
  done
}

# provision BASE_URL EMAIL PASSWORD AGENT_NAME: logs in as the admin, creates an agent and a key
# for it; prints "TOKEN AGENT_ID KEY".
provision() {
  local token agent key
  token=$(curl -fsS "$1/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$2\",\"password\":\"$3\"}" | json '["token"]')
  agent=$(curl -fsS "$1/api/v1/agents" -H "authorization: Bearer $token" \
    -H 'content-type: application/json' -d "{\"name\":\"$4\"}" | json '["id"]')
  key=$(curl -fsS -X POST "$1/api/v1/agents/$agent/api-keys" -H "authorization: Bearer $token" \
    -H 'content-type: application/json' -d '{}' | json '["api_key"]')
  echo "$token $agent $key"
}
