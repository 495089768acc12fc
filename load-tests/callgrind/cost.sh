#!/usr/bin/env bash
# The analytics cost, counted: the release `aim` under valgrind's callgrind, analytics on and then
# off, each sent the same fixed sequence of requests (sequence.py) after a warm-up that is not
# counted. Instruction counts do not depend on what else the machine is doing, so two runs of
# the same build agree within about 1%, where wall-clock pairs on two shared cores swing ±20%.
#
#   load-tests/callgrind/cost.sh        # REQUESTS=2000 WARMUP=1000 RUNS=1 BATCH=875 FLUSH_MS=60000
#
# Prints, per request: instructions on the request threads (tokio workers), on the pipeline's
# threads (`aim-analytics`), on the others, and in total, on and off, and the ratios; and the
# PostgreSQL CPU of the writers' backends and of the request path's backends per 1,000 calls
# (from /proc, not callgrind: the count is of `aim`'s own instructions only). RUNS=2 repeats
# each mode to show the count repeats.
#
# Quiet on purpose: a private PostgreSQL (aim's embedded cluster in a temporary folder), the key
# cache's TTL and the maintenance interval far longer than the run, the agent rate limit off, and
# one request thread (TOKIO_WORKER_THREADS=1: the sequence is one connection, and a second idle
# worker would spend a varying number of instructions looking for work to steal).
# Batches are cut by their size (BATCH=875 recorded calls), never by their age (FLUSH_MS=60000),
# so a run's batches are the same whatever valgrind's speed: the warm-up's 875 recorded calls are
# one batch, the sequence's 1,750 two. (Cut by age, their number, and with it the pipeline's
# count, would follow the run's wall time.) BATCH=50000 FLUSH_MS=200 is the service's default:
# batches of ~30 at valgrind's slow rate. Loopback only; bounded by REQUESTS and timeouts.
# Needs valgrind (Debian's valgrind package), python3 and curl.
set -euo pipefail
cd "$(dirname "$0")/../.."
requests=${REQUESTS:-2000}
warmup=${WARMUP:-1000}
runs=${RUNS:-1}
flush_ms=${FLUSH_MS:-60000}
batch=${BATCH:-875}
mix=${MIX:-recording}
source load-tests/lib.sh
require valgrind callgrind_control python3 curl psql

work=$(mktemp -d)
chmod 755 "$work"
pid=
stop() {
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=
  fi
}
trap 'stop; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
cargo build --release --locked --quiet -p aim-api
email=cost@example.test
password="cost-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
port=$(free_port)
metrics_port=$(free_port)
base="http://127.0.0.1:$port"
common=(AIM_DATA_DIR="$work/data" AIM_LISTEN="127.0.0.1:$port" AIM_METRICS_LISTEN="127.0.0.1:$metrics_port"
  AIM_ADMIN_EMAIL="$email" AIM_ADMIN_PASSWORD="$password" AIM_AGENT_RATE_LIMIT_PER_S=0
  AIM_API_KEY_CACHE_TTL_S=86400 AIM_MAINTENANCE_INTERVAL_S=86400 AIM_ANALYTICS_FLUSH_MS="$flush_ms"
  AIM_ANALYTICS_BATCH_MAX="$batch"
  TOKIO_WORKER_THREADS=1 RUST_LOG=warn)

# Provision natively: the cluster, the admin, an agent and its key.
env "${common[@]}" RUST_LOG="warn,aim_api::database=info" AIM_LOG_FORMAT=json \
  ./target/release/aim serve >"$work/provision.out" 2>"$work/provision.log" &
pid=$!
wait_ready "$base" "$pid"
credentials=$(provision "$base" "$email" "$password" cost)
read -r token agent key <<<"$credentials"
# The embedded cluster's URL, to read its backends' CPU; it keeps running between the runs.
database=$(grep -o '"url":"postgres://[^"]*' "$work/provision.log" | head -1 | cut -d'"' -f4 || true)
[ -n "$database" ] || { echo "no database URL in the log" >&2; exit 1; }
stop

# Rows in api_calls. (Not /metrics: its process collector reads the auxiliary vector in a way
# valgrind's emulation does not support, and the process dies.)
written() { psql "$database" -Atc 'SELECT count(*) FROM api_calls'; }
# CPU ticks (utime + stime) of the cluster's backends, by application_name.
backend_ticks() {
  python3 - "$database" "$1" <<'PY'
import subprocess, sys
url, name = sys.argv[1], sys.argv[2]
pids = subprocess.run(["psql", url, "-Atc",
    f"SELECT pid FROM pg_stat_activity WHERE application_name = '{name}'"],
    capture_output=True, text=True, check=True).stdout.split()
total = 0
for pid in pids:
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    except OSError:
        pass
print(total)
PY
}

