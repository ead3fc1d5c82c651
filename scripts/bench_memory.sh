#!/usr/bin/env bash
# Peak RSS of `lakelog sync` (a cold copy) and of `lakelog run`'s initial snapshot, on the local
# emulator, for a catalog of BENCH_PARTITIONS partitions (default 100,000) spread over
# BENCH_TABLES partitioned tables (default 10). Release build. Prints one line per measurement;
# the README's memory table comes from here:
#   scripts/bench_memory.sh                        # 100k partitions
#   BENCH_PARTITIONS=1000000 scripts/bench_memory.sh   # 1M partitions (about 40 minutes here)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

partitions="${BENCH_PARTITIONS:-100000}"
tables="${BENCH_TABLES:-10}"
run="mem$$"
work="$(mktemp -d)"

scripts/emulator.sh start
cleanup() {
  [ -n "${run_pid:-}" ] && kill -TERM "$run_pid" 2>/dev/null || true
  scripts/emulator.sh stop
  rm -rf "$work"
}
trap cleanup EXIT
# shellcheck disable=SC1091
source "${LAKELOG_DEV_DIR:-$root/.lakelog-dev}/emulator.env"

profile="${BENCH_PROFILE:-release}"
cargo build --quiet --profile "$profile" --locked --bin lakelog
lakelog="$root/target/$([ "$profile" = dev ] && echo debug || echo "$profile")/lakelog"

# One config per measurement: its own stream and target Region, the same source.
config() { # stream target_region
  cat <<YAML
source:
  region: us-east-1
  include: ["${run}_*"]
  partition_segments: 1
  events: { queue_name: ${run}-events, wait_seconds: 1 }
  reconcile_interval_seconds: 86400
stream: { name: lakelog-$1, shards: 2, create_if_missing: true }
state: { bucket: lakelog-${run}-state, create_bucket_if_missing: true }
targets:
  - name: dr
    region: $2
    location_rewrite: [ { from: "s3://${run}-data", to: "s3://${run}-data-dr" } ]
metrics: { listen: "127.0.0.1:${port:-0}" }
YAML
}
port=$(( 20000 + RANDOM % 20000 ))
config "${run}-sync" us-west-2 > "$work/sync.yaml"
config "${run}-run" us-west-2 > "$work/run.yaml"

# The generator gives partitions to 4 of every 5 regular tables.
per_table=$(( partitions / (tables * 4 / 5) ))
echo "== seeding: $tables tables x $per_table partitions"
"$lakelog" -c "$work/sync.yaml" simulate seed --prefix "$run" --databases 1 --tables "$tables" \
  --partitions "$per_table" --bucket "${run}-data"

echo "== lakelog sync (cold copy)"
/usr/bin/time -o "$work/sync.time" -f "%M %e" "$lakelog" -c "$work/sync.yaml" sync > "$work/sync.out"
tail -4 "$work/sync.out"
read -r sync_kb sync_s < "$work/sync.time"

# The emulator holds every copy in memory (about 6 KB a partition): drop the sync's copy before
# the run makes its own in the same Region.
"${LAKELOG_DEV_DIR:-$root/.lakelog-dev}/venv/bin/python" - "$AWS_ENDPOINT_URL" "${run}" <<'PY'
import sys, boto3
glue = boto3.client("glue", endpoint_url=sys.argv[1], region_name="us-west-2")
for db in glue.get_databases()["DatabaseList"]:
    if db["Name"].startswith(sys.argv[2]):
        glue.delete_database(Name=db["Name"])
PY

echo "== lakelog run (initial snapshot into the emptied target Region)"
"$lakelog" -c "$work/run.yaml" simulate route --queue "${run}-events" > /dev/null
objects=$(grep -oE '[0-9]+ databases, [0-9]+ tables, [0-9]+ partitions scanned' "$work/sync.out" \
  | awk '{print $1 + $3 + $5}')
LAKELOG_LOG=warn /usr/bin/time -o "$work/run.time" -f "%M %e" "$lakelog" -c "$work/run.yaml" run &
time_pid=$!
sleep 1
run_pid="$(pgrep -P "$time_pid" || true)"
applied=0
for _ in $(seq 1 7200); do
  applied=$(python3 - "$port" <<'PY'
import sys, urllib.request
try:
    text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=2).read().decode()
except OSError:
    print(0); sys.exit()
print(int(sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith("lakelog_records_applied_total{"))))
PY
)
  [ "$applied" -ge "$objects" ] && break
  sleep 1
done
kill -TERM "$run_pid"
wait "$time_pid" || true
run_pid=""
read -r run_kb run_s < "$work/run.time"

echo "== peak RSS ($objects objects, $partitions partitions asked for)"
printf 'sync          peak RSS %6d MB  in %7.1f s\n' $(( sync_kb / 1024 )) "$sync_s"
printf 'run snapshot  peak RSS %6d MB  in %7.1f s (%d of %d objects applied)\n' $(( run_kb / 1024 )) "$run_s" "$applied" "$objects"
