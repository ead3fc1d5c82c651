#!/usr/bin/env bash
# The whole lakelog test suite: unit, property and golden-file tests, and end-to-end tests that
# start their own local AWS emulators (installed here, project-locally, if missing).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

scripts/emulator.sh install
scripts/tools.sh install
if [ "$#" -gt 0 ]; then
  exec cargo test --locked "$@"
fi
# The multi-process tests (names starting `serial_`: three lakelog workers sharing leases, and a
# worker paused past its lease) run after the rest, one at a time: each
# runs several lakelog processes whose 2-second lease renewals should not compete with the whole
# suite on two cores. Same tests, same asserts.
cargo test --locked -- --skip serial_
cargo test --locked --test e2e serial_ -- --test-threads=1
