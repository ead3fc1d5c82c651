#!/usr/bin/env bash
# The lakelog demo, end to end on the local AWS emulator:
#   installs and starts the emulator (moto + kinesalite, project-local), builds lakelog,
#   seeds a crawler-like source catalog in us-east-1, replicates it to us-west-2 through the
#   Kinesis change log, then runs the sync again to show that a converged target costs no writes.
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
