#!/usr/bin/env bash
# The lakelog demo, end to end on the local AWS emulator:
#   installs and starts the emulator (moto + kinesalite, project-local), builds lakelog,
#   seeds a crawler-like source catalog in us-east-1, replicates it to us-west-2 through the
#   Kinesis change log, runs the sync again to show that a converged target costs no writes,
#   then runs `lakelog run` (real time) while a crawler-like burst writes new tables and
#   partitions and Glue's events are delivered through EventBridge -> SQS: the changes arrive in
#   the target as they happen. The lag is read from lakelog's Prometheus endpoint (/metrics) every
#   second: it rises under the burst and returns to about zero. Then `lakelog status` and
#   `lakelog diff` show the copy current and identical.
# Size it with DEMO_DATABASES, DEMO_TABLES, DEMO_PARTITIONS.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

databases="${DEMO_DATABASES:-4}"
tables="${DEMO_TABLES:-12}"
partitions="${DEMO_PARTITIONS:-400}"

scripts/emulator.sh start
trap 'scripts/emulator.sh stop' EXIT
# shellcheck disable=SC1091
source "${LAKELOG_DEV_DIR:-$root/.lakelog-dev}/emulator.env"

echo "== building lakelog"
cargo build --quiet --bin lakelog
lakelog="$root/target/debug/lakelog"

echo "== checking pipeline.yaml"
"$lakelog" validate -c pipeline.yaml

echo "== seeding the source catalog (us-east-1): $databases databases x $tables tables x $partitions partitions"
"$lakelog" -c pipeline.yaml simulate seed --prefix demo --databases "$databases" --tables "$tables" \
  --partitions "$partitions" --bucket lakelog-demo-data

echo "== lakelog sync: source -> Kinesis change log -> dr-west (us-west-2)"
"$lakelog" -c pipeline.yaml sync

echo "== lakelog sync again: the target is converged, so nothing is written"
"$lakelog" -c pipeline.yaml sync

metrics_addr="${LAKELOG_METRICS_LISTEN:-127.0.0.1:9464}"
export LAKELOG_METRICS_LISTEN="$metrics_addr"
# One line from /metrics: the worst lag over shards, what is applied, readiness.
scrape() {
  python3 - "$metrics_addr" <<'PY'
import sys, urllib.request
addr = sys.argv[1]
def get(path):
    try:
        with urllib.request.urlopen(f"http://{addr}{path}", timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError:
        return 0, ""
status, text = get("/metrics")
if status != 200:
    print("metrics endpoint not up yet"); sys.exit(0)
def values(name):
    return [float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name + "{") or l.startswith(name + " ")]
worst = lambda name: max(values(name), default=0.0)
ready = "ready" if get("/readyz")[0] == 200 else "not ready"
print(f"lag {worst('lakelog_replication_lag_seconds'):6.2f}s  oldest unapplied {worst('lakelog_oldest_unapplied_age_seconds'):6.2f}s  "
      f"kinesis behind {worst('lakelog_kinesis_behind_latest_seconds'):6.2f}s  "
      f"applied {sum(values('lakelog_records_applied_total')):8.0f}  captured {sum(values('lakelog_records_captured_total')):8.0f}  ({ready})")
PY
}

echo "== real time: lakelog run (metrics on http://$metrics_addr/metrics), while a crawler-like burst writes to the source"
"$lakelog" -c pipeline.yaml simulate route --queue lakelog-demo-events >/dev/null
LAKELOG_LOG="${LAKELOG_LOG:-warn}" "$lakelog" -c pipeline.yaml run &
run_pid=$!
trap 'kill -TERM "$run_pid" 2>/dev/null || true; wait "$run_pid" 2>/dev/null || true; scripts/emulator.sh stop' EXIT
for _ in $(seq 1 60); do
  if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://$metrics_addr/readyz', timeout=1)" 2>/dev/null; then break; fi
  sleep 1
done
# The initial snapshot is published (ready); let it be applied so the burst's lag stands alone.
idle="lag   0.00s  oldest unapplied   0.00s  kinesis behind   0.00s"
for _ in $(seq 1 60); do
  line="$(scrape)"
  case "$line" in "$idle"*) break ;; esac
  echo "-- initial snapshot:   $line"
  sleep 1
done
echo "-- before the burst:   $(scrape)"
"$lakelog" -c pipeline.yaml simulate burst --prefix demo_burst --databases 1 --tables "${DEMO_BURST_TABLES:-16}" \
  --partitions "${DEMO_BURST_PARTITIONS:-500}" --bucket lakelog-demo-data &
burst_pid=$!
elapsed=0
while kill -0 "$burst_pid" 2>/dev/null; do
  echo "-- t=${elapsed}s (burst):  $(scrape)"
  sleep 1; elapsed=$((elapsed + 1))
done
wait "$burst_pid"
# After the burst: watch the lag return to zero. The lag gauges start at capture, and events may
# still wait in SQS, so "done" is: idle gauges and the same counts three seconds running.
previous=""; same=0
for _ in $(seq 1 "${DEMO_RUN_SECONDS:-90}"); do
  line="$(scrape)"
  echo "-- t=${elapsed}s:          $line"
  case "$line" in
    "$idle"*) if [ "$line" = "$previous" ]; then same=$((same + 1)); else same=0; fi ;;
    *) same=0 ;;
  esac
  [ "$same" -ge 3 ] && break
  previous="$line"
  sleep 1; elapsed=$((elapsed + 1))
done
echo "== stopping lakelog run (SIGTERM: drain, checkpoint, exit)"
kill -TERM "$run_pid"
wait "$run_pid"
trap 'scripts/emulator.sh stop' EXIT

echo "== lakelog status: per shard, what is applied and what is waiting"
"$lakelog" -c pipeline.yaml status
echo "== lakelog diff: the DR copy compared with the source, object by object"
"$lakelog" -c pipeline.yaml diff --target dr-west --limit 10
