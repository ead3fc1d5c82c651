#!/usr/bin/env bash
# Benchmarks: the codec (criterion, no emulator) and a cold copy of one 10,000-partition table on
# the local emulator, and a cold copy of 10,000 Lake Formation grants. Numbers go into the README.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/emulator.sh start
trap 'scripts/emulator.sh stop' EXIT
# shellcheck disable=SC1091
source "${LAKELOG_DEV_DIR:-$root/.lakelog-dev}/emulator.env"
cargo bench --bench cold_copy
cargo bench --bench realtime
cargo bench --bench lf_grants
cargo bench --bench codec
