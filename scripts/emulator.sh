#!/usr/bin/env bash
# Installs, starts and stops the local AWS emulators lakelog is tested against:
#   moto server (Glue, Lake Formation, S3, SQS, EventBridge) and kinesalite (Kinesis).
# Everything lives in a project-local, git-ignored directory ($LAKELOG_DEV_DIR, default .lakelog-dev/).
#
#   scripts/emulator.sh install   # idempotent; pinned versions
#   scripts/emulator.sh start     # starts both on free loopback ports, writes $DIR/emulator.env
#   scripts/emulator.sh stop      # stops both by PID
#   scripts/emulator.sh env       # prints the env file (source it to point lakelog at the emulator)
set -euo pipefail

MOTO_VERSION="5.2.5"
KINESALITE_VERSION="3.3.3"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${LAKELOG_DEV_DIR:-$root/.lakelog-dev}"
mkdir -p "$dir"

log() { printf '[emulator] %s\n' "$*" >&2; }

install() {
  if [ ! -x "$dir/venv/bin/moto_server" ] || ! grep -qx "$MOTO_VERSION" "$dir/venv/.moto-version" 2>/dev/null; then
    log "installing moto[server]==$MOTO_VERSION into $dir/venv"
    python3 -m venv "$dir/venv"
    "$dir/venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
    echo "$MOTO_VERSION" > "$dir/venv/.moto-version"
  fi
  if [ ! -f "$dir/node/node_modules/kinesalite/package.json" ] \
     || ! grep -q "\"version\": \"$KINESALITE_VERSION\"" "$dir/node/node_modules/kinesalite/package.json"; then
    log "installing kinesalite@$KINESALITE_VERSION into $dir/node"
    mkdir -p "$dir/node"
    (cd "$dir/node" && npm install --silent --no-audit --no-fund --prefix . "kinesalite@$KINESALITE_VERSION" >/dev/null)
  fi
  # kinesalite's CLI listens on every interface; this wrapper binds loopback and reports the port it got.
  cat > "$dir/node/kinesalite-loopback.js" <<'JS'
const kinesalite = require('kinesalite');
const server = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 1000 });
server.listen(Number(process.argv[2] || 0), '127.0.0.1', () => {
  console.log('PORT ' + server.address().port);
});
JS
}

wait_for_line() { # file pattern timeout_s
  local i
  for i in $(seq 1 $(( $3 * 10 ))); do
    if grep -qE "$2" "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

start() {
  install
  stop quiet
  : > "$dir/moto.log"; : > "$dir/kinesalite.log"
  # moto with AWS's paging for the Glue list calls (scripts/moto_paging.py says why).
  "$dir/venv/bin/python" "$root/scripts/moto_paging.py" -H 127.0.0.1 -p 0 > "$dir/moto.log" 2>&1 &
  echo $! > "$dir/moto.pid"
  node "$dir/node/kinesalite-loopback.js" 0 > "$dir/kinesalite.log" 2>&1 &
  echo $! > "$dir/kinesalite.pid"
  wait_for_line "$dir/moto.log" 'Running on http://127\.0\.0\.1:[0-9]+' 30 || { cat "$dir/moto.log" >&2; log "moto did not start"; exit 1; }
  wait_for_line "$dir/kinesalite.log" '^PORT [0-9]+' 30 || { cat "$dir/kinesalite.log" >&2; log "kinesalite did not start"; exit 1; }
  local moto_port kin_port
  moto_port=$(grep -oE 'Running on http://127\.0\.0\.1:[0-9]+' "$dir/moto.log" | head -1 | sed 's/.*://')
  kin_port=$(grep -oE '^PORT [0-9]+' "$dir/kinesalite.log" | head -1 | cut -d' ' -f2)
  cat > "$dir/emulator.env" <<ENV
export AWS_ENDPOINT_URL=http://127.0.0.1:$moto_port
export AWS_ENDPOINT_URL_KINESIS=http://127.0.0.1:$kin_port
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
ENV
  log "moto on 127.0.0.1:$moto_port, kinesalite on 127.0.0.1:$kin_port (env: $dir/emulator.env)"
}

stop() {
  local name pid
  for name in moto kinesalite; do
    if [ -f "$dir/$name.pid" ]; then
      pid=$(cat "$dir/$name.pid")
      if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
      fi
      rm -f "$dir/$name.pid"
    fi
  done
  [ "${1:-}" = quiet ] || log "stopped"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  env) cat "$dir/emulator.env" ;;
  *) echo "usage: $0 install|start|stop|env" >&2; exit 2 ;;
esac
