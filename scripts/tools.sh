#!/usr/bin/env bash
# Installs the checkers the test suite runs on grafana/ and infra/, project-locally
# ($LAKELOG_DEV_DIR, default .lakelog-dev/, git-ignored), pinned, idempotent:
#   - promtool, from Debian's `prometheus` package (only the promtool binary is unpacked; the
#     package is not installed, so no service is started)
#   - cfn-lint, from PyPI, in its own virtualenv
#
#   scripts/tools.sh install
set -euo pipefail

CFN_LINT_VERSION="1.58.0"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${LAKELOG_DEV_DIR:-$root/.lakelog-dev}"
mkdir -p "$dir/bin"

log() { printf '[tools] %s\n' "$*" >&2; }

install_promtool() {
  if [ -x "$dir/bin/promtool" ] && "$dir/bin/promtool" --version >/dev/null 2>&1; then return 0; fi
  log "fetching promtool from Debian's prometheus package"
  local tmp
  tmp="$(mktemp -d)"
  # apt-get download needs the package lists; refresh them only if the first try fails.
  if ! (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1); then
    apt-get update -qq >/dev/null
    (cd "$tmp" && apt-get download prometheus >/dev/null)
  fi
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root"
  cp "$tmp/root/usr/bin/promtool" "$dir/bin/promtool"
  rm -rf "$tmp"
  "$dir/bin/promtool" --version 2>&1 | head -1 >&2
}

install_cfn_lint() {
  if [ -x "$dir/tools-venv/bin/cfn-lint" ] && grep -qx "$CFN_LINT_VERSION" "$dir/tools-venv/.cfn-lint-version" 2>/dev/null; then
    return 0
  fi
  log "installing cfn-lint==$CFN_LINT_VERSION into $dir/tools-venv"
  python3 -m venv "$dir/tools-venv"
  "$dir/tools-venv/bin/pip" install --quiet --disable-pip-version-check "cfn-lint==$CFN_LINT_VERSION"
  echo "$CFN_LINT_VERSION" > "$dir/tools-venv/.cfn-lint-version"
  ln -sfn "$dir/tools-venv/bin/cfn-lint" "$dir/bin/cfn-lint"
}

case "${1:-}" in
  install)
    install_promtool
    install_cfn_lint
    ;;
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac
