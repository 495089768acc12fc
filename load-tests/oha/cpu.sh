#!/usr/bin/env bash
# The analytics cost in CPU time, the figure an operator sizes machines with: two instances of the
# release `aim` on one private PostgreSQL, analytics on and off, each sent the same fixed rate of
# agent-key `GET /api/v1/auth/me` (oha -q; RATE_SHARE of the off instance's saturation rate,
# measured first), alternated in PAIRS pairs (the order flips every pair). Per run: CPU-seconds
# per 1,000 requests of the `aim` process, split by thread name (request threads are tokio's
# workers, `aim-analytics` the pipeline's), and of PostgreSQL (the writers' backends, named
# `aim-analytics`, and every other process of the cluster), from /proc. CPU time, unlike
# throughput, does not fall when another process takes the cores, so pairs on a shared machine
# agree far better than wall-clock ones.
#
#   load-tests/oha/cpu.sh        # PAIRS=5 SECONDS_PER_RUN=10 CONNECTIONS=8 RATE_SHARE=0.3
#
# At the end every call the "on" instance answered must be a row in api_calls, with no drops.
# Loopback only; bounded: one 5 s saturation run plus 2 × PAIRS runs of SECONDS_PER_RUN each.
# Needs oha (cargo install oha), curl, python3 and psql.
set -euo pipefail
cd "$(dirname "$0")/../.."
source load-tests/lib.sh
pairs=${PAIRS:-5}
seconds=${SECONDS_PER_RUN:-10}
connections=${CONNECTIONS:-8}
share=${RATE_SHARE:-0.3}
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
email=cpu@example.test
password="cpu-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
# Quiet: the key cache and maintenance do not fire mid-run; the agent rate limit is off.
common=(AIM_AGENT_RATE_LIMIT_PER_S=0 AIM_ADMIN_EMAIL="$email" AIM_ADMIN_PASSWORD="$password"
  AIM_API_KEY_CACHE_TTL_S=86400 AIM_MAINTENANCE_INTERVAL_S=86400)

on_port=$(free_port); on_metrics=$(free_port)
env "${common[@]}" AIM_DATA_DIR="$work/on" AIM_LISTEN="127.0.0.1:$on_port" AIM_LOG_FORMAT=json \
  AIM_METRICS_LISTEN="127.0.0.1:$on_metrics" RUST_LOG="warn,aim_api::database=info" \
  ./target/release/aim serve >"$work/on.out" 2>"$work/on.log" &
on_pid=$!
pids+=("$on_pid")
on="http://127.0.0.1:$on_port"
wait_ready "$on" "$on_pid"
database=$(grep -o '"url":"postgres://[^"]*' "$work/on.log" | head -1 | cut -d'"' -f4)
[ -n "$database" ] || { echo "no database URL in the log" >&2; exit 1; }

off_port=$(free_port)
env "${common[@]}" AIM_DATA_DIR="$work/off" DATABASE_URL="$database" AIM_ANALYTICS_ENABLED=false \
  AIM_LISTEN="127.0.0.1:$off_port" AIM_METRICS_LISTEN="127.0.0.1:$(free_port)" RUST_LOG=warn \
  ./target/release/aim serve >"$work/off.out" 2>"$work/off.log" &
off_pid=$!
pids+=("$off_pid")
off="http://127.0.0.1:$off_port"
wait_ready "$off" "$off_pid"

credentials=$(provision "$on" "$email" "$password" cpu)
read -r token agent key <<<"$credentials"
path=/api/v1/auth/me

# One oha run; prints the number of requests answered. Fails on any answer but 200.
load() {
  local base=$1
  shift
  oha --no-tui --output-format json -c "$connections" -H "X-API-Key: $key" "$@" "$base$path" |
    python3 -c '
import json, sys
r = json.load(sys.stdin)
codes = r["statusCodeDistribution"]
if set(codes) - {"200"}:
    sys.exit("answers other than 200: %s" % codes)
print(sum(codes.values()), round(r["summary"]["requestsPerSec"]))'
}
for base in "$on" "$off"; do load "$base" -n 2000 >/dev/null; done # warm: key cache, connections
read -r _ saturation < <(load "$off" -z 5s)
rate=$(python3 -c "print(max(1, round($saturation * $share)))")
echo "saturation (analytics off, $connections connections): $saturation requests/s; fixed rate: $rate/s"

