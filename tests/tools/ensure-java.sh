#!/usr/bin/env bash
# Java for the Spark engine's tests (pyspark in local mode starts a JVM): Debian's OpenJDK 17,
# installed where no Java is found.
set -euo pipefail
if [ -n "${JAVA_HOME:-}" ] || command -v java >/dev/null; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "Java is missing (the Spark engine needs 17 or newer): sudo apt-get install openjdk-17-jre-headless" >&2
    exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
