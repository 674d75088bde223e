#!/usr/bin/env bash
# Ensures the services the Keep (registry) tests talk to for real are running:
# PostgreSQL on 127.0.0.1:5432 (trust auth, database `test`). Starts it if it is stopped.
set -euo pipefail

if ! command -v pg_isready >/dev/null 2>&1; then
  echo "modelseal: PostgreSQL is not installed (no pg_isready); install postgresql" >&2
  exit 2
fi
if pg_isready -q -h 127.0.0.1 -p 5432; then
  exit 0
fi
if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ ! -d /etc/postgresql ] || [ -z "$(ls /etc/postgresql)" ]; then
  echo "modelseal: PostgreSQL is not running on 127.0.0.1:5432 and no cluster is configured to start" >&2
  exit 2
fi
version="$(ls /etc/postgresql | sort -V | tail -n 1)"
if ! pg_ctlcluster --skip-systemctl-redirect "$version" main start >/dev/null 2>&1; then
  echo "modelseal: could not start PostgreSQL $version (pg_ctlcluster failed)" >&2
  exit 2
fi
for _ in $(seq 1 60); do
  if pg_isready -q -h 127.0.0.1 -p 5432; then
    exit 0
  fi
  sleep 0.5
done
echo "modelseal: PostgreSQL $version started but does not accept connections on 127.0.0.1:5432" >&2
exit 2
