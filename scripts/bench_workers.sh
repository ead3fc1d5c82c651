#!/usr/bin/env bash
# One `lakelog run` worker against three, sharing a 4-shard change log through DynamoDB leases
# (`state.coordination.mode: leases`), under a crawler burst of BENCH_PARTITIONS partitions
# (default 100,000) in BENCH_TABLES tables (default 66: 50 partitioned) on the local emulator.
# For each worker count in BENCH_WORKERS (default "1 3"), on freshly started emulators:
#   1. start the workers (each under /usr/bin/time for its peak RSS, each serving its own
#      /metrics) and wait until every worker holds its share of both groups' leases;
#   2. `lakelog simulate burst` writes the partitions and delivers Glue's events (EventBridge ->
#      SQS);
#   3. catch-up: from the end of the burst until the workers' /metrics count every partition of
#      the burst created in the target (`lakelog_records_applied_total{kind="partition",
#      result="created"}`, summed over workers: a duplicate applied twice counts as unchanged);
#      `lakelog diff` then confirms the target equals the source (its exit code, not timed in);
#   4. SIGTERM: each worker drains, lets its leases go and prints its JSON run report, whose
#      per-record lag histograms give p99 capture -> applied and Glue change -> applied.
# A worker's p99 covers the records it applied; with 3 workers the table shows the worst
# worker's, an upper bound of the p99 over all records. Prints one table at the end.
#   scripts/bench_workers.sh                                     # 100k partitions, release
#   BENCH_PARTITIONS=20000 BENCH_PROFILE=dev scripts/bench_workers.sh
# BENCH_CATCHUP_SECONDS (default 1500) bounds the wait after the burst for each worker count.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

partitions="${BENCH_PARTITIONS:-100000}"
tables="${BENCH_TABLES:-66}"
worker_counts="${BENCH_WORKERS:-1 3}"
catchup_limit="${BENCH_CATCHUP_SECONDS:-1500}"
dev="${LAKELOG_DEV_DIR:-$root/.lakelog-dev}"
work="$(mktemp -d)"

profile="${BENCH_PROFILE:-release}"
cargo build --quiet --profile "$profile" --locked --bin lakelog
lakelog="$root/target/$([ "$profile" = dev ] && echo debug || echo "$profile")/lakelog"

time_pids=()
stop_workers() {
  local pid
  for pid in "${time_pids[@]}"; do
    # /usr/bin/time passes no signal on: SIGTERM goes to its child, the worker.
    kill -TERM $(pgrep -P "$pid") 2>/dev/null || true
  done
  for pid in "${time_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  time_pids=()
}
cleanup() {
  stop_workers
  scripts/emulator.sh stop
  rm -rf "$work"
}
trap cleanup EXIT

# The generator leaves regular table j unpartitioned when j % 4 == 3.
partitioned=$(( tables - (tables + 1) / 4 ))
per_table=$(( (partitions + partitioned - 1) / partitioned ))
expected=$(( partitioned * per_table ))

# Reads the workers' /metrics (ports as arguments). `leases N`: exit 0 once every worker holds
# its share of each group; `watch EXPECTED`: one line a second (seconds since the epoch,
# partitions created, worst lag gauge) until EXPECTED partitions are created.
cat > "$work/scrape.py" <<'PY'
import sys, time, urllib.request