# CPU ticks of one process by thread name ("total" includes threads that have exited), and of
# the cluster's processes: the writers' backends and every other child of the postmaster.
ticks() {
  python3 - "$1" "$database" <<'PY'
import os, subprocess, sys
pid, url = sys.argv[1], sys.argv[2]
def stat(path):
    fields = open(path).read().rsplit(")", 1)[1].split()
    return fields, int(fields[11]) + int(fields[12])
groups = {"request": 0, "pipeline": 0}
for tid in os.listdir(f"/proc/{pid}/task"):
    try:
        name = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
        _, t = stat(f"/proc/{pid}/task/{tid}/stat")
    except OSError:
        continue
    if name.startswith("tokio-r"):
        groups["request"] += t
    elif name.startswith("aim-analytics"):
        groups["pipeline"] += t
groups["total"] = stat(f"/proc/{pid}/stat")[1]
def query(sql):
    return subprocess.run(["psql", url, "-Atc", sql], capture_output=True, text=True, check=True).stdout.split()
writers = set(query("SELECT pid FROM pg_stat_activity WHERE application_name = 'aim-analytics'"))
checkpointer = query("SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")[0]
postmaster = stat(f"/proc/{checkpointer}/stat")[0][1]
pg_writers = pg_other = 0
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    try:
        fields, t = stat(f"/proc/{p}/stat")
    except OSError:
        continue
    if fields[1] != postmaster and p != postmaster:
        continue
    if p in writers:
        pg_writers += t
    else:
        pg_other += t
print(groups["request"], groups["pipeline"], groups["total"], pg_writers, pg_other)
PY
}
answered() { curl -fsS "http://127.0.0.1:$on_metrics/metrics" | awk -v r="route=\"$path\"" '/^aim_http_requests_total\{/ && index($0, r) { s += $NF } END { printf "%d\n", s }'; }
dropped() { curl -fsS "http://127.0.0.1:$on_metrics/metrics" | awk '/^aim_analytics_events_dropped_total/ { s += $NF } END { printf "%d\n", s }'; }
rows() { psql "$database" -Atc 'SELECT count(*) FROM api_calls'; }
sleep 2
rows_before=$(rows)
answered_before=$(answered)
dropped_before=$(dropped)

hz=$(getconf CLK_TCK)
results="$work/results"
: >"$results"
# measure MODE: one fixed-rate run against that instance, its CPU per 1,000 requests appended.
measure() {
  local mode=$1 base pid
  if [ "$mode" = on ]; then base=$on; pid=$on_pid; else base=$off; pid=$off_pid; fi
  local before after requests
  before=$(ticks "$pid")
  read -r requests _ < <(load "$base" -q "$rate" -z "${seconds}s" -w)
  # The writers flush a batch at most a flush interval after its first event: wait it out so
  # the run's writes are counted in the run.
  sleep 1
  after=$(ticks "$pid")
  python3 - "$mode" "$requests" "$hz" "$before" "$after" >>"$results" <<'PY'
import sys
mode, requests, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
b, a = [int(x) for x in sys.argv[4].split()], [int(x) for x in sys.argv[5].split()]
d = [(y - x) / hz * 1000 / requests for x, y in zip(b, a)]
request, pipeline, total, pg_writers, pg_other = d
print(mode, requests, request, pipeline, total - request - pipeline, total, pg_writers, pg_other)
PY
}
for pair in $(seq 1 "$pairs"); do
  if [ $((pair % 2)) = 1 ]; then measure on; measure off; else measure off; measure on; fi
done
sleep 2
rows_added=$(( $(rows) - rows_before ))
answered_on=$(( $(answered) - answered_before ))
drops=$(( $(dropped) - dropped_before ))

python3 - "$results" "$rate" "$seconds" "$connections" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1]) if line.strip()]
rate, seconds, connections = sys.argv[2], sys.argv[3], sys.argv[4]
print(f"CPU-seconds per 1,000 requests at {rate} requests/s ({seconds} s runs, {connections} connections)")
print("| pair | mode | requests | request threads | aim-analytics | other | aim total | PostgreSQL writers | PostgreSQL other |")
print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
ratios, pg = [], []
for i, r in enumerate(rows):
    pair = i // 2 + 1
    print(f"| {pair} | {r[0]} | {r[1]} | " + " | ".join(f"{float(x):.4f}" for x in r[2:]) + " |")
for i in range(0, len(rows) - 1, 2):
    on = rows[i] if rows[i][0] == "on" else rows[i + 1]
    off = rows[i + 1] if rows[i][0] == "on" else rows[i]
    ratios.append(float(on[5]) / float(off[5]))
    pg.append((float(on[6]) + float(on[7])) / (float(off[6]) + float(off[7])))
print(f"aim CPU on/off per pair: {', '.join(f'{x:.3f}' for x in ratios)}; median {statistics.median(ratios):.3f} (target <= 1.10)")
print(f"PostgreSQL CPU on/off per pair: {', '.join(f'{x:.3f}' for x in pg)}; median {statistics.median(pg):.3f}")
ons = [r for r in rows if r[0] == "on"]
print(f"PostgreSQL CPU per 1,000 recorded calls, writers' backends: median {statistics.median(float(r[6]) for r in ons):.4f} s")
PY
echo "analytics on: $answered_on calls answered, $rows_added rows added to api_calls, $drops dropped"
status=0
[ "$drops" = 0 ] || { echo "DROPS: $drops" >&2; status=1; }
[ "$rows_added" = "$answered_on" ] || { echo "ROWS DO NOT MATCH THE ANSWERED CALLS" >&2; status=1; }
exit "$status"
