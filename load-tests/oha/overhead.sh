#!/usr/bin/env bash
# The cost of analytics on the hot path: oha on `GET /api/v1/agents` with an agent key against two
# instances of the service on one database, one with analytics on and one with
# AIM_ANALYTICS_ENABLED=false, alternated in PAIRS pairs (the order flips every pair). In each
# pair: throughput at saturation (CONNECTIONS connections, SECONDS seconds, as fast as they go),
# then p99 at a fixed rate of half the pair's saturation rate (analytics off). Prints every run,
# the medians of the pairs' ratios, and the accounting of the "on" instance: drops, and every
# answered call a row in api_calls.
#
#   load-tests/oha/overhead.sh            # PAIRS=5 SECONDS=8 CONNECTIONS=32
#
# Starts both instances itself (the first on its embedded PostgreSQL in a temporary folder,
# the second on the first's database), loopback only; bounded: 4 × PAIRS runs of SECONDS each.
# Needs oha (cargo install oha), curl, python3 and psql.
set -euo pipefail
cd "$(dirname "$0")/../.."
pairs=${PAIRS:-5}
seconds=${SECONDS_PER_RUN:-8}
connections=${CONNECTIONS:-32}
source load-tests/lib.sh
require oha curl python3 psql

work=$(mktemp -d)
chmod 755 "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
cargo build --release --locked --quiet -p aim-api
email=overhead@example.test
password="overhead-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
common=(AIM_AGENT_RATE_LIMIT_PER_S=0 AIM_LOG_FORMAT=json AIM_ADMIN_EMAIL="$email" AIM_ADMIN_PASSWORD="$password")

on_port=$(free_port); on_metrics=$(free_port)
env "${common[@]}" AIM_DATA_DIR="$work/on" AIM_LISTEN="127.0.0.1:$on_port" \
  AIM_METRICS_LISTEN="127.0.0.1:$on_metrics" RUST_LOG="warn,aim_api::database=info" \
  ./target/release/aim serve >"$work/on.out" 2>"$work/on.log" &
pids+=($!)
on="http://127.0.0.1:$on_port"
wait_ready "$on"
# The embedded cluster's URL (a Unix socket, or TCP where it listens on a port).
database=$(grep -o '"url":"postgres://[^"]*' "$work/on.log" | head -1 | cut -d'"' -f4)
[ -n "$database" ] || { echo "no database URL in the log" >&2; exit 1; }

off_port=$(free_port)
env "${common[@]}" AIM_DATA_DIR="$work/off" DATABASE_URL="$database" AIM_ANALYTICS_ENABLED=false \
  AIM_LISTEN="127.0.0.1:$off_port" AIM_METRICS_LISTEN="127.0.0.1:$(free_port)" RUST_LOG=warn \
  ./target/release/aim serve >"$work/off.out" 2>"$work/off.log" &
pids+=($!)
off="http://127.0.0.1:$off_port"
wait_ready "$off"

credentials=$(provision "$on" "$email" "$password" overhead)
read -r token agent key <<<"$credentials"
for base in "$on" "$off"; do # warm both (key cache, connections)
  oha --no-tui -n 2000 -c "$connections" -H "X-API-Key: $key" "$base/api/v1/agents" >/dev/null
done
sleep 1

dropped() { curl -fsS "http://127.0.0.1:$on_metrics/metrics" | awk '/^aim_analytics_events_dropped_total/ { s += $NF } END { printf "%d\n", s }'; }
rows() { psql "$database" -Atc 'SELECT count(*) FROM api_calls'; }
# Answered as the "on" instance counts them: a request oha abandons at the end of a timed run
# may still have been answered (and recorded).
answered() { curl -fsS "http://127.0.0.1:$on_metrics/metrics" | awk '/^aim_http_requests_total\{/ && /route="\/api\/v1\/agents"/ { s += $NF } END { printf "%d\n", s }'; }
rows_before=$(rows)
dropped_before=$(dropped)
answered_before=$(answered)

# One oha run: prints "requests/s p99_ms"; fails on any answer but 200.
run() {
  local base=$1 rate=${2:-}
  local args=(--no-tui --output-format json -z "${seconds}s" -c "$connections" -H "X-API-Key: $key")
  [ -n "$rate" ] && args+=(-q "$rate")
  oha "${args[@]}" "$base/api/v1/agents" | python3 -c '
import json, sys
r = json.load(sys.stdin)
codes = r["statusCodeDistribution"]
if set(codes) - {"200"}:
    sys.exit("answers other than 200: %s" % codes)
print("%.0f %.2f" % (r["summary"]["requestsPerSec"], r["latencyPercentiles"]["p99"] * 1000))'
}

printf '| pair | order | on req/s | off req/s | on/off | fixed rate | on p99 | off p99 | on/off |\n'
printf '| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n'
throughput_ratios=()
p99_ratios=()
for pair in $(seq 1 "$pairs"); do
  if [ $((pair % 2)) = 1 ]; then order="on, off"; else order="off, on"; fi
  if [ "$order" = "on, off" ]; then
    read -r on_rps _ < <(run "$on"); read -r off_rps _ < <(run "$off")
  else
    read -r off_rps _ < <(run "$off"); read -r on_rps _ < <(run "$on")
  fi
  rate=$((off_rps / 2))
  if [ "$order" = "on, off" ]; then
    read -r _ on_p99 < <(run "$on" "$rate"); read -r _ off_p99 < <(run "$off" "$rate")
  else
    read -r _ off_p99 < <(run "$off" "$rate"); read -r _ on_p99 < <(run "$on" "$rate")
  fi
  t=$(python3 -c "print(f'{$on_rps / $off_rps:.3f}')")
  p=$(python3 -c "print(f'{$on_p99 / $off_p99:.3f}')")
  throughput_ratios+=("$t"); p99_ratios+=("$p")
  printf '| %s | %s | %s | %s | %s | %s/s | %s ms | %s ms | %s |\n' \
    "$pair" "$order" "$on_rps" "$off_rps" "$t" "$rate" "$on_p99" "$off_p99" "$p"
done
sleep 2 # the last batch's flush interval
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
rows_added=$(( $(rows) - rows_before ))
answered_on=$(( $(answered) - answered_before ))
drops=$(( $(dropped) - dropped_before ))
echo
echo "median of the pairs: throughput on/off $(median "${throughput_ratios[@]}") (target >= 0.97), p99 on/off $(median "${p99_ratios[@]}") (target <= 1.05)"
echo "analytics on: $answered_on calls answered, $rows_added rows added to api_calls, $drops dropped"
status=0
[ "$drops" = 0 ] || { echo "DROPS: $drops" >&2; status=1; }
[ "$rows_added" = "$answered_on" ] || { echo "ROWS DO NOT MATCH THE ANSWERED CALLS" >&2; status=1; }
exit "$status"