results="$work/results"
: >"$results"
for run in $(seq 1 "$runs"); do
  for mode in on off; do
    enabled=true
    [ "$mode" = off ] && enabled=false
    out="$work/$mode-$run"
    mkdir -p "$out"
    env "${common[@]}" AIM_ANALYTICS_ENABLED="$enabled" \
      valgrind --tool=callgrind --separate-threads=yes --fair-sched=yes --callgrind-out-file="$out/callgrind.out" \
      ./target/release/aim serve >"$out/aim.out" 2>"$out/valgrind.log" &
    pid=$!
    wait_ready "$base" "$pid"
    start_rows=$(written)
    warm=$(python3 load-tests/callgrind/sequence.py "$base" "$token" "$key" "$agent" "$warmup" "$mix")
    if [ "$mode" = on ]; then
      for _ in $(seq 1 600); do [ "$(written)" -ge "$((start_rows + warm))" ] && break; sleep 0.5; done
    fi
    sleep 2
    before_written=$(written)
    before_writers=$(backend_ticks aim-analytics)
    before_api=$(backend_ticks aim)
    callgrind_control -z "$pid" >/dev/null
    # The threads, in creation order: valgrind numbers them so (threads do not exit here).
    ls /proc/"$pid"/task | sort -n | while read -r tid; do cat /proc/"$pid"/task/"$tid"/comm; done >"$out/threads.before"
    recorded=$(python3 load-tests/callgrind/sequence.py "$base" "$token" "$key" "$agent" "$requests" "$mix")
    if [ "$mode" = on ]; then
      # Every recorded call of the sequence written before the count is taken.
      target=$((before_written + recorded))
      for _ in $(seq 1 1200); do [ "$(written)" -ge "$target" ] && break; sleep 0.5; done
      [ "$(written)" -ge "$target" ] || { echo "the writers did not write every call" >&2; exit 1; }
    fi
    ls /proc/"$pid"/task | sort -n | while read -r tid; do cat /proc/"$pid"/task/"$tid"/comm; done >"$out/threads.after"
    cmp -s "$out/threads.before" "$out/threads.after" ||
      echo "warning: the thread set changed during the $mode run; labels may be off" >&2
    after_writers=$(backend_ticks aim-analytics)
    after_api=$(backend_ticks aim)
    callgrind_control -d "$pid" >/dev/null
    sleep 2
    stop
    python3 - "$out" "$mode" "$requests" "$((after_writers - before_writers))" \
      "$((after_api - before_api))" "$recorded" >>"$results" <<'PY'
import glob, os, re, sys
out, mode, requests, writers_ticks, api_ticks, recorded = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
names = open(os.path.join(out, "threads.after")).read().split("\n")
groups = {"request": 0, "pipeline": 0, "other": 0}
# The dump taken with callgrind_control -d is part 1: callgrind.out.1-NN per thread.
for path in glob.glob(os.path.join(out, "callgrind.out.1-*")):
    thread = int(path.rsplit("-", 1)[1])
    name = names[thread - 1] if thread - 1 < len(names) else "?"
    text = open(path).read()
    m = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
    count = int(m.group(1)) if m else 0
    # Thread names are cut to 15 bytes: tokio's workers show as "tokio-rt-worker".
    group = "request" if name.startswith("tokio-r") else "pipeline" if name.startswith("aim-analytics") else "other"
    groups[group] += count
ticks = os.sysconf("SC_CLK_TCK")
total = sum(groups.values())
# The writers' backends per 1,000 recorded calls, the request path's per 1,000 requests.
print(mode, groups["request"] / requests, groups["pipeline"] / requests, groups["other"] / requests,
      total / requests, writers_ticks / ticks * 1000 / recorded, api_ticks / ticks * 1000 / requests,
      groups["pipeline"] / recorded)
PY
  done
done

python3 - "$results" "$requests" "$flush_ms" "$batch" <<'PY'
import sys
rows = [line.split() for line in open(sys.argv[1]) if line.strip()]
requests, flush_ms, batch = sys.argv[2], sys.argv[3], sys.argv[4]
print(f"instructions per request ({requests} requests, one connection, AIM_ANALYTICS_BATCH_MAX={batch}, AIM_ANALYTICS_FLUSH_MS={flush_ms})")
print(f"{'run':>4} {'mode':>4} {'request threads':>16} {'pipeline':>10} {'other':>10} {'total':>12}   PostgreSQL CPU s: writers per 1,000 recorded calls, request path per 1,000 requests")
for i, r in enumerate(rows):
    print(f"{i // 2 + 1:>4} {r[0]:>4} {float(r[1]):>16,.0f} {float(r[2]):>10,.0f} {float(r[3]):>10,.0f} {float(r[4]):>12,.0f}   {float(r[5]):.3f}, {float(r[6]):.3f}")
for i in range(0, len(rows) - 1, 2):
    on, off = rows[i], rows[i + 1]
    print(f"run {i // 2 + 1}: request threads on/off {float(on[1]) / float(off[1]):.3f}, "
          f"whole process on/off {float(on[4]) / float(off[4]):.3f}, "
          f"pipeline instructions per recorded call {float(on[7]):,.0f}")
ons = [float(r[4]) for r in rows if r[0] == "on"]
offs = [float(r[4]) for r in rows if r[0] == "off"]
for label, xs in (("on", ons), ("off", offs)):
    if len(xs) > 1:
        print(f"repeatability ({label}, whole process): runs within {abs(max(xs) / min(xs) - 1) * 100:.2f}%")
PY
