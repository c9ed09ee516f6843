#!/usr/bin/env bash
# The browser tests drive Debian's Chromium (Playwright's own download cannot be used).
# Installs it when missing and we may; otherwise says how, and the browser tests skip.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "note: chromium is not installed and cannot be installed here; browser tests will be skipped." >&2
  echo "      install it with: sudo apt-get install chromium" >&2
fi
