#!/usr/bin/env bash
# The whole lakelog test suite: unit, property and golden-file tests, and end-to-end tests that
# start their own local AWS emulators (installed here, project-locally, if missing).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

scripts/emulator.sh install
scripts/tools.sh install
cargo test --locked "$@"
