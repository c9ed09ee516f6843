#!/usr/bin/env bash
# Debian packages the test suite needs and this machine lacks, installed with one
# `apt-get update` when we may: Chromium for the browser tests (Playwright's own download
# cannot be used), and PostgreSQL and Redis when nothing answers at TEST_DATABASE_URL and
# TEST_REDIS_URL and their server programs are missing (the suite then starts throwaway
# servers from them; tests/services.py). Otherwise it says how, and those tests skip.
# Usage: scripts/install-test-packages.sh PYTHON (the virtualenv's, to ask tests/services.py)
set -euo pipefail
PYTHON="${1:-python3}"
packages=()
command -v chromium >/dev/null 2>&1 || packages+=(chromium)
read -r -a services <<<"$("$PYTHON" -m tests.services packages)"
packages+=("${services[@]}")
[ "${#packages[@]}" -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" = "0" ] || SUDO="sudo -n"
if command -v apt-get >/dev/null 2>&1 && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
  # A failed install must not hide the other tests' results: the tests that need the
  # package then skip (or, for PostgreSQL in CI, fail with one line saying why).
  if ! { $SUDO apt-get update -qq &&
         DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${packages[@]}" >/dev/null; }; then
    echo "warning: installing ${packages[*]} failed; the tests that need them will be skipped." >&2
  fi
else
  echo "note: ${packages[*]} not installed and cannot be installed here; the tests that need them will be skipped." >&2
  echo "      install them with: sudo apt-get install ${packages[*]}" >&2
fi
