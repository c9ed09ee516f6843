#!/usr/bin/env bash
# The browser tests drive Debian's Chromium (Playwright's own download cannot be used).
# Installs it when missing and we may; otherwise says how, and the browser tests skip.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
[ "$(id -u)" = "0" ] || SUDO="sudo -n"
if command -v apt-get >/dev/null 2>&1 && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
  # A failed install must not hide the other tests' results: the browser tests then skip,
  # and pytest's summary says so.
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null; }; then
    echo "warning: installing chromium failed; browser tests will be skipped." >&2
  fi
else
  echo "note: chromium is not installed and cannot be installed here; browser tests will be skipped." >&2
  echo "      install it with: sudo apt-get install chromium" >&2
fi