def scrape(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return []
    rows = []
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        series, value = line.rsplit(" ", 1)
        name, _, labels = series.partition("{")
        rows.append((name, labels.rstrip("}"), float(value)))
    return rows

def total(rows, name, *labels):
    return sum(v for n, l, v in rows if n == name and all(x in l for x in labels))

mode, arg, ports = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
if mode == "leases":
    groups = ['group="dr"', 'group="archive.segments"']
    held = [[total(scrape(p), "lakelog_leases_held", g) for g in groups] for p in ports]
    print("leases held (dr, archive) per worker:", held, flush=True)
    share = 4 // len(ports)
    ok = all(sum(w[i] for w in held) == 4 and all(w[i] >= share for w in held) for i in range(len(groups)))
    sys.exit(0 if ok else 1)
while True:
    rows = [scrape(p) for p in ports]
    created = sum(total(r, "lakelog_records_applied_total", 'target="dr"', 'kind="partition"', 'result="created"') for r in rows)
    lag = max((v for r in rows for n, _, v in r if n == "lakelog_replication_lag_seconds"), default=0.0)
    print(f"{time.time():.2f} {created:.0f} {lag:.2f}", flush=True)
    if created >= arg:
        break
    time.sleep(1)
PY

# One worker count, on fresh emulators; appends its row to $work/table.
bench() { # workers
  local n="$1" run="wk$1x$$" cfg ports=() i port
  cfg="$work/$run.yaml"
  scripts/emulator.sh start
  # shellcheck disable=SC1091
  source "$dev/emulator.env"
  cat > "$cfg" <<YAML
source:
  region: us-east-1
  include: ["${run}_*"]
  partition_segments: 1
  events: { queue_name: ${run}-events, wait_seconds: 1 }
  reconcile_interval_seconds: 86400
stream: { name: lakelog-${run}, shards: 4, create_if_missing: true }
state:
  bucket: lakelog-${run}-state
  create_bucket_if_missing: true
  coordination: { mode: leases, create_table_if_missing: true }
targets:
  - name: dr
    region: us-west-2
    location_rewrite: [ { from: "s3://${run}-data", to: "s3://${run}-data-dr" } ]
metrics: { listen: "127.0.0.1:0" }
YAML
  "$lakelog" -c "$cfg" simulate route --queue "${run}-events" > /dev/null

  echo "== $n worker(s): starting"
  for i in $(seq 1 "$n"); do
    port=$(( 20000 + RANDOM % 20000 ))
    ports+=("$port")
    LAKELOG_LOG=warn /usr/bin/time -o "$work/$run.$i.time" -f "%M %e" \
      "$lakelog" -c "$cfg" --output json run --metrics-listen "127.0.0.1:$port" \
      > "$work/$run.$i.json" 2> "$work/$run.$i.log" &
    time_pids+=("$!")
    # One at a time: the first creates the stream and the lease table.
    if [ "$i" = 1 ]; then sleep 3; fi
  done
  local balanced=0
  for _ in $(seq 1 120); do
    # Twice in a row, a renewal apart: no lease is still moving.
    if python3 "$work/scrape.py" leases 0 "${ports[@]}" > "$work/leases" \
      && sleep 3 && python3 "$work/scrape.py" leases 0 "${ports[@]}" > "$work/leases"; then
      balanced=1; break
    fi
    sleep 1
  done
  cat "$work/leases"
  if [ "$balanced" != 1 ]; then
    echo "the workers never shared the leases; their logs:" >&2
    tail -n 20 "$work/$run".*.log >&2
    exit 1
  fi

  echo "== $n worker(s): burst of $tables tables ($partitioned partitioned x $per_table partitions)"
  python3 "$work/scrape.py" watch "$expected" "${ports[@]}" > "$work/$run.watch" &
  local watch_pid=$! burst_start burst_end done_at="" caught=""
  burst_start=$(date +%s.%N)
  "$lakelog" -c "$cfg" --output json simulate burst --prefix "$run" --databases 1 --tables "$tables" \
    --partitions "$per_table" --bucket "${run}-data" > "$work/$run.burst.json"
  burst_end=$(date +%s.%N)
  for _ in $(seq 1 "$catchup_limit"); do
    kill -0 "$watch_pid" 2>/dev/null || break
    sleep 1
  done
  if kill -0 "$watch_pid" 2>/dev/null; then
    kill "$watch_pid"
    caught="no"
  fi
  wait "$watch_pid" 2>/dev/null || true
  done_at=$(tail -n 1 "$work/$run.watch" | cut -d' ' -f1)
  echo "== $n worker(s): $(tail -n 1 "$work/$run.watch" | cut -d' ' -f2) of $expected partitions created"

  local diff_rc=0 diff_start diff_s
  diff_start=$(date +%s)
  "$lakelog" -c "$cfg" diff --target dr --limit 5 > "$work/$run.diff" 2>&1 || diff_rc=$?
  diff_s=$(( $(date +%s) - diff_start ))
  tail -n 3 "$work/$run.diff"
  stop_workers

  python3 - "$n" "$work/$run" "$burst_start" "$burst_end" "$done_at" "${caught:-yes}" "$diff_rc" "$diff_s" \
    >> "$work/table" <<'PY'
import json, sys
n, base, b0, b1, done, caught, diff_rc, diff_s = sys.argv[1:]
n, b0, b1, done = int(n), float(b0), float(b1), float(done)
burst = json.load(open(f"{base}.burst.json"))
watch = [l.split() for l in open(f"{base}.watch") if l.strip()]
peak_gauge = max((float(w[2]) for w in watch), default=0.0)
rss, p99c, p99e, samples, events = [], [], [], [], []
for i in range(1, n + 1):
    kb, _ = open(f"{base}.{i}.time").read().split()[-2:]
    rss.append(int(kb) // 1024)
    try:
        report = json.load(open(f"{base}.{i}.json"))
        dr = report["targets"]["dr"]
        events.append(report["events"]["messages"])
    except (OSError, ValueError, KeyError):
        # A worker that failed prints an error report instead: its cells read nan.
        dr = {"lag_from_capture": {"p99_seconds": float("nan"), "samples": 0}, "lag_from_change": {"p99_seconds": float("nan")}}
        events.append("?")
    p99c.append(dr["lag_from_capture"]["p99_seconds"])
    p99e.append(dr["lag_from_change"]["p99_seconds"])
    samples.append(dr["lag_from_capture"]["samples"])
catchup = f"{done - b1:.1f}" if caught == "yes" else f"> {done - b1:.0f} (not caught up)"
print("| {} | {:,} in {:.1f} s | {} s (all applied {:.1f} s after burst start) | {:.2f} s {} | {:.2f} s {} | {:.1f} s | {} | {} | {} | {} |".format(
    n, burst["partitions"], b1 - b0, catchup, done - b0,
    max(p99c), p99c if n > 1 else "", max(p99e), p99e if n > 1 else "", peak_gauge,
    " / ".join(f"{r} MB" for r in rss), " / ".join(str(s) for s in samples),
    f"{burst['events_sent']} sent; " + " / ".join(str(e) for e in events),
    f"in sync ({diff_s} s)" if diff_rc == "0" else f"DRIFT (exit {diff_rc})"))
PY
  scripts/emulator.sh stop
}

for n in $worker_counts; do
  bench "$n"
done

echo
echo "== $expected partitions, $profile build, $(nproc) cores"
echo "| workers | burst (partitions in) | catch-up after the burst's end | lag p99 capture -> applied (worst worker) | lag p99 change -> applied (worst worker) | peak lag gauge | peak RSS per worker | lag samples (records applied) per worker | Glue events read per worker | diff |"
echo "|---|---|---|---|---|---|---|---|---|---|"
cat "$work/table"
