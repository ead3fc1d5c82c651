#!/usr/bin/env bash
# The lakelog demo, end to end on the local AWS emulator:
#   installs and starts the emulator (moto + kinesalite, project-local), builds lakelog,
#   seeds a crawler-like source catalog in us-east-1, replicates it to us-west-2 through the
#   Kinesis change log, runs the sync again to show that a converged target costs no writes,
#   then runs `lakelog run` (real time) while a crawler-like burst writes new tables and
#   partitions and Glue's events are delivered through EventBridge -> SQS: the changes arrive in
#   the target as they happen (one log line per applied batch, with its lag).
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

echo "== real time: lakelog run, while a crawler-like burst writes to the source"
"$lakelog" -c pipeline.yaml simulate route --queue lakelog-demo-events >/dev/null
LAKELOG_LOG="${LAKELOG_LOG:-warn,lakelog::replicate=info,lakelog::run=info}" "$lakelog" -c pipeline.yaml run &
run_pid=$!
sleep 3
"$lakelog" -c pipeline.yaml simulate burst --prefix demo_burst --databases 1 --tables "${DEMO_BURST_TABLES:-8}" \
  --partitions "${DEMO_BURST_PARTITIONS:-250}" --bucket lakelog-demo-data
sleep "${DEMO_RUN_SECONDS:-10}"
echo "== stopping lakelog run (SIGTERM: drain, checkpoint, exit)"
kill -TERM "$run_pid"
wait "$run_pid"
