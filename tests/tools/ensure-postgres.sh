#!/usr/bin/env bash
# The PostgreSQL server programs the tests start (initdb, pg_ctl): Debian's packages, installed
# where missing. The tests run the server themselves, on a temporary directory and port.
set -euo pipefail
if command -v initdb >/dev/null || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "PostgreSQL's server programs are missing: sudo apt-get install postgresql" >&2
    exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
# Debian starts a cluster of its own on 5432: the tests need none.
service postgresql stop >/dev/null 2>&1 || true
