#!/usr/bin/env bash
# The browser the dashboard's tests drive through Playwright: Debian's Chromium, installed
# where missing (Playwright's own browser download is never used).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "Chromium is missing: sudo apt-get install chromium" >&2
    exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
