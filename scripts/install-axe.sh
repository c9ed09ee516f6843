#!/usr/bin/env bash
# The browser tests check every page with axe-core, injected into Chromium from
# node_modules/ (git-ignored). Installs the pinned version with npm when it is missing.
# Without it the accessibility checks skip, except under CI=true, where they fail.
set -euo pipefail
AXE_VERSION=4.14.1
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
INSTALLED="$ROOT/node_modules/axe-core/package.json"
if [ -f "$INSTALLED" ] && grep -q "\"version\": \"$AXE_VERSION\"" "$INSTALLED"; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "note: npm is not installed; the accessibility checks will be skipped." >&2
  exit 0
fi
if ! npm install --prefix "$ROOT" --no-save --no-package-lock --no-audit --no-fund --silent \
    "axe-core@$AXE_VERSION" >/dev/null; then
  echo "warning: installing axe-core with npm failed; the accessibility checks will be skipped." >&2
fi
