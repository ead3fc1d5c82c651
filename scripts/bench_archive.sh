#!/usr/bin/env bash
# The archive's benchmarks (benches/archive.rs), release build, no emulator: the state store is a
# local directory. Each phase runs in its own process, so each peak RSS is that phase's alone
# (from /proc/self/status VmHWM, and /usr/bin/time's maximum resident set size when present).
# Prints one line per measurement; the README's archive table comes from here:
#   scripts/bench_archive.sh                          # 1M partition records
#   BENCH_RECORDS=10000000 scripts/bench_archive.sh   # 10M (about 3 GB under $TMPDIR)
# BENCH_PHASES picks phases (default: write state-raw compact heads state restore plan-empty);
# BENCH_RESTORE sets how many objects the restore selects (default 1,000,000).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

records="${BENCH_RECORDS:-1000000}"
phases="${BENCH_PHASES:-write state-raw compact heads state restore plan-empty}"
work="$(mktemp -d "${TMPDIR:-/tmp}/lakelog-bench-archive.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# The bench's executable, built once.
bench="$(cargo bench --locked --bench archive --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -1)"
[ -x "$bench" ] || { echo "could not build benches/archive.rs" >&2; exit 1; }

echo "== archive benchmarks: $records partition records, store $work/store"
for phase in $phases; do
  if [ -x /usr/bin/time ]; then
    BENCH_PHASE="$phase" BENCH_RECORDS="$records" BENCH_DIR="$work/store" \
      /usr/bin/time -o "$work/time" -f "%M %e" "$bench"
    read -r kb seconds < "$work/time"
    echo "   ($phase: process max RSS $((kb / 1024)) MB, ${seconds} s)"
  else
    BENCH_PHASE="$phase" BENCH_RECORDS="$records" BENCH_DIR="$work/store" "$bench"
  fi
done
echo "   (store on disk: $(du -sh "$work/store" | cut -f1))"
