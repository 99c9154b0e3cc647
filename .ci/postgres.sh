#!/usr/bin/env bash
# Start Debian's PostgreSQL on 127.0.0.1 with a `dvmset` role and database for the catalog tests.
# Prints only the SQLAlchemy URL to use as DVMSET_TEST_PG_URL (everything else goes to stderr).
# Idempotent.
set -euo pipefail
{
  if ! command -v pg_ctlcluster >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  version=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
  if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^$version main$"; then
    pg_createcluster "$version" main
  fi
  pg_ctlcluster "$version" main start || pg_ctlcluster "$version" main status
  for _ in $(seq 30); do pg_isready -h 127.0.0.1 -q && break; sleep 1; done
  su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='dvmset'\"" | grep -q 1 \
    || su postgres -c "psql -qc \"CREATE ROLE dvmset LOGIN PASSWORD 'dvmset'\""
  su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname='dvmset_test'\"" | grep -q 1 \
    || su postgres -c "psql -qc \"CREATE DATABASE dvmset_test OWNER dvmset\""
} >&2
echo "postgresql+psycopg://dvmset:dvmset@127.0.0.1:5432/dvmset_test"
